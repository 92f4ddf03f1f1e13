//! Timelines as Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and chrome://tracing open.

use serde_json::{json, Value};
use tandem_plan::Timeline;

/// The measured and the predicted timeline as one trace: two processes (`measured`, `predicted`), one
/// thread per processor in each, one complete (`"ph": "X"`) event per stage, transfer and join, in µs.
/// `processors` fixes the order of the tracks; processors found only in the timelines are added after.
pub fn chrome_trace(measured: &Timeline, predicted: &Timeline, processors: &[String]) -> Value {
    let mut tracks: Vec<String> = processors.to_vec();
    for s in measured.spans.iter().chain(&predicted.spans) {
        if !tracks.contains(&s.processor) {
            tracks.push(s.processor.clone());
        }
    }
    let mut events = vec![];
    for (pid, (label, timeline)) in [("measured", measured), ("predicted", predicted)].into_iter().enumerate() {
        let pid = pid + 1;
        events.push(json!({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": format!("{label} ({:.3} ms)", timeline.latency_us / 1e3)}}));
        events.push(json!({"name": "process_sort_index", "ph": "M", "pid": pid, "args": {"sort_index": pid}}));
        for (tid, p) in tracks.iter().enumerate() {
            events.push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": p}}));
            events.push(json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}}));
        }
        for s in &timeline.spans {
            let tid = tracks.iter().position(|p| p == &s.processor).unwrap_or(0);
            let cat = s.name.split_whitespace().next().unwrap_or("stage");
            events.push(json!({
                "name": s.name,
                "cat": cat,
                "ph": "X",
                "pid": pid,
                "tid": tid,
                "ts": s.start_us,
                "dur": (s.end_us - s.start_us).max(0.0),
                "args": {"stage": s.stage, "processor": s.processor},
            }));
        }
    }
    json!({"traceEvents": events, "displayTimeUnit": "ms"})
}

//! How long the plan search takes: a synthetic 500-op model on each kind of synthetic device, then the
//! zoo's models and the shared ONNX models (when `../shared/models` is there) with cost models fitted
//! on planted timings. Each search runs five times; the median is printed with the candidates scored.
//! Then the robust search (`tune --robust`: lowest p90 over availability scenarios) on the 500-op
//! models, with its p90 against the idle-optimal plan's.
//!
//!     cargo run --release -p tandem-plan --example bench_search

use std::path::Path;
use std::time::Instant;

use tandem_graph::{Graph, InputShape};
use tandem_plan::build::{self, BuildOptions};
use tandem_plan::synthetic::{self, Device, Recipe};
use tandem_plan::{robust_search, scenarios, search, Objective, Problem, SearchOptions};

const RUNS: usize = 5;

/// Runs `f` [`RUNS`] times: the sorted wall-clock times, ms, and the last result.
fn timed<T>(mut f: impl FnMut() -> T) -> (Vec<f64>, T) {
    let mut times = vec![];
    let mut last = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        last = Some(f());
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times, last.expect("RUNS > 0"))
}

fn bench(label: &str, problem: &Problem, objective: Objective) {
    let (times, found) = timed(|| search(problem, &SearchOptions { objective, ..Default::default() }).expect("a plan"));
    let median = times[RUNS / 2];
    let single = found.best_baseline(objective).map(|b| format!("{} alone {:.0} µs", b.processor, b.latency_us)).unwrap_or_else(|| "no single processor".into());
    println!(
        "{label:<34} {:>4} ops {:>4} split ops  {:>9.1} ms (min {:.1}, max {:.1})  {:>6} candidates ({:.1} µs each)  plan {:.0} µs vs {single}",
        problem.ops.len(),
        problem.ops.iter().filter(|o| !o.splits.is_empty()).count(),
        median,
        times[0],
        times[RUNS - 1],
        found.evaluations,
        1e3 * median / found.evaluations as f64,
        found.best.score.latency_us,
    );
}

fn bench_robust(label: &str, problem: &Problem) {
    let list = scenarios(problem, &Default::default());
    let (times, found) = timed(|| robust_search(problem, &list, &SearchOptions::default()).expect("a plan"));
    let median = times[RUNS / 2];
    println!(
        "{label:<34} {:>4} ops {:>2} scenarios {:>9.1} ms (min {:.1}, max {:.1})  {:>6} candidates  p90 {:.0} µs vs idle-optimal plan's {:.0} µs (idle {:.0} vs {:.0} µs)",
        problem.ops.len(),
        list.len(),
        median,
        times[0],
        times[RUNS - 1],
        found.evaluations,
        found.p90_us,
        found.idle_optimal_p90_us,
        found.best.score.latency_us,
        found.idle_optimal.score.latency_us,
    );
}

fn main() {
    println!("search time, median of {RUNS} runs (release build)");
    for (device, name) in [(Device::TwoCores, "two cores"), (Device::Accelerator, "cpu + accelerator"), (Device::AcceleratorAndCores, "accelerator + two cores")] {
        let mut recipe = Recipe::new(500, device);
        recipe.max_splits = 120;
        let problem = synthetic::problem(1, &recipe);
        bench(&format!("synthetic 500 ops, {name}"), &problem, Objective::Latency);
    }
    let mut recipe = Recipe::new(500, Device::TwoCores);
    recipe.max_splits = 120;
    bench("synthetic 500 ops, throughput", &synthetic::problem(1, &recipe), Objective::Throughput);
    println!("robust search time (p90 over availability scenarios, default levels), median of {RUNS} runs");
    for (device, name) in [(Device::TwoCores, "two cores"), (Device::AcceleratorAndCores, "accelerator + two cores")] {
        let mut recipe = Recipe::new(500, device);
        recipe.max_splits = 120;
        bench_robust(&format!("synthetic 500 ops, {name}"), &synthetic::problem(1, &recipe));
    }

    let mut graphs: Vec<Graph> = tandem_graph::zoo::models()
        .iter()
        .map(|m| Graph::load_bytes(m.name, &tandem_graph::zoo::build(m.name, 0).expect("zoo model"), &[]).expect("zoo graph"))
        .collect();
    // The shared models, with the input shapes their MANIFEST.json gives ("f32:1,3,48,192").
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models");
    if let Ok(text) = std::fs::read_to_string(shared.join("MANIFEST.json")) {
        let manifest: serde_json::Value = serde_json::from_str(&text).expect("MANIFEST.json is JSON");
        for entry in manifest.as_object().into_iter().flat_map(|m| m.values()) {
            let Some(file) = entry["file"].as_str() else { continue };
            let shapes: Vec<InputShape> = entry["inputs"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, s)| format!("{i}={}", s.as_str()?.split(':').nth(1)?).parse().ok())
                .collect();
            match Graph::load(&shared.join(file), &shapes) {
                Ok(g) => graphs.push(g),
                Err(e) => println!("skipping {file}: {e}"),
            }
        }
    }
    let models = synthetic::planted_cost_models(&graphs).expect("fitted models");
    for g in &graphs {
        let problem = build::problem(g, &models, &synthetic::two_cores(), &[], &BuildOptions::default());
        bench(&g.name, &problem, Objective::Latency);
    }
}

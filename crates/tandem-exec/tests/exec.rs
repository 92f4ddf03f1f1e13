//! The executor against tract's plain run: one suite of partition cases (cuts, branches, splits, one
//! stage) run under every processor configuration of the device, each verified against the whole
//! model; then the refusals and failures a plan can meet.

use std::sync::Arc;
use std::time::Duration;

use tandem_device::{Device, Processor};
use tandem_exec::sketch::{self, Piece};
use tandem_exec::{ExecError, ExecOptions, Executor, MeasureOptions};
use tandem_graph::{boundaries, Graph, OpId, TValue};
use tandem_plan::{Plan, PlanError};
use tandem_profile::StopRule;

fn zoo(name: &str, seed: u64) -> Arc<Graph> {
    Arc::new(Graph::load_bytes(name, &tandem_graph::zoo::build(name, seed).unwrap(), &[]).unwrap())
}

/// A test never waits a minute for a request: a hang is a failure.
fn options() -> ExecOptions {
    ExecOptions { timeout: Duration::from_secs(60), ..Default::default() }
}

/// Lanes that sleep as soon as they are idle, lanes that poll for their next stage, and a caller
/// that hands every stage to a lane instead of running its home lane's itself.
fn lane_modes() -> [ExecOptions; 3] {
    [
        ExecOptions { spin: Duration::ZERO, ..options() },
        ExecOptions { spin: Duration::from_millis(1), ..options() },
        ExecOptions { caller_runs_home: false, ..options() },
    ]
}

fn device() -> Device {
    Device::discover().unwrap()
}

/// Processor configurations to run every case under: (first, second) processors of the pieces.
fn configurations(d: &Device) -> Vec<(String, String)> {
    let singles: Vec<&Processor> = d.processors.iter().filter(|p| p.threads == 1).collect();
    let a = singles[0].id.clone();
    let b = singles.get(1).map(|p| p.id.clone()).unwrap_or_else(|| a.clone());
    let all = d.all_cores().id.clone();
    let mut c = vec![(a.clone(), b.clone()), (b.clone(), a.clone()), (all.clone(), a.clone())];
    c.dedup();
    c
}

fn assert_matches_whole(g: &Graph, plan: &Plan, label: &str) {
    let inputs = g.random_inputs(1);
    let reference = g.run_whole(inputs.clone()).unwrap();
    for (mode, options) in lane_modes().into_iter().enumerate() {
        let exec = Executor::with_options(Arc::new(g.clone()), plan, &device().processors, options).unwrap_or_else(|e| panic!("{label}: {e}"));
        // Twice: the second request reuses the stages' states.
        for round in 0..2 {
            let out = exec.run(inputs.clone()).unwrap_or_else(|e| panic!("{label}: {e}"));
            let names: Vec<String> = g.outputs.iter().map(|e| e.name.clone()).collect();
            for c in tandem_exec::verify(&names, &reference, &out.outputs, 1e-5) {
                assert!(c.ok, "{label} (lanes {mode}, round {round}): output {} differs: abs {} rel {}", c.name, c.max_abs_diff, c.max_rel_diff);
            }
            // The timeline has every stage, each within the request.
            for (i, t) in out.stages.iter().enumerate() {
                assert!(t.ready_us <= t.start_us && t.start_us <= t.end_us && t.end_us <= t.done_us, "{label}: stage {i} times {t:?}");
                assert!(t.done_us <= out.timeline.latency_us, "{label}: stage {i} ends after the request");
            }
            assert_eq!(out.timeline.spans.iter().filter(|s| s.name.starts_with("stage ")).count(), plan.stages.len());
        }
    }
}

/// Contiguous ranges of a topological order are convex: cut the ops at `cuts`.
fn ranges(n: usize, cuts: &[usize]) -> Vec<Vec<OpId>> {
    let mut out = vec![];
    let mut start = 0;
    for &c in cuts.iter().chain(std::iter::once(&n)) {
        if c > start {
            out.push((start..c).collect());
            start = c;
        }
    }
    out
}

/// Stages of a random cut, alternating between the two processors.
fn cut_case(g: &Graph, n: usize, seed: u64, a: &str, b: &str) -> Vec<Piece> {
    g.random_cut(n, seed).into_iter().enumerate().map(|(i, ops)| Piece::Stage { ops, processor: if i % 2 == 0 { a } else { b }.to_string() }).collect()
}

/// The heaviest op with a split along `axis` (output channels or rows), split in half between the two
/// processors with the ops before it and after it as stages on the first.
fn split_case(g: &Graph, axis: usize, a: &str, b: &str) -> Option<Vec<Piece>> {
    let op = g.ops.iter().filter(|o| o.split_axes.contains(&axis) && o.outputs[0].shape[axis] >= 4).max_by_key(|o| o.cost.flops)?;
    let dim = op.outputs[0].shape[axis];
    let bounds = boundaries(dim, &[0.5], if axis == 1 { 16 } else { 1 });
    let bounds = if bounds.len() == 3 { bounds } else { boundaries(dim, &[0.5], 1) };
    let mut pieces = vec![];
    if op.id > 0 {
        pieces.push(Piece::Stage { ops: (0..op.id).collect(), processor: a.into() });
    }
    pieces.push(Piece::Split { ops: vec![op.id], axis, bounds, processors: vec![a.into(), b.into()] });
    if op.id + 1 < g.ops.len() {
        pieces.push(Piece::Stage { ops: (op.id + 1..g.ops.len()).collect(), processor: b.into() });
    }
    Some(pieces)
}

/// The branches after the first op with several successors, alternately on the two processors: the
/// stem on the first, the branches in two stages (one per processor) that run at once, the rest on
/// the first again.
fn branch_case(g: &Graph, a: &str, b: &str) -> Option<Vec<Piece>> {
    let fork = (0..g.ops.len()).find(|&o| g.successors(o).len() >= 2)?;
    let succ: Vec<OpId> = g.successors(fork).into_iter().collect();
    // Ops reachable from each successor.
    let reach = |start: OpId| {
        let mut seen = vec![false; g.ops.len()];
        seen[start] = true;
        for o in start..g.ops.len() {
            if seen[o] {
                for s in g.successors(o) {
                    seen[s] = true;
                }
            }
        }
        seen
    };
    let reached: Vec<Vec<bool>> = succ.iter().map(|&s| reach(s)).collect();
    // The join: the first op every branch reaches.
    let join = (fork + 1..g.ops.len()).find(|&o| reached.iter().all(|r| r[o]))?;
    let mut sides = [vec![], vec![]];
    for o in fork + 1..join {
        let from: Vec<usize> = reached.iter().enumerate().filter(|(_, r)| r[o]).map(|(k, _)| k).collect();
        if from.len() != 1 {
            return None;
        }
        sides[from[0] % 2].push(o);
    }
    if sides.iter().any(|s| s.is_empty()) {
        return None;
    }
    let [left, right] = sides;
    Some(vec![
        Piece::Stage { ops: (0..=fork).collect(), processor: a.into() },
        Piece::Stage { ops: left, processor: a.into() },
        Piece::Stage { ops: right, processor: b.into() },
        Piece::Stage { ops: (join..g.ops.len()).collect(), processor: a.into() },
    ])
}

/// Every partition case of a model under one configuration.
fn cases(g: &Graph, a: &str, b: &str) -> Vec<(String, Vec<Piece>)> {
    let mut c = vec![];
    for (n, seed) in [(2, 0), (4, 1), (7, 2)] {
        c.push((format!("random cut in {n} (seed {seed})"), cut_case(g, n, seed, a, b)));
    }
    let third = g.ops.len() / 3;
    c.push(("three ranges".into(), ranges(g.ops.len(), &[third, 2 * third]).into_iter().enumerate().map(|(i, ops)| Piece::Stage { ops, processor: if i == 1 { b } else { a }.into() }).collect()));
    // Axis 0 finds the 1x1 convolutions tract turns into matrix products over `[C, H*W]`.
    for axis in [0, 1, 2] {
        if let Some(p) = split_case(g, axis, a, b) {
            c.push((format!("split on axis {axis}"), p));
        }
    }
    if let Some(p) = branch_case(g, a, b) {
        c.push(("parallel branches".into(), p));
    }
    c
}

#[test]
fn every_partition_case_matches_the_whole_model_under_every_configuration() {
    let d = device();
    for name in ["resnet", "mobilenet", "inception", "transformer"] {
        let g = zoo(name, 7);
        let mut kinds = std::collections::BTreeSet::new();
        for (a, b) in configurations(&d) {
            for (kind, pieces) in cases(&g, &a, &b) {
                let label = format!("{name}: {kind} on {a}/{b}");
                let plan = sketch::sketch(&g, &d.id, &pieces).unwrap_or_else(|e| panic!("{label}: {e}"));
                assert_matches_whole(&g, &plan, &label);
                kinds.insert(kind);
            }
        }
        eprintln!("{name}: {kinds:?}");
        if name == "inception" {
            assert!(kinds.contains("parallel branches"), "inception has no branch case: {kinds:?}");
        }
        if name == "mobilenet" {
            assert!(kinds.contains("split on axis 0"), "mobilenet's flattened 1x1 convolutions: {kinds:?}");
        }
        if name != "transformer" {
            assert!(kinds.contains("split on axis 1") && kinds.contains("split on axis 2"), "{name} lacks a split: {kinds:?}");
        }
    }
}

#[test]
fn a_one_stage_plan_runs_on_every_processor() {
    let d = device();
    let g = zoo("mobilenet", 3);
    for p in &d.processors {
        assert_matches_whole(&g, &sketch::single(&g, &d.id, &p.id), &format!("one stage on {}", p.id));
    }
}

#[test]
fn three_way_split_and_a_chain_split() {
    let d = device();
    let (a, b) = configurations(&d)[0].clone();
    let g = zoo("resnet", 1);
    // A convolution and the activation after it, split in three along rows.
    let conv = g.ops.iter().filter(|o| o.kind == "Conv" && o.id > 0).find(|o| {
        let s: Vec<_> = g.successors(o.id).into_iter().collect();
        s.len() == 1 && s[0] == o.id + 1 && g.ops[s[0]].split_axes.contains(&2) && g.predecessors(s[0]).len() == 1
    });
    let conv = conv.expect("a conv followed by its activation");
    let rows = g.ops[conv.id + 1].outputs[0].shape[2];
    let pieces = vec![
        Piece::Stage { ops: (0..conv.id).collect(), processor: b.clone() },
        Piece::Split { ops: vec![conv.id, conv.id + 1], axis: 2, bounds: boundaries(rows, &[0.3, 0.6], 1), processors: vec![a.clone(), b.clone(), a.clone()] },
        Piece::Stage { ops: (conv.id + 2..g.ops.len()).collect(), processor: b.clone() },
    ];
    let plan = sketch::sketch(&g, &d.id, &pieces).unwrap();
    assert_eq!(plan.splits[0].stages.len(), 3);
    assert!(!plan.transfers.is_empty());
    assert_matches_whole(&g, &plan, "resnet conv+activation split in three");
}

/// A region (the ops from one cut point to a later one, with residual blocks inside) cut by rows in
/// two: each part carries its rows through every op, the plan matches the whole model, and the
/// measured parts report what they computed of each op, halos included.
#[test]
fn a_region_split_by_rows_runs_verified_and_reports_its_shares() {
    let d = device();
    let (a, b) = configurations(&d)[0].clone();
    for name in ["resnet", "mobilenet"] {
        let g = zoo(name, 2);
        let points = g.cut_points();
        // The first region of at least three spans between cut points that ends in rows.
        let (start, end) = points
            .windows(4)
            .map(|w| (w[0], w[3]))
            .find(|&(s, e)| match g.region_axis(e - 1) {
                Some((axis, rows)) if rows >= 8 => g.split(&(s..e).collect::<Vec<_>>(), axis, &[0, rows / 2, rows]).is_ok(),
                _ => false,
            })
            .unwrap_or_else(|| panic!("{name}: no region"));
        let (axis, rows) = g.region_axis(end - 1).unwrap();
        let region: Vec<OpId> = (start..end).collect();
        let pieces = vec![
            Piece::Stage { ops: (0..start).collect(), processor: a.clone() },
            Piece::Split { ops: region.clone(), axis, bounds: vec![0, rows / 2, rows], processors: vec![a.clone(), b.clone()] },
            Piece::Stage { ops: (end..g.ops.len()).collect(), processor: b.clone() },
        ];
        let pieces: Vec<Piece> = pieces.into_iter().filter(|p| !matches!(p, Piece::Stage { ops, .. } if ops.is_empty())).collect();
        let plan = sketch::sketch(&g, &d.id, &pieces).unwrap();
        assert_matches_whole(&g, &plan, &format!("{name} region {start}..{end}"));
        let exec = Executor::with_options(g.clone(), &plan, &d.processors, options()).unwrap();
        let options = MeasureOptions { rule: StopRule { warmup: 1, min_samples: 3, max_samples: 3, target_ci: 0.5, budget_s: 0.05 }, ..Default::default() };
        let r = tandem_exec::measure(&exec, &d.processors, &options).unwrap();
        assert!(r.verified, "{name}: {:?}", r.outputs);
        let parts: Vec<_> = r.stages.iter().filter(|s| s.part.is_some()).collect();
        assert_eq!(parts.len(), 2);
        for p in parts {
            assert_eq!(p.op_shares.len(), region.len(), "{name}: {:?}", p.op_shares);
            let [_, lo, hi] = p.part.unwrap();
            let own = (hi - lo) as f64 / rows as f64;
            assert!((p.op_shares.last().unwrap().1 - own).abs() < 1e-9, "{name}: {:?}", p.op_shares);
            assert!(p.op_shares.iter().any(|&(_, s)| s > own), "{name}: a half of a region of 3x3 convolutions computes no halo: {:?}", p.op_shares);
        }
        // Whole stages report no shares.
        assert!(r.stages.iter().filter(|s| s.part.is_none()).all(|s| s.op_shares.is_empty()));
    }
}

#[test]
fn run_leaves_the_callers_affinity_as_it_found_it() {
    // The caller runs the home lane's stages pinned to its processor, for the call only.
    let d = device();
    let g = zoo("resnet", 3);
    for (a, b) in configurations(&d) {
        let Some(pieces) = split_case(&g, 1, &a, &b) else { continue };
        let plan = sketch::sketch(&g, &d.id, &pieces).unwrap();
        let (g, processors) = (g.clone(), d.processors.clone());
        let (before, after) = std::thread::spawn(move || {
            let exec = Executor::with_options(g.clone(), &plan, &processors, options()).unwrap();
            let before = tandem_device::current_affinity();
            exec.run(g.random_inputs(1)).unwrap();
            (before, tandem_device::current_affinity())
        })
        .join()
        .unwrap();
        assert_eq!(before, after, "{a} + {b}");
    }
}

#[test]
fn a_stream_of_requests_is_pipelined_and_gives_the_same_outputs() {
    let d = device();
    let (a, b) = configurations(&d)[0].clone();
    let g = zoo("transformer", 2);
    let plan = sketch::sketch(&g, &d.id, &cut_case(&g, 3, 5, &a, &b)).unwrap();
    let exec = Executor::with_options(g.clone(), &plan, &d.processors, options()).unwrap();
    let inputs = g.random_inputs(4);
    let s = exec.stream(&inputs, 7).unwrap();
    assert_eq!(s.requests, 7);
    assert_eq!(s.latencies_us.len(), 7);
    assert!(s.window >= 2 && s.rps > 0.0);
    let reference = g.run_whole(inputs.clone()).unwrap();
    let out = exec.run(inputs).unwrap();
    assert_eq!(reference[0].as_bytes(), out.outputs[0].as_bytes());
}

#[test]
fn a_plan_for_another_model_is_refused() {
    let d = device();
    let resnet = zoo("resnet", 0);
    let plan = sketch::single(&resnet, &d.id, &d.processors[0].id);
    for other in [zoo("mobilenet", 0), zoo("resnet", 1)] {
        let err = Executor::new(other.clone(), &plan, &d.processors).unwrap_err();
        assert!(matches!(err, ExecError::Plan(PlanError::OtherModel { .. })), "{err:?}");
        assert!(err.to_string().contains("run `tandem tune`"), "{err}");
    }
}

#[test]
fn a_plan_naming_a_processor_this_device_lacks_is_refused_with_a_hint() {
    let d = device();
    let g = zoo("resnet", 0);
    let mut plan = sketch::sketch(&g, &d.id, &cut_case(&g, 2, 0, &d.processors[0].id, "cpu:7")).unwrap_or_else(|e| panic!("{e}"));
    if d.processors.iter().any(|p| p.id == "cpu:7") {
        plan.stages[1].processor = "npu:9".into();
    }
    let err = Executor::new(g, &plan, &d.processors).unwrap_err();
    assert!(matches!(err, ExecError::Plan(PlanError::UnknownProcessor(_))), "{err:?}");
    assert!(err.to_string().contains("which this device does not have: run `tandem tune` again"), "{err}");
}

#[test]
fn a_broken_plan_is_refused_before_anything_runs() {
    let d = device();
    let g = zoo("resnet", 0);
    let mut plan = sketch::sketch(&g, &d.id, &cut_case(&g, 3, 0, &d.processors[0].id, &d.processors[0].id)).unwrap();
    // The last stage forgets its dependency and comes first: the data flow says otherwise.
    plan.stages.swap(0, 2);
    for (i, s) in plan.stages.iter_mut().enumerate() {
        s.id = i;
        s.deps.clear();
    }
    let err = Executor::new(g, &plan, &d.processors).unwrap_err();
    assert!(matches!(err, ExecError::Plan(PlanError::Invalid(_))), "{err:?}");
}

#[test]
fn a_failing_stage_ends_the_request_with_an_error_and_the_executor_goes_on() {
    let d = device();
    let (a, b) = configurations(&d)[0].clone();
    let g = zoo("inception", 0);
    let plan = sketch::sketch(&g, &d.id, &branch_case(&g, &a, &b).unwrap()).unwrap();
    let exec = Executor::with_options(g.clone(), &plan, &d.processors, options()).unwrap();
    let inputs = g.random_inputs(0);

    // A wrong input: the first stage fails in tract, the request ends.
    let wrong: tandem_graph::TVec<TValue> = tandem_graph::TVec::from_iter([TValue::from(tandem_graph::Tensor::zero::<f32>(&[1, 3, 5, 5]).unwrap())]);
    let err = exec.run(wrong).unwrap_err();
    assert!(matches!(err, ExecError::Stage { stage: 0, .. }), "{err:?}");
    assert!(matches!(exec.run(tandem_graph::TVec::new()).unwrap_err(), ExecError::Inputs { expected: 1, given: 0 }));

    // A panic in one branch while the other runs on the other processor.
    for stage in [1, 2, 3] {
        exec.inject_panic(Some(stage));
        let err = exec.run(inputs.clone()).unwrap_err();
        match &err {
            ExecError::Panicked { stage: s, message, .. } => {
                assert_eq!(*s, stage);
                assert!(message.contains("injected failure"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(exec.stream(&inputs, 5).is_err());
    }
    exec.inject_panic(None);
    let reference = g.run_whole(inputs.clone()).unwrap();
    assert_eq!(exec.run(inputs.clone()).unwrap().outputs[0].as_bytes(), reference[0].as_bytes());
    assert_eq!(exec.stream(&inputs, 4).unwrap().requests, 4);
}

#[test]
fn the_hosts_speed_is_read_on_the_plans_processors_that_have_a_typical_time() {
    let d = device();
    let (a, b) = configurations(&d)[0].clone();
    let g = zoo("resnet", 0);
    let plan = sketch::sketch(&g, &d.id, &split_case(&g, 1, &a, &b).unwrap()).unwrap();
    let exec = Executor::with_options(g.clone(), &plan, &d.processors, options()).unwrap();
    // A typical time for the plan's first processor, and for one the device lacks.
    let typical = [(a.clone(), 200.0), ("cpu:99".to_string(), 1.0)].into_iter().collect();
    let rule = StopRule { warmup: 1, min_samples: 3, max_samples: 5, target_ci: 0.5, budget_s: 0.05 };
    let options = MeasureOptions { rule: rule.clone(), baselines: false, typical_reference_us: typical, ..Default::default() };
    let r = tandem_exec::measure(&exec, &d.processors, &options).unwrap();
    let h = r.host_speed.expect("the host's speed");
    let kernels: Vec<&str> = h.kernels.iter().map(|k| k.processor.as_str()).collect();
    assert_eq!(kernels, [a.as_str()]);
    let k = &h.kernels[0];
    assert!(k.measured_us > 0.0 && k.typical_us == 200.0, "{k:?}");
    assert!((h.slowdown - k.measured_us / 200.0).abs() < 1e-12, "{h:?}");
    assert_eq!((h.predicted_ms, h.prediction_error), (None, None), "a sketched plan predicts nothing");
    // Without typical times nothing is timed beside the plan.
    let options = MeasureOptions { rule, baselines: false, ..Default::default() };
    assert_eq!(tandem_exec::measure(&exec, &d.processors, &options).unwrap().host_speed, None);
}

#[test]
fn measure_verifies_times_against_baselines_and_traces() {
    let d = device();
    let (a, b) = configurations(&d)[0].clone();
    let g = zoo("resnet", 0);
    let plan = sketch::sketch(&g, &d.id, &split_case(&g, 1, &a, &b).unwrap()).unwrap();
    let exec = Executor::with_options(g.clone(), &plan, &d.processors, options()).unwrap();
    let options = MeasureOptions { rule: StopRule { warmup: 1, min_samples: 3, max_samples: 5, target_ci: 0.5, budget_s: 0.05 }, stream: Some(3), ..Default::default() };
    let r = tandem_exec::measure(&exec, &d.processors, &options).unwrap();
    assert!(r.verified, "{:?}", r.outputs);
    assert!(r.max_rel_diff <= 1e-5);
    let m = r.measured.as_ref().unwrap();
    assert!(m.samples + m.outliers_dropped >= 3 && m.median_us > 0.0);
    let names: Vec<&str> = r.baselines.iter().map(|b| b.name.as_str()).collect();
    for p in &d.processors {
        assert!(names.contains(&format!("single:{}", p.id).as_str()), "{names:?}");
    }
    assert!(r.speedup_vs_best_baseline.unwrap() > 0.0);
    // With five or more rounds the speedup has an interval, and the verdict is the interval's.
    match (r.speedup_ci95, m.samples + m.outliers_dropped >= 5) {
        (Some([lo, hi]), _) => assert!(lo <= hi && r.versus_best_baseline == Some(tandem_exec::Verdict::of([lo, hi])), "{:?}", r.speedup_ci95),
        (None, enough) => assert!(!enough && r.versus_best_baseline.is_none()),
    }
    assert_eq!(r.predicted_ms, None, "a sketched plan predicts nothing");
    assert_eq!(r.stages.len(), plan.stages.len());
    assert_eq!(r.transfers.len(), plan.transfers.len());
    if a != b {
        assert!(r.handover_us.is_some());
    }
    assert_eq!(r.stream.as_ref().unwrap().requests, 3);

    let trace = tandem_exec::chrome_trace(&r.timeline, &plan.predicted, exec.processors());
    let events = trace["traceEvents"].as_array().unwrap();
    let complete: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert!(complete.iter().filter(|e| e["pid"] == 1 && e["cat"] == "stage").count() == plan.stages.len());
    assert!(complete.iter().any(|e| e["cat"] == "join"));
    assert!(events.iter().any(|e| e["ph"] == "M" && e["args"]["name"] == a.as_str()));
    serde_json::to_string(&r).unwrap();
}

#[test]
fn verification_names_the_output_that_differs() {
    let reference = vec![TValue::from(tensor(&[1e-9, -2e-9, 4e-9]))];
    let close = vec![TValue::from(tensor(&[1e-9, -2e-9, 4.000_000_5e-9]))];
    let far = vec![TValue::from(tensor(&[1e-9, -2e-9, 3e-9]))];
    let names = vec!["logits".to_string()];
    let ok = tandem_exec::verify(&names, &reference, &close, 1e-4);
    assert!(ok[0].ok, "tiny outputs compare relative to their magnitude: {ok:?}");
    let bad = tandem_exec::verify(&names, &reference, &far, 1e-4);
    assert!(!bad[0].ok && bad[0].name == "logits" && (bad[0].max_rel_diff - 0.25).abs() < 1e-3, "{bad:?}");
    let missing = tandem_exec::verify(&names, &reference, &[], 1e-4);
    assert!(!missing[0].ok);
    assert_eq!(tandem_exec::failure(&ok, 1e-4), None);
    let message = tandem_exec::failure(&bad, 1e-4).unwrap();
    assert!(message.contains("output 'logits' differs") && message.contains("2.500e-1 relative"), "{message}");
}

fn tensor(v: &[f32]) -> tandem_graph::Tensor {
    tandem_graph::Tensor::from_shape(&[v.len()], v).unwrap()
}

//! Timelines of hand-built plans with answers worked out by hand, and the refusals: a plan for
//! another model, made with stale cost models, or that does not fit the problem.

use tandem_plan::{ModelRef, Objective, OpInput, OpNode, Part, Plan, PlanError, ProcessorSpec, Problem, Split, SplitOption, Stage, StageCost, TransferCost};

fn proc(id: &str, cores: &[usize]) -> ProcessorSpec {
    ProcessorSpec { id: id.into(), cores: cores.to_vec(), memory_bytes: None }
}

/// `costs[p]` on processors a (core 0), b (core 1) and ab (both cores); inputs read 1000 bytes each.
fn op(name: &str, from: &[usize], costs: [Option<f64>; 3]) -> OpNode {
    let inputs = if from.is_empty() { vec![OpInput { from: None, bytes: 1000 }] } else { from.iter().map(|&f| OpInput { from: Some(f), bytes: 1000 }).collect() };
    OpNode { name: name.into(), kind: "Conv".into(), inputs, output_bytes: 1000, is_output: false, cost_us: costs.to_vec(), weight_bytes: 0, splits: vec![] }
}

/// Hand-overs cost 1 µs + 1 ns per byte (2 µs for 1000 bytes); stages cost their ops' sum.
fn problem(ops: Vec<OpNode>) -> Problem {
    let t = TransferCost { fixed_us: 1.0, per_byte_us: 0.001 };
    let zero = TransferCost { fixed_us: 0.0, per_byte_us: 0.0 };
    let transfer = (0..3).map(|a| (0..3).map(|b| if a == b { zero } else { t }).collect()).collect();
    Problem { processors: vec![proc("a", &[0]), proc("b", &[1]), proc("ab", &[0, 1])], ops, transfer, stage: vec![StageCost::default(); 3], join: vec![] }
}

fn stage(id: usize, processor: &str, ops: &[usize], deps: &[usize]) -> Stage {
    Stage { id, processor: processor.into(), ops: ops.to_vec(), part: None, deps: deps.to_vec() }
}

fn plan(problem: &Problem, stages: Vec<Stage>, splits: Vec<Split>) -> Plan {
    Plan {
        model: ModelRef { name: "m".into(), content_hash: "ab".repeat(32), input_shapes: "{\"x\":[1]}".into(), op_count: problem.ops.len() },
        device_id: "dev".into(),
        cost_model_version: Some(2),
        objective: Objective::Latency,
        processors: vec!["a".into(), "b".into()],
        stages,
        splits,
        transfers: vec![],
        predicted: Default::default(),
    }
}

const S: Option<f64> = None;

#[test]
fn a_chain_across_two_processors_pays_two_hand_overs() {
    let p = problem(vec![op("0", &[], [Some(10.0), Some(12.0), S]), op("1", &[0], [Some(30.0), Some(20.0), S]), op("2", &[1], [Some(5.0), Some(5.0), S])]);
    let plan = plan(&p, vec![stage(0, "a", &[0], &[]), stage(1, "b", &[1], &[0]), stage(2, "a", &[2], &[1])], vec![]);
    let t = tandem_plan::simulate(&plan, &p).unwrap();
    // 10 on a, 2 to hand over, 20 on b, 2 back, 5 on a.
    assert!((t.latency_us - 39.0).abs() < 1e-9, "{t:?}");
    // Pipelined: a works 15 µs per request, b 20.
    assert!((t.period_us - 20.0).abs() < 1e-9);
    assert!((t.throughput_rps() - 50_000.0).abs() < 1e-6);
    let tr = tandem_plan::transfers(&plan, &p).unwrap();
    assert_eq!(tr.iter().map(|x| (x.from_stage, x.to_stage, x.bytes)).collect::<Vec<_>>(), vec![(0, 1, 1000), (1, 2, 1000)]);
    assert_eq!(t.spans.iter().filter(|s| s.name.starts_with("transfer")).count(), 2);
    let s1 = t.spans.iter().find(|s| s.name == "stage 1").unwrap();
    assert_eq!((s1.start_us, s1.end_us, s1.processor.as_str()), (12.0, 32.0, "b"));
}

#[test]
fn parallel_branches_overlap_on_two_processors() {
    let c = [Some(30.0), Some(30.0), S];
    let p = problem(vec![op("0", &[], [Some(10.0), Some(10.0), S]), op("1", &[0], c), op("2", &[0], c), op("3", &[1, 2], [Some(5.0), Some(5.0), S])]);
    let branches = plan(&p, vec![stage(0, "a", &[0], &[]), stage(1, "a", &[1], &[0]), stage(2, "b", &[2], &[0]), stage(3, "a", &[3], &[1, 2])], vec![]);
    // 10, then both branches at once (b's waits 2 µs for its input and hands back after 2), then 5.
    assert!((tandem_plan::simulate(&branches, &p).unwrap().latency_us - 49.0).abs() < 1e-9);
    let serial = plan(&p, vec![stage(0, "a", &[0, 1, 2, 3], &[])], vec![]);
    assert!((tandem_plan::simulate(&serial, &p).unwrap().latency_us - 75.0).abs() < 1e-9);
}

#[test]
fn a_split_runs_its_parts_at_once_and_joins_them() {
    let mut ops = vec![op("0", &[], [Some(10.0), Some(10.0), S]), op("1", &[0], [Some(40.0), Some(40.0), S]), op("2", &[1], [Some(5.0), Some(5.0), S])];
    let parts = vec![Some(12.0), Some(22.0), Some(32.0)];
    ops[1].splits.push(SplitOption { chain: vec![1], axis: 1, extent: 64, align: 16, fractions: vec![0.25, 0.5, 0.75], part_us: vec![parts.clone(), parts, vec![S; 3]], output_bytes: 1000 });
    let p = problem(ops);
    let mut stages = vec![stage(0, "a", &[0], &[]), stage(1, "a", &[1], &[0]), stage(2, "b", &[1], &[0]), stage(3, "a", &[2], &[1, 2])];
    stages[1].part = Some(Part { split: 0, start: 0, end: 32 });
    stages[2].part = Some(Part { split: 0, start: 32, end: 64 });
    let split = Split { ops: vec![1], axis: 1, bounds: vec![0, 32, 64], stages: vec![1, 2] };
    let plan = plan(&p, stages, vec![split]);
    let t = tandem_plan::simulate(&plan, &p).unwrap();
    // a: 0-10, part 10-32; b: input arrives at 12, part 12-34, its half (500 bytes) reaches a at 35.5.
    assert!((t.latency_us - 40.5).abs() < 1e-9, "{t:?}");
    let tr = tandem_plan::transfers(&plan, &p).unwrap();
    assert_eq!(tr.iter().map(|x| (x.from_stage, x.to_stage, x.bytes)).collect::<Vec<_>>(), vec![(0, 2, 1000), (2, 3, 500)]);
    // A 16/48 split interpolates nothing: both shares are tabulated.
    let mut uneven = plan.clone();
    uneven.splits[0].bounds = vec![0, 16, 64];
    uneven.stages[1].part = Some(Part { split: 0, start: 0, end: 16 });
    uneven.stages[2].part = Some(Part { split: 0, start: 16, end: 64 });
    // a: part 10-22; b: 12-44, its 750 bytes reach a at 44 + 1.75.
    assert!((tandem_plan::simulate(&uneven, &p).unwrap().latency_us - 50.75).abs() < 1e-9);

    // Joining the parts costs a copy of the whole output (1000 bytes) on the processor of the part
    // that finishes last: b's, 3 µs + 4 ns a byte, before its half crosses to a (34 + 7 + 1.5).
    let mut joins = p.clone();
    joins.join = vec![TransferCost { fixed_us: 2.0, per_byte_us: 0.004 }, TransferCost { fixed_us: 3.0, per_byte_us: 0.004 }, TransferCost { fixed_us: 0.0, per_byte_us: 0.0 }];
    let t = tandem_plan::simulate(&plan, &joins).unwrap();
    assert!((t.latency_us - 47.5).abs() < 1e-9, "{t:?}");
    let hand = t.spans.iter().find(|s| s.name == "transfer 2->3").unwrap();
    assert_eq!((hand.start_us, hand.end_us), (41.0, 42.5));
    let join = t.spans.iter().find(|s| s.name == "join split 0").unwrap();
    assert_eq!((join.start_us, join.end_us, join.processor.as_str()), (34.0, 41.0, "b"));
    assert!(tandem_plan::simulate(&plan, &p).unwrap().spans.iter().all(|s| !s.name.starts_with("join")), "free joins draw no span");
    joins.join.pop();
    assert!(joins.check().is_err(), "join costs cover every processor or none");
}

#[test]
fn stage_costs_apply_per_stage() {
    let mut p = problem(vec![op("0", &[], [Some(10.0), Some(10.0), S]), op("1", &[0], [Some(20.0), Some(20.0), S])]);
    p.stage[0] = StageCost { fixed_us: 3.0, factor: 2.0, per_op_us: 0.5 };
    let one = plan(&p, vec![stage(0, "a", &[0, 1], &[])], vec![]);
    assert!((tandem_plan::simulate(&one, &p).unwrap().latency_us - (3.0 + 60.0 + 1.0)).abs() < 1e-9);
    let two = plan(&p, vec![stage(0, "a", &[0], &[]), stage(1, "a", &[1], &[0])], vec![]);
    assert!((tandem_plan::simulate(&two, &p).unwrap().latency_us - (3.5 + 20.0 + 3.5 + 40.0)).abs() < 1e-9);
}

#[test]
fn processors_sharing_a_core_take_turns() {
    let p = problem(vec![op("0", &[], [Some(10.0), Some(10.0), Some(6.0)]), op("1", &[], [Some(10.0), Some(10.0), Some(6.0)])]);
    let plan = plan(&p, vec![stage(0, "a", &[0], &[]), stage(1, "ab", &[1], &[])], vec![]);
    // ab owns core 0 too: it waits for a.
    assert!((tandem_plan::simulate(&plan, &p).unwrap().latency_us - 16.0).abs() < 1e-9);
}

#[test]
fn plans_that_do_not_fit_the_problem_are_refused() {
    let p = problem(vec![op("0", &[], [Some(10.0), None, S]), op("1", &[0], [Some(20.0), Some(20.0), S])]);
    let no_dep = plan(&p, vec![stage(0, "a", &[0], &[]), stage(1, "b", &[1], &[])], vec![]);
    assert!(tandem_plan::simulate(&no_dep, &p).unwrap_err().to_string().contains("without depending on it"));
    let cannot = plan(&p, vec![stage(0, "b", &[0], &[]), stage(1, "b", &[1], &[0])], vec![]);
    assert!(tandem_plan::simulate(&cannot, &p).unwrap_err().to_string().contains("cannot run it"));
    let gone = plan(&p, vec![stage(0, "gpu", &[0, 1], &[])], vec![]);
    assert_eq!(tandem_plan::simulate(&gone, &p).unwrap_err(), PlanError::UnknownProcessor("gpu".into()));
    let twice = plan(&p, vec![stage(0, "a", &[0, 1], &[]), stage(1, "a", &[1], &[0])], vec![]);
    assert!(matches!(tandem_plan::simulate(&twice, &p), Err(PlanError::Invalid(_))));
}

#[test]
fn a_plan_for_another_model_or_with_stale_cost_models_is_refused() {
    let p = problem(vec![op("0", &[], [Some(10.0), Some(10.0), S])]);
    let plan = plan(&p, vec![stage(0, "a", &[0], &[])], vec![]);
    let mut other = plan.model.clone();
    other.name = "other".into();
    other.content_hash = "cd".repeat(32);
    let e = plan.check_model(&other).unwrap_err();
    assert!(e.to_string().contains("made for model 'm'") && e.to_string().contains("not 'other'"), "{e}");
    let mut reshaped = plan.model.clone();
    reshaped.input_shapes = "{\"x\":[2]}".into();
    assert!(plan.check_model(&reshaped).is_err());
    assert!(plan.check_model(&plan.model).is_ok());
    let e = plan.check_cost_model(Some(3)).unwrap_err();
    assert_eq!(e, PlanError::StaleCostModel { planned: 2, current: 3 });
    assert!(e.to_string().contains("run `tandem tune` again"));
    assert!(plan.check_cost_model(Some(2)).is_ok());
    // Plain JSON, back and forth.
    let back: Plan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
    assert_eq!(back, plan);
}

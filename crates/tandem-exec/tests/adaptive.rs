//! Adaptive execution with injected slowdowns: a core made to look 4x slower is noticed, the plan
//! switches between requests, no request is dropped and every output stays verified; when the
//! slowdown goes, the belief comes back down.
//!
//! The slowdown is injected into the readings the monitor sees, not into the machine, so the test does
//! not depend on how busy the machine running it is (a 4x step is far beyond its noise), and nothing is
//! asserted about how long anything took.

use std::sync::Arc;
use std::time::Duration;

use tandem_device::{Device, Processor};
use tandem_exec::{Adaptive, AdaptiveOptions, ExecOptions, Replanner};
use tandem_graph::Graph;
use tandem_plan::{OpInput, OpNode, Problem, ProcessorSpec, SearchOptions, StageCost, TransferCost};

fn zoo(name: &str) -> Arc<Graph> {
    Arc::new(Graph::load_bytes(name, &tandem_graph::zoo::build(name, 0).unwrap(), &[]).unwrap())
}

/// A cost table by hand: every op costs 2 µs plus its FLOPs at 1 GFLOP/s per core, the same on each
/// single core and 0.6x on a processor owning two or more; hand-overs cost 5 µs.
fn problem(g: &Graph, processors: &[Processor]) -> Problem {
    let specs: Vec<ProcessorSpec> = processors.iter().filter(|p| !p.cores.is_empty()).map(|p| ProcessorSpec { id: p.id.clone(), cores: p.cores.clone(), memory_bytes: None }).collect();
    let outputs: Vec<_> = g.outputs.iter().map(|e| e.value).collect();
    let ops = g
        .ops
        .iter()
        .map(|op| OpNode {
            name: op.name.clone(),
            kind: op.kind.clone(),
            inputs: op.inputs.iter().map(|e| OpInput { from: e.from, bytes: e.bytes }).collect(),
            output_bytes: op.outputs.iter().map(|e| e.bytes).sum(),
            is_output: op.outputs.iter().any(|e| outputs.contains(&e.value)),
            cost_us: specs.iter().map(|s| Some((2.0 + op.cost.flops as f64 / 1e3) * if s.cores.len() > 1 { 0.6 } else { 1.0 })).collect(),
            weight_bytes: op.cost.weight_bytes,
            splits: vec![],
        })
        .collect();
    let n = specs.len();
    Problem { processors: specs, ops, transfer: vec![vec![TransferCost { fixed_us: 5.0, per_byte_us: 0.0 }; n]; n], stage: vec![StageCost::default(); n] }
}

/// Predicted µs of the plan's stages on processors owning `core`.
fn work_on(plan: &tandem_plan::Plan, processors: &[Processor], core: usize) -> f64 {
    plan.predicted
        .spans
        .iter()
        .filter(|s| s.name.starts_with("stage") && processors.iter().any(|p| p.id == s.processor && p.cores.contains(&core)))
        .map(|s| s.end_us - s.start_us)
        .sum()
}

#[test]
fn an_injected_slowdown_switches_the_plan_between_requests_and_every_output_stays_verified() {
    let device = Device::discover().unwrap();
    let cores: Vec<usize> = device.all_cores().cores.clone();
    if cores.len() < 2 {
        eprintln!("skipped: one core, nothing to adapt between");
        return;
    }
    let slow_core = *cores.last().unwrap();
    let g = zoo("inception");
    let problem = problem(&g, &device.processors);
    let replanner = Replanner { problem, model: tandem_plan::build::model_ref(&g), device_id: device.id.clone(), cost_model_version: None };
    let options = AdaptiveOptions { exec: ExecOptions { timeout: Duration::from_secs(60), ..Default::default() }, ..Default::default() };
    let (idle_plan, _) = replanner.plan(|_| 1.0, &SearchOptions::default()).unwrap();
    assert!(work_on(&idle_plan, &device.processors, slow_core) > 0.0, "the idle plan uses core {slow_core}");

    let mut adaptive = Adaptive::new(g.clone(), &idle_plan, &device.processors, replanner, options).unwrap();
    let inputs = g.random_inputs(3);
    let reference = g.run_whole(inputs.clone()).unwrap();
    let names: Vec<String> = g.outputs.iter().map(|e| e.name.clone()).collect();
    let serve = |adaptive: &mut Adaptive, n: usize| {
        for _ in 0..n {
            let s = adaptive.request(inputs.clone()).unwrap();
            for c in tandem_exec::verify(&names, &reference, &s.outputs, 1e-5) {
                assert!(c.ok, "request {} on plan {}: output {} differs (rel {})", s.index, s.plan, c.name, c.max_rel_diff);
            }
        }
    };

    serve(&mut adaptive, 10);
    adaptive.inject_slowdown(slow_core, 4.0);
    let injected_at = 10;
    serve(&mut adaptive, 20);
    let switch = adaptive.events().iter().find(|e| e.after_requests > injected_at && e.switched && e.beliefs[&slow_core] >= 2.0);
    let switch = switch.unwrap_or_else(|| panic!("no switch after the slowdown: {:?}", adaptive.events()));
    assert!(switch.after_requests - injected_at <= 12, "switched {} requests after the slowdown", switch.after_requests - injected_at);
    let now = adaptive.plan();
    assert!(
        work_on(now, &device.processors, slow_core) < work_on(&idle_plan, &device.processors, slow_core),
        "the new plan moves work off core {slow_core}: {} µs against {} µs",
        work_on(now, &device.processors, slow_core),
        work_on(&idle_plan, &device.processors, slow_core)
    );

    // The load goes: the core is seen to recover (through its stages or its probe).
    adaptive.inject_slowdown(slow_core, 1.0);
    serve(&mut adaptive, 30);
    assert!(adaptive.beliefs()[&slow_core] < 2.0, "belief after recovery: {:?}, events {:?}", adaptive.beliefs(), adaptive.events());
    for e in adaptive.events() {
        eprintln!("after {} requests: {} -> beliefs {:?}, plan {} -> {}", e.after_requests, e.detection.evidence, e.beliefs, e.from_plan, e.to_plan);
    }
    let last = adaptive.request(inputs.clone()).unwrap();
    assert_eq!(last.index, 60, "requests are served in order, none dropped");
}

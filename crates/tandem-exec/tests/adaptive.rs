//! Adaptive execution with injected slowdowns: a core made to look 4x slower is noticed, the plan
//! switches between requests, no request is dropped and every output stays verified; when the
//! slowdown goes, the belief comes back down.
//!
//! The requests run for real, but the monitor reads ideal figures (each stage taking its predicted time,
//! each core free) times the injected slowdown: the test does not depend on how busy the machine running
//! it is, the requests at which it switches are exact, and nothing is asserted about how long anything
//! took.

use std::sync::Arc;
use std::time::Duration;

use tandem_device::{Device, Processor};
use tandem_exec::{Adaptive, AdaptiveOptions, ExecOptions, Replanner};
use tandem_graph::Graph;
use tandem_plan::{simulate, OpInput, OpNode, Problem, ProcessorSpec, SearchOptions, StageCost, TransferCost};

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
    Problem { processors: specs, ops, transfer: vec![vec![TransferCost { fixed_us: 5.0, per_byte_us: 0.0 }; n]; n], stage: vec![StageCost::default(); n], join: vec![] }
}

/// µs of the plan's stages on processors owning `core`, at idle speed (whatever the plan was
/// predicted under).
fn work_on(plan: &tandem_plan::Plan, problem: &Problem, processors: &[Processor], core: usize) -> f64 {
    simulate(plan, problem)
        .unwrap()
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
    let replanner = Replanner { problem: problem.clone(), model: tandem_plan::build::model_ref(&g), device_id: device.id.clone(), cost_model_version: None };
    let options = AdaptiveOptions { exec: ExecOptions { timeout: Duration::from_secs(60), ..Default::default() }, ..Default::default() };
    let (idle_plan, _) = replanner.plan(|_| 1.0, &SearchOptions::default()).unwrap();
    assert!(work_on(&idle_plan, &problem, &device.processors, slow_core) > 0.0, "the idle plan uses core {slow_core}");

    let mut adaptive = Adaptive::new(g.clone(), &idle_plan, &device.processors, replanner, options).unwrap();
    adaptive.ideal_readings();
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
    serve(&mut adaptive, 20);
    // Three readings 4x slow in a row (requests 10, 11, 12): the next request runs on a new plan.
    let e = &adaptive.events()[0];
    assert_eq!((e.after_requests, e.switched, e.reused), (13, true, false), "{e:?}");
    assert_eq!(e.detection.changes, vec![(slow_core, 1.0, 4.0)], "the probes tell which core it is");
    assert!(e.beliefs.iter().all(|(c, f)| *f == if *c == slow_core { 4.0 } else { 1.0 }), "{e:?}");
    assert_eq!(adaptive.current(), e.to_plan);
    // Work moved off the slow core, and the plan is predicted faster there than the idle one.
    let (now, before) = (work_on(adaptive.plan(), &problem, &device.processors, slow_core), work_on(&idle_plan, &problem, &device.processors, slow_core));
    assert!(now < before, "work on core {slow_core}: {now} µs at idle speed against {before} µs");
    let slowed = problem.slowed(&problem.processors.iter().map(|p| if p.cores.contains(&slow_core) { 4.0 } else { 1.0 }).collect::<Vec<_>>());
    assert!(simulate(adaptive.plan(), &slowed).unwrap().latency_us < simulate(&idle_plan, &slowed).unwrap().latency_us);

    // The slowdown goes at request 30: three readings later, the idle plan is back, compiled before.
    adaptive.inject_slowdown(slow_core, 1.0);
    serve(&mut adaptive, 30);
    let back = adaptive.events().iter().find(|e| e.after_requests > 30).unwrap_or_else(|| panic!("{:?}", adaptive.events()));
    assert_eq!((back.after_requests, back.to_plan, back.switched, back.reused), (33, 0, true, true), "{back:?}");
    assert_eq!(adaptive.events().len(), 2, "{:?}", adaptive.events());
    assert!(adaptive.beliefs().values().all(|f| *f == 1.0));
    let last = adaptive.request(inputs.clone()).unwrap();
    assert_eq!(last.index, 60, "requests are served in order, none dropped");
}

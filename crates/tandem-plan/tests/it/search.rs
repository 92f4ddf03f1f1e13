//! The search against the exhaustive optimum on seeded random DAGs of up to 12 ops, with random cost
//! tables on three kinds of device, including an accelerator five times faster on convolutions that
//! cannot run some ops and holds only part of the weights.

use tandem_plan::evaluate::objective_value;
use tandem_plan::synthetic::{self, Device, Draw, Recipe, Rng};
use tandem_plan::{candidate_count, exhaustive, search, ModelRef, Objective, Plan, Problem, SearchOptions};

/// Largest candidate count enumerated per case.
const LIMIT: u64 = 200_000;

pub(crate) fn model_ref(problem: &Problem) -> ModelRef {
    ModelRef { name: "synthetic".into(), content_hash: "0".repeat(64), input_shapes: "{}".into(), op_count: problem.ops.len() }
}

/// Weight bytes a plan keeps on each processor, and the largest activation it handles there.
fn memory(plan: &Plan, problem: &Problem) -> Vec<f64> {
    let mut mem = vec![0.0; problem.processors.len()];
    for s in &plan.stages {
        let p = problem.processor_index(&s.processor).unwrap();
        let share = s.part.as_ref().map(|part| (part.end - part.start) as f64 / *plan.splits[part.split].bounds.last().unwrap() as f64).unwrap_or(1.0);
        mem[p] += s.ops.iter().map(|&v| problem.ops[v].weight_bytes as f64 * share).sum::<f64>();
    }
    mem
}

/// One random case: its problem and objective.
fn case(seed: u64) -> (Problem, Objective) {
    case_within(seed, LIMIT)
}

/// One random case of at most `limit` candidates (ops are dropped until it fits).
pub(crate) fn case_within(seed: u64, limit: u64) -> (Problem, Objective) {
    let device = [Device::TwoCores, Device::Accelerator, Device::AcceleratorAndCores][(seed % 3) as usize];
    let max_ops = if device == Device::AcceleratorAndCores { 8 } else { 12 };
    let mut rng = Rng(seed.wrapping_mul(7919));
    let mut recipe = Recipe::new(4 + rng.below(max_ops - 3), device);
    let mut problem = synthetic::problem(seed, &recipe);
    while candidate_count(&problem) > limit {
        recipe.ops -= 1;
        problem = synthetic::problem(seed, &recipe);
    }
    let objective = if seed % 5 == 4 { Objective::Throughput } else { Objective::Latency };
    (problem, objective)
}

#[test]
fn search_is_within_two_percent_of_the_exhaustive_optimum_and_never_worse_than_one_processor() {
    // More with TANDEM_SEARCH_CASES=1000 (the figures of the closing note).
    let cases: u64 = std::env::var("TANDEM_SEARCH_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(240);
    let (mut within, mut exact, mut worst, mut candidates, mut beats_single, mut uses_split, mut parallel) = (0, 0, 1.0f64, 0u64, 0, 0, 0);
    let mut misses = vec![];
    for seed in 0..cases {
        let (problem, objective) = case(seed);
        let found = search(&problem, &SearchOptions { objective, seed, ..Default::default() }).unwrap();
        let best = exhaustive(&problem, objective, LIMIT).unwrap();
        candidates += best.candidates;
        let ratio = found.best.score.value / best.best.score.value;
        assert!(ratio >= 1.0 - 1e-9, "seed {seed}: the search ({}) beat the exhaustive optimum ({})", found.best.score.value, best.best.score.value);
        worst = worst.max(ratio);
        if ratio <= 1.02 {
            within += 1;
        } else {
            misses.push((seed, ratio));
        }
        if ratio <= 1.0 + 1e-9 {
            exact += 1;
        }
        // Never worse than the best single processor (when one can run everything).
        if let Some(b) = found.best_baseline(objective) {
            let single = objective_value(objective, b.latency_us, b.period_us);
            assert!(found.best.score.value <= single * (1.0 + 1e-12), "seed {seed}: plan {} worse than {} alone ({single})", found.best.score.value, b.processor);
            if found.best.score.value < single * 0.999 {
                beats_single += 1;
            }
        }
        // The plan: valid, simulated to the figures the search scored, ops only where they run,
        // memory limits kept.
        let plan = found.plan(&problem, objective, model_ref(&problem), "synthetic", Some(1)).unwrap();
        plan.validate().unwrap();
        let t = tandem_plan::simulate(&plan, &problem).unwrap();
        assert!((t.latency_us - found.best.score.latency_us).abs() <= 1e-6 * t.latency_us, "seed {seed}: simulated {} vs scored {}", t.latency_us, found.best.score.latency_us);
        assert!((t.period_us - found.best.score.period_us).abs() <= 1e-6 * t.period_us);
        for s in plan.stages.iter().filter(|s| s.part.is_none()) {
            let p = problem.processor_index(&s.processor).unwrap();
            assert!(s.ops.iter().all(|&v| problem.ops[v].cost_us[p].is_some()), "seed {seed}: an op on a processor that cannot run it");
        }
        for (p, used) in memory(&plan, &problem).iter().enumerate() {
            if let Some(limit) = problem.processors[p].memory_bytes {
                assert!(*used <= limit as f64, "seed {seed}: {used} bytes of weights on {}, limit {limit}", problem.processors[p].id);
            }
        }
        uses_split += !plan.splits.is_empty() as usize;
        parallel += (plan.processors.len() > 1) as usize;
    }
    let share = within as f64 / cases as f64;
    println!(
        "search vs exhaustive over {cases} random DAGs (4-12 ops, {candidates} candidates enumerated): {within} within 2% ({:.1}%), {exact} optimal ({:.1}%), worst {:.2}% above; plans faster than the best single processor: {beats_single}; with splits: {uses_split}; on several processors: {parallel}; misses: {misses:?}",
        100.0 * share,
        100.0 * exact as f64 / cases as f64,
        100.0 * (worst - 1.0)
    );
    assert!(share >= 0.95, "only {:.1}% within 2%: {misses:?}", 100.0 * share);
}

#[test]
fn the_search_is_reproducible() {
    let (problem, objective) = case(7);
    let a = search(&problem, &SearchOptions { objective, ..Default::default() }).unwrap();
    let b = search(&problem, &SearchOptions { objective, ..Default::default() }).unwrap();
    assert_eq!(a.best.choices, b.best.choices);
    assert_eq!(a.evaluations, b.evaluations);
}

#[test]
fn an_op_no_processor_can_run_means_no_plan() {
    let (mut problem, objective) = case(3);
    problem.ops[0].cost_us.iter_mut().for_each(|c| *c = None);
    problem.ops.iter_mut().for_each(|o| o.splits.retain(|s| !s.chain.contains(&0)));
    let e = search(&problem, &SearchOptions { objective, ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("no plan"), "{e}");
}

#[test]
fn a_split_cuts_on_a_block_boundary_from_whichever_side_has_one() {
    // 100 channels in blocks of 16: a 84/16 split cuts at 16, with the 84% part second.
    let fractions = tandem_plan::build::fractions(100, 16, 7);
    assert!(fractions.contains(&0.84) && fractions.contains(&0.16), "{fractions:?}");
    let part_us = vec![fractions.iter().map(|f| Some(100.0 * f)).collect(), fractions.iter().map(|f| Some(500.0 * f)).collect()];
    let split = tandem_plan::SplitOption { chain: vec![0], axis: 1, extent: 100, align: 16, fractions, part_us, output_bytes: 0 };
    let op = tandem_plan::OpNode { name: "conv".into(), kind: "Conv".into(), inputs: vec![], output_bytes: 0, is_output: true, cost_us: vec![Some(100.0), Some(500.0)], weight_bytes: 0, splits: vec![split] };
    let cpu = |id: &str, core: usize| tandem_plan::ProcessorSpec { id: id.into(), cores: vec![core], memory_bytes: None };
    let zero = tandem_plan::TransferCost { fixed_us: 0.0, per_byte_us: 0.0 };
    let problem = Problem { processors: vec![cpu("a", 0), cpu("b", 1)], ops: vec![op], transfer: vec![vec![zero; 2]; 2], stage: vec![Default::default(); 2], join: vec![] };
    let found = search(&problem, &SearchOptions::default()).unwrap();
    assert!((found.best.score.latency_us - 84.0).abs() < 1e-9, "{:?}", found.best);
    let plan = found.plan(&problem, Objective::Latency, model_ref(&problem), "d", None).unwrap();
    assert_eq!(plan.splits[0].bounds, vec![0, 16, 100]);
    let on = |p: &str| plan.stages.iter().find(|s| s.processor == p).unwrap().part.clone().unwrap();
    assert_eq!((on("a").start, on("a").end, on("b").start, on("b").end), (16, 100, 0, 16));
    assert_eq!(plan.splits[0].stages, vec![plan.stages.iter().find(|s| s.processor == "b").unwrap().id, plan.stages.iter().find(|s| s.processor == "a").unwrap().id]);
}

#[test]
fn a_plan_predicted_to_gain_less_than_min_gain_gives_way_to_the_best_processor_alone() {
    let (mut kept, mut declined) = (0, 0);
    for seed in 0..120 {
        let (problem, objective) = case(seed);
        let plain = search(&problem, &SearchOptions { objective, seed, ..Default::default() }).unwrap();
        assert!(plain.set_aside.is_none(), "seed {seed}: nothing is set aside without a margin");
        let alone = plain.best_baseline(objective).map(|b| objective_value(objective, b.latency_us, b.period_us));
        let margined = search(&problem, &SearchOptions { objective, seed, min_gain: 0.05, ..Default::default() }).unwrap();
        let Some(alone) = alone else { continue };
        let gain = alone / plain.best.score.value;
        if gain > 1.0 / 0.95 + 1e-9 {
            // Gains above the margin are taken as before.
            assert_eq!(margined.best, plain.best, "seed {seed}: a {gain:.3}x plan was dropped");
            assert!(margined.set_aside.is_none());
            kept += 1;
        } else if gain > 1.0 + 1e-9 && gain < 1.0 / 0.95 - 1e-9 {
            // Smaller ones give way: the plan is the processor alone, the other is reported.
            assert!((margined.best.score.value - alone).abs() <= 1e-9 * alone, "seed {seed}: {} against {alone}", margined.best.score.value);
            let aside = margined.set_aside.as_ref().unwrap_or_else(|| panic!("seed {seed}: a {gain:.3}x plan was not set aside"));
            assert_eq!(aside.solution, plain.best);
            assert!(aside.processors.len() >= 2 || aside.solution.choices.iter().any(|c| matches!(c, tandem_plan::Choice::Split { .. })), "seed {seed}: {:?}", aside.processors);
            declined += 1;
        }
    }
    // Both sides of the margin occur among the cases, so neither branch is vacuous.
    assert!(kept > 0 && declined > 0, "kept {kept}, declined {declined}");
}

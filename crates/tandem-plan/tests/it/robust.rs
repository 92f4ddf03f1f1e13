//! The robust search (lowest p90 of the predicted latency over availability scenarios): scenarios and
//! their names, the p90 itself, a hand-built device whose second core is often busy, and seeded random
//! problems, checked against the idle-optimal plan, every processor alone, the simulated timelines
//! on the slowed problems and, where they can be enumerated, the exhaustive optimum.

use std::collections::BTreeMap;

use tandem_plan::synthetic::{self, Device, Draw, Recipe, Rng};
use tandem_plan::{exhaustive_p90, p90, robust_search, scenarios, simulate, Choice, Objective, OpInput, OpNode, Problem, ProcessorSpec, RobustResult, Scenario, SearchOptions, StageCost, TransferCost};

use crate::search::{case_within, model_ref};

/// Largest candidate count enumerated per case (each candidate is scored in every scenario).
const LIMIT: u64 = 100_000;

fn cpu(id: &str, cores: &[usize]) -> ProcessorSpec {
    ProcessorSpec { id: id.into(), cores: cores.to_vec(), memory_bytes: None }
}

/// A problem with these processors and no ops worth planning: for the scenario lists.
fn device(processors: Vec<ProcessorSpec>) -> Problem {
    let np = processors.len();
    let zero = TransferCost { fixed_us: 0.0, per_byte_us: 0.0 };
    let op = OpNode { name: "x".into(), kind: "Relu".into(), inputs: vec![], output_bytes: 4, is_output: true, cost_us: vec![Some(1.0); np], weight_bytes: 0, splits: vec![] };
    Problem { processors, ops: vec![op], transfer: vec![vec![zero; np]; np], stage: vec![StageCost::default(); np], join: vec![] }
}

#[test]
fn two_cores_give_every_combination_and_processors_follow_their_slowest_core() {
    let problem = device(synthetic::two_cores());
    let levels = BTreeMap::from([(1, (3.0, 10.0))]);
    let list = scenarios(&problem, &levels);
    assert_eq!(list.len(), 9);
    assert_eq!(list[0].name, "idle");
    assert!(list[0].is_idle() && list[1..].iter().all(|s| !s.is_idle()));
    let by_name = |n: &str| list.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("no scenario {n}: {:?}", list.iter().map(|s| &s.name).collect::<Vec<_>>()));
    // Processors cpu:0, cpu:1, cpu:0-1; core 0 takes the default levels, core 1 the table's.
    assert_eq!(by_name("cpu1 half").factors, vec![1.0, 3.0, 3.0]);
    assert_eq!(by_name("cpu0 heavy").factors, vec![4.0, 1.0, 4.0]);
    let mixed = by_name("cpu0 heavy + cpu1 half");
    assert_eq!(mixed.factors, vec![4.0, 3.0, 4.0]);
    assert_eq!(mixed.core_factors, BTreeMap::from([(0, 4.0), (1, 3.0)]));
    assert_eq!(by_name("cpu0 half + cpu1 heavy").factors, vec![2.0, 10.0, 10.0]);
    let mut names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 9, "names are distinct");
}

#[test]
fn many_cores_give_idle_and_each_core_alone_and_an_accelerator_stays_at_full_speed() {
    let mut processors: Vec<ProcessorSpec> = (0..4).map(|c| cpu(&format!("cpu:{c}"), &[c])).collect();
    processors.push(cpu("cpu:0-3", &[0, 1, 2, 3]));
    processors.push(ProcessorSpec { id: "acc:0".into(), cores: vec![], memory_bytes: None });
    let list = scenarios(&device(processors), &BTreeMap::new());
    assert_eq!(list.len(), 1 + 2 * 4);
    assert_eq!(list[0].name, "idle");
    let s = list.iter().find(|s| s.name == "cpu2 heavy").unwrap();
    assert_eq!(s.factors, vec![1.0, 1.0, 4.0, 1.0, 4.0, 1.0]);
    assert!(list.iter().all(|s| s.factors[5] == 1.0 && s.name.matches(" + ").count() == 0));

    // Three cores are still enumerated in full: 27.
    let three: Vec<ProcessorSpec> = (0..3).map(|c| cpu(&format!("cpu:{c}"), &[c])).collect();
    assert_eq!(scenarios(&device(three), &BTreeMap::new()).len(), 27);
    // No cores at all: only idle.
    let acc = scenarios(&device(vec![ProcessorSpec { id: "acc:0".into(), cores: vec![], memory_bytes: None }]), &BTreeMap::new());
    assert_eq!(acc.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["idle"]);
}

#[test]
fn p90_interpolates_between_the_sorted_values() {
    let ten: Vec<f64> = (1..=10).rev().map(f64::from).collect();
    assert!((p90(&ten) - 9.1).abs() < 1e-12, "{}", p90(&ten));
    assert_eq!(p90(&[5.0]), 5.0);
    assert!((p90(&[1.0, 2.0]) - 1.9).abs() < 1e-12);
    // Nine scenarios: 0.9 × 8 = 7.2, a fifth of the way from the eighth value to the ninth.
    let nine = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 8.0];
    assert!((p90(&nine) - 4.0).abs() < 1e-12, "{}", p90(&nine));
    assert_eq!(p90(&[1.0, f64::INFINITY]), f64::INFINITY);
    assert!(p90(&[]).is_nan());
}

/// Two equal cores; a stem, two branches of 100 µs and a join. Core 1 is often busy.
fn fork_on_two_cores() -> Problem {
    let op = |name: &str, inputs: Vec<OpInput>, us: f64, is_output: bool| OpNode { name: name.into(), kind: "Conv".into(), inputs, output_bytes: 1000, is_output, cost_us: vec![Some(us); 2], weight_bytes: 0, splits: vec![] };
    let from = |v: usize| OpInput { from: Some(v), bytes: 1000 };
    let hand = TransferCost { fixed_us: 5.0, per_byte_us: 0.0 };
    let none = TransferCost { fixed_us: 0.0, per_byte_us: 0.0 };
    Problem {
        processors: vec![cpu("cpu:0", &[0]), cpu("cpu:1", &[1])],
        ops: vec![
            op("stem", vec![OpInput { from: None, bytes: 1000 }], 10.0, false),
            op("left", vec![from(0)], 100.0, false),
            op("right", vec![from(0)], 100.0, false),
            op("join", vec![from(1), from(2)], 10.0, true),
        ],
        transfer: vec![vec![none, hand], vec![hand, none]],
        stage: vec![StageCost::default(); 2],
        join: vec![],
    }
}

#[test]
fn a_plan_on_one_core_wins_at_p90_when_the_other_core_is_often_busy() {
    let problem = fork_on_two_cores();
    // Core 0 is rarely disturbed, core 1 often.
    let levels = BTreeMap::from([(0, (1.25, 1.5)), (1, (3.0, 10.0))]);
    let list = scenarios(&problem, &levels);
    let found = robust_search(&problem, &list, &SearchOptions::default()).unwrap();
    // Idle, the branches run side by side, the join where the later one ends: 10 + 5 + 100 + 10.
    assert!((found.idle_optimal.score.latency_us - 125.0).abs() < 1e-9, "{:?}", found.idle_optimal);
    let uses = |choices: &[Choice], p: usize| choices.contains(&Choice::On(p));
    assert!(uses(&found.idle_optimal.choices, 0) && uses(&found.idle_optimal.choices, 1));
    // At p90 everything stays on core 0: 220 µs times core 0's factor, 1.5 at the 90th percentile.
    assert_eq!(found.best.choices, vec![Choice::On(0); 4]);
    assert!((found.best.score.latency_us - 220.0).abs() < 1e-9);
    assert!((found.p90_us - 330.0).abs() < 1e-9, "{}", found.p90_us);
    assert!(found.idle_optimal_p90_us > 3.0 * found.p90_us, "the split waits for the busy core: {}", found.idle_optimal_p90_us);
    let reference = exhaustive_p90(&problem, &list, Objective::Latency, LIMIT).unwrap();
    assert_eq!(reference.best.choices, found.best.choices);
    check_figures(&problem, &list, &found, "fork");

    // With both cores equally undisturbed, splitting wins at p90 too.
    let calm = scenarios(&problem, &BTreeMap::from([(0, (1.1, 1.2)), (1, (1.1, 1.2))]));
    let found = robust_search(&problem, &calm, &SearchOptions::default()).unwrap();
    assert_eq!(found.best.choices, found.idle_optimal.choices);
}

/// The per-scenario figures are the plan's simulated timelines on the slowed problems; the
/// idle-optimal plan's too.
fn check_figures(problem: &Problem, list: &[Scenario], found: &RobustResult, label: &str) {
    let plan = found.plan(problem, model_ref(problem), "synthetic", Some(1)).unwrap();
    plan.validate().unwrap();
    assert!((plan.predicted.latency_us - found.best.score.latency_us).abs() <= 1e-6 * plan.predicted.latency_us, "{label}: the plan's timeline is the idle one");
    let idle = tandem_plan::Evaluator::new(problem, found.objective).plan(&found.idle_optimal.choices, model_ref(problem), "synthetic", Some(1)).unwrap();
    let figure = |t: &tandem_plan::Timeline| match found.objective {
        Objective::Latency => t.latency_us,
        Objective::Throughput => t.period_us,
    };
    for (i, s) in list.iter().enumerate() {
        let slowed = problem.slowed(&s.factors);
        let t = simulate(&plan, &slowed).unwrap();
        assert!((figure(&t) - found.per_scenario[i]).abs() <= 1e-6 * figure(&t), "{label}, {}: simulated {} µs, scored {} µs", s.name, figure(&t), found.per_scenario[i]);
        let t = simulate(&idle, &slowed).unwrap();
        assert!((figure(&t) - found.idle_optimal_per_scenario[i]).abs() <= 1e-6 * figure(&t), "{label}, {}: idle-optimal simulated {} µs, scored {} µs", s.name, figure(&t), found.idle_optimal_per_scenario[i]);
    }
    assert!((p90(&found.per_scenario) - found.p90_us).abs() <= 1e-9 * found.p90_us);
}

/// Levels drawn per core: sometimes the defaults, sometimes a core much busier than the other.
fn levels(seed: u64, problem: &Problem) -> BTreeMap<usize, (f64, f64)> {
    let mut rng = Rng(seed ^ 0x1e7e15);
    let mut out = BTreeMap::new();
    for c in tandem_plan::robust::cores(problem) {
        if rng.chance(0.5) {
            let half = rng.between(1.2, 4.0);
            out.insert(c, (half, half * rng.between(1.5, 4.0)));
        }
    }
    out
}

#[test]
fn the_robust_plan_is_never_worse_at_p90_than_the_idle_optimal_one_or_one_processor() {
    let (mut gains, mut cases) = (vec![], 0);
    for seed in 0..48u64 {
        let device = [Device::TwoCores, Device::Accelerator, Device::AcceleratorAndCores][(seed % 3) as usize];
        let mut rng = Rng(seed.wrapping_mul(31));
        let problem = synthetic::problem(seed, &Recipe::new(6 + rng.below(40), device));
        let list = scenarios(&problem, &levels(seed, &problem));
        let objective = if seed % 6 == 5 { Objective::Throughput } else { Objective::Latency };
        let found = robust_search(&problem, &list, &SearchOptions { objective, seed, ..Default::default() }).unwrap();
        assert_eq!(found.per_scenario.len(), list.len());
        assert!(found.p90_us <= found.idle_optimal_p90_us * (1.0 + 1e-9), "seed {seed}: robust p90 {} above the idle-optimal plan's {}", found.p90_us, found.idle_optimal_p90_us);
        for b in &found.baselines {
            assert!(found.p90_us <= b.p90_us * (1.0 + 1e-9), "seed {seed}: robust p90 {} above {} alone ({})", found.p90_us, b.baseline.processor, b.p90_us);
        }
        // The idle-optimal plan is the plain search's.
        let plain = tandem_plan::search(&problem, &SearchOptions { objective, seed, ..Default::default() }).unwrap();
        assert_eq!(plain.best.choices, found.idle_optimal.choices, "seed {seed}");
        check_figures(&problem, &list, &found, &format!("seed {seed}"));
        gains.push(found.idle_optimal_p90_us / found.p90_us);
        cases += 1;
    }
    let better = gains.iter().filter(|&&g| g > 1.001).count();
    println!("robust vs idle-optimal p90 over {cases} random problems: {better} better, best gain {:.2}x", gains.iter().copied().fold(1.0, f64::max));
}

#[test]
fn the_robust_search_is_within_two_percent_of_the_exhaustive_p90_optimum() {
    let cases: u64 = std::env::var("TANDEM_ROBUST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(90);
    let (mut within, mut exact, mut worst, mut candidates) = (0, 0, 1.0f64, 0u64);
    let mut misses = vec![];
    for seed in 0..cases {
        let (problem, objective) = case_within(seed, LIMIT);
        let list = scenarios(&problem, &levels(seed, &problem));
        let found = robust_search(&problem, &list, &SearchOptions { objective, seed, ..Default::default() }).unwrap();
        let best = exhaustive_p90(&problem, &list, objective, LIMIT).unwrap();
        candidates += best.candidates;
        let ratio = found.p90_us / best.p90_us;
        assert!(ratio >= 1.0 - 1e-6, "seed {seed}: the robust search ({}) beat the exhaustive optimum ({})", found.p90_us, best.p90_us);
        worst = worst.max(ratio);
        if ratio <= 1.02 {
            within += 1;
        } else {
            misses.push((seed, ratio));
        }
        exact += (ratio <= 1.0 + 1e-9) as usize;
    }
    let share = within as f64 / cases as f64;
    println!(
        "robust search vs exhaustive p90 over {cases} random DAGs ({candidates} candidates enumerated): {within} within 2% ({:.1}%), {exact} optimal, worst {:.2}% above; misses: {misses:?}",
        100.0 * share,
        100.0 * (worst - 1.0)
    );
    assert!(share >= 0.95, "only {:.1}% within 2%: {misses:?}", 100.0 * share);
}

#[test]
fn scenarios_that_do_not_fit_the_problem_are_refused() {
    let problem = fork_on_two_cores();
    let e = robust_search(&problem, &[], &SearchOptions::default()).unwrap_err();
    assert!(e.to_string().contains("at least one availability scenario"), "{e}");
    let wrong = Scenario { name: "odd".into(), core_factors: BTreeMap::new(), factors: vec![1.0; 3] };
    let e = robust_search(&problem, &[wrong], &SearchOptions::default()).unwrap_err();
    assert!(e.to_string().contains("'odd'"), "{e}");
}

//! Plans for the zoo's real models: the problem built from the graph and cost models fitted on
//! planted timings ([`synthetic::planted_cost_models`]), every split it offers builds with `Graph::split`, and the searched plan validates,
//! never predicts worse than one processor, and builds stage by stage with `Graph::stage` and
//! `Graph::split`.

use tandem_cost::CostModels;
use tandem_graph::Graph;
use tandem_plan::build::{self, BuildOptions};
use tandem_plan::{search, synthetic, Objective, ProcessorSpec, SearchOptions};

const ZOO: [&str; 4] = ["resnet", "mobilenet", "inception", "transformer"];

fn graphs() -> Vec<Graph> {
    ZOO.iter().map(|name| Graph::load_bytes(name, &tandem_graph::zoo::build(name, 0).unwrap(), &[]).unwrap()).collect()
}

fn processors() -> Vec<ProcessorSpec> {
    synthetic::two_cores()
}

fn fitted(graphs: &[Graph]) -> CostModels {
    synthetic::planted_cost_models(graphs).unwrap()
}

#[test]
fn zoo_plans_validate_beat_or_match_one_processor_and_build() {
    let graphs = graphs();
    let models = fitted(&graphs);
    for g in &graphs {
        let problem = build::problem(g, &models, &processors(), &[], &BuildOptions::default());
        problem.check().unwrap();
        // Every split offered builds (chains of an op and its activation included).
        let mut chains = 0;
        for op in &problem.ops {
            for s in &op.splits {
                let cut = s.cut(0.5).max(s.align).min(s.extent - 1);
                g.split(&s.chain, s.axis, &[0, cut, s.extent]).unwrap_or_else(|e| panic!("{}: split of {:?}: {e}", g.name, s.chain));
                chains += (s.chain.len() > 1) as usize;
            }
        }
        for objective in [Objective::Latency, Objective::Throughput] {
            let found = search(&problem, &SearchOptions { objective, ..Default::default() }).unwrap();
            let plan = found.plan(&problem, objective, build::model_ref(g), "dev", Some(models.version)).unwrap();
            plan.validate().unwrap();
            plan.check_model(&build::model_ref(g)).unwrap();
            plan.check_processors(&["cpu:0", "cpu:1", "cpu:0-1"]).unwrap();
            let best = found.best_baseline(objective).unwrap();
            let single = tandem_plan::evaluate::objective_value(objective, best.latency_us, best.period_us);
            assert!(found.best.score.value <= single * (1.0 + 1e-12), "{}: {} vs {}", g.name, found.best.score.value, single);
            for s in plan.stages.iter().filter(|s| s.part.is_none()) {
                g.stage(&s.ops).unwrap_or_else(|e| panic!("{}: stage {} {:?}: {e}", g.name, s.id, s.ops));
            }
            for sp in &plan.splits {
                g.split(&sp.ops, sp.axis, &sp.bounds).unwrap_or_else(|e| panic!("{}: split {:?}: {e}", g.name, sp.ops));
                // Cut on the kernels' block size.
                let option = problem.ops[*sp.ops.last().unwrap()].splits.iter().find(|o| o.chain == sp.ops).unwrap();
                assert_eq!(sp.bounds[1] % option.align, 0, "{}: split {:?} cut at {:?}", g.name, sp.ops, sp.bounds);
            }
            println!(
                "{} ({} ops, {} split options, {chains} chains) {:?}: {:.0} µs (latency {:.0}, period {:.0}) against {} alone {:.0} µs, {} stages, {} splits, on {:?}, {} candidates in {:.1} ms",
                g.name,
                g.ops.len(),
                problem.ops.iter().map(|o| o.splits.len()).sum::<usize>(),
                objective,
                found.best.score.value,
                found.best.score.latency_us,
                found.best.score.period_us,
                best.processor,
                best.latency_us,
                plan.stages.len(),
                plan.splits.len(),
                plan.processors,
                found.evaluations,
                found.search_ms
            );
        }
    }
}

#[test]
fn a_plan_for_one_model_is_refused_for_another() {
    let graphs = graphs();
    let (a, b) = (build::model_ref(&graphs[0]), build::model_ref(&graphs[1]));
    let models = fitted(&graphs[..1]);
    let problem = build::problem(&graphs[0], &models, &processors(), &[], &BuildOptions::default());
    let found = search(&problem, &SearchOptions::default()).unwrap();
    let plan = found.plan(&problem, Objective::Latency, a, "dev", Some(1)).unwrap();
    let e = plan.check_model(&b).unwrap_err().to_string();
    assert!(e.contains("made for model 'resnet'") && e.contains("not 'mobilenet'"), "{e}");
    // Unsupported ops stay off the processor that cannot run them.
    let unsupported: Vec<(usize, String)> = (0..graphs[0].ops.len()).step_by(3).map(|o| (o, "cpu:0-1".to_string())).collect();
    let problem = build::problem(&graphs[0], &models, &processors(), &unsupported, &BuildOptions::default());
    let found = search(&problem, &SearchOptions::default()).unwrap();
    assert!(found.baselines.iter().all(|b| b.processor != "cpu:0-1"));
    let plan = found.plan(&problem, Objective::Latency, build::model_ref(&graphs[0]), "dev", Some(1)).unwrap();
    for s in plan.stages.iter().filter(|s| s.processor == "cpu:0-1") {
        assert!(s.ops.iter().all(|&o| o % 3 != 0), "op of {:?} placed on cpu:0-1", s.ops);
    }
}

/// The CNNs and the transformer get region options: runs of ops from a region bound to a later cut
/// point, cut by rows (or an image's columns), longer than any op-and-activation chain. The
/// transformer's include one from right after a layer's Q/K/V projection, beside the residual.
/// Their parts cost more the more rows they cover, and none are offered with `max_region: 0`.
#[test]
fn cnns_are_offered_regions_cut_by_rows() {
    let graphs = graphs();
    let models = fitted(&graphs);
    for g in &graphs {
        let options = BuildOptions::default();
        let problem = build::problem(g, &models, &processors(), &[], &options);
        let regions: Vec<_> = problem.ops.iter().flat_map(|o| &o.splits).filter(|s| s.chain.len() > options.max_chain).collect();
        assert!(!regions.is_empty(), "{}: no regions offered", g.name);
        let (bounds, cuts) = (g.region_bounds(), g.cut_points());
        for r in &regions {
            let (start, last) = (r.chain[0], *r.chain.last().unwrap());
            assert!(start == 0 || bounds.contains(&start), "{}: region {:?} starts off a region bound", g.name, r.chain);
            assert!(last + 1 == g.ops.len() || cuts.contains(&(last + 1)), "{}: region {:?} ends off a cut point", g.name, r.chain);
            assert!(g.is_region(start, last + 1) && r.chain == (start..=last).collect::<Vec<_>>(), "{}: {:?}", g.name, r.chain);
            assert!(g.region_axes(last).contains(&(r.axis, r.extent)), "{}: region {:?} on axis {}", g.name, r.chain, r.axis);
            for p in 0..2 {
                let costs: Vec<f64> = r.part_us[p].iter().map(|c| c.unwrap()).collect();
                assert!(costs.windows(2).all(|w| w[0] <= w[1]), "{}: region {:?} on {p}: {costs:?}", g.name, r.chain);
            }
        }
        if g.name == "transformer" {
            assert!(regions.iter().any(|r| r.chain[0] == 6), "transformer: no region after the Q/K/V projection: {:?}", regions.iter().map(|r| (r.chain[0], r.chain.len(), r.axis)).collect::<Vec<_>>());
        }
        let none = build::problem(g, &models, &processors(), &[], &BuildOptions { max_region: 0, ..options });
        assert!(none.ops.iter().flat_map(|o| &o.splits).all(|s| s.chain.len() <= options.max_chain), "{}", g.name);
        println!("{}: {} regions offered", g.name, regions.len());
    }
}

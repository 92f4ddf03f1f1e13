//! `tandem zoo`: list the built-in models or write one to an ONNX file.

use anyhow::{bail, Result};
use serde::Serialize;
use tandem_graph::zoo;

use crate::cli::ZooArgs;
use crate::table::Table;

#[derive(Serialize)]
struct Entry {
    name: &'static str,
    description: &'static str,
    input_shape: &'static [usize],
    default: bool,
}

/// Runs `tandem zoo`.
pub fn run(args: &ZooArgs, json: bool) -> Result<()> {
    if args.probes && args.name.is_none() {
        return list_probes(json);
    }
    if let Some(probe) = args.name.as_deref().and_then(zoo::probe::find) {
        return write_probe(&probe, args, json);
    }
    let Some(name) = &args.name else {
        let entries: Vec<Entry> = zoo::models()
            .iter()
            .map(|m| Entry { name: m.name, description: m.description, input_shape: m.input_shape, default: m.name == zoo::default_model().name })
            .collect();
        if json {
            return super::print_json(&serde_json::json!({ "models": entries }));
        }
        let mut t = Table::new(&["name", "input", "description"]);
        for e in &entries {
            let shape = e.input_shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
            t.row(vec![format!("{}{}", e.name, if e.default { " (default)" } else { "" }), shape, e.description.to_string()]);
        }
        crate::out(&t.render())?;
        crate::out(&format!("and {} probe networks for fitting cost models: tandem zoo --probes\n", zoo::probe::probes().len()))?;
        return Ok(());
    };
    let model = zoo::get(name)?;
    let Some(path) = &args.output else {
        bail!("say where to write it: tandem zoo {} -o {}.onnx", model.name, model.name);
    };
    zoo::write(model.name, args.seed, path)?;
    if json {
        super::print_json(&serde_json::json!({ "model": model.name, "path": path, "seed": args.seed, "input_shape": model.input_shape }))
    } else {
        crate::out(&format!("wrote {} (input {:?}, seed {}) to {}\n", model.name, model.input_shape, args.seed, path.display()))?;
        Ok(())
    }
}

/// `tandem zoo --probes`: every probe network with what it draws.
fn list_probes(json: bool) -> Result<()> {
    let built: Vec<(zoo::probe::Probe, zoo::probe::BuiltProbe)> = zoo::probe::probes().into_iter().map(|p| { let b = zoo::probe::build_probe(&p); (p, b) }).collect();
    if json {
        let probes: Vec<serde_json::Value> = built
            .iter()
            .map(|(p, b)| serde_json::json!({ "name": p.name, "input_shape": b.input_shape, "output_shape": b.output_shape, "description": b.description }))
            .collect();
        return super::print_json(&serde_json::json!({ "probes": probes }));
    }
    let mut t = Table::new(&["name", "input", "layers"]);
    for (p, b) in &built {
        let shape = b.input_shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
        t.row(vec![p.name.clone(), shape, b.description.trim_start_matches("probe network: ").to_string()]);
    }
    crate::out(&t.render())?;
    crate::out("profile them all with `tandem profile probes`; `fit` trains on them and never holds one out\n")?;
    Ok(())
}

/// `tandem zoo probe-... -o FILE`. A probe's weights are fixed by its name, so `--seed` is refused.
fn write_probe(probe: &zoo::probe::Probe, args: &ZooArgs, json: bool) -> Result<()> {
    let Some(path) = &args.output else {
        bail!("say where to write it: tandem zoo {} -o {}.onnx", probe.name, probe.name);
    };
    if args.seed != 0 {
        bail!("a probe network's weights are fixed by its name; drop --seed");
    }
    let built = zoo::probe::build_probe(probe);
    std::fs::write(path, built.bytes()).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    if json {
        super::print_json(&serde_json::json!({ "model": probe.name, "path": path, "input_shape": built.input_shape }))
    } else {
        crate::out(&format!("wrote {} (input {:?}) to {}\n", probe.name, built.input_shape, path.display()))?;
        Ok(())
    }
}

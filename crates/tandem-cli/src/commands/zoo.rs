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

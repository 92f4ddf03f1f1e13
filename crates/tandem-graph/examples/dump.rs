use tract_onnx::prelude::*;
fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let shape: Vec<usize> = args[2].split(',').map(|s| s.parse().unwrap()).collect();
    let m = tract_onnx::onnx().with_ignore_value_info(true).model_for_path(&args[1])?
        .with_input_fact(0, f32::fact(&shape).into())?;
    let typed = m.into_typed()?.into_decluttered()?;
    println!("=== DECLUTTERED {} nodes", typed.nodes().len());
    for n in typed.nodes().iter().take(60) {
        println!("{:4} {:30} {:20} in={:?} out={:?}", n.id, n.name, n.op.name(), n.inputs, n.outputs.iter().map(|o| format!("{:?}", o.fact)).collect::<Vec<_>>());
    }
    let opt = typed.clone().into_optimized()?;
    println!("=== OPTIMIZED {} nodes", opt.nodes().len());
    for n in opt.nodes().iter().take(80) {
        println!("{:4} {:30} {:20} in={:?} out={:?}", n.id, n.name, n.op.name(), n.inputs, n.outputs.iter().map(|o| format!("{:?}", o.fact)).collect::<Vec<_>>());
    }
    Ok(())
}

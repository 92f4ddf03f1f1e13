//! Which ops get their split parts profiled.

use tandem_graph::Graph;

#[test]
fn heavy_ops_are_heavy_in_flops_or_in_bytes() {
    let g = Graph::load_bytes("mobilenet", &tandem_graph::zoo::build("mobilenet", 0).unwrap(), &[]).unwrap();
    let heavy = tandem_profile::heavy_ops(&g, 0.02);
    let total = g.total_flops() as f64;
    for op in g.ops.iter().filter(|o| !o.split_axes.is_empty()) {
        if op.cost.flops as f64 >= 0.02 * total {
            assert!(heavy.contains(&op.id), "{} has {} of {total} FLOPs", op.name, op.cost.flops);
        }
    }
    // Depthwise convolutions do few FLOPs over large tensors: memory, not arithmetic, makes them slow.
    let by_bytes: Vec<&str> = heavy.iter().map(|&i| &g.ops[i]).filter(|o| (o.cost.flops as f64) < 0.02 * total).map(|o| o.kind.as_str()).collect();
    assert!(by_bytes.contains(&"DepthwiseConv"), "heavy by bytes only: {by_bytes:?}");
    assert!(heavy.iter().all(|&i| !g.ops[i].split_axes.is_empty()));
    assert!(heavy.len() < g.ops.len(), "not every op is heavy");
}

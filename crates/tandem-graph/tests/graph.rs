//! Load, cut and split every zoo model, and every model in `../shared/models` when that folder exists.

use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use tandem_graph::{boundaries, compare, Graph, InputShape, TValue, TVec};
use tract_onnx::prelude::{tract_ndarray, IntoTValue, IntoTensor};

/// `../shared/models` beside the repository, with input shapes from its MANIFEST.json.
fn shared_models() -> Vec<(PathBuf, Vec<InputShape>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models");
    let Ok(manifest) = std::fs::read_to_string(dir.join("MANIFEST.json")) else {
        eprintln!("no ../shared/models: shared-model tests skipped");
        return vec![];
    };
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("MANIFEST.json parses");
    let mut out = vec![];
    for (_, entry) in manifest.as_object().unwrap() {
        let file = dir.join(entry["file"].as_str().unwrap());
        let shapes = entry["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(ix, s)| {
                let dims = s.as_str().unwrap().split_once(':').unwrap().1;
                format!("{ix}={dims}").parse().unwrap()
            })
            .collect();
        out.push((file, shapes));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn zoo_graphs() -> Vec<Graph> {
    tandem_graph::zoo::models()
        .iter()
        .map(|m| Graph::load_bytes(m.name, &tandem_graph::zoo::build(m.name, 7).unwrap(), &[]).unwrap())
        .collect()
}

fn check_inspect(g: &Graph) {
    assert!(!g.ops.is_empty(), "{}: no ops", g.name);
    assert!(g.total_flops() > 0, "{}: zero flops", g.name);
    for op in &g.ops {
        for e in &op.inputs {
            if let Some(f) = e.from {
                assert!(f < op.id, "{}: op {} reads op {} which is not before it", g.name, op.id, f);
            }
        }
        assert!(!op.outputs.is_empty(), "{}: op {} has no output", g.name, op.name);
        let computes = matches!(op.kind.as_str(), "Conv" | "DepthwiseConv" | "GroupConv" | "EinSum" | "MaxPool" | "SumPool" | "Softmax");
        if computes {
            assert!(op.cost.flops > 0, "{}: {} ({}) counts no flops", g.name, op.name, op.kind);
        }
    }
    // Every optimised non-leaf node belongs to exactly one op.
    let mut seen = std::collections::HashSet::new();
    for op in &g.ops {
        for &n in &op.nodes {
            assert!(seen.insert(n), "{}: node {n} in two ops", g.name);
        }
    }
}

fn check_cuts(g: &Graph) {
    let inputs = g.random_inputs(1);
    let reference = g.run_whole(inputs.clone()).unwrap();
    for n in [2, 3, 5] {
        for seed in 0..2 {
            let cut = g.random_cut(n, seed);
            assert_eq!(cut.len(), n.min(g.ops.len()));
            let stages: Vec<_> = cut.iter().map(|ops| g.stage(ops).unwrap_or_else(|e| panic!("{}: {e}", g.name))).collect();
            let outs = g.run_stages(&stages, inputs.clone()).unwrap();
            for (r, o) in reference.iter().zip(&outs) {
                assert_eq!(r.as_bytes(), o.as_bytes(), "{}: {n} stages (seed {seed}) differ from the whole model", g.name);
            }
        }
    }
}

fn random_tensor(shape: &[usize], rng: &mut impl Rng) -> TValue {
    let data: Vec<f32> = (0..shape.iter().product()).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), data).unwrap().into_tvalue()
}

/// Splits every splittable op of `g` along each of its axes at 0.25, 0.5 and 0.75; returns how many
/// splits were checked.
fn check_splits(g: &Graph) -> usize {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut checked = 0;
    for op in &g.ops {
        for &axis in &op.split_axes {
            let dim = op.outputs[0].shape[axis];
            let reference_model = g.chain_model(&[op.id]).unwrap();
            for ratio in [0.25, 0.5, 0.75] {
                let bounds = boundaries(dim, &[ratio], 1);
                let split = g.split(&[op.id], axis, &bounds).unwrap_or_else(|e| panic!("{}: {e}", g.name));
                let inputs: TVec<TValue> =
                    split.inputs.iter().map(|v| random_tensor(&g.optimized().outlet_fact((*v).into()).unwrap().shape.as_concrete().unwrap().to_vec(), &mut rng)).collect();
                let reference = tandem_graph::run(&tandem_graph::compile(&reference_model, "ref").unwrap(), inputs.clone(), "ref").unwrap();
                let joined = split.run_joined(&inputs).unwrap();
                let (abs, rel) = compare(&reference[0].clone().into_tensor(), &joined).unwrap();
                assert!(rel <= 1e-6, "{}: op {} ({}) split on axis {axis} at {ratio}: max abs {abs}, rel {rel}", g.name, op.name, op.kind, );
                checked += 1;
            }
        }
    }
    checked
}

#[test]
fn zoo_models_load_and_inspect() {
    for g in zoo_graphs() {
        check_inspect(&g);
    }
}

#[test]
fn zoo_models_cut_and_chain_bit_exact() {
    for g in zoo_graphs() {
        check_cuts(&g);
    }
}

#[test]
fn zoo_models_split_every_splittable_op() {
    for g in zoo_graphs() {
        let n = check_splits(&g);
        let splittable = g.ops.iter().filter(|o| !o.split_axes.is_empty()).count();
        assert!(splittable * 2 >= g.ops.len(), "{}: only {splittable} of {} ops splittable", g.name, g.ops.len());
        eprintln!("{}: {n} splits checked", g.name);
    }
}

#[test]
fn shared_models_load_cut_and_split() {
    for (path, shapes) in shared_models() {
        let g = Graph::load(&path, &shapes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check_inspect(&g);
        check_cuts(&g);
        let n = check_splits(&g);
        eprintln!("{}: {} ops, {n} splits checked", g.name, g.ops.len());
    }
}

#[test]
fn boundaries_follow_kernel_blocks() {
    assert_eq!(boundaries(64, &[0.5], 1), vec![0, 32, 64]);
    assert_eq!(boundaries(64, &[0.3], 16), vec![0, 16, 64]);
    assert_eq!(boundaries(96, &[0.25, 0.5, 0.75], 32), vec![0, 32, 64, 96]);
    // Cuts that round onto an end or onto each other are dropped, never empty parts.
    assert_eq!(boundaries(16, &[0.1, 0.2], 16), vec![0, 16]);
    assert_eq!(boundaries(10, &[0.5, 0.5], 1), vec![0, 5, 10]);
}

/// A convolution and the activation after it, split as one chain: one part computes both for its range.
#[test]
fn conv_then_activation_chains_split() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut checked = 0;
    for g in zoo_graphs() {
        for op in g.ops.iter().filter(|o| o.kind.ends_with("Conv")) {
            let succ = g.successors(op.id);
            let [next] = succ.iter().copied().collect::<Vec<_>>()[..] else { continue };
            if !matches!(g.ops[next].kind.as_str(), "Max" | "Min" | "Clip") || g.ops[next].outputs.len() != 1 {
                continue;
            }
            let chain = [op.id, next];
            let reference_model = g.chain_model(&chain).unwrap();
            for axis in [1, 2] {
                let dim = g.ops[next].outputs[0].shape[axis];
                let split = g.split(&chain, axis, &boundaries(dim, &[0.25, 0.5], 1)).unwrap_or_else(|e| panic!("{}: {e}", g.name));
                assert_eq!(split.parts.len(), 3);
                let inputs: TVec<TValue> = split
                    .inputs
                    .iter()
                    .map(|v| random_tensor(g.optimized().outlet_fact((*v).into()).unwrap().shape.as_concrete().unwrap(), &mut rng))
                    .collect();
                let reference = tandem_graph::run(&tandem_graph::compile(&reference_model, "ref").unwrap(), inputs.clone(), "ref").unwrap();
                let (abs, rel) = compare(&reference[0].clone().into_tensor(), &split.run_joined(&inputs).unwrap()).unwrap();
                assert!(rel <= 1e-6, "{}: chain {} + {} on axis {axis}: abs {abs} rel {rel}", g.name, op.name, g.ops[next].name);
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} conv+activation chains found");
}

/// The share of a convolution's or pool's taps over the input, not its padding: 1 without padding,
/// and for a 3x3 window at stride 1 padded by 1, (3H - 2) / 3H along each axis (the first and last
/// rows see 2 of the kernel's 3 rows).
#[test]
fn convolutions_record_the_share_of_their_taps_over_the_input() {
    let mut padded = 0;
    let shared = shared_models().into_iter().map(|(path, shapes)| Graph::load(&path, &shapes).unwrap());
    for g in zoo_graphs().into_iter().chain(shared) {
        for op in g.ops.iter().filter(|o| o.features.contains_key("kernel_h")) {
            let get = |k: &str| op.features[k];
            let ppm = *op.features.get("valid_taps_ppm").unwrap_or_else(|| panic!("{}: {} {:?}", g.name, op.name, op.features));
            assert!(0 < ppm && ppm <= 1_000_000, "{}: {} {ppm}", g.name, op.name);
            if get("kernel_h") == 1 && get("kernel_w") == 1 {
                assert_eq!(ppm, 1_000_000, "{}: {}", g.name, op.name);
            }
            if (get("kernel_h"), get("kernel_w"), get("stride_h"), get("stride_w")) == (3, 3, 1, 1) && ppm < 1_000_000 {
                let share = |n: i64| (3 * n - 2) as f64 / (3 * n) as f64;
                let want = (share(get("out_h")) * share(get("out_w")) * 1e6).round() as i64;
                assert_eq!(ppm, want, "{}: {} {:?}", g.name, op.name, op.features);
                padded += 1;
            }
        }
    }
    assert!(padded >= 5, "only {padded} padded 3x3 convolutions checked");
}

/// Reductions, softmaxes and normalisations record the values each output row is computed over and
/// the stride between them: the zoo transformer's softmax over the keys runs along the innermost axis
/// of its scores, and a global average pool sums each channel's map.
#[test]
fn reductions_record_the_rows_they_run_along() {
    let mut softmaxes = 0;
    let shared = shared_models().into_iter().map(|(path, shapes)| Graph::load(&path, &shapes).unwrap());
    for g in zoo_graphs().into_iter().chain(shared) {
        for op in g.ops.iter().filter(|o| o.kind == "Softmax" || o.kind == "RmsNorm" || o.kind.starts_with("Reduce")) {
            let (Some(&len), Some(&inner)) = (op.features.get("reduce_len"), op.features.get("reduce_inner")) else {
                panic!("{}: {} {} records no reduced axes: {:?}", g.name, op.kind, op.name, op.features)
            };
            let values = op.cost.bytes_in as i64 / 4;
            assert!(len >= 1 && inner >= 1 && values % (len * inner) == 0, "{}: {} {len} x {inner} of {values}", g.name, op.name);
            if op.kind == "Softmax" {
                // Over the last axis of its input, which is its output's shape too.
                assert_eq!(len, *op.outputs[0].shape.last().unwrap() as i64, "{}: {}", g.name, op.name);
                assert_eq!(inner, 1, "{}: {}", g.name, op.name);
                softmaxes += 1;
            }
        }
    }
    // The zoo transformer has two; the shared models, when present, add their own.
    assert!(softmaxes >= 2, "only {softmaxes} softmaxes checked");
}

/// The axes a cost model needs to describe a split part: where a convolution's channels, rows and
/// columns are in its output (NCHW, or CHW where tract dropped the batch), and which output axes a
/// matrix product's weights and activations carry.
#[test]
fn ops_record_which_output_axis_holds_what_and_offer_rows_before_columns() {
    let (mut convs, mut products) = (0, 0);
    let shared = shared_models().into_iter().map(|(path, shapes)| Graph::load(&path, &shapes).unwrap());
    for g in zoo_graphs().into_iter().chain(shared) {
        for op in &g.ops {
            let shape = &op.outputs[0].shape;
            let get = |k: &str| op.features.get(k).copied();
            if let (Some(c), Some(r)) = (get("channel_axis"), get("row_axis")) {
                let (c, r) = (c as usize, r as usize);
                assert_eq!(shape[c] as i64, get("out_channels").unwrap(), "{}: {} {shape:?}", g.name, op.name);
                assert_eq!(shape[r] as i64, get("out_h").unwrap(), "{}: {} {shape:?}", g.name, op.name);
                assert_eq!(shape[r + 1] as i64, get("out_w").unwrap(), "{}: {} {shape:?}", g.name, op.name);
                if op.split_axes.contains(&r) {
                    assert_eq!(op.split_axis(), Some(r), "{}: {} is cut by rows", g.name, op.name);
                }
                assert_eq!(op.channel_axis(), c);
                if shape[r] > 1 {
                    assert!(!op.split_axes.contains(&(r + 1)), "{}: {} offers its columns, {:?}", g.name, op.name, op.split_axes);
                    // Still a valid split when asked for.
                    let dim = shape[r + 1];
                    if dim > 1 && op.split_axes.contains(&r) {
                        g.split(&[op.id], r + 1, &[0, dim / 2, dim]).unwrap_or_else(|e| panic!("{}: {e}", op.name));
                    }
                }
                convs += 1;
            }
            if op.kind == "EinSum" {
                let (w, i) = (get("weight_axes").unwrap(), get("input_axes").unwrap());
                assert!(w | i != 0, "{}: {}", g.name, op.name);
                for &a in &op.split_axes {
                    assert!((w | i) >> a & 1 == 1, "{}: {} split on axis {a}, carried by nothing ({w:b}, {i:b})", g.name, op.name);
                }
                products += 1;
            }
        }
    }
    assert!(convs > 10 && products > 5, "{convs} convolutions, {products} matrix products");
}

/// Splits every region of `g` (the ops from one cut point to one of the next `reach` cut points)
/// by the rows of its last output into two and three parts, joins them and compares with the region
/// run whole; checks what each part computes of each op. Returns how many regions were checked.
fn check_regions(g: &Graph, reach: usize) -> usize {
    let starts: Vec<usize> = std::iter::once(0).chain(g.cut_points()).collect();
    check_regions_from(g, &starts, reach).0
}

/// [`check_regions`] for the regions from each of `starts` to each of the next `reach` cut points (and
/// the end): how many were checked, and the most sources (ops or model inputs) one took inputs from.
fn check_regions_from(g: &Graph, starts: &[usize], reach: usize) -> (usize, usize) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut ends = g.cut_points();
    ends.push(g.ops.len());
    let (mut checked, mut most_inputs) = (0, 0);
    for &start in starts {
        for &end in ends.iter().filter(|&&e| e > start).take(reach) {
            if !g.is_region(start, end) {
                continue;
            }
            let region: Vec<usize> = (start..end).collect();
            let Some((axis, rows)) = g.region_axis(end - 1) else { continue };
            if rows < 6 {
                continue;
            }
            // Regions that reach a flatten or a pooled vector are not cut by rows; the planner skips
            // them the same way (a failed split).
            let Ok(split) = g.split(&region, axis, &boundaries(rows, &[0.3, 0.6], 1)) else { continue };
            let reference_model = g.chain_model(&region).unwrap();
            let inputs: TVec<TValue> =
                split.inputs.iter().map(|v| random_tensor(g.optimized().outlet_fact((*v).into()).unwrap().shape.as_concrete().unwrap(), &mut rng)).collect();
            let reference = tandem_graph::run(&tandem_graph::compile(&reference_model, "ref").unwrap(), inputs.clone(), "ref").unwrap();
            let (abs, rel) = compare(&reference[0].clone().into_tensor(), &split.run_joined(&inputs).unwrap()).unwrap();
            assert!(rel <= 1e-5, "{}: region {start}..{end} on axis {axis}: abs {abs} rel {rel}", g.name);
            // The middle part's shares: its own rows of the last op, more of some earlier one
            // (windows read halos on both sides), never more than all of one.
            let middle = split.parts[1].range.clone();
            let shares = g.part_shares(&region, axis, middle.clone()).unwrap();
            let own = middle.len() as f64 / rows as f64;
            assert_eq!(shares.len(), region.len());
            assert_eq!(split.parts[1].shares, shares, "{}: a split part's shares are part_shares'", g.name);
            assert!((shares.last().unwrap().1 - own).abs() < 1e-9, "{}: region {start}..{end}: last op share {:?}, rows {own}", g.name, shares.last());
            assert!(shares.iter().all(|&(_, s)| s <= 1.0 && s >= 0.0), "{}: shares {shares:?}", g.name);
            // A window over rows that an op of the region computed (not over the region's input).
            let windowed_inside = region.iter().any(|&o| {
                g.ops[o].features.get("kernel_h").is_some_and(|&k| k > 1) && g.ops[o].inputs.iter().any(|e| e.from.is_some_and(|f| f >= start))
            });
            assert!(!windowed_inside || shares.iter().any(|&(_, s)| s > own + 1e-9), "{}: region {start}..{end} computes no halo: {shares:?}", g.name);
            // Where the inputs come from: an op (one with several outputs counts once), or a model input.
            let mut sources: Vec<_> = split.inputs.iter().map(|v| g.ops.iter().find(|o| o.outputs.iter().any(|e| e.value == *v)).map(|o| o.id).ok_or(*v)).collect();
            sources.sort();
            sources.dedup();
            assert!(sources.len() <= tandem_graph::REGION_INPUTS, "{}: region {start}..{end} takes inputs from {sources:?}", g.name);
            most_inputs = most_inputs.max(sources.len());
            checked += 1;
        }
    }
    (checked, most_inputs)
}

/// Regions of a network cut by rows, each part carrying its rows through every op (convolutions with
/// their halos, residual adds, the Downsample of a strided shortcut, a fire module's Concat), give the
/// region's output exactly.
#[test]
fn regions_between_cut_points_split_by_rows() {
    let mut checked = 0;
    for g in zoo_graphs() {
        checked += check_regions(&g, 3);
    }
    for name in ["probe-cnn-01", "probe-cnn-02", "probe-cnn-03", "probe-cnn-04"] {
        let bytes = tandem_graph::zoo::probe::build(name).unwrap();
        checked += check_regions(&Graph::load_bytes(name, &bytes, &[]).unwrap(), 3);
    }
    assert!(checked >= 20, "only {checked} regions checked");
    for (path, shapes) in shared_models() {
        let g = Graph::load(&path, &shapes).unwrap();
        if ["squeezenet1_1", "resnet18"].contains(&g.name.as_str()) {
            let n = check_regions(&g, 2);
            eprintln!("{}: {n} regions checked", g.name);
            assert!(n >= 5, "{}: only {n} regions", g.name);
        }
    }
}

/// A region may start where the residual crosses beside the tensor it works on: after a transformer
/// layer's Q/K/V projection, or inside a residual block. Cut by rows, with the shortcut as a second
/// input sliced to the part's rows, it still gives the region's output exactly.
#[test]
fn regions_may_start_beside_a_residual_shortcut() {
    for g in zoo_graphs() {
        let cuts = g.cut_points();
        let starts: Vec<usize> = g.region_bounds().into_iter().filter(|c| !cuts.contains(c)).collect();
        if g.name == "transformer" {
            // Right after the first layer's Q/K/V projection (op 5, three outputs), only it and the
            // layer's input (the residual) cross; the attention up to the residual add is a region.
            assert!(starts.contains(&6), "transformer: bounds {starts:?}");
            assert!(g.is_region(6, cuts[0]), "transformer: 6..{} is no region", cuts[0]);
            // The projection also feeds the values' reshape (op 10), past op 8.
            assert!(!g.is_region(5, 9) && !g.is_region(6, 7));
        }
        let (n, most_inputs) = check_regions_from(&g, &starts, 2);
        eprintln!("{}: {n} regions beside a shortcut checked", g.name);
        // mobilenet's shortcuts are a projection's output, held as [C, H*W] by tract's optimiser:
        // the parts take it so and reshape it to [C, H, W] to slice its rows.
        if ["transformer", "resnet", "mobilenet"].contains(&g.name.as_str()) {
            assert!(n >= 3, "{}: only {n} regions", g.name);
            assert_eq!(most_inputs, 2, "{}: no region took the shortcut as a second input", g.name);
        }
    }
}

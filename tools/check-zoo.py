#!/usr/bin/env python3
"""Check tandem's zoo models against onnxruntime.

Usage: python tools/check-zoo.py DIR [--tol 1e-4]

DIR holds, for every zoo model NAME, the files written by the tandem-graph test
`export_for_onnxruntime`:

    NAME.onnx         the model, as `tandem_graph::zoo::build` writes it
    NAME.input.npy    the input tract ran it on
    NAME.output.npy   tract's output

For each model this script runs `onnx.checker.check_model` (full check, with strict shape
inference), runs the model in onnxruntime on the same input and compares the outputs
relative to the magnitude of onnxruntime's output: max|tract - ort| / max|ort| <= tol.
It prints one line per model (with its parameter count and multiply-accumulate count)
and exits non-zero if any model fails.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper, shape_inference


def shapes_of(model):
    """name -> static shape, for inputs, outputs, value_info and initializers."""
    shapes = {}
    g = model.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value for d in dims]
    for init in g.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def count_macs(model):
    """Multiply-accumulates of Conv, Gemm and MatMul nodes (the bulk of the compute)."""
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    shapes = shapes_of(inferred)
    macs = 0
    for node in inferred.graph.node:
        if node.op_type == "Conv":
            w = shapes[node.input[1]]  # [cout, cin/group, kh, kw]
            out = shapes[node.output[0]]  # [n, cout, h, w]
            macs += int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type == "Gemm":
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            macs += int(np.prod(out)) * a[-1]
        elif node.op_type == "MatMul":
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            macs += int(np.prod(out)) * a[-1]
    return macs


def check(onnx_path, tol):
    name = onnx_path.name[: -len(".onnx")]
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    params = sum(int(np.prod(numpy_helper.to_array(t).shape)) for t in model.graph.initializer)
    macs = count_macs(model)

    x = np.load(onnx_path.with_name(f"{name}.input.npy"))
    expected = np.load(onnx_path.with_name(f"{name}.output.npy"))  # tract

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    if len(inputs) != 1 or inputs[0].name != "input":
        raise ValueError(f"expected a single input named 'input', got {[i.name for i in inputs]}")
    (got,) = sess.run(["output"], {"input": x.astype(np.float32)})

    if got.shape != expected.shape:
        return name, False, f"shape mismatch: onnxruntime {got.shape} vs tract {expected.shape}"
    if not np.all(np.isfinite(got)):
        return name, False, "onnxruntime output has non-finite values"
    scale = float(np.max(np.abs(got)))
    if scale == 0.0:
        return name, False, "onnxruntime output is all zeros"
    rel = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)))) / scale
    ok = rel <= tol
    detail = (
        f"out {list(got.shape)} max|ort| {scale:.4g} rel.err {rel:.2e} (tol {tol:g}), "
        f"{params / 1e6:.3f} M params, {macs / 1e6:.1f} M MACs ({2 * macs / 1e6:.1f} MFLOPs)"
    )
    return name, ok, detail


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path, help="folder with NAME.onnx, NAME.input.npy, NAME.output.npy")
    ap.add_argument("--tol", type=float, default=1e-4, help="max |tract-ort| / max |ort| (default 1e-4)")
    args = ap.parse_args()

    models = sorted(args.dir.glob("*.onnx"))
    if not models:
        print(f"no .onnx files in {args.dir}", file=sys.stderr)
        return 2
    failures = 0
    for path in models:
        try:
            name, ok, detail = check(path, args.tol)
        except Exception as e:  # report every model, then fail
            name, ok, detail = path.stem, False, f"error: {type(e).__name__}: {e}"
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name:<12} {detail}", flush=True)
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}: "
          f"{len(models) - failures}/{len(models)} models match")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

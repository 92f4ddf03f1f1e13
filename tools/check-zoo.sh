#!/usr/bin/env bash
# Check every zoo model against onnxruntime:
#   1. make a Python venv at tools/.venv (once) with numpy, onnx and onnxruntime;
#   2. export NAME.onnx + NAME.input.npy + tract's NAME.output.npy for all zoo models
#      (the ignored test `export_for_onnxruntime` of tandem-graph);
#   3. run tools/check-zoo.py on them (exits non-zero on any mismatch).
# Usage: tools/check-zoo.sh [OUT_DIR]   (default: target/zoo-check; TANDEM_ZOO_SEED picks the seed)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/tools/.venv"
out="${1:-$root/target/zoo-check}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv" >&2
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import numpy, onnx, onnxruntime" 2>/dev/null; then
    "$venv/bin/pip" install --quiet numpy onnx onnxruntime >&2
fi

rm -f "$out"/*.onnx "$out"/*.npy
echo "exporting zoo models to $out" >&2
TANDEM_ZOO_DIR="$out" cargo test --quiet -p tandem-graph --lib export_for_onnxruntime -- --ignored >&2

"$venv/bin/python" "$root/tools/check-zoo.py" "$out"

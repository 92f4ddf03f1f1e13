#!/usr/bin/env python3
"""The peer benchmark behind tools/bench-peers: tandem (tract on one core, tract on all cores, the tuned
plan) against onnxruntime (one thread pinned to core 0, all threads), side by side in one run.

tandem's three figures come from one `tandem run --json` (the plan interleaved with the single-processor
baselines); onnxruntime is timed here with the same discipline: warm-up, then repeat until the budget
is spent (at least 20 runs), median and p90.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def time_session(sess, feed, budget_s, min_runs=20, max_runs=1000):
    for _ in range(3):
        sess.run(None, feed)
    times = []
    start = time.perf_counter()
    while len(times) < max_runs:
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= min_runs and time.perf_counter() - start > budget_s:
            break
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def ort_session(path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def time_ort(path, shape, threads, cores, budget_s):
    """Median and p90 in ms of `path` with `threads` intra-op threads, the process pinned to `cores`."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        sess = ort_session(path, threads)
        feed = {sess.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        return time_session(sess, feed, budget_s)
    finally:
        os.sched_setaffinity(0, before)


def tandem(exe, db, *args):
    """Runs tandem with --json and returns the parsed object; exits with its error line on failure."""
    cmd = [exe, *args, "--db", db, "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


def models_of(folder):
    """(name, path, dims) for each model of the folder: shapes from MANIFEST.json."""
    manifest = json.load(open(os.path.join(folder, "MANIFEST.json")))
    out = []
    for name, m in sorted(manifest.items()):
        dims = m["inputs"][0].split(":", 1)[1]
        out.append((name, os.path.join(folder, m["file"]), dims))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dir", nargs="?", default=os.path.join(ROOT, "..", "shared", "models"))
    ap.add_argument("--tandem", required=True)
    ap.add_argument("--db", default=os.path.join(ROOT, "target", "bench-peers", "tandem.db"))
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench-peers", "peers.csv"))
    ap.add_argument("--budget-s", type=float, default=3.0, help="onnxruntime timing budget per model and config")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.dir, "MANIFEST.json")):
        sys.exit(f"error: {args.dir} has no MANIFEST.json (name -> file, inputs): give a folder of models with one")
    os.makedirs(os.path.dirname(os.path.abspath(args.db)), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    models = models_of(args.dir)
    cores = sorted(os.sched_getaffinity(0))

    # Profile every model first, so the cost models each plan uses are fitted on all of them.
    for name, path, dims in models:
        print(f"profiling {name}", file=sys.stderr, flush=True)
        tandem(args.tandem, args.db, "profile", path, "--input-shape", f"0={dims}")
    fit = tandem(args.tandem, args.db, "fit")
    print(f"fitted cost models version {fit.get('version')}", file=sys.stderr)

    rows = []
    for name, path, dims in models:
        print(f"tuning and running {name}", file=sys.stderr, flush=True)
        shape = [int(d) for d in dims.split(",")]
        plan = tandem(args.tandem, args.db, "tune", path, "--input-shape", f"0={dims}")
        run = tandem(args.tandem, args.db, "run", path, "--input-shape", f"0={dims}", "--plan", str(plan["plan_id"]))
        base = {b["name"]: b["measured_ms"] for b in run["baselines"]}
        ort1, _ = time_ort(path, shape, 1, {cores[0]}, args.budget_s)
        ortn, _ = time_ort(path, shape, len(cores), set(cores), args.budget_s)
        one = base.get(f"single:cpu:{cores[0]}")
        every = base.get(f"single:cpu:{cores[0]}-{cores[-1]}") if len(cores) > 1 else one
        row = {
            "model": name,
            "input": dims,
            "tract_1core_ms": one,
            "tract_allcores_ms": every,
            "tandem_plan_ms": run["measured_ms"]["median"],
            "tandem_predicted_ms": run["predicted_ms"],
            "verified": run["verified"],
            "ort_1thread_ms": ort1,
            "ort_allthreads_ms": ortn,
        }
        row["plan_vs_tract_1core"] = one / row["tandem_plan_ms"]
        row["plan_vs_ort_allthreads"] = ortn / row["tandem_plan_ms"]
        rows.append(row)

    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)

    when = datetime.date.today().isoformat()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"\npeer benchmark, {when}, {cpu}, {len(cores)} cores (median ms; ratio = other / tandem plan, >1 means the plan is faster)\n")
    head = ["model", "tract 1 core", "tract all", "tandem plan", "ort 1 thread", "ort all", "plan vs tract 1", "plan vs ort all"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print(f"| {r['model']} | {r['tract_1core_ms']:.2f} | {r['tract_allcores_ms']:.2f} | {r['tandem_plan_ms']:.2f} | "
              f"{r['ort_1thread_ms']:.2f} | {r['ort_allthreads_ms']:.2f} | {r['plan_vs_tract_1core']:.2f}x | {r['plan_vs_ort_allthreads']:.2f}x |")
    geo = lambda xs: float(np.exp(np.mean(np.log(xs))))
    print(f"\ngeometric mean: plan vs tract 1 core {geo([r['plan_vs_tract_1core'] for r in rows]):.2f}x, "
          f"plan vs onnxruntime all threads {geo([r['plan_vs_ort_allthreads'] for r in rows]):.2f}x; "
          f"every plan verified: {all(r['verified'] for r in rows)}")
    print(f"CSV: {args.out}")


if __name__ == "__main__":
    main()

//! The cost of handing a tensor from one processor to another.
//!
//! Processors of one device share memory, so a hand-over is no copy: the producer's worker writes the
//! tensor, signals the consumer's worker, which then reads it from wherever the producer's caches left it.
//! The measured cost is the time from the producer's signal to the end of the consumer's read (signal,
//! wake-up, reading the data from the other core's caches) minus the consumer reading the same bytes hot
//! in its own cache: what a plan pays extra when a tensor crosses processors.
//!
//! A split costs one copy besides: the executor joins its parts into one tensor (a concatenation
//! along the split axis) before any consumer starts, on the processor of the part that finished
//! last. [`measure_join`] times that copy on a processor; the profile stores it as a transfer from the
//! processor to itself.

use std::sync::Arc;
use std::time::Instant;

use tandem_device::Worker;

use crate::stats::{summarize, StopRule, Summary};

fn touch(buf: &mut [f32], value: f32) {
    for (i, x) in buf.iter_mut().enumerate() {
        *x = value + i as f32;
    }
}

fn read(buf: &[f32]) -> f32 {
    // Sum in 8 lanes, like a kernel reading its input.
    let mut acc = [0f32; 8];
    for chunk in buf.chunks(8) {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a += x;
        }
    }
    acc.iter().sum()
}

/// Tensor sizes measured by default, in bytes (4 KiB to 16 MiB).
pub const DEFAULT_SIZES: [usize; 6] = [4 << 10, 32 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20];

/// Measures hand-overs of `bytes` from `src` to `dst`; returns the extra cost summary, microseconds.
pub fn measure_transfer(src: &Worker, dst: &Worker, bytes: usize, rule: &StopRule) -> Result<Summary, tandem_device::DeviceError> {
    let len = bytes / 4;
    let start = Instant::now();
    let mut crossing = vec![];
    let mut local = vec![];
    let mut round = 0usize;
    loop {
        // Producer writes on its processor.
        let buf = src.run(move || {
            let mut b = vec![0f32; len];
            touch(&mut b, round as f32);
            Arc::new(b)
        })?;
        // Consumer reads it: timed from the signal to the end of the read.
        let sent = Instant::now();
        let b = buf.clone();
        let cross = dst.run(move || {
            std::hint::black_box(read(&b));
            sent.elapsed().as_secs_f64() * 1e6
        })?;
        // The same read, hot in the consumer's cache, timed inside the consumer: what the consuming op
        // pays anyway when the tensor never crosses.
        let b = buf.clone();
        let hot = dst.run(move || {
            let t = Instant::now();
            std::hint::black_box(read(&b));
            t.elapsed().as_secs_f64() * 1e6
        })?;
        round += 1;
        if round <= rule.warmup {
            continue;
        }
        crossing.push(cross);
        local.push(hot);
        if rule.done(&crossing, start.elapsed().as_secs_f64()) {
            break;
        }
    }
    let extra: Vec<f64> = crossing.iter().zip(&local).map(|(c, l)| (c - l).max(0.0)).collect();
    Ok(summarize(&extra))
}

/// Measures joining two halves of a `bytes`-byte tensor on `worker` (the concatenation that ends a
/// split, cut by rows as convolutions are), timed inside the worker; microseconds. As in a plan, the
/// halves are fresh each time: one written by `worker` itself, the other by `other`, the processor
/// that ran the other part (the join reads it from that core's caches).
pub fn measure_join(worker: &Worker, other: &Worker, bytes: usize, rule: &StopRule) -> Result<Summary, tandem_device::DeviceError> {
    use tract_onnx::prelude::Tensor;
    // [1, 32, rows, 32] f32, cut in two along the rows.
    let rows = (bytes / (4 * 32 * 32)).max(2);
    fn half(first: usize, n: usize, round: usize) -> Tensor {
        let data: Vec<f32> = (0..32 * n * 32).map(|i| (first * 32 * 32 + i + round) as f32).collect();
        Tensor::from_shape(&[1, 32, n, 32], &data).expect("the shape holds the data")
    }
    let (top, bottom) = (rows / 2, rows - rows / 2);
    let start = Instant::now();
    let mut times = vec![];
    let mut round = 0usize;
    loop {
        let theirs = other.run(move || Arc::new(half(top, bottom, round)))?;
        let us = worker.run(move || {
            let mine = half(0, top, round);
            let t = Instant::now();
            let joined = Tensor::stack_tensors(2, &[&mine, &*theirs]);
            let us = t.elapsed().as_secs_f64() * 1e6;
            std::hint::black_box(joined.map(|j| j.len()).unwrap_or(0));
            us
        })?;
        round += 1;
        if round <= rule.warmup {
            continue;
        }
        times.push(us);
        if rule.done(&times, start.elapsed().as_secs_f64()) {
            break;
        }
    }
    Ok(summarize(&times))
}

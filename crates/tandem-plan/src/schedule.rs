//! Scheduling stages on processors: the one place where start and end times are decided.
//!
//! Both the search (for every candidate it scores) and [`crate::simulate`] (for a finished plan) reduce
//! a plan to [`Stages`]: per stage its processor, its duration, and the stages it waits for, each with the
//! hand-over delay of its tensors. A processor runs one stage at a time, and processors that share a
//! core exclude each other. Two orders are known:
//!
//! - [`Order::Listed`]: each processor runs its stages in the order they are listed (what the executor
//!   does with a plan's stages);
//! - [`Order::EarliestStart`]: list scheduling, always starting next the stage that can start the
//!   earliest (ties to the earlier listed). Listing the stages by the start times it finds and
//!   scheduling them with [`Order::Listed`] gives the same times, which is how the search's plans are
//!   written.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Which stage a processor runs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// In the order listed.
    Listed,
    /// The one that can start the earliest.
    EarliestStart,
}

/// Stages reduced to numbers. Only the first `len` entries are in use; the vectors keep their capacity
/// between evaluations.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stages {
    /// Processor index of each stage.
    pub proc: Vec<usize>,
    /// Duration, µs.
    pub dur: Vec<f64>,
    /// Stages waited for, with the hand-over delay after each one's end (several entries for one
    /// stage: the longest delay counts). Every dep comes earlier in the list.
    pub deps: Vec<Vec<(usize, f64)>>,
    /// Stages in use.
    pub len: usize,
}

impl Stages {
    /// Empties the list, keeping allocations.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends a stage; returns its index.
    pub fn push(&mut self, proc: usize, dur: f64) -> usize {
        let s = self.len;
        if s == self.proc.len() {
            self.proc.push(proc);
            self.dur.push(dur);
            self.deps.push(vec![]);
        } else {
            self.proc[s] = proc;
            self.dur[s] = dur;
            self.deps[s].clear();
        }
        self.len += 1;
        s
    }
}

/// Start and end times of the stages, and what they add up to.
#[derive(Debug, Default, Clone)]
pub(crate) struct Times {
    pub start: Vec<f64>,
    pub end: Vec<f64>,
    /// Busy time per processor (sum of its stages' durations).
    pub busy: Vec<f64>,
    /// The last end.
    pub latency: f64,
    /// The busiest processor's time: the pipelined period.
    pub period: f64,
}

/// Reusable scratch for [`Scheduler::run`].
#[derive(Debug, Default)]
pub(crate) struct Scheduler {
    pending: Vec<usize>,
    succ_start: Vec<usize>,
    succ: Vec<usize>,
    heaps: Vec<BinaryHeap<Reverse<(u64, usize)>>>,
    free: Vec<f64>,
}

/// For non-negative finite floats the bit pattern orders like the value.
fn key(t: f64) -> u64 {
    t.max(0.0).to_bits()
}

impl Scheduler {
    /// Schedules `stages` on `procs` processors; `overlap[p]` lists the processors that cannot run
    /// while `p` does (itself included).
    pub fn run(&mut self, stages: &Stages, procs: usize, overlap: &[Vec<usize>], order: Order, t: &mut Times) {
        let n = stages.len;
        t.start.clear();
        t.start.resize(n, 0.0);
        t.end.clear();
        t.end.resize(n, 0.0);
        t.busy.clear();
        t.busy.resize(procs, 0.0);
        self.free.clear();
        self.free.resize(procs, 0.0);
        match order {
            Order::Listed => {
                for s in 0..n {
                    let start = ready(stages, s, &t.end).max(self.free[stages.proc[s]]);
                    self.place(stages, s, start, overlap, t);
                }
            }
            Order::EarliestStart => self.earliest_start(stages, procs, overlap, t),
        }
        t.latency = t.end.iter().copied().fold(0.0, f64::max);
        t.period = t.busy.iter().copied().fold(0.0, f64::max);
    }

    fn place(&mut self, stages: &Stages, s: usize, start: f64, overlap: &[Vec<usize>], t: &mut Times) {
        let p = stages.proc[s];
        let end = start + stages.dur[s];
        t.start[s] = start;
        t.end[s] = end;
        t.busy[p] += stages.dur[s];
        for &q in &overlap[p] {
            self.free[q] = self.free[q].max(end);
        }
    }

    fn earliest_start(&mut self, stages: &Stages, procs: usize, overlap: &[Vec<usize>], t: &mut Times) {
        let n = stages.len;
        // Successor lists (CSR) and pending dependency counts, distinct deps only.
        self.pending.clear();
        self.pending.resize(n, 0);
        self.succ_start.clear();
        self.succ_start.resize(n + 1, 0);
        for s in 0..n {
            for (i, &(d, _)) in stages.deps[s].iter().enumerate() {
                if !stages.deps[s][..i].iter().any(|&(e, _)| e == d) {
                    self.succ_start[d + 1] += 1;
                    self.pending[s] += 1;
                }
            }
        }
        for s in 0..n {
            self.succ_start[s + 1] += self.succ_start[s];
        }
        self.succ.clear();
        self.succ.resize(self.succ_start[n], 0);
        let mut fill = self.succ_start.clone();
        for s in 0..n {
            for (i, &(d, _)) in stages.deps[s].iter().enumerate() {
                if !stages.deps[s][..i].iter().any(|&(e, _)| e == d) {
                    self.succ[fill[d]] = s;
                    fill[d] += 1;
                }
            }
        }
        self.heaps.resize_with(procs, BinaryHeap::new);
        for h in &mut self.heaps[..procs] {
            h.clear();
        }
        for s in 0..n {
            if self.pending[s] == 0 {
                self.heaps[stages.proc[s]].push(Reverse((0, s)));
            }
        }
        for _ in 0..n {
            // The processor whose best stage starts the earliest (then the earlier listed stage).
            let mut best: Option<(f64, usize, usize)> = None;
            for p in 0..procs {
                if let Some(&Reverse((r, s))) = self.heaps[p].peek() {
                    let start = f64::from_bits(r).max(self.free[p]);
                    if best.map(|(bs, bi, _)| start < bs || (start == bs && s < bi)).unwrap_or(true) {
                        best = Some((start, s, p));
                    }
                }
            }
            let Some((start, s, p)) = best else { break };
            self.heaps[p].pop();
            self.place(stages, s, start, overlap, t);
            for i in self.succ_start[s]..self.succ_start[s + 1] {
                let c = self.succ[i];
                self.pending[c] -= 1;
                if self.pending[c] == 0 {
                    let r = ready(stages, c, &t.end);
                    self.heaps[stages.proc[c]].push(Reverse((key(r), c)));
                }
            }
        }
    }
}

/// When stage `s`'s inputs are all there.
fn ready(stages: &Stages, s: usize, end: &[f64]) -> f64 {
    stages.deps[s].iter().map(|&(d, delay)| end[d] + delay).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (processor, duration, deps with their delays) per stage.
    type Listed<'a> = (usize, f64, &'a [(usize, f64)]);

    fn stages(list: &[Listed]) -> Stages {
        let mut s = Stages::default();
        for (p, d, deps) in list {
            let i = s.push(*p, *d);
            s.deps[i].extend_from_slice(deps);
        }
        s
    }

    #[test]
    fn listed_order_waits_where_earliest_start_does_not() {
        // Stage 1 on p0 waits for a long stage on p1; stage 2 on p0 is ready at once.
        let s = stages(&[(1, 100.0, &[]), (0, 10.0, &[(0, 5.0)]), (0, 20.0, &[])]);
        let overlap = vec![vec![0], vec![1]];
        let mut t = Times::default();
        let mut sch = Scheduler::default();
        sch.run(&s, 2, &overlap, Order::Listed, &mut t);
        assert_eq!((t.start[1], t.start[2], t.latency), (105.0, 115.0, 135.0));
        sch.run(&s, 2, &overlap, Order::EarliestStart, &mut t);
        assert_eq!((t.start[2], t.start[1], t.latency), (0.0, 105.0, 115.0));
        assert_eq!(t.period, 100.0);
    }

    #[test]
    fn overlapping_processors_exclude_each_other() {
        // p2 shares cores with p0 and p1.
        let s = stages(&[(0, 10.0, &[]), (1, 10.0, &[]), (2, 10.0, &[])]);
        let overlap = vec![vec![0, 2], vec![1, 2], vec![0, 1, 2]];
        let mut t = Times::default();
        Scheduler::default().run(&s, 3, &overlap, Order::Listed, &mut t);
        assert_eq!((t.start[0], t.start[1], t.start[2]), (0.0, 0.0, 10.0));
    }
}

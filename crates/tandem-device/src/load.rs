//! Controlled background load: compute spinners and memory-bandwidth hogs pinned to chosen cores.
//!
//! A phone runs inference next to a UI thread, a camera pipeline and whatever else is awake; a plan tuned on
//! an idle device can be wrong there. [`BackgroundLoad`] recreates such interference on demand so that the
//! profiler can measure how much each processor slows down under it (the contention profile of
//! `tandem profile --contention`), and tests can do the same.
//!
//! Two kinds of interference cover the two resources a neighbour takes away:
//!
//! - [`LoadKind::Compute`] is a dependent chain of floating-point and integer operations that stays in
//!   registers: it takes core time (the scheduler shares the core with it) but leaves caches and memory alone.
//! - [`LoadKind::Memory`] streams reads and writes over a buffer far larger than any last-level cache
//!   ([`MEMORY_BYTES_PER_THREAD`] per thread, allocated and touched once at start), so it takes memory
//!   bandwidth and evicts the shared cache, as well as core time when it shares the core.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{DeviceError, Result};
use crate::processor::cpu_set_id;

/// The buffer each memory hog streams over: 64 MiB, several times the last-level cache of phones and
/// desktops alike, so that its traffic goes to DRAM rather than staying in cache.
pub const MEMORY_BYTES_PER_THREAD: usize = 64 << 20;

/// The period over which [`LoadSpec::duty`] applies: a thread works `duty` of each 10 ms, then sleeps.
pub const DUTY_PERIOD: Duration = Duration::from_millis(10);

/// One chunk of work between two looks at the stop flag and the clock. Chosen so that a chunk takes tens
/// of microseconds on any core: the stop flag is seen well within a millisecond, and the clock read costs
/// nothing against the chunk.
const COMPUTE_CHUNK: u64 = 20_000;
/// Elements (u64) of the memory buffer touched per chunk: 256 KiB read and written.
const MEMORY_CHUNK: usize = 32 << 10;

/// What a background thread does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadKind {
    /// A register-resident arithmetic loop: takes core time only.
    Compute,
    /// Streaming reads and writes over a large buffer: takes memory bandwidth and cache.
    Memory,
}

impl LoadKind {
    /// `compute` or `memory`, as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadKind::Compute => "compute",
            LoadKind::Memory => "memory",
        }
    }

    /// What one thread of this kind is called in descriptions.
    fn noun(self) -> &'static str {
        match self {
            LoadKind::Compute => "compute spinner",
            LoadKind::Memory => "memory hog",
        }
    }
}

/// A background load to start: `threads_per_core` threads of `kind` pinned to each of `cores`, each working
/// `duty` of every [`DUTY_PERIOD`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSpec {
    /// What each thread does.
    pub kind: LoadKind,
    /// The OS CPU numbers to load; each gets its own threads, pinned to it alone.
    pub cores: Vec<usize>,
    /// Threads per core (at least 1). Under Linux's fair scheduler, `n` busy threads on a core leave another
    /// thread of equal priority about `1 / (n + 1)` of it.
    pub threads_per_core: usize,
    /// The share of each 10 ms period a thread spends working, in (0, 1]; the rest it sleeps.
    pub duty: f64,
}

impl LoadSpec {
    /// A one-line description, stored with contention profiles: `compute spinner x1 on core 1 (100%)`,
    /// `memory hog x3 on cores 0-1 (50%)`.
    pub fn describe(&self) -> String {
        let mut cores = self.cores.clone();
        cores.sort_unstable();
        cores.dedup();
        let set = cpu_set_id(&cores);
        let set = set.strip_prefix("cpu:").unwrap_or(&set);
        let plural = if cores.len() == 1 { "" } else { "s" };
        format!("{} x{} on core{plural} {set} ({:.0}%)", self.kind.noun(), self.threads_per_core, self.duty * 100.0)
    }

    /// Rejects a spec that cannot run: no cores, a core listed twice, no threads, a duty outside (0, 1].
    /// (A core this machine lacks is caught when the thread pins itself.)
    fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(DeviceError::BadLoad { load: self.describe(), reason });
        if self.cores.is_empty() {
            return bad("it names no cores".into());
        }
        let mut sorted = self.cores.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return bad(format!("a core is listed twice in {:?}", self.cores));
        }
        if self.threads_per_core == 0 {
            return bad("it asks for zero threads per core".into());
        }
        if !(self.duty > 0.0 && self.duty <= 1.0) {
            return bad(format!("its duty {} is outside (0, 1]", self.duty));
        }
        Ok(())
    }
}

/// Running background threads as a [`LoadSpec`] describes; they stop when [`BackgroundLoad::stop`] is
/// called or the value is dropped.
///
/// ```no_run
/// use tandem_device::{BackgroundLoad, LoadKind, LoadSpec};
///
/// let spec = LoadSpec { kind: LoadKind::Memory, cores: vec![1], threads_per_core: 1, duty: 1.0 };
/// let load = BackgroundLoad::start(&spec)?;
/// // ... measure something on core 0 while core 1 eats memory bandwidth ...
/// println!("{}: {} chunks", load.spec().describe(), load.work_done());
/// load.stop();
/// # Ok::<(), tandem_device::DeviceError>(())
/// ```
pub struct BackgroundLoad {
    spec: LoadSpec,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// What the load's threads share with their owner.
struct Shared {
    stop: AtomicBool,
    /// Chunks of work done by all threads together.
    work: AtomicU64,
}

impl BackgroundLoad {
    /// Starts the threads, each pinned to its core, and returns once every one of them is pinned, has its
    /// buffer (memory hogs) and is working.
    ///
    /// A spec with no cores, no threads or a duty outside (0, 1] is [`DeviceError::BadLoad`]; a core the
    /// process cannot run on (not on this machine, outside its cpuset) is [`DeviceError::Pin`]. Either way
    /// no thread is left running.
    pub fn start(spec: &LoadSpec) -> Result<BackgroundLoad> {
        spec.validate()?;
        let shared = Arc::new(Shared { stop: AtomicBool::new(false), work: AtomicU64::new(0) });
        let mut load = BackgroundLoad { spec: spec.clone(), shared, threads: Vec::new() };
        let (ready_tx, ready) = mpsc::channel::<(usize, std::io::Result<()>)>();
        for &core in &spec.cores {
            for n in 0..spec.threads_per_core {
                let shared = load.shared.clone();
                let ready_tx = ready_tx.clone();
                let (kind, duty) = (spec.kind, spec.duty);
                let thread = std::thread::Builder::new()
                    // Linux keeps 15 bytes of a thread's name: `tload-c12.0` (kind, core, index) fits.
                    .name(format!("tload-{}{core}.{n}", &kind.as_str()[..1]))
                    .spawn(move || {
                        if let Err(e) = crate::worker::pin_current_thread(&[core]) {
                            let _ = ready_tx.send((core, Err(e)));
                            return;
                        }
                        let mut work = Work::new(kind);
                        let _ = ready_tx.send((core, Ok(())));
                        drop(ready_tx);
                        work.run(&shared, duty);
                    })
                    .map_err(|source| DeviceError::Spawn { processor: spec.describe(), source });
                match thread {
                    Ok(t) => load.threads.push(t),
                    // Dropping `load` stops and joins the threads already started.
                    Err(e) => return Err(e),
                }
            }
        }
        drop(ready_tx);
        for _ in 0..load.threads.len() {
            match ready.recv() {
                Ok((_, Ok(()))) => {}
                Ok((core, Err(source))) => {
                    return Err(DeviceError::Pin { processor: spec.describe(), cores: vec![core], source });
                }
                Err(mpsc::RecvError) => {
                    let source = std::io::Error::other("a load thread ended before it started working");
                    return Err(DeviceError::Spawn { processor: spec.describe(), source });
                }
            }
        }
        tracing::debug!(load = %spec.describe(), "background load started");
        Ok(load)
    }

    /// Stops the threads and waits for them to end (within about a millisecond).
    pub fn stop(self) {
        // Drop does the work, so that a load dropped on an error path stops too.
    }

    /// The spec it was started with.
    pub fn spec(&self) -> &LoadSpec {
        &self.spec
    }

    /// Chunks of work the threads have done so far (each a few tens of microseconds): proof that the load
    /// really ran, and a rough measure of how much of the cores it got.
    pub fn work_done(&self) -> u64 {
        self.shared.work.load(Ordering::Relaxed)
    }
}

impl Drop for BackgroundLoad {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in &self.threads {
            // A thread sleeping out the idle part of its duty period wakes at once.
            t.thread().unpark();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        tracing::debug!(load = %self.spec.describe(), work = self.work_done(), "background load stopped");
    }
}

impl std::fmt::Debug for BackgroundLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundLoad").field("spec", &self.spec).field("threads", &self.threads.len()).field("work_done", &self.work_done()).finish()
    }
}

/// One thread's work and its state between chunks.
enum Work {
    Compute { x: f64, n: u64 },
    Memory { buffer: Vec<u64>, at: usize },
}

impl Work {
    fn new(kind: LoadKind) -> Work {
        match kind {
            LoadKind::Compute => Work::Compute { x: 1.0, n: 0x9e37_79b9_7f4a_7c15 },
            // Filled with non-zero values so that every page is really committed (and first touched by the
            // core that will stream over it) before the load reports itself running.
            LoadKind::Memory => {
                Work::Memory { buffer: (0..MEMORY_BYTES_PER_THREAD / 8).map(|i| i as u64 | 1).collect(), at: 0 }
            }
        }
    }

    /// Works until the stop flag is set: chunk after chunk for `duty` of each period, sleeping the rest.
    fn run(&mut self, shared: &Shared, duty: f64) {
        let busy = DUTY_PERIOD.mul_f64(duty);
        let mut period_start = Instant::now();
        while !shared.stop.load(Ordering::Relaxed) {
            self.chunk();
            shared.work.fetch_add(1, Ordering::Relaxed);
            if duty < 1.0 && period_start.elapsed() >= busy {
                let next = period_start + DUTY_PERIOD;
                // park_timeout may wake early (spuriously, or by stop's unpark): loop to the period's end.
                loop {
                    let now = Instant::now();
                    if now >= next || shared.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::park_timeout(next - now);
                }
                period_start = Instant::now().max(next);
            }
        }
    }

    fn chunk(&mut self) {
        match self {
            Work::Compute { x, n } => {
                // Each step depends on the last, so the chain runs at the core's latency, in registers, and
                // the optimiser cannot collapse it (black_box hides the values).
                let (mut a, mut b) = (*x, *n);
                for _ in 0..COMPUTE_CHUNK {
                    a = a.mul_add(0.999_999_9, 1e-7);
                    b ^= b << 13;
                    b ^= b >> 7;
                    b ^= b << 17;
                }
                *x = std::hint::black_box(a);
                *n = std::hint::black_box(b);
            }
            Work::Memory { buffer, at } => {
                // Read-modify-write a window and move on: the buffer is swept end to end, so nothing stays
                // in cache and every line costs a DRAM read and a write-back.
                let end = (*at + MEMORY_CHUNK).min(buffer.len());
                for v in &mut buffer[*at..end] {
                    *v = v.wrapping_add(1);
                }
                std::hint::black_box(&buffer[*at]);
                *at = if end == buffer.len() { 0 } else { end };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::current_affinity;

    fn spec(kind: LoadKind, cores: Vec<usize>, threads_per_core: usize, duty: f64) -> LoadSpec {
        LoadSpec { kind, cores, threads_per_core, duty }
    }

    /// Waits (up to a generous limit, never asserting on time) until the load has done some work.
    fn wait_for_work(load: &BackgroundLoad, at_least: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while load.work_done() < at_least && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        load.work_done()
    }

    #[test]
    fn each_kind_starts_works_and_stops() {
        let core = current_affinity()[0];
        for kind in [LoadKind::Compute, LoadKind::Memory] {
            let load = BackgroundLoad::start(&spec(kind, vec![core], 1, 1.0)).unwrap();
            assert_eq!(load.spec().kind, kind);
            assert!(wait_for_work(&load, 3) >= 3, "{kind:?} did no work");
            load.stop();
        }
    }

    #[test]
    fn stopping_joins_every_thread_and_the_work_stops() {
        let cores = current_affinity();
        let load = BackgroundLoad::start(&spec(LoadKind::Compute, cores.clone(), 2, 0.5)).unwrap();
        assert_eq!(load.threads.len(), 2 * cores.len());
        wait_for_work(&load, 2);
        let shared = load.shared.clone();
        load.stop();
        // Joined: only our clone of the shared state is left, and nothing adds to the count any more.
        assert_eq!(Arc::strong_count(&shared), 1);
        let after = shared.work.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(shared.work.load(Ordering::SeqCst), after);
    }

    #[test]
    fn threads_run_on_the_cores_named() {
        let core = *current_affinity().last().unwrap();
        let load = BackgroundLoad::start(&spec(LoadKind::Compute, vec![core], 1, 1.0)).unwrap();
        if cfg!(any(target_os = "linux", target_os = "android")) {
            // The kernel's view of every load thread in the process (other tests' loads included): the
            // affinity in /proc/self/task/TID/status is the one core in the thread's name, `tload-c1.0`.
            let tasks = std::fs::read_dir("/proc/self/task").unwrap();
            let mut ours = 0;
            for task in tasks.filter_map(|t| t.ok()) {
                let Ok(name) = std::fs::read_to_string(task.path().join("comm")) else { continue };
                let Some(named) = name.trim().strip_prefix("tload-") else { continue };
                let named_core = named[1..].split('.').next().unwrap().to_string();
                let Ok(status) = std::fs::read_to_string(task.path().join("status")) else { continue };
                let allowed = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_string();
                assert_eq!(allowed, named_core, "{name}");
                ours += usize::from(named_core == core.to_string());
            }
            assert!(ours >= 1);
        }
        load.stop();
    }

    #[test]
    fn a_spec_that_cannot_run_is_an_error() {
        let core = current_affinity()[0];
        for (bad, why) in [
            (spec(LoadKind::Compute, vec![], 1, 1.0), "names no cores"),
            (spec(LoadKind::Compute, vec![core, core], 1, 1.0), "listed twice"),
            (spec(LoadKind::Memory, vec![core], 0, 1.0), "zero threads"),
            (spec(LoadKind::Compute, vec![core], 1, 0.0), "outside (0, 1]"),
            (spec(LoadKind::Compute, vec![core], 1, 1.5), "outside (0, 1]"),
            (spec(LoadKind::Compute, vec![core], 1, f64::NAN), "outside (0, 1]"),
        ] {
            let err = BackgroundLoad::start(&bad).unwrap_err();
            assert!(matches!(err, DeviceError::BadLoad { .. }), "{err:?}");
            assert!(err.to_string().contains(why), "{err}");
        }
        if cfg!(any(target_os = "linux", target_os = "android")) {
            let err = BackgroundLoad::start(&spec(LoadKind::Compute, vec![core, 100_000], 1, 1.0)).unwrap_err();
            assert!(matches!(err, DeviceError::Pin { ref cores, .. } if cores == &[100_000]), "{err:?}");
        }
    }

    #[test]
    fn descriptions_name_kind_threads_cores_and_duty() {
        assert_eq!(spec(LoadKind::Compute, vec![1], 1, 1.0).describe(), "compute spinner x1 on core 1 (100%)");
        assert_eq!(spec(LoadKind::Memory, vec![1, 0], 3, 0.5).describe(), "memory hog x3 on cores 0-1 (50%)");
        assert_eq!(spec(LoadKind::Compute, vec![0, 2], 1, 0.25).describe(), "compute spinner x1 on cores 0,2 (25%)");
        assert_eq!(serde_json::to_string(&LoadKind::Memory).unwrap(), "\"memory\"");
        assert_eq!(LoadKind::Compute.as_str(), "compute");
    }
}

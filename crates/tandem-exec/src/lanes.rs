//! Lanes: one persistent pinned thread per processor that any thread can hand work to.
//!
//! A [`Worker`] of tandem-device is a pinned thread fed by its owner. The executor needs more: a stage
//! finishing on `cpu:1` must start the next stage on `cpu:0` itself, without waking a coordinator thread
//! (on a two-core device that thread would steal a core from the stages). So each lane runs one
//! long job on its worker: a loop taking boxed jobs from a channel whose senders are cloned into
//! whoever dispatches. Dropping a sender is harmless on any thread, and the loop ends when the last
//! sender is gone; only then is the worker joined, always from the thread that owns the [`Lanes`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tandem_device::{JobHandle, Processor, Worker};

use crate::error::{panic_message, Result};

/// Work for a lane. Jobs catch their own panics (see [`Lanes::run`] and the executor's stages): a
/// panic escaping a job would end the lane's loop, and the jobs queued behind it would report their
/// worker gone.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// One pinned loop per processor.
pub(crate) struct Lanes {
    senders: Vec<mpsc::Sender<Job>>,
    processors: Vec<String>,
    /// The loops, kept to be joined: each worker's thread runs one loop job until its channel closes.
    loops: Vec<(Worker, JobHandle<()>)>,
}

impl Lanes {
    /// Starts one pinned lane per processor, in order. After each job a lane keeps polling for the
    /// next one for up to `spin` before it sleeps, as long as `busy` is not zero (requests are in
    /// flight): waking a sleeping thread costs tens of microseconds (more in a VM), and within a
    /// request the next stage often arrives sooner than that. Between requests lanes sleep, leaving the
    /// cores to the caller and to anything else.
    pub(crate) fn spawn(processors: &[&Processor], spin: Duration, busy: Arc<AtomicUsize>) -> Result<Lanes> {
        let mut lanes = Lanes { senders: vec![], processors: vec![], loops: vec![] };
        for p in processors {
            let worker = Worker::spawn(p)?;
            let (tx, rx) = mpsc::channel::<Job>();
            let busy = busy.clone();
            let handle = worker.submit(move || {
                while let Some(job) = next(&rx, spin, &busy) {
                    job();
                }
            });
            lanes.senders.push(tx);
            lanes.processors.push(p.id.clone());
            lanes.loops.push((worker, handle));
        }
        Ok(lanes)
    }

    /// A sender into lane `lane`, to be cloned into dispatching jobs.
    pub(crate) fn sender(&self, lane: usize) -> mpsc::Sender<Job> {
        self.senders[lane].clone()
    }

    /// Runs `f` on lane `lane` and waits for its result; a panic, or a lane that has stopped, comes
    /// back as the reason.
    pub(crate) fn run<T: Send + 'static>(&self, lane: usize, f: impl FnOnce() -> T + Send + 'static) -> std::result::Result<T, String> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(panic_message);
            let _ = tx.send(outcome);
        });
        let gone = || format!("the worker for {} has stopped", self.processors[lane]);
        self.senders[lane].send(job).map_err(|_| gone())?;
        match rx.recv() {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(message)) => Err(format!("panicked: {message}")),
            Err(_) => Err(gone()),
        }
    }
}

/// The next job: polled for up to `spin` while `busy`, then waited for; `None` once every sender is
/// gone.
fn next(rx: &mpsc::Receiver<Job>, spin: Duration, busy: &AtomicUsize) -> Option<Job> {
    poll(rx, spin, busy, None)
}

/// The next message on `rx`: polled for up to `spin` while `busy` is not zero, then waited for, at
/// most `timeout` in all when one is given; `None` once every sender is gone or the time is up. Lanes
/// wait for jobs with it, and so does the caller running its own lane's stages (see the executor).
pub(crate) fn poll<T>(rx: &mpsc::Receiver<T>, spin: Duration, busy: &AtomicUsize, timeout: Option<Duration>) -> Option<T> {
    let start = Instant::now();
    if !spin.is_zero() {
        while busy.load(Ordering::Relaxed) > 0 && start.elapsed() < spin {
            for _ in 0..64 {
                match rx.try_recv() {
                    Ok(v) => return Some(v),
                    Err(mpsc::TryRecvError::Disconnected) => return None,
                    Err(mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
                }
            }
        }
    }
    match timeout {
        None => rx.recv().ok(),
        Some(t) => rx.recv_timeout(t.saturating_sub(start.elapsed())).ok(),
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        // Close our senders; each loop ends once every clone handed out is gone too (the executor drops
        // its own before the lanes, and requests finish before returning), then join the workers.
        self.senders.clear();
        for (worker, handle) in self.loops.drain(..) {
            let _ = handle.wait();
            drop(worker);
        }
    }
}

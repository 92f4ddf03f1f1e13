//! Persistent worker threads pinned to a processor's cores.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::error::{DeviceError, Result};
use crate::processor::Processor;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// One OS thread pinned to a processor's cores, kept alive to run job after job.
///
/// Starting a thread and pinning it costs far more than many operators take to run, and a fresh thread
/// starts with cold caches; so the profiler and the executor keep one `Worker` per processor and send it
/// jobs. The thread is named `tandem-<processor id>` (`tandem-cpu:0`). Threads a job starts inherit its
/// affinity, so a multi-threaded kernel on `cpu:4-7` stays on those cores.
///
/// A GPU processor owns no cores: its worker is the host thread that drives the GPU runtime (compiles
/// models, launches kernels, waits for them), left unpinned where the OS puts it.
///
/// A job that panics yields [`DeviceError::WorkerPanicked`] and the worker goes on serving jobs (the
/// process's panic hook still runs, so the panic is printed). Dropping the worker lets its current job
/// finish, then stops and joins the thread.
pub struct Worker {
    processor: Processor,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// A job sent to a [`Worker`] with [`Worker::submit`], running while the caller does something else.
#[must_use = "a job's result or panic is only seen through wait()"]
pub struct JobHandle<T> {
    processor: String,
    result: mpsc::Receiver<std::result::Result<T, String>>,
}

impl<T> JobHandle<T> {
    /// Waits for the job and returns its result; [`DeviceError::WorkerPanicked`] if it panicked,
    /// [`DeviceError::WorkerGone`] if the worker stopped before running it.
    pub fn wait(self) -> Result<T> {
        match self.result.recv() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(DeviceError::WorkerPanicked { processor: self.processor, message }),
            Err(mpsc::RecvError) => Err(DeviceError::WorkerGone { processor: self.processor }),
        }
    }
}

impl Worker {
    /// Starts a worker thread pinned to `processor`'s cores and waits until it is pinned (a GPU
    /// processor's worker is not pinned).
    ///
    /// On Linux the pinning uses `sched_setaffinity`; if the OS refuses (a core outside this process's
    /// allowed set), the thread is stopped and [`DeviceError::Pin`] returned. On other systems the
    /// thread runs unpinned and a warning is logged.
    pub fn spawn(processor: &Processor) -> Result<Worker> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::channel::<std::io::Result<()>>();
        let cores = processor.cores.clone();
        let pin = !processor.kind.is_gpu();
        let id = processor.id.clone();
        let thread = std::thread::Builder::new()
            .name(format!("tandem-{}", processor.id))
            .spawn(move || {
                let pinned = if pin { pin_current_thread(&cores) } else { Ok(()) };
                let ok = pinned.is_ok();
                let _ = ready_tx.send(pinned);
                if !ok {
                    return;
                }
                tracing::debug!(processor = %id, ?cores, "worker started");
                while let Ok(job) = inbox.recv() {
                    job();
                }
                tracing::debug!(processor = %id, "worker stopped");
            })
            .map_err(|source| DeviceError::Spawn { processor: processor.id.clone(), source })?;
        let failed = |source| DeviceError::Pin { processor: processor.id.clone(), cores: processor.cores.clone(), source };
        match ready.recv() {
            Ok(Ok(())) => Ok(Worker { processor: processor.clone(), jobs: Some(jobs), thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(failed(e))
            }
            Err(mpsc::RecvError) => {
                let _ = thread.join();
                Err(failed(std::io::Error::other("the worker thread ended before pinning itself")))
            }
        }
    }

    /// The processor this worker is pinned to.
    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    /// Runs `job` on the worker and waits for its result.
    pub fn run<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.submit(job).wait()
    }

    /// Sends `job` to the worker and returns at once; [`JobHandle::wait`] gives its result. Jobs sent
    /// to one worker run one after another, in order; jobs on different workers run at the same time.
    pub fn submit<T, F>(&self, job: F) -> JobHandle<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, result) = mpsc::sync_channel(1);
        let wrapped: Job = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(job)).map_err(panic_message);
            // The caller may have dropped its handle: nobody wants the result then.
            let _ = tx.send(outcome);
        });
        if let Some(jobs) = &self.jobs {
            // If the thread is gone the job (and its result sender) is dropped here, and wait() says so.
            let _ = jobs.send(wrapped);
        }
        JobHandle { processor: self.processor.id.clone(), result }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop after the job in hand.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("processor", &self.processor.id).field("cores", &self.processor.cores).finish()
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// The cores the calling thread may run on, ascending (`sched_getaffinity`). Inside a [`Worker`]'s job
/// this is the worker's processor's cores. On systems without thread affinity, every logical core.
pub fn current_affinity() -> Vec<usize> {
    imp::current_affinity()
}

/// Pins the calling thread to `cores` (also used by the background load's threads and by the threads of
/// a multi-core processor's pool, one core each).
pub fn pin_current_thread(cores: &[usize]) -> std::io::Result<()> {
    imp::pin_current_thread(cores)
}

/// The calling thread pinned to some cores until this is dropped, when its affinity before is restored.
///
/// The executor runs a request's stages for one processor on the calling thread itself (a hand-over
/// to another thread costs a wake-up, tens of microseconds in a VM), and pins it there for the
/// request. Pinning a thread that already has exactly those cores changes nothing and restores nothing.
#[derive(Debug)]
#[must_use = "the thread is unpinned again when this is dropped"]
pub struct Pinned {
    before: Option<Vec<usize>>,
}

impl Pinned {
    /// Pins the calling thread to `cores`. Where the OS has no thread affinity, nothing happens.
    pub fn to(cores: &[usize]) -> std::io::Result<Pinned> {
        if !cfg!(any(target_os = "linux", target_os = "android")) {
            return Ok(Pinned { before: None });
        }
        let before = current_affinity();
        if before == cores {
            return Ok(Pinned { before: None });
        }
        pin_current_thread(cores)?;
        Ok(Pinned { before: Some(before) })
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(before) = self.before.take().filter(|b| !b.is_empty()) {
            if let Err(e) = pin_current_thread(&before) {
                tracing::warn!(error = %e, "could not restore the thread's affinity");
            }
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    pub(super) fn pin_current_thread(cores: &[usize]) -> std::io::Result<()> {
        let max = libc::CPU_SETSIZE as usize;
        if let Some(&big) = cores.iter().find(|&&c| c >= max) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("core {big} is beyond the {max} a CPU set holds")));
        }
        if cores.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "no cores to pin to"));
        }
        // SAFETY: cpu_set_t is a plain bit array, valid when zeroed; CPU_SET stays in bounds (checked
        // above); sched_setaffinity reads exactly size_of::<cpu_set_t>() bytes of it, and pid 0 means the
        // calling thread.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in cores {
                libc::CPU_SET(c, &mut set);
            }
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    pub(super) fn current_affinity() -> Vec<usize> {
        // SAFETY: as above; sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`,
        // and CPU_ISSET reads within CPU_SETSIZE.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                tracing::warn!(error = %std::io::Error::last_os_error(), "sched_getaffinity failed");
                return Vec::new();
            }
            (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    pub(super) fn pin_current_thread(cores: &[usize]) -> std::io::Result<()> {
        tracing::warn!(?cores, "this OS has no thread affinity that tandem can set: the worker runs unpinned");
        Ok(())
    }

    pub(super) fn current_affinity() -> Vec<usize> {
        (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use super::*;
    use crate::Device;

    fn pinning_is_real() -> bool {
        cfg!(any(target_os = "linux", target_os = "android"))
    }

    #[test]
    fn a_worker_runs_on_its_processors_cores() {
        let device = Device::discover().unwrap();
        let ours = current_affinity();
        for p in &device.processors {
            let w = Worker::spawn(p).unwrap();
            let (affinity, name) = w.run(|| (current_affinity(), std::thread::current().name().map(String::from))).unwrap();
            if pinning_is_real() && !p.kind.is_gpu() {
                assert_eq!(affinity, p.cores, "{}", p.id);
            }
            assert_eq!(name.as_deref(), Some(format!("tandem-{}", p.id).as_str()));
            // Threads the job starts stay on the same cores.
            let inherited = w.run(|| std::thread::spawn(current_affinity).join().unwrap()).unwrap();
            if pinning_is_real() && !p.kind.is_gpu() {
                assert_eq!(inherited, p.cores);
            }
        }
        // Pinning a worker leaves the caller's own affinity alone.
        assert_eq!(current_affinity(), ours);
    }

    #[test]
    fn pinned_restores_the_affinity_it_found() {
        if !cfg!(target_os = "linux") {
            return;
        }
        // On a thread of its own: the test harness's threads are shared.
        std::thread::spawn(|| {
            let all = current_affinity();
            let first = vec![all[0]];
            {
                let _pin = Pinned::to(&first).unwrap();
                assert_eq!(current_affinity(), first);
                // Already there: a second guard leaves it, and restores nothing.
                drop(Pinned::to(&first).unwrap());
                assert_eq!(current_affinity(), first);
            }
            assert_eq!(current_affinity(), all);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_panicking_job_is_an_error_and_the_worker_goes_on() {
        let device = Device::discover().unwrap();
        let w = Worker::spawn(&device.processors[0]).unwrap();
        let err = w.run(|| -> u32 { panic!("boom {}", 7) }).unwrap_err();
        match &err {
            DeviceError::WorkerPanicked { processor, message } => {
                assert_eq!(processor, &device.processors[0].id);
                assert_eq!(message, "boom 7");
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(err.to_string().contains("boom 7"), "{err}");
        let err = w.run(|| -> () { std::panic::panic_any(42u8) }).unwrap_err();
        assert!(matches!(err, DeviceError::WorkerPanicked { .. }));
        assert_eq!(w.run(|| 6 * 7).unwrap(), 42);
    }

    #[test]
    fn two_workers_run_at_once() {
        let device = Device::discover().unwrap();
        let p = &device.processors[0];
        let q = device.processors.get(1).unwrap_or(p);
        let (a, b) = (Worker::spawn(p).unwrap(), Worker::spawn(q).unwrap());
        // Each job waits at a barrier for the other: they can only both finish if they run concurrently.
        // (A timeout on the barrier turns a deadlock into a test failure rather than a hang.)
        let barrier = Arc::new(Barrier::new(2));
        let job = |barrier: Arc<Barrier>| {
            move || {
                let (tx, rx) = mpsc::channel();
                std::thread::spawn(move || {
                    barrier.wait();
                    let _ = tx.send(());
                });
                rx.recv_timeout(Duration::from_secs(30)).is_ok()
            }
        };
        let (ha, hb) = (a.submit(job(barrier.clone())), b.submit(job(barrier)));
        assert!(ha.wait().unwrap() && hb.wait().unwrap());
    }

    #[test]
    fn jobs_on_one_worker_run_in_order() {
        let device = Device::discover().unwrap();
        let w = Worker::spawn(&device.processors[0]).unwrap();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let handles: Vec<JobHandle<()>> = (0..10)
            .map(|i| {
                let log = log.clone();
                w.submit(move || log.lock().unwrap().push(i))
            })
            .collect();
        for h in handles {
            h.wait().unwrap();
        }
        assert_eq!(*log.lock().unwrap(), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn dropping_a_worker_joins_its_thread_after_the_job_in_hand() {
        let device = Device::discover().unwrap();
        let w = Worker::spawn(&device.processors[0]).unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let handle = w.submit(move || {
            std::thread::sleep(Duration::from_millis(50));
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        drop(w);
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
        handle.wait().unwrap();
    }

    #[test]
    fn a_gpu_worker_is_a_host_thread_left_unpinned() {
        let gpu = Processor::gpu(crate::ProcessorKind::Cuda, 0, None);
        let ours = current_affinity();
        let w = Worker::spawn(&gpu).unwrap();
        let (affinity, name) = w.run(|| (current_affinity(), std::thread::current().name().map(String::from))).unwrap();
        assert_eq!(affinity, ours);
        assert_eq!(name.as_deref(), Some("tandem-cuda:0"));
        assert_eq!(w.run(|| 6 * 7).unwrap(), 42);
    }

    #[test]
    fn a_core_outside_the_machine_cannot_be_pinned() {
        if !pinning_is_real() {
            return;
        }
        let bogus = Processor::cpu(&[libc::CPU_SETSIZE as usize - 1], None);
        let err = Worker::spawn(&bogus).unwrap_err();
        assert!(matches!(err, DeviceError::Pin { .. }), "{err:?}");
        assert!(err.to_string().contains("cannot pin a worker to core 1023 of cpu:1023"), "{err}");
        let beyond = Processor::cpu(&[100_000], None);
        assert!(matches!(Worker::spawn(&beyond).unwrap_err(), DeviceError::Pin { .. }));
    }
}

//! GPU processors, found through tract's GPU runtimes when the crate is built with their features.
//!
//! tract-cuda and tract-metal load their drivers at run time, so one binary serves machines with and
//! without a GPU. Discovery asks each runtime compiled in whether it can run here: a yes adds processors
//! (`cuda:0`, `metal:0`), a no adds a [`GpuNote`] saying why (no driver, a driver too old, a runtime
//! library missing, or a build without the feature), which `tandem devices` prints. Nothing here panics
//! when a driver is missing: tract-cuda's own check loads the driver library by hand before anything
//! binds to it.

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::processor::Processor;
#[cfg(any(feature = "cuda", all(feature = "metal", target_os = "macos")))]
use crate::processor::ProcessorKind;

/// Why a GPU runtime contributed no processor: `cuda: CUDA driver not found: ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuNote {
    /// The runtime: `cuda` or `metal`.
    pub runtime: String,
    /// What happened and what to do about it.
    pub message: String,
}

impl fmt::Display for GpuNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.runtime, self.message)
    }
}

/// What probing the GPU runtimes found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Probe {
    pub(crate) processors: Vec<Processor>,
    pub(crate) notes: Vec<GpuNote>,
}

impl Probe {
    #[allow(dead_code)] // unused in builds where no runtime applies to the platform
    fn note(&mut self, runtime: &str, message: impl Into<String>) {
        self.notes.push(GpuNote { runtime: runtime.into(), message: message.into() });
    }
}

/// Probes every GPU runtime that applies to this platform, once per process (loading a driver and its
/// libraries takes a moment, and the answer does not change while the process runs).
pub(crate) fn probe() -> Probe {
    static PROBE: OnceLock<Probe> = OnceLock::new();
    PROBE.get_or_init(probe_now).clone()
}

fn probe_now() -> Probe {
    let mut probe = Probe::default();
    cuda::probe(&mut probe);
    metal::probe(&mut probe);
    for note in &probe.notes {
        tracing::debug!(%note, "GPU runtime gave no processor");
    }
    probe
}

/// The `cuda` runtime: NVIDIA GPUs on Linux and Windows.
#[cfg(feature = "cuda")]
mod cuda {
    use super::*;

    pub(super) fn probe(probe: &mut Probe) {
        // tract-cuda dlopens libcuda itself, checks that cuInit succeeds and the driver is new enough
        // for the CUDA API it was built against, then probes cudart, nvrtc, cublas and cudnn. Only after
        // that is it safe to call into cudarc, which panics on a missing library.
        if let Err(e) = tract_cuda::utils::ensure_cuda_runtime_dependencies("the CUDA runtime cannot run here") {
            let chain = format!("{e:#}");
            let message = if chain.contains("driver library not found") {
                format!("CUDA driver not found: libcuda.so could not be loaded, so no cuda processor is listed ({chain})")
            } else {
                format!("no cuda processor: {chain}")
            };
            probe.note("cuda", message);
            return;
        }
        // The checks above passed, so cudarc's lazy bindings find their libraries; a panic here would
        // be a driver misbehaving, and still must not take discovery down.
        let found = std::panic::catch_unwind(|| -> Result<Vec<Option<String>>, String> {
            cudarc::driver::result::init().map_err(|e| format!("cuInit failed: {e}"))?;
            let count = cudarc::driver::result::device::get_count().map_err(|e| format!("cannot count CUDA devices: {e}"))?;
            Ok((0..count).map(|i| cudarc::driver::result::device::get(i).and_then(cudarc::driver::result::device::get_name).ok()).collect())
        });
        match found {
            Ok(Ok(names)) if names.is_empty() => probe.note("cuda", "the CUDA driver loads but reports no device"),
            Ok(Ok(names)) => {
                // tract-cuda runs every model on the system's default device (ordinal 0).
                probe.processors.push(Processor::gpu(ProcessorKind::Cuda, 0, names[0].clone()));
                if names.len() > 1 {
                    probe.note(
                        "cuda",
                        format!(
                            "{} more CUDA device{} not listed: tract-cuda runs on device 0 only (choose it with CUDA_VISIBLE_DEVICES)",
                            names.len() - 1,
                            if names.len() > 2 { "s" } else { "" }
                        ),
                    );
                }
            }
            Ok(Err(message)) => probe.note("cuda", format!("no cuda processor: {message}")),
            Err(_) => probe.note("cuda", "no cuda processor: the CUDA driver panicked while listing devices"),
        }
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use super::*;

    pub(super) fn probe(probe: &mut Probe) {
        // CUDA does not exist on Apple platforms: no note there.
        if !cfg!(target_os = "macos") {
            probe.note("cuda", "built without the `cuda` feature: rebuild with `cargo build --release --features cuda` to use an NVIDIA GPU");
        }
    }
}

/// The `metal` runtime: Apple GPUs on macOS.
#[cfg(all(feature = "metal", target_os = "macos"))]
mod metal {
    use super::*;

    pub(super) fn probe(probe: &mut Probe) {
        // Creating tract-metal's context finds the system's default Metal device (and loads its kernels).
        match tract_metal::MetalContext::new() {
            Ok(_) => probe.processors.push(Processor::gpu(ProcessorKind::Metal, 0, None)),
            Err(e) => probe.note("metal", format!("no metal processor: {e:#}")),
        }
    }
}

#[cfg(all(feature = "metal", not(target_os = "macos")))]
mod metal {
    use super::*;

    pub(super) fn probe(probe: &mut Probe) {
        probe.note("metal", "Metal is only available on Apple platforms: no metal processor on this OS");
    }
}

#[cfg(not(feature = "metal"))]
mod metal {
    use super::*;

    pub(super) fn probe(probe: &mut Probe) {
        if cfg!(target_os = "macos") {
            probe.note("metal", "built without the `metal` feature: rebuild with `cargo build --release --features metal` to use the GPU");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probing_never_fails_and_explains_every_missing_runtime() {
        let p = probe();
        assert_eq!(p.processors, probe().processors, "the probe is cached");
        for gpu in &p.processors {
            assert!(gpu.kind.is_gpu() && gpu.cores.is_empty() && gpu.threads == 1, "{gpu:?}");
        }
        for note in &p.notes {
            assert!(matches!(note.runtime.as_str(), "cuda" | "metal"), "{note}");
            assert!(!note.message.is_empty());
        }
        if cfg!(not(feature = "cuda")) && cfg!(not(target_os = "macos")) {
            assert!(p.notes.iter().any(|n| n.runtime == "cuda" && n.message.contains("--features cuda")), "{:?}", p.notes);
        }
    }
}

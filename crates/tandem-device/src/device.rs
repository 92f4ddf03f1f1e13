//! Discovering the device: its identity and its processors.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, System};

use crate::error::{DeviceError, Result};
use crate::gpu::GpuNote;
use crate::processor::{parse_cpu_set, parse_list, Processor, ProcessorKind};

const SYS_CPU: &str = "/sys/devices/system/cpu";

/// One machine and the processors it offers.
///
/// [`Device::discover`] builds it from the operating system: sysinfo for the host name, CPU model, core
/// count and memory; `/sys/devices/system/cpu` for which cores are online and, through cpufreq, each
/// core's maximum frequency. Cores with the same maximum frequency form a cluster (the big and LITTLE
/// halves of a phone SoC); a machine without cpufreq (most VMs) has one cluster of all its cores.
///
/// The processors are listed in this order, each core set once: every core alone (`cpu:0`, `cpu:1`,
/// ...), each cluster of more than one core that is not all of them (`cpu:4-7`), then all cores together
/// (`cpu:0-7`). On a two-core VM that is `cpu:0`, `cpu:1`, `cpu:0-1`. GPUs follow (`cuda:0`, `metal:0`)
/// when the crate is built with the runtime's feature and the runtime loads here; otherwise
/// [`Device::gpu_notes`] says why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// A stable fingerprint: 16 hex digits of the SHA-256 of the host name, the CPU model and the core
    /// layout (which cores, in which clusters, at which maximum frequencies). It does not change between
    /// runs or reboots, so profiles taken on the device can be found again; see [`fingerprint`].
    pub id: String,
    /// The host name (`unknown` where the OS does not tell it).
    pub hostname: String,
    /// The CPU model as the OS names it (`unknown` where it does not).
    pub cpu_model: String,
    /// The number of online logical cores.
    pub cores: usize,
    /// Total physical memory in bytes (0 where unknown).
    pub memory_bytes: u64,
    /// The processors, in the order described above.
    pub processors: Vec<Processor>,
    /// Why a GPU runtime gave no processor (no driver, a build without the feature...), one note per
    /// runtime that applies to this platform; empty when every runtime found its GPU.
    #[serde(default)]
    pub gpu_notes: Vec<GpuNote>,
}

/// One online core as discovery sees it: its OS number and its maximum frequency in kHz, if known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreInfo {
    /// The OS CPU number.
    pub core: usize,
    /// `cpuinfo_max_freq` in kHz, where cpufreq exists.
    pub max_freq_khz: Option<u64>,
}

impl Device {
    /// Discovers this machine. Fails only when the OS reports no CPU at all.
    pub fn discover() -> Result<Device> {
        let mut sys = System::new();
        sys.refresh_cpu_list(CpuRefreshKind::nothing());
        sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let hostname = System::host_name().filter(|h| !h.trim().is_empty()).unwrap_or_else(|| "unknown".into());
        let cpu_model = sys
            .cpus()
            .iter()
            .map(|c| c.brand().trim())
            .find(|b| !b.is_empty())
            .unwrap_or("unknown")
            .to_string();
        let cores = online_cores(&sys);
        if cores.is_empty() {
            return Err(DeviceError::Discovery { reason: "the OS reports no online CPU core".into() });
        }
        let layout: Vec<CoreInfo> = cores.into_iter().map(|core| CoreInfo { core, max_freq_khz: max_freq_khz(core) }).collect();
        let mut device = Device::from_layout(hostname, cpu_model, sys.total_memory(), &layout);
        // GPUs join the list but not the fingerprint: a build with or without a GPU feature is the same
        // device, and its profiles stay found.
        let gpus = crate::gpu::probe();
        device.processors.extend(gpus.processors);
        device.gpu_notes = gpus.notes;
        tracing::debug!(
            id = %device.id,
            cpu_model = %device.cpu_model,
            processors = %device.processors.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(" "),
            "discovered device"
        );
        Ok(device)
    }

    /// A device with the given identity and cores, clustered and fingerprinted as [`Device::discover`]
    /// does, without GPUs (push [`Processor::gpu`]s onto [`Device::processors`] to add some). Lets tests
    /// and tools describe a device that is not this one (an 8-core big.LITTLE phone).
    pub fn from_layout(hostname: String, cpu_model: String, memory_bytes: u64, layout: &[CoreInfo]) -> Device {
        let mut layout = layout.to_vec();
        layout.sort_by_key(|c| c.core);
        layout.dedup_by_key(|c| c.core);
        Device {
            id: fingerprint(&hostname, &cpu_model, &layout),
            processors: processors_for(&layout),
            cores: layout.len(),
            hostname,
            cpu_model,
            memory_bytes,
            gpu_notes: vec![],
        }
    }

    /// The processor with this id. Besides the listed spelling, any CPU id naming the same cores is
    /// accepted (`cpu:0,1` finds `cpu:0-1`). An unknown id gives [`DeviceError::UnknownProcessor`],
    /// whose message lists the valid ids; a GPU id whose runtime gave no processor gives
    /// [`DeviceError::GpuUnavailable`], which also says why.
    pub fn processor(&self, id: &str) -> Result<&Processor> {
        let id = id.trim();
        if let Some(p) = self.processors.iter().find(|p| p.id == id) {
            return Ok(p);
        }
        if let Some(cores) = parse_cpu_set(id) {
            if let Some(p) = self.processors.iter().find(|p| p.cores == cores) {
                return Ok(p);
            }
        }
        let valid = self.processors.iter().map(|p| p.id.clone()).collect();
        let runtime = id.split_once(':').map(|(kind, _)| kind).filter(|k| ProcessorKind::parse(k).is_some_and(ProcessorKind::is_gpu));
        if let Some(note) = runtime.and_then(|r| self.gpu_notes.iter().find(|n| n.runtime == r)) {
            return Err(DeviceError::GpuUnavailable { id: id.to_string(), note: note.message.clone(), valid });
        }
        Err(DeviceError::UnknownProcessor { id: id.to_string(), valid })
    }

    /// The processors with these ids, in the order given (each looked up as by [`Device::processor`]);
    /// the first unknown id is an error.
    pub fn processors_from_list(&self, ids: &[String]) -> Result<Vec<&Processor>> {
        ids.iter().map(|id| self.processor(id)).collect()
    }

    /// The CPU processor owning every core.
    pub fn all_cores(&self) -> &Processor {
        self.cpus().max_by_key(|p| p.cores.len()).expect("a device has at least one CPU processor")
    }

    /// The CPU processors, in listing order.
    pub fn cpus(&self) -> impl Iterator<Item = &Processor> {
        self.processors.iter().filter(|p| p.kind == ProcessorKind::Cpu)
    }

    /// The GPU processors, in listing order (none unless built with a GPU feature and its driver loads).
    pub fn gpus(&self) -> impl Iterator<Item = &Processor> {
        self.processors.iter().filter(|p| p.kind.is_gpu())
    }

    /// Clusters of cores with the same maximum frequency, each as a list of cores (a single cluster of all
    /// cores where cpufreq is absent).
    pub fn clusters(&self) -> Vec<Vec<usize>> {
        let singles: Vec<&Processor> = self.cpus().filter(|p| p.cores.len() == 1).collect();
        let layout: Vec<CoreInfo> = singles.iter().map(|p| CoreInfo { core: p.cores[0], max_freq_khz: p.max_freq_khz }).collect();
        clusters_of(&layout).into_iter().map(|(_, cores)| cores).collect()
    }
}

/// The fingerprint of a device: the first 16 hex digits of SHA-256 over its host name, CPU model, core
/// count and clusters (cores and maximum frequency). Only facts that stay put between runs go in; load,
/// current frequencies, memory and time do not.
pub fn fingerprint(hostname: &str, cpu_model: &str, layout: &[CoreInfo]) -> String {
    let clusters = clusters_of(layout)
        .into_iter()
        .map(|(freq, cores)| format!("{}@{}", crate::processor::cpu_set_id(&cores), freq.map(|f| f.to_string()).unwrap_or_else(|| "?".into())))
        .collect::<Vec<_>>()
        .join(";");
    let text = format!("tandem-device/1\nhost={hostname}\ncpu={cpu_model}\ncores={}\nclusters={clusters}\n", layout.len());
    hex::encode(Sha256::digest(text.as_bytes()))[..16].to_string()
}

/// Groups cores by maximum frequency; clusters ordered by their first core.
fn clusters_of(layout: &[CoreInfo]) -> Vec<(Option<u64>, Vec<usize>)> {
    let mut by_freq: BTreeMap<Option<u64>, Vec<usize>> = BTreeMap::new();
    for c in layout {
        by_freq.entry(c.max_freq_khz).or_default().push(c.core);
    }
    let mut clusters: Vec<(Option<u64>, Vec<usize>)> = by_freq.into_iter().collect();
    for (_, cores) in &mut clusters {
        cores.sort_unstable();
    }
    clusters.sort_by_key(|(_, cores)| cores[0]);
    clusters
}

/// Every core alone, each cluster, all cores: each distinct core set once.
fn processors_for(layout: &[CoreInfo]) -> Vec<Processor> {
    let mut out: Vec<Processor> = layout.iter().map(|c| Processor::cpu(&[c.core], c.max_freq_khz)).collect();
    for (freq, cores) in clusters_of(layout) {
        out.push(Processor::cpu(&cores, freq));
    }
    let all: Vec<usize> = layout.iter().map(|c| c.core).collect();
    out.push(Processor::cpu(&all, layout.iter().filter_map(|c| c.max_freq_khz).max()));
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| !p.cores.is_empty() && seen.insert(p.cores.clone()));
    out
}

/// The online cores: `/sys/devices/system/cpu/online`, else sysinfo's list, else `available_parallelism`.
fn online_cores(sys: &System) -> Vec<usize> {
    if let Some(cores) = std::fs::read_to_string(Path::new(SYS_CPU).join("online")).ok().and_then(|s| parse_list(&s)) {
        if !cores.is_empty() {
            return cores;
        }
    }
    let named: Option<Vec<usize>> = sys.cpus().iter().map(|c| c.name().strip_prefix("cpu").and_then(|n| n.parse().ok())).collect();
    match named {
        Some(cores) if !cores.is_empty() => cores,
        _ if !sys.cpus().is_empty() => (0..sys.cpus().len()).collect(),
        _ => (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)).collect(),
    }
}

/// `cpuinfo_max_freq` of one core in kHz, where cpufreq exists.
fn max_freq_khz(core: usize) -> Option<u64> {
    read_u64(&Path::new(SYS_CPU).join(format!("cpu{core}/cpufreq/cpuinfo_max_freq"))).filter(|&f| f > 0)
}

/// A file holding one unsigned integer.
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn layout(freqs: &[Option<u64>]) -> Vec<CoreInfo> {
        freqs.iter().enumerate().map(|(core, &max_freq_khz)| CoreInfo { core, max_freq_khz }).collect()
    }

    fn ids(d: &Device) -> Vec<&str> {
        d.processors.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn this_machine_has_every_core_alone_and_all_together() {
        let d = Device::discover().unwrap();
        assert!(d.cores >= 1);
        assert_eq!(d.id.len(), 16);
        assert!(d.id.chars().all(|c| c.is_ascii_hexdigit()));
        let all = d.all_cores();
        assert_eq!(all.cores.len(), d.cores);
        for &core in &all.cores {
            let p = d.processor(&format!("cpu:{core}")).unwrap();
            assert_eq!((p.cores.as_slice(), p.threads), (&[core][..], 1));
        }
        let cpus: Vec<&Processor> = d.cpus().collect();
        let unique: HashSet<&Vec<usize>> = cpus.iter().map(|p| &p.cores).collect();
        assert_eq!(unique.len(), cpus.len(), "duplicate core sets: {:?}", ids(&d));
        let unique: HashSet<&str> = ids(&d).into_iter().collect();
        assert_eq!(unique.len(), d.processors.len(), "duplicate ids: {:?}", ids(&d));
        for p in &cpus {
            assert_eq!(p.threads, p.cores.len());
            assert_eq!(p.id, crate::processor::cpu_set_id(&p.cores));
        }
        // CPUs come first, GPUs (where a runtime found one) after them.
        assert_eq!(&d.processors[..cpus.len()], cpus.into_iter().cloned().collect::<Vec<_>>().as_slice());
        if d.cores == 2 {
            assert_eq!(d.cpus().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["cpu:0", "cpu:1", "cpu:0-1"]);
        }
    }

    #[test]
    fn the_fingerprint_is_stable() {
        let (a, b) = (Device::discover().unwrap(), Device::discover().unwrap());
        assert_eq!(a.id, b.id);
        assert_eq!(a.processors, b.processors);
    }

    #[test]
    fn the_fingerprint_follows_the_layout_only() {
        let base = Device::from_layout("h".into(), "m".into(), 1 << 30, &layout(&[None, None]));
        assert_eq!(base.id, Device::from_layout("h".into(), "m".into(), 2 << 30, &layout(&[None, None])).id);
        for other in [
            Device::from_layout("h2".into(), "m".into(), 1 << 30, &layout(&[None, None])),
            Device::from_layout("h".into(), "m2".into(), 1 << 30, &layout(&[None, None])),
            Device::from_layout("h".into(), "m".into(), 1 << 30, &layout(&[None, None, None])),
            Device::from_layout("h".into(), "m".into(), 1 << 30, &layout(&[Some(1), Some(2)])),
        ] {
            assert_ne!(base.id, other.id);
        }
    }

    #[test]
    fn one_core_is_one_processor() {
        assert_eq!(ids(&Device::from_layout("h".into(), "m".into(), 0, &layout(&[None]))), ["cpu:0"]);
    }

    #[test]
    fn big_little_clusters_are_listed_between_cores_and_the_whole() {
        let little = Some(1_800_000);
        let big = Some(2_400_000);
        let d = Device::from_layout("phone".into(), "soc".into(), 0, &layout(&[little, little, little, little, big, big, big, big]));
        assert_eq!(ids(&d), ["cpu:0", "cpu:1", "cpu:2", "cpu:3", "cpu:4", "cpu:5", "cpu:6", "cpu:7", "cpu:0-3", "cpu:4-7", "cpu:0-7"]);
        assert_eq!(d.processor("cpu:4-7").unwrap().max_freq_khz, big);
        assert_eq!(d.processor("cpu:0-7").unwrap().max_freq_khz, big);
        assert_eq!(d.clusters(), [vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
        // A prime core alone at its own frequency is a cluster equal to that core: listed once.
        let prime = Some(3_000_000);
        let d = Device::from_layout("phone".into(), "soc".into(), 0, &layout(&[little, little, big, prime]));
        assert_eq!(ids(&d), ["cpu:0", "cpu:1", "cpu:2", "cpu:3", "cpu:0-1", "cpu:0-3"]);
    }

    #[test]
    fn interleaved_clusters_get_set_ids() {
        let (a, b) = (Some(1), Some(2));
        let d = Device::from_layout("h".into(), "m".into(), 0, &layout(&[a, b, a, b]));
        assert_eq!(ids(&d), ["cpu:0", "cpu:1", "cpu:2", "cpu:3", "cpu:0,2", "cpu:1,3", "cpu:0-3"]);
        assert_eq!(d.processor("cpu:2,0").unwrap().id, "cpu:0,2");
    }

    #[test]
    fn an_unknown_processor_lists_the_valid_ones() {
        let d = Device::from_layout("h".into(), "m".into(), 0, &layout(&[None, None]));
        let e = d.processor("cpu:7").unwrap_err();
        assert_eq!(e.to_string(), "no processor 'cpu:7' on this device; valid: cpu:0, cpu:1, cpu:0-1");
        assert_eq!(d.processor("cpu:0,1").unwrap().id, "cpu:0-1");
        let list = d.processors_from_list(&["cpu:1".into(), "cpu:0-1".into()]).unwrap();
        assert_eq!(list.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["cpu:1", "cpu:0-1"]);
        assert!(matches!(
            d.processors_from_list(&["cpu:0".into(), "gpu".into()]),
            Err(DeviceError::UnknownProcessor { id, .. }) if id == "gpu"
        ));
        // The real device lists its own ids too (GPUs included, where it has some).
        let real = Device::discover().unwrap();
        let msg = real.processor("cpu:9999").unwrap_err().to_string();
        for p in &real.processors {
            assert!(msg.contains(&p.id), "{msg}");
        }
    }

    #[test]
    fn a_gpu_joins_the_list_without_disturbing_the_cpu_paths() {
        let mut d = Device::from_layout("h".into(), "m".into(), 0, &layout(&[Some(1), Some(2)]));
        let id = d.id.clone();
        d.processors.push(Processor::gpu(ProcessorKind::Cuda, 0, Some("a GPU".into())));
        assert_eq!(ids(&d), ["cpu:0", "cpu:1", "cpu:0-1", "cuda:0"]);
        assert_eq!(d.all_cores().id, "cpu:0-1");
        assert_eq!(d.clusters(), [vec![0], vec![1]]);
        assert_eq!(d.cpus().count(), 3);
        assert_eq!(d.gpus().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["cuda:0"]);
        let list = d.processors_from_list(&["cuda:0".into(), "cpu:0,1".into()]).unwrap();
        assert_eq!(list.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["cuda:0", "cpu:0-1"]);
        assert_eq!(list[0].kind, ProcessorKind::Cuda);
        let e = d.processor("cuda:1").unwrap_err();
        assert_eq!(e.to_string(), "no processor 'cuda:1' on this device; valid: cpu:0, cpu:1, cpu:0-1, cuda:0");
        d.gpu_notes.push(GpuNote { runtime: "metal".into(), message: "Metal is only available on Apple platforms".into() });
        let e = d.processor("metal:0").unwrap_err();
        assert_eq!(e.to_string(), "no processor 'metal:0' on this device: Metal is only available on Apple platforms; valid: cpu:0, cpu:1, cpu:0-1, cuda:0");
        assert!(matches!(d.processor("cpu:7").unwrap_err(), DeviceError::UnknownProcessor { .. }));
        // The fingerprint is the CPUs': a GPU feature or driver does not make another device.
        assert_eq!(d.id, id);
        let env = crate::EnvSnapshot::take_with_window(&d, std::time::Duration::ZERO);
        assert_eq!(env.core_freq_khz.iter().map(|f| f.core).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn discovery_says_why_each_applicable_gpu_runtime_gave_no_processor() {
        let d = Device::discover().unwrap();
        for runtime in ["cuda", "metal"] {
            let applies = if runtime == "cuda" { cfg!(feature = "cuda") || !cfg!(target_os = "macos") } else { cfg!(feature = "metal") || cfg!(target_os = "macos") };
            let listed = d.gpus().any(|p| p.kind.as_str() == runtime);
            let noted = d.gpu_notes.iter().any(|n| n.runtime == runtime);
            if applies {
                assert!(listed || noted, "{runtime}: neither a processor nor a note: {:?}", d.gpu_notes);
            } else {
                assert!(!listed && !noted, "{runtime}: {:?}", d.gpu_notes);
            }
        }
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["gpu_notes"].as_array().unwrap().len(), d.gpu_notes.len());
    }

    /// Built with the `cuda` feature on a machine without an NVIDIA driver (CI): discovery works, lists no
    /// cuda processor, and the note names the missing driver. On a machine with one, `cuda:0` is listed.
    #[cfg(feature = "cuda")]
    #[test]
    fn without_a_cuda_driver_no_cuda_processor_is_listed_and_the_note_says_why() {
        let d = Device::discover().unwrap();
        let note = d.gpu_notes.iter().find(|n| n.runtime == "cuda");
        match d.processor("cuda:0") {
            Ok(p) => {
                assert_eq!((p.kind, p.cores.len(), p.threads), (ProcessorKind::Cuda, 0, 1));
                assert!(note.map(|n| n.message.contains("not listed")).unwrap_or(true), "{note:?}");
            }
            Err(e) => {
                assert!(d.gpus().next().is_none() || cfg!(feature = "metal"), "{:?}", ids(&d));
                let note = note.expect("a note says why there is no cuda processor");
                assert!(!note.message.contains("--features cuda"), "built with the feature: {note}");
                // No driver: the note names libcuda. A driver without its libraries or a device names those.
                assert!(note.message.contains("libcuda") || note.message.contains("sub-library") || note.message.contains("no device"), "{note}");
                // Asking for it says why it is not there, and does not offer a GPU.
                let DeviceError::GpuUnavailable { note: why, valid, .. } = &e else { panic!("{e:?}") };
                assert_eq!(why, &note.message);
                assert!(valid.iter().all(|v| v.starts_with("cpu:") || v.starts_with("metal:")), "{valid:?}");
                assert!(e.to_string().starts_with("no processor 'cuda:0' on this device: "), "{e}");
            }
        }
        eprintln!("cuda note: {note:?}");
    }
}

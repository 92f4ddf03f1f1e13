//! Discovering the device: its identity and its processors.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, System};

use crate::error::{DeviceError, Result};
use crate::processor::{parse_cpu_set, parse_list, Processor};

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
/// (`cpu:0-7`). On a two-core VM that is `cpu:0`, `cpu:1`, `cpu:0-1`.
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
        let device = Device::from_layout(hostname, cpu_model, sys.total_memory(), &layout);
        tracing::debug!(
            id = %device.id,
            cpu_model = %device.cpu_model,
            processors = %device.processors.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(" "),
            "discovered device"
        );
        Ok(device)
    }

    /// A device with the given identity and cores, clustered and fingerprinted as [`Device::discover`]
    /// does. Lets tests and tools describe a device that is not this one (an 8-core big.LITTLE phone).
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
        }
    }

    /// The processor with this id. Besides the listed spelling, any CPU id naming the same cores is
    /// accepted (`cpu:0,1` finds `cpu:0-1`). An unknown id gives [`DeviceError::UnknownProcessor`],
    /// whose message lists the valid ids.
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
        Err(DeviceError::UnknownProcessor { id: id.to_string(), valid: self.processors.iter().map(|p| p.id.clone()).collect() })
    }

    /// The processors with these ids, in the order given (each looked up as by [`Device::processor`]);
    /// the first unknown id is an error.
    pub fn processors_from_list(&self, ids: &[String]) -> Result<Vec<&Processor>> {
        ids.iter().map(|id| self.processor(id)).collect()
    }

    /// The processor owning every core.
    pub fn all_cores(&self) -> &Processor {
        self.processors.iter().max_by_key(|p| p.cores.len()).expect("a device has at least one processor")
    }

    /// Clusters of cores with the same maximum frequency, each as a list of cores (a single cluster of all
    /// cores where cpufreq is absent).
    pub fn clusters(&self) -> Vec<Vec<usize>> {
        let singles: Vec<&Processor> = self.processors.iter().filter(|p| p.cores.len() == 1).collect();
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
        let unique: HashSet<&Vec<usize>> = d.processors.iter().map(|p| &p.cores).collect();
        assert_eq!(unique.len(), d.processors.len(), "duplicate core sets: {:?}", ids(&d));
        let unique: HashSet<&str> = ids(&d).into_iter().collect();
        assert_eq!(unique.len(), d.processors.len(), "duplicate ids: {:?}", ids(&d));
        for p in &d.processors {
            assert_eq!(p.threads, p.cores.len());
            assert_eq!(p.id, crate::processor::cpu_set_id(&p.cores));
        }
        if d.cores == 2 {
            assert_eq!(ids(&d), ["cpu:0", "cpu:1", "cpu:0-1"]);
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
        // The real device lists its own ids too.
        let real = Device::discover().unwrap();
        let msg = real.processor("cpu:9999").unwrap_err().to_string();
        for p in &real.processors {
            assert!(msg.contains(&p.id), "{msg}");
        }
    }
}

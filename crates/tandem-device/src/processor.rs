//! Processors: the disjoint units of a device that run work, and their ids.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of hardware a [`Processor`] is.
///
/// Every kind exists in every build, so a profile taken on a GPU machine reads anywhere; only discovery of
/// GPUs depends on the crate's `cuda` and `metal` features. The enum is non-exhaustive: NPUs may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ProcessorKind {
    /// A set of CPU cores (one core, a cluster, or all of them).
    Cpu,
    /// An NVIDIA GPU driven through tract-cuda (`cuda:0`).
    Cuda,
    /// An Apple GPU driven through tract-metal (`metal:0`).
    Metal,
}

impl ProcessorKind {
    /// The id prefix and JSON name: `cpu`, `cuda`, `metal`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessorKind::Cpu => "cpu",
            ProcessorKind::Cuda => "cuda",
            ProcessorKind::Metal => "metal",
        }
    }

    /// The kind named `name` (`cpu`, `cuda`, `metal`), as stored in the database.
    pub fn parse(name: &str) -> Option<ProcessorKind> {
        [ProcessorKind::Cpu, ProcessorKind::Cuda, ProcessorKind::Metal].into_iter().find(|k| k.as_str() == name)
    }

    /// Whether it is a GPU: no cores of its own, driven from a host thread through a GPU runtime.
    pub fn is_gpu(self) -> bool {
        matches!(self, ProcessorKind::Cuda | ProcessorKind::Metal)
    }
}

impl fmt::Display for ProcessorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unit that runs work: `cpu:0` (one core), `cpu:4-7` (a cluster), `cpu:0-1` (all cores of a
/// two-core machine), `cuda:0` (the first NVIDIA GPU), `metal:0` (an Apple GPU).
///
/// Serialised as `{id, kind, cores, threads, max_freq_khz}`, the shape `tandem devices --json` prints,
/// plus `name` for a GPU whose runtime tells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Processor {
    /// Its id: `cpu:N`, `cpu:A-B` for a contiguous range, `cpu:0,2,4` otherwise (see [`cpu_set_id`]);
    /// `cuda:N` or `metal:N` for a GPU.
    pub id: String,
    /// The kind of hardware.
    pub kind: ProcessorKind,
    /// The logical cores (OS CPU numbers) it owns, ascending; a worker for it is pinned to exactly these.
    /// Empty for a GPU: its worker is a host thread the OS places freely.
    pub cores: Vec<usize>,
    /// How many threads work on it at once: one per core for a CPU processor, one (the host thread that
    /// drives it) for a GPU.
    pub threads: usize,
    /// The highest maximum frequency among its cores in kHz, where cpufreq tells it.
    pub max_freq_khz: Option<u64>,
    /// The hardware's name where its runtime tells it (`NVIDIA H100 80GB HBM3`); `None` for CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Processor {
    /// A CPU processor owning `cores` (sorted and deduplicated here), with its id derived from them.
    pub fn cpu(cores: &[usize], max_freq_khz: Option<u64>) -> Processor {
        let mut cores = cores.to_vec();
        cores.sort_unstable();
        cores.dedup();
        Processor { id: cpu_set_id(&cores), kind: ProcessorKind::Cpu, threads: cores.len(), cores, max_freq_khz, name: None }
    }

    /// GPU number `index` of a GPU `kind` (`cuda:0`): no cores, one driving thread.
    ///
    /// # Panics
    /// If `kind` is not a GPU kind.
    pub fn gpu(kind: ProcessorKind, index: usize, name: Option<String>) -> Processor {
        assert!(kind.is_gpu(), "{kind} is not a GPU kind");
        Processor { id: format!("{kind}:{index}"), kind, cores: vec![], threads: 1, max_freq_khz: None, name }
    }

    /// Whether the two processors share hardware (a core, or the same GPU), so that they must never run
    /// work at the same time. A processor shares with itself; a GPU shares nothing with a CPU processor.
    pub fn shares_cores_with(&self, other: &Processor) -> bool {
        self.id == other.id || (self.kind == other.kind && self.cores.iter().any(|c| other.cores.contains(c)))
    }
}

impl fmt::Display for Processor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// The id of a CPU processor owning `cores` (ascending, distinct): `cpu:3` for one core, `cpu:4-7` for a
/// contiguous range, `cpu:0,2,4` for any other set.
pub fn cpu_set_id(cores: &[usize]) -> String {
    let contiguous = cores.windows(2).all(|w| w[1] == w[0] + 1);
    match cores {
        [] => "cpu:".to_string(),
        [one] => format!("cpu:{one}"),
        [first, .., last] if contiguous => format!("cpu:{first}-{last}"),
        _ => format!("cpu:{}", cores.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")),
    }
}

/// The cores a CPU processor id names, ascending and distinct, accepting any mix of single cores and
/// ranges (`cpu:0-3,6`); `None` when `id` is not a CPU id.
pub fn parse_cpu_set(id: &str) -> Option<Vec<usize>> {
    let list = id.trim().strip_prefix("cpu:")?;
    let mut cores = parse_list(list)?;
    if cores.is_empty() {
        return None;
    }
    cores.sort_unstable();
    cores.dedup();
    Some(cores)
}

/// Parses the kernel's CPU list format (`0-3,6,8-9`, as in `/sys/devices/system/cpu/online`).
pub(crate) fn parse_list(list: &str) -> Option<Vec<usize>> {
    let mut cores = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b {
                    return None;
                }
                cores.extend(a..=b);
            }
            None => cores.push(part.trim().parse().ok()?),
        }
    }
    Some(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_single_cores_ranges_and_sets() {
        assert_eq!(cpu_set_id(&[0]), "cpu:0");
        assert_eq!(cpu_set_id(&[0, 1]), "cpu:0-1");
        assert_eq!(cpu_set_id(&[4, 5, 6, 7]), "cpu:4-7");
        assert_eq!(cpu_set_id(&[0, 2, 4]), "cpu:0,2,4");
        assert_eq!(Processor::cpu(&[1, 0, 1], None).id, "cpu:0-1");
    }

    #[test]
    fn ids_parse_back_to_their_cores() {
        for cores in [vec![0], vec![0, 1], vec![4, 5, 6, 7], vec![0, 2, 4]] {
            assert_eq!(parse_cpu_set(&cpu_set_id(&cores)), Some(cores));
        }
        assert_eq!(parse_cpu_set("cpu:0-2,5"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpu_set("cpu:1,0"), Some(vec![0, 1]));
        for bad in ["cuda:0", "cpu:", "cpu:x", "cpu:3-1", "0-1"] {
            assert_eq!(parse_cpu_set(bad), None, "{bad}");
        }
    }

    #[test]
    fn processors_sharing_a_core_are_detected() {
        let (a, b, all) = (Processor::cpu(&[0], None), Processor::cpu(&[1], None), Processor::cpu(&[0, 1], None));
        assert!(!a.shares_cores_with(&b));
        assert!(a.shares_cores_with(&all) && all.shares_cores_with(&b));
    }

    #[test]
    fn serialises_as_the_json_contract() {
        let v = serde_json::to_value(Processor::cpu(&[0, 1], Some(2_400_000))).unwrap();
        assert_eq!(v, serde_json::json!({"id": "cpu:0-1", "kind": "cpu", "cores": [0, 1], "threads": 2, "max_freq_khz": 2400000}));
        let gpu = Processor::gpu(ProcessorKind::Cuda, 0, Some("NVIDIA H100".into()));
        let v = serde_json::to_value(&gpu).unwrap();
        assert_eq!(v, serde_json::json!({"id": "cuda:0", "kind": "cuda", "cores": [], "threads": 1, "max_freq_khz": null, "name": "NVIDIA H100"}));
        assert_eq!(serde_json::from_value::<Processor>(v).unwrap(), gpu);
        // Rows written before GPUs existed have no name.
        let old = serde_json::json!({"id": "cpu:0", "kind": "cpu", "cores": [0], "threads": 1, "max_freq_khz": null});
        assert_eq!(serde_json::from_value::<Processor>(old).unwrap(), Processor::cpu(&[0], None));
    }

    #[test]
    fn gpus_have_no_cores_and_share_only_with_themselves() {
        let (cuda0, cuda1) = (Processor::gpu(ProcessorKind::Cuda, 0, None), Processor::gpu(ProcessorKind::Cuda, 1, None));
        assert_eq!((cuda0.id.as_str(), cuda0.cores.len(), cuda0.threads), ("cuda:0", 0, 1));
        assert_eq!(Processor::gpu(ProcessorKind::Metal, 0, None).id, "metal:0");
        let all = Processor::cpu(&[0, 1], None);
        assert!(cuda0.shares_cores_with(&cuda0) && all.shares_cores_with(&all));
        assert!(!cuda0.shares_cores_with(&cuda1) && !cuda0.shares_cores_with(&all) && !all.shares_cores_with(&cuda0));
        assert_eq!(parse_cpu_set(&cuda0.id), None);
        for kind in [ProcessorKind::Cpu, ProcessorKind::Cuda, ProcessorKind::Metal] {
            assert_eq!(ProcessorKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.is_gpu(), kind != ProcessorKind::Cpu);
        }
        assert_eq!(ProcessorKind::parse("npu"), None);
    }
}

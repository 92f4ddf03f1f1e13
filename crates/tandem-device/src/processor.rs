//! Processors: the disjoint units of a device that run work, and their ids.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of hardware a [`Processor`] is. Only CPUs are discovered today; GPU runtimes (CUDA, Metal)
/// will add variants behind cargo features, which is why the enum is non-exhaustive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ProcessorKind {
    /// A set of CPU cores (one core, a cluster, or all of them).
    Cpu,
}

impl ProcessorKind {
    /// The id prefix and JSON name: `cpu`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessorKind::Cpu => "cpu",
        }
    }
}

impl fmt::Display for ProcessorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unit that runs work: `cpu:0` (one core), `cpu:4-7` (a cluster), `cpu:0-1` (all cores of a
/// two-core machine).
///
/// Serialised as `{id, kind, cores, threads, max_freq_khz}`, the shape `tandem devices --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Processor {
    /// Its id: `cpu:N`, `cpu:A-B` for a contiguous range, `cpu:0,2,4` otherwise (see [`cpu_set_id`]).
    pub id: String,
    /// The kind of hardware.
    pub kind: ProcessorKind,
    /// The logical cores (OS CPU numbers) it owns, ascending; a worker for it is pinned to exactly these.
    pub cores: Vec<usize>,
    /// How many threads work on it at once: one per core for a CPU processor.
    pub threads: usize,
    /// The highest maximum frequency among its cores in kHz, where cpufreq tells it.
    pub max_freq_khz: Option<u64>,
}

impl Processor {
    /// A CPU processor owning `cores` (sorted and deduplicated here), with its id derived from them.
    pub fn cpu(cores: &[usize], max_freq_khz: Option<u64>) -> Processor {
        let mut cores = cores.to_vec();
        cores.sort_unstable();
        cores.dedup();
        Processor { id: cpu_set_id(&cores), kind: ProcessorKind::Cpu, threads: cores.len(), cores, max_freq_khz }
    }

    /// Whether the two processors share a core, so that they must never run work at the same time.
    pub fn shares_cores_with(&self, other: &Processor) -> bool {
        self.kind == other.kind && self.cores.iter().any(|c| other.cores.contains(c))
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
    }
}

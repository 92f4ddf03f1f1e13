//! How busy each core is with work that is not this process's: the availability of a core, read from
//! the OS's accounting rather than from a timed probe.
//!
//! Why not time a probe: a short piece of work on a core shared with a busy thread runs almost at full
//! speed (the scheduler lets a thread that just woke up run first), while a stage that keeps a core
//! busy gets about half of it. The accounting says what the probe cannot: that another thread keeps the
//! core busy whenever this process leaves it.
//!
//! On Linux, `/proc/stat` gives each core's busy and total time and `/proc/self/task/*/stat` each of
//! this process's threads' time and the core it last ran on. A core's others' share over an interval
//! is (its busy time - the time this process's threads gained on it) / its total time. Threads pinned
//! to one core (tandem's workers for single-core processors) are counted exactly; a thread free to move
//! between cores has its time over the interval counted on the core it ran on last, so on the cores of
//! a multi-core processor the figure is approximate. Counters tick at the kernel's USER_HZ (100 per second): read intervals of tens of
//! milliseconds at least. Elsewhere, [`CoreUse::read`] returns `None`.

use std::collections::BTreeMap;

/// Per-core CPU time counters at one instant, in clock ticks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreUse {
    /// Core → (busy, total) ticks since boot.
    cores: BTreeMap<usize, (u64, u64)>,
    /// Thread id → (its ticks, the core it last ran on), for this process's threads.
    own: BTreeMap<u64, (u64, usize)>,
}

impl CoreUse {
    /// Reads the counters now; `None` where `/proc` is not there to read.
    pub fn read() -> Option<CoreUse> {
        let cores = parse_cores(&std::fs::read_to_string("/proc/stat").ok()?);
        if cores.is_empty() {
            return None;
        }
        let mut own = BTreeMap::new();
        for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse::<u64>().ok()) else { continue };
            // A thread may end between listing and reading: skip it.
            if let Some(t) = std::fs::read_to_string(entry.path().join("stat")).ok().and_then(|t| parse_thread(&t)) {
                own.insert(tid, t);
            }
        }
        Some(CoreUse { cores, own })
    }

    /// Each core's share (0..1) of the time from `self` to `later` that other processes used; cores
    /// whose counters did not move are left out.
    pub fn others_share(&self, later: &CoreUse) -> BTreeMap<usize, f64> {
        // Each thread's time since `self`, on the core it is on now (a thread that started since
        // counts whole; one that ended is gone from both sides of nothing).
        let mut own: BTreeMap<usize, u64> = BTreeMap::new();
        for (tid, &(ticks, core)) in &later.own {
            let before = self.own.get(tid).map(|t| t.0).unwrap_or(0);
            *own.entry(core).or_default() += ticks.saturating_sub(before);
        }
        let mut out = BTreeMap::new();
        for (core, &(busy1, total1)) in &later.cores {
            let Some(&(busy0, total0)) = self.cores.get(core) else { continue };
            let total = total1.saturating_sub(total0);
            if total == 0 {
                continue;
            }
            let others = busy1.saturating_sub(busy0).saturating_sub(own.get(core).copied().unwrap_or(0));
            out.insert(*core, (others as f64 / total as f64).clamp(0.0, 1.0));
        }
        out
    }
}

/// `cpuN` lines of `/proc/stat`: core → (busy, total) ticks.
fn parse_cores(text: &str) -> BTreeMap<usize, (u64, u64)> {
    text.lines()
        .filter_map(|line| {
            let (label, ticks) = cpu_line(line)?;
            Some((label.strip_prefix("cpu")?.parse().ok()?, ticks))
        })
        .collect()
}

/// One `cpu` or `cpuN` line of `/proc/stat`: its label and (busy, total) ticks.
pub(crate) fn cpu_line(line: &str) -> Option<(&str, (u64, u64))> {
    let mut fields = line.split_whitespace();
    let label = fields.next().filter(|l| l.starts_with("cpu"))?;
    // user nice system idle iowait irq softirq steal (guest time is already inside user and nice).
    let v: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((label, (total - idle, total)))
}

/// The fields of a `/proc/.../stat` line after the name: the name (field 2) is in parentheses and may
/// hold spaces, so count from after the last ')', where field 3 is at index 0.
fn stat_fields(text: &str) -> Option<Vec<&str>> {
    Some(text[text.rfind(')')? + 1..].split_whitespace().collect())
}

/// utime + stime (fields 14 and 15) of a process's or thread's `stat` line, in ticks.
pub(crate) fn stat_ticks(text: &str) -> Option<u64> {
    let f = stat_fields(text)?;
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A thread's utime + stime and the core it last ran on (field 39), from its `stat` line.
fn parse_thread(text: &str) -> Option<(u64, usize)> {
    Some((stat_ticks(text)?, stat_fields(text)?.get(36)?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_core_lines_are_parsed_and_the_total_line_skipped() {
        let text = "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 0 5 30 10 0 0 0 0 0\nintr 1 2\n";
        let c = parse_cores(text);
        assert_eq!(c.len(), 2);
        assert_eq!(c[&0], (10, 50));
        assert_eq!(c[&1], (10, 50), "iowait counts as idle");
    }

    #[test]
    fn a_thread_line_with_spaces_in_its_name_gives_its_ticks_and_core() {
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[0] = "S".into();
        fields[11] = "7".into(); // utime
        fields[12] = "5".into(); // stime
        fields[36] = "1".into(); // processor
        let line = format!("1234 (tandem lane 0) {}", fields.join(" "));
        assert_eq!(parse_thread(&line), Some((12, 1)));
    }

    #[test]
    fn others_share_subtracts_this_process_and_clamps() {
        // Thread 7 ran 50 ticks on core 0; thread 8 moved from core 0 to core 1 without running.
        let a = CoreUse { cores: [(0, (100, 1000)), (1, (100, 1000))].into(), own: [(7, (50, 0)), (8, (30, 0))].into() };
        let b = CoreUse { cores: [(0, (150, 1100)), (1, (200, 1100))].into(), own: [(7, (100, 0)), (8, (30, 1))].into() };
        let s = a.others_share(&b);
        assert_eq!(s[&0], 0.0, "core 0 was busy with this process only");
        assert_eq!(s[&1], 1.0, "core 1 was busy with someone else all the time; a thread moving there adds nothing");
    }

    #[test]
    fn live_counters_give_shares_in_range_for_every_core() {
        let Some(before) = CoreUse::read() else { return };
        // This process spins on whatever core it is on: it must not count as others' use.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = CoreUse::read().unwrap();
        let s = before.others_share(&after);
        assert!(!s.is_empty());
        assert!(s.values().all(|v| (0.0..=1.0).contains(v)));
    }
}

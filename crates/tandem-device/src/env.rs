//! Environment snapshots: how busy, fast and hot the device is at one moment.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sysinfo::System;

use crate::device::{read_u64, Device};

/// The default window over which [`EnvSnapshot::take`] measures other processes' CPU use.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(100);

/// The state of the device around a batch of measurements, stored with it so that a slow result can be
/// explained (another process was busy, the clock was throttled, the device was hot).
///
/// Taking one never fails: whatever the OS does not let us read is `None` (or an empty list), so the
/// same code runs on a phone, a VM and a laptop. Serialised as-is in `tandem devices --json` under
/// `environment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvSnapshot {
    /// The device it was taken on ([`Device::id`]).
    pub device_id: String,
    /// When it was taken, in milliseconds since the Unix epoch (at the end of the window).
    pub timestamp_ms: u64,
    /// The 1, 5 and 15 minute load averages (`/proc/loadavg`, or the OS's equivalent).
    pub load_average: Option<LoadAverage>,
    /// Each core's current frequency, in the order of the device's cores.
    pub core_freq_khz: Vec<CoreFreq>,
    /// Every readable thermal zone.
    pub temperatures: Vec<Temperature>,
    /// Percent of the whole machine's CPU time (100 = every core busy) used by processes other than this
    /// one during the window: see [`EnvSnapshot::take_with_window`] for the method.
    pub other_cpu_percent: Option<f64>,
    /// The length of that window in milliseconds.
    pub window_ms: u64,
}

/// The three load averages.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    /// Over one minute.
    pub one: f64,
    /// Over five minutes.
    pub five: f64,
    /// Over fifteen minutes.
    pub fifteen: f64,
}

/// One core's current frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreFreq {
    /// The OS CPU number.
    pub core: usize,
    /// Its frequency in kHz: cpufreq's `scaling_cur_freq`, else what sysinfo reports (from
    /// `/proc/cpuinfo` on Linux), else `None`.
    pub khz: Option<u64>,
}

/// One thermal zone's temperature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Temperature {
    /// The zone's name: its `type` (`x86_pkg_temp`, `cpu-thermal`, ...), or the zone directory's name.
    pub zone: String,
    /// Degrees Celsius.
    pub celsius: f64,
}

impl EnvSnapshot {
    /// Takes a snapshot, measuring other processes' CPU use over [`DEFAULT_WINDOW`] (100 ms); the call
    /// sleeps that long.
    pub fn take(device: &Device) -> EnvSnapshot {
        EnvSnapshot::take_with_window(device, DEFAULT_WINDOW)
    }

    /// Takes a snapshot, measuring other processes' CPU use over `window`.
    ///
    /// The method (Linux): read the machine's busy time from the first line of `/proc/stat` (user, nice,
    /// system, irq, softirq and steal ticks; idle and iowait count as idle) and this process's own time
    /// from `/proc/self/stat` (utime + stime, all its threads), sleep `window`, read both again. Other
    /// processes used `(Δbusy - Δself) / Δtotal` of the machine, clamped to 0..=100 %. Both files count
    /// in clock ticks (usually 10 ms), so a 100 ms window on two cores resolves about 5 %; pass a longer
    /// window for a finer figure. Elsewhere the figure is `None`.
    pub fn take_with_window(device: &Device, window: Duration) -> EnvSnapshot {
        let started = Instant::now();
        let other_cpu_percent = other_cpu_percent(window);
        let cores = &device.all_cores().cores;
        let snapshot = EnvSnapshot {
            device_id: device.id.clone(),
            timestamp_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            load_average: load_average(),
            core_freq_khz: core_freqs(cores),
            temperatures: temperatures(Path::new("/sys/class/thermal")),
            other_cpu_percent,
            window_ms: window.as_millis() as u64,
        };
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, ?snapshot, "environment snapshot");
        snapshot
    }
}

fn load_average() -> Option<LoadAverage> {
    if let Ok(text) = std::fs::read_to_string("/proc/loadavg") {
        return parse_loadavg(&text);
    }
    if cfg!(windows) {
        return None;
    }
    let l = System::load_average();
    Some(LoadAverage { one: l.one, five: l.five, fifteen: l.fifteen })
}

fn parse_loadavg(text: &str) -> Option<LoadAverage> {
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().ok());
    Some(LoadAverage { one: it.next()??, five: it.next()??, fifteen: it.next()?? })
}

fn core_freqs(cores: &[usize]) -> Vec<CoreFreq> {
    let from_sys: Vec<Option<u64>> = cores
        .iter()
        .map(|c| read_u64(&Path::new("/sys/devices/system/cpu").join(format!("cpu{c}/cpufreq/scaling_cur_freq"))).filter(|&f| f > 0))
        .collect();
    let fallback = if from_sys.iter().any(|f| f.is_none()) { sysinfo_freqs() } else { Vec::new() };
    cores
        .iter()
        .zip(from_sys)
        .map(|(&core, khz)| CoreFreq {
            core,
            khz: khz.or_else(|| fallback.iter().find(|(c, _)| *c == core).map(|&(_, mhz)| mhz * 1000)),
        })
        .collect()
}

/// sysinfo's per-core frequencies in MHz, keyed by core number (from the CPU's `cpuN` name).
fn sysinfo_freqs() -> Vec<(usize, u64)> {
    let mut sys = System::new();
    sys.refresh_cpu_frequency();
    sys.cpus()
        .iter()
        .enumerate()
        .filter(|(_, c)| c.frequency() > 0)
        .map(|(i, c)| (c.name().strip_prefix("cpu").and_then(|n| n.parse().ok()).unwrap_or(i), c.frequency()))
        .collect()
}

fn temperatures(root: &Path) -> Vec<Temperature> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut zones: Vec<(String, std::path::PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("thermal_zone").then(|| (name, e.path()))
        })
        .collect();
    zones.sort_by_key(|(name, _)| name.trim_start_matches("thermal_zone").parse::<u64>().unwrap_or(u64::MAX));
    zones
        .into_iter()
        .filter_map(|(name, dir)| {
            // Millidegrees; a zone whose sensor is asleep or broken reads an error or nonsense: skip it.
            let milli: i64 = std::fs::read_to_string(dir.join("temp")).ok()?.trim().parse().ok()?;
            let celsius = milli as f64 / 1000.0;
            if !(-50.0..=200.0).contains(&celsius) {
                return None;
            }
            let zone = std::fs::read_to_string(dir.join("type")).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).unwrap_or(name);
            Some(Temperature { zone, celsius })
        })
        .collect()
}

/// CPU time counters in clock ticks: the machine's busy and total time, and this process's own time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticks {
    busy: u64,
    total: u64,
    own: u64,
}

impl Ticks {
    fn read() -> Option<Ticks> {
        let (busy, total) = parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)?;
        let own = parse_self_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        Some(Ticks { busy, total, own })
    }
}

/// Machine busy and total ticks from `/proc/stat`'s first line.
fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest and guest_nice are already inside user/nice).
    let v: Vec<u64> = fields.take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// This process's utime + stime in ticks from `/proc/self/stat`.
fn parse_self_stat(text: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
    // What follows is field 3 (state); utime and stime are fields 14 and 15.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The percent of the machine's time between two readings that other processes used.
fn others_percent(before: Ticks, after: Ticks) -> Option<f64> {
    let total = after.total.checked_sub(before.total).filter(|&t| t > 0)?;
    let other = after.busy.saturating_sub(before.busy) as f64 - after.own.saturating_sub(before.own) as f64;
    Some((100.0 * other / total as f64).clamp(0.0, 100.0))
}

fn other_cpu_percent(window: Duration) -> Option<f64> {
    let before = Ticks::read()?;
    std::thread::sleep(window);
    others_percent(before, Ticks::read()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_never_fails_and_has_a_timestamp() {
        let d = Device::discover().unwrap();
        let s = EnvSnapshot::take_with_window(&d, Duration::from_millis(20));
        assert_eq!(s.device_id, d.id);
        assert!(s.timestamp_ms > 1_600_000_000_000, "{}", s.timestamp_ms);
        assert_eq!(s.core_freq_khz.iter().map(|f| f.core).collect::<Vec<_>>(), d.all_cores().cores);
        if cfg!(target_os = "linux") {
            let l = s.load_average.expect("Linux has /proc/loadavg");
            assert!(l.one >= 0.0 && l.five >= 0.0 && l.fifteen >= 0.0);
            let pct = s.other_cpu_percent.expect("Linux has /proc/stat");
            assert!((0.0..=100.0).contains(&pct), "{pct}");
        }
        for t in &s.temperatures {
            assert!(!t.zone.is_empty());
        }
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<EnvSnapshot>(&json).unwrap(), s);
    }

    #[test]
    fn proc_files_parse() {
        assert_eq!(parse_loadavg("1.87 1.25 0.93 4/109 17494\n"), Some(LoadAverage { one: 1.87, five: 1.25, fifteen: 0.93 }));
        assert_eq!(parse_loadavg("garbage"), None);
        let stat = "cpu  100 5 50 800 20 3 2 1 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\n";
        assert_eq!(parse_proc_stat(stat), Some((161, 981)));
        assert_eq!(parse_proc_stat("intr 1 2 3"), None);
        let own = "1234 (tandem (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 17 4 0 0 20 0 3 0 55 1000 10";
        assert_eq!(parse_self_stat(own), Some(21));
    }

    #[test]
    fn our_own_time_is_not_counted_as_other_processes() {
        // 2 cores for 100 ticks = 200 ticks; the machine was busy 150 of them, 60 of which were ours.
        let before = Ticks { busy: 1000, total: 5000, own: 300 };
        assert_eq!(others_percent(before, Ticks { busy: 1150, total: 5200, own: 360 }), Some(45.0));
        // Ticks are coarse: our own count can run ahead of the machine's; never below zero.
        assert_eq!(others_percent(before, Ticks { busy: 1010, total: 5200, own: 330 }), Some(0.0));
        assert_eq!(others_percent(before, before), None);
    }
}

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreFreq {
    /// The OS CPU number.
    pub core: usize,
    /// Its frequency in kHz: cpufreq's `scaling_cur_freq`, else what sysinfo reports (from
    /// `/proc/cpuinfo` on Linux), else `None`.
    pub khz: Option<u64>,
    /// The highest frequency the kernel lets the core run at now, in kHz (cpufreq's `scaling_max_freq`):
    /// thermal and power limits lower it below the hardware's maximum. `None` without cpufreq.
    #[serde(default)]
    pub cap_khz: Option<u64>,
    /// The cpufreq governor (`performance`, `schedutil`, `powersave`...), where cpufreq exists.
    #[serde(default)]
    pub governor: Option<String>,
}

/// One thermal zone's temperature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Temperature {
    /// The zone's name: its `type` (`x86_pkg_temp`, `cpu-thermal`, ...), or the zone directory's name.
    pub zone: String,
    /// Degrees Celsius.
    pub celsius: f64,
    /// The zone's lowest trip point at which the kernel cools by slowing the hardware down (type `passive`,
    /// `hot` or `critical`; fan-only `active` trips are left out), in degrees Celsius, where it has one.
    #[serde(default)]
    pub trip_celsius: Option<f64>,
}

/// Whether the device was throttled when a snapshot was taken, as far as the snapshot can tell:
/// see [`EnvSnapshot::throttling`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttling {
    /// Whether the snapshot held anything that could show throttling: a core's frequency cap or (under the
    /// `performance` governor) its current frequency next to its known maximum, or a temperature. When
    /// `false`, `throttled` is `false` because nothing tells, not because the device is known to be cool.
    pub readable: bool,
    /// Whether throttling was seen.
    pub throttled: bool,
    /// What showed it (`core 3 capped at 1.20 GHz of 2.40 GHz; cpu-thermal at 71.0 °C >= trip 70.0 °C`), or,
    /// when `readable` is false, why nothing could be told.
    pub reason: Option<String>,
}

/// A core whose frequency cap or (under the `performance` governor) current frequency is below this share
/// of its hardware maximum counts as throttled: turbo and rounding keep healthy cores within a few percent.
pub const THROTTLE_FREQ_RATIO: f64 = 0.9;

/// Without a trip point, a zone at or above this temperature counts as throttling: mobile SoCs start
/// slowing down between 70 and 95 °C, and desktop CPUs by 100 °C.
pub const HOT_CELSIUS: f64 = 90.0;

impl Throttling {
    /// Both observations together (a snapshot before and one after a run): readable if either was,
    /// throttled if either was, with both reasons.
    pub fn merge(self, other: Throttling) -> Throttling {
        let reason = match (self.throttled, other.throttled) {
            (true, true) if self.reason != other.reason => {
                Some([self.reason, other.reason].into_iter().flatten().collect::<Vec<_>>().join("; then "))
            }
            (true, _) => self.reason,
            (false, true) => other.reason,
            (false, false) if self.readable => self.reason,
            (false, false) if other.readable => other.reason,
            (false, false) => self.reason.or(other.reason),
        };
        Throttling { readable: self.readable || other.readable, throttled: self.throttled || other.throttled, reason }
    }

    /// One line for people: `not throttled`, `THROTTLED: <reason>`, `unknown (<reason>)`.
    pub fn summary(&self) -> String {
        match (self.readable, self.throttled, &self.reason) {
            (_, true, Some(r)) => format!("THROTTLED: {r}"),
            (_, true, None) => "THROTTLED".into(),
            (true, false, _) => "not throttled".into(),
            (false, false, Some(r)) => format!("unknown ({r})"),
            (false, false, None) => "unknown".into(),
        }
    }
}

impl EnvSnapshot {
    /// Whether the snapshot shows throttling on `device` (whose processors give each core's hardware maximum
    /// frequency).
    ///
    /// Throttled means any of:
    /// - a core's cap (`scaling_max_freq`) is below [`THROTTLE_FREQ_RATIO`] of its hardware maximum: the
    ///   kernel's thermal or power management has limited it;
    /// - under the `performance` governor, a core's current frequency is below that ratio of its maximum
    ///   (the governor asks for the maximum, so only the hardware's own limits pull it down). Under
    ///   on-demand governors (`schedutil`, `powersave`, ...) a low current frequency is not evidence: an
    ///   idle core clocks down by design, and a snapshot is taken between measurements;
    /// - a thermal zone is at or above its lowest passive/hot/critical trip point, or at or above
    ///   [`HOT_CELSIUS`] when it has none.
    ///
    /// When the snapshot holds none of these (a VM without cpufreq or thermal zones), the answer is
    /// `readable: false`: nothing is guessed.
    pub fn throttling(&self, device: &Device) -> Throttling {
        let hardware_max = |core: usize| device.cpus().find(|p| p.cores == [core]).and_then(|p| p.max_freq_khz);
        let mut readable = false;
        let mut seen = Vec::new();
        for f in &self.core_freq_khz {
            let Some(max) = hardware_max(f.core) else { continue };
            let limit = max as f64 * THROTTLE_FREQ_RATIO;
            if let Some(cap) = f.cap_khz {
                readable = true;
                if (cap as f64) < limit {
                    seen.push(format!("core {} capped at {} of {}", f.core, ghz(cap), ghz(max)));
                    continue;
                }
            }
            if let (Some("performance"), Some(cur)) = (f.governor.as_deref(), f.khz) {
                readable = true;
                if (cur as f64) < limit {
                    seen.push(format!("core {} at {} of {} under the performance governor", f.core, ghz(cur), ghz(max)));
                }
            }
        }
        for t in &self.temperatures {
            readable = true;
            match t.trip_celsius {
                Some(trip) if t.celsius >= trip => seen.push(format!("{} at {:.1} °C >= trip {:.1} °C", t.zone, t.celsius, trip)),
                None if t.celsius >= HOT_CELSIUS => seen.push(format!("{} at {:.1} °C >= {HOT_CELSIUS:.0} °C", t.zone, t.celsius)),
                _ => {}
            }
        }
        let reason = if !seen.is_empty() {
            Some(seen.join("; "))
        } else if !readable {
            Some("no frequency limits or temperatures are readable here".into())
        } else {
            None
        };
        Throttling { readable, throttled: !seen.is_empty(), reason }
    }

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

fn ghz(khz: u64) -> String {
    format!("{:.2} GHz", khz as f64 / 1e6)
}

fn core_freqs(cores: &[usize]) -> Vec<CoreFreq> {
    let cpufreq = |core: usize, file: &str| Path::new("/sys/devices/system/cpu").join(format!("cpu{core}/cpufreq/{file}"));
    let from_sys: Vec<Option<u64>> = cores.iter().map(|&c| read_u64(&cpufreq(c, "scaling_cur_freq")).filter(|&f| f > 0)).collect();
    let fallback = if from_sys.iter().any(|f| f.is_none()) { sysinfo_freqs() } else { Vec::new() };
    cores
        .iter()
        .zip(from_sys)
        .map(|(&core, khz)| CoreFreq {
            core,
            khz: khz.or_else(|| fallback.iter().find(|(c, _)| *c == core).map(|&(_, mhz)| mhz * 1000)),
            cap_khz: read_u64(&cpufreq(core, "scaling_max_freq")).filter(|&f| f > 0),
            governor: std::fs::read_to_string(cpufreq(core, "scaling_governor")).ok().map(|g| g.trim().to_string()).filter(|g| !g.is_empty()),
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
            Some(Temperature { zone, celsius, trip_celsius: lowest_cooling_trip(&dir) })
        })
        .collect()
}

/// The lowest `passive`, `hot` or `critical` trip point of a thermal zone directory, in °C: where the kernel
/// starts slowing the hardware down to cool it (`trip_point_N_type` / `trip_point_N_temp`, millidegrees).
fn lowest_cooling_trip(zone: &Path) -> Option<f64> {
    (0..)
        .map_while(|n| {
            let kind = std::fs::read_to_string(zone.join(format!("trip_point_{n}_type"))).ok()?;
            let temp = std::fs::read_to_string(zone.join(format!("trip_point_{n}_temp"))).ok();
            Some((kind.trim().to_string(), temp.and_then(|t| t.trim().parse::<i64>().ok())))
        })
        .filter(|(kind, _)| matches!(kind.as_str(), "passive" | "hot" | "critical"))
        // Disabled trips read 0 or a huge sentinel: keep plausible temperatures only.
        .filter_map(|(_, milli)| milli.map(|m| m as f64 / 1000.0).filter(|c| (1.0..=200.0).contains(c)))
        .min_by(|a, b| a.total_cmp(b))
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
    crate::core_use::cpu_line(text.lines().next()?).filter(|(label, _)| *label == "cpu").map(|(_, ticks)| ticks)
}

/// This process's utime + stime in ticks from `/proc/self/stat`.
fn parse_self_stat(text: &str) -> Option<u64> {
    crate::core_use::stat_ticks(text)
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

    fn snapshot(freqs: Vec<CoreFreq>, temperatures: Vec<Temperature>) -> EnvSnapshot {
        EnvSnapshot {
            device_id: "d".into(),
            timestamp_ms: 0,
            load_average: None,
            core_freq_khz: freqs,
            temperatures,
            other_cpu_percent: None,
            window_ms: 0,
        }
    }

    fn freq(core: usize, khz: Option<u64>, cap_khz: Option<u64>, governor: Option<&str>) -> CoreFreq {
        CoreFreq { core, khz, cap_khz, governor: governor.map(String::from) }
    }

    fn temp(zone: &str, celsius: f64, trip_celsius: Option<f64>) -> Temperature {
        Temperature { zone: zone.into(), celsius, trip_celsius }
    }

    /// A two-core device whose cores reach 2.4 GHz (core 0) and 1.8 GHz (core 1), or an unknown maximum.
    fn device(max: [Option<u64>; 2]) -> Device {
        let layout: Vec<crate::CoreInfo> = max.iter().enumerate().map(|(core, &max_freq_khz)| crate::CoreInfo { core, max_freq_khz }).collect();
        Device::from_layout("h".into(), "m".into(), 0, &layout)
    }

    #[test]
    fn nothing_readable_is_said_rather_than_guessed() {
        // A VM: current frequencies from /proc/cpuinfo, no maximum, no cap, no thermal zone.
        let vm = device([None, None]);
        let s = snapshot(vec![freq(0, Some(2_000_000), None, None), freq(1, Some(500_000), None, None)], vec![]);
        let t = s.throttling(&vm);
        assert!(!t.readable && !t.throttled, "{t:?}");
        assert!(t.summary().starts_with("unknown ("), "{}", t.summary());
        // A maximum alone, with neither a cap nor the performance governor, tells nothing either.
        let s = snapshot(vec![freq(0, Some(400_000), None, Some("schedutil"))], vec![]);
        assert!(!s.throttling(&device([Some(2_400_000), Some(1_800_000)])).readable);
    }

    #[test]
    fn a_lowered_cap_is_throttling() {
        let d = device([Some(2_400_000), Some(1_800_000)]);
        let healthy = snapshot(vec![freq(0, Some(600_000), Some(2_400_000), Some("schedutil")), freq(1, Some(1_800_000), Some(1_700_000), Some("schedutil"))], vec![]);
        let t = healthy.throttling(&d);
        assert_eq!(t, Throttling { readable: true, throttled: false, reason: None });
        assert_eq!(t.summary(), "not throttled");
        let capped = snapshot(vec![freq(0, Some(1_200_000), Some(1_200_000), Some("schedutil")), freq(1, Some(1_800_000), Some(1_800_000), None)], vec![]);
        let t = capped.throttling(&d);
        assert!(t.readable && t.throttled);
        assert_eq!(t.reason.as_deref(), Some("core 0 capped at 1.20 GHz of 2.40 GHz"));
        assert_eq!(t.summary(), "THROTTLED: core 0 capped at 1.20 GHz of 2.40 GHz");
    }

    #[test]
    fn a_slow_core_counts_only_under_the_performance_governor() {
        let d = device([Some(2_400_000), Some(1_800_000)]);
        let slow = |governor| snapshot(vec![freq(0, Some(1_000_000), None, Some(governor))], vec![]);
        let t = slow("performance").throttling(&d);
        assert!(t.readable && t.throttled, "{t:?}");
        assert_eq!(t.reason.as_deref(), Some("core 0 at 1.00 GHz of 2.40 GHz under the performance governor"));
        // An on-demand governor clocks an idle core down by design.
        assert!(!slow("powersave").throttling(&d).throttled);
        let fast = snapshot(vec![freq(0, Some(2_300_000), None, Some("performance"))], vec![]);
        assert_eq!(fast.throttling(&d), Throttling { readable: true, throttled: false, reason: None });
    }

    #[test]
    fn a_zone_past_its_trip_or_very_hot_is_throttling() {
        let d = device([None, None]);
        let cool = snapshot(vec![], vec![temp("cpu-thermal", 55.0, Some(70.0)), temp("acpitz", 60.0, None)]);
        assert_eq!(cool.throttling(&d), Throttling { readable: true, throttled: false, reason: None });
        let tripped = snapshot(vec![], vec![temp("cpu-thermal", 71.0, Some(70.0)), temp("battery", 30.0, None)]);
        let t = tripped.throttling(&d);
        assert!(t.throttled);
        assert_eq!(t.reason.as_deref(), Some("cpu-thermal at 71.0 °C >= trip 70.0 °C"));
        let hot = snapshot(vec![], vec![temp("x86_pkg_temp", 96.0, None)]);
        assert_eq!(hot.throttling(&d).reason.as_deref(), Some("x86_pkg_temp at 96.0 °C >= 90 °C"));
    }

    #[test]
    fn before_and_after_merge() {
        let unknown = Throttling { readable: false, throttled: false, reason: Some("nothing".into()) };
        let fine = Throttling { readable: true, throttled: false, reason: None };
        let hot = Throttling { readable: true, throttled: true, reason: Some("hot".into()) };
        let capped = Throttling { readable: true, throttled: true, reason: Some("capped".into()) };
        assert_eq!(unknown.clone().merge(unknown.clone()), unknown);
        assert_eq!(unknown.clone().merge(fine.clone()), fine);
        assert_eq!(fine.clone().merge(hot.clone()), hot);
        assert_eq!(hot.clone().merge(unknown.clone()), hot);
        assert_eq!(hot.clone().merge(hot.clone()), hot);
        assert_eq!(hot.merge(capped).reason.as_deref(), Some("hot; then capped"));
    }

    #[test]
    fn trip_points_are_read_from_the_zone() {
        let dir = std::env::temp_dir().join(format!("tandem-zone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (n, kind, milli) in [(0, "active", "50000"), (1, "passive", "85000"), (2, "critical", "105000"), (3, "hot", "0")] {
            std::fs::write(dir.join(format!("trip_point_{n}_type")), format!("{kind}\n")).unwrap();
            std::fs::write(dir.join(format!("trip_point_{n}_temp")), format!("{milli}\n")).unwrap();
        }
        assert_eq!(lowest_cooling_trip(&dir), Some(85.0));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(lowest_cooling_trip(&dir), None);
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

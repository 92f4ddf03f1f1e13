//! `tandem devices`: the device's processors and its current environment.

use anyhow::Result;
use serde::Serialize;
use tandem_device::{Device, EnvSnapshot, GpuNote, Processor, Throttling};

use crate::cli::DevicesArgs;
use crate::table::Table;

/// The JSON printed by `tandem devices --json`:
///
/// ```text
/// { "device": {id, hostname, cpu_model, cores, memory_bytes, clusters},
///   "processors": [{id, kind, cores, threads, max_freq_khz, name?}],
///   "gpu_notes": [{runtime, message}],
///   "environment": {device_id, timestamp_ms, load_average {one, five, fifteen}, core_freq_khz [{core, khz}],
///                   temperatures [{zone, celsius}], other_cpu_percent, window_ms},
///   "throttling": {readable, throttled, reason} }
/// ```
///
/// Values the OS does not tell are `null` (or empty lists).
#[derive(Serialize)]
pub struct DevicesReport {
    /// The device.
    pub device: DeviceSummary,
    /// Its processors: every core, each cluster, all cores, then GPUs (`cuda:0`) where a runtime loads.
    pub processors: Vec<Processor>,
    /// Why a GPU runtime gave no processor (built without its feature, no driver...).
    pub gpu_notes: Vec<GpuNote>,
    /// The environment right now.
    pub environment: EnvSnapshot,
    /// Whether the environment shows throttling (`readable: false` where no clock limit or temperature
    /// can be read).
    pub throttling: Throttling,
}

/// The device's identity.
#[derive(Serialize)]
pub struct DeviceSummary {
    /// Stable fingerprint.
    pub id: String,
    /// Host name.
    pub hostname: String,
    /// CPU model.
    pub cpu_model: String,
    /// Online logical cores.
    pub cores: usize,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Clusters of cores sharing a maximum frequency.
    pub clusters: Vec<Vec<usize>>,
}

/// Builds the report for `device`, measuring the environment over `window_ms`.
pub fn report(device: &Device, window_ms: u64) -> DevicesReport {
    let environment = EnvSnapshot::take_with_window(device, std::time::Duration::from_millis(window_ms));
    DevicesReport {
        device: DeviceSummary {
            id: device.id.clone(),
            hostname: device.hostname.clone(),
            cpu_model: device.cpu_model.clone(),
            cores: device.cores,
            memory_bytes: device.memory_bytes,
            clusters: device.clusters(),
        },
        processors: device.processors.clone(),
        gpu_notes: device.gpu_notes.clone(),
        throttling: environment.throttling(device),
        environment,
    }
}

fn mhz(khz: Option<u64>) -> String {
    khz.map(|k| format!("{}", (k + 500) / 1000)).unwrap_or_else(|| "-".into())
}

fn cores(cores: &[usize]) -> String {
    if cores.is_empty() {
        return "-".into();
    }
    // The id already says it compactly (`cpu:4-7`): reuse its list part.
    tandem_device::cpu_set_id(cores).trim_start_matches("cpu:").to_string()
}

/// Runs `tandem devices`.
pub fn run(args: &DevicesArgs, json: bool) -> Result<()> {
    let device = Device::discover()?;
    let r = report(&device, args.window_ms);
    if json {
        return super::print_json(&r);
    }
    let d = &r.device;
    crate::out(&format!(
        "device {}: {}, {} core{}, {:.1} GiB memory, host {}\n",
        d.id,
        d.cpu_model,
        d.cores,
        if d.cores == 1 { "" } else { "s" },
        d.memory_bytes as f64 / (1u64 << 30) as f64,
        d.hostname
    ))?;
    let mut t = Table::new(&["processor", "kind", "cores", "threads", "max MHz"]);
    for p in &r.processors {
        let kind = match &p.name {
            Some(name) => format!("{} ({name})", p.kind),
            None => p.kind.to_string(),
        };
        t.row(vec![p.id.clone(), kind, cores(&p.cores), p.threads.to_string(), mhz(p.max_freq_khz)]);
    }
    crate::out(&t.render())?;
    for note in &r.gpu_notes {
        crate::out(&format!("no GPU from {note}\n"))?;
    }

    let e = &r.environment;
    let load = e.load_average.map(|l| format!("{:.2} {:.2} {:.2} (1, 5, 15 min)", l.one, l.five, l.fifteen)).unwrap_or_else(|| "unknown".into());
    let other = e
        .other_cpu_percent
        .map(|p| format!("{p:.1}% of all cores (over {} ms)", e.window_ms))
        .unwrap_or_else(|| "unknown".into());
    let freqs = if e.core_freq_khz.iter().all(|f| f.khz.is_none()) {
        "unknown".to_string()
    } else {
        e.core_freq_khz.iter().map(|f| format!("cpu:{} {} MHz", f.core, mhz(f.khz))).collect::<Vec<_>>().join(", ")
    };
    let temps = if e.temperatures.is_empty() {
        "none readable".to_string()
    } else {
        e.temperatures.iter().map(|t| format!("{} {:.1} °C", t.zone, t.celsius)).collect::<Vec<_>>().join(", ")
    };
    crate::out(&format!(
        "environment:\n  load average      {load}\n  other processes   {other}\n  core clocks       {freqs}\n  temperatures      {temps}\n  throttling        {}\n",
        r.throttling.summary()
    ))?;
    Ok(())
}

//! `tandem devices` as a user meets it.

use crate::common::*;

use std::collections::HashSet;


fn devices_json() -> serde_json::Value {
    let o = tandem(&["devices", "--json", "--window-ms", "20"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

#[test]
fn devices_json_has_the_contract_fields() {
    let v = devices_json();
    let device = &v["device"];
    for field in ["id", "hostname", "cpu_model", "cores", "memory_bytes"] {
        assert!(device.get(field).is_some(), "device lacks {field}: {device}");
    }
    let id = device["id"].as_str().unwrap();
    assert!(id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    let cores = device["cores"].as_u64().unwrap() as usize;
    assert!(cores >= 1);

    let all = v["processors"].as_array().unwrap();
    for p in all {
        for field in ["id", "kind", "cores", "threads", "max_freq_khz"] {
            assert!(p.get(field).is_some(), "processor lacks {field}: {p}");
        }
    }
    // GPUs (built with a GPU feature, on a machine with the driver) come after the CPUs.
    let processors: Vec<&serde_json::Value> = all.iter().filter(|p| p["kind"] == "cpu").collect();
    assert_eq!(all[..processors.len()].iter().collect::<Vec<_>>(), processors);
    for p in &processors {
        assert_eq!(p["threads"].as_u64().unwrap() as usize, p["cores"].as_array().unwrap().len());
    }
    let ids: Vec<&str> = processors.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "duplicate ids: {ids:?}");
    // Every core alone, and one processor owning them all.
    let singles: Vec<&str> = ids.iter().copied().filter(|id| !id.contains(['-', ','])).collect();
    assert_eq!(singles.len(), cores, "{ids:?}");
    assert!(processors.iter().any(|p| p["cores"].as_array().unwrap().len() == cores), "{ids:?}");
    if cores == 2 {
        assert_eq!(ids, ["cpu:0", "cpu:1", "cpu:0-1"]);
    }

    let env = &v["environment"];
    assert_eq!(env["device_id"], device["id"]);
    assert!(env["timestamp_ms"].as_u64().unwrap() > 1_600_000_000_000);
    for field in ["load_average", "core_freq_khz", "temperatures", "other_cpu_percent", "window_ms"] {
        assert!(env.get(field).is_some(), "environment lacks {field}: {env}");
    }
    if cfg!(target_os = "linux") {
        assert!(env["load_average"]["one"].as_f64().is_some(), "{env}");
    }
    // Throttling is told only where something shows it: nothing readable is never "not throttled".
    let t = &v["throttling"];
    let readable = t["readable"].as_bool().unwrap();
    let nothing_readable = env["temperatures"].as_array().unwrap().is_empty()
        && env["core_freq_khz"].as_array().unwrap().iter().all(|f| f["cap_khz"].is_null() && f["governor"] != "performance");
    assert_eq!(readable, !nothing_readable, "{t} {env}");
    assert!(readable || (t["throttled"] == false && t["reason"].is_string()), "{t}");
}

#[test]
fn devices_says_why_there_is_no_gpu() {
    let v = devices_json();
    let notes = v["gpu_notes"].as_array().expect("gpu_notes is a list");
    let has_cuda = v["processors"].as_array().unwrap().iter().any(|p| p["kind"] == "cuda");
    if !has_cuda && !cfg!(target_os = "macos") {
        // Built without the feature (the README's build), or with it on a machine without a driver.
        let note = notes.iter().find(|n| n["runtime"] == "cuda").unwrap_or_else(|| panic!("no cuda note: {v}"));
        let message = note["message"].as_str().unwrap();
        assert!(message.contains("--features cuda") || message.contains("libcuda") || message.contains("CUDA"), "{message}");
        let o = tandem(&["devices", "--window-ms", "20"]);
        assert!(stdout(&o).contains(&format!("no GPU from cuda: {message}")), "{}", stdout(&o));
    }
}

#[test]
fn the_device_id_is_the_same_on_every_run() {
    assert_eq!(devices_json()["device"]["id"], devices_json()["device"]["id"]);
}

#[test]
fn devices_table_shows_processors_and_environment() {
    let o = tandem(&["devices", "--window-ms", "20"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("device "), "{out}");
    assert!(out.contains("processor") && out.contains("threads") && out.contains("cpu:0 "), "{out}");
    assert!(out.contains("environment:") && out.contains("load average") && out.contains("other processes"), "{out}");
    assert!(out.contains("  throttling        "), "{out}");
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn devices_help_has_examples() {
    let o = tandem(&["devices", "--help"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.lines().any(|l| l.trim_start().starts_with("tandem devices")), "{out}");
    assert!(out.contains("--json"), "{out}");
}

#[test]
fn devices_rejects_unknown_arguments() {
    let o = tandem(&["devices", "--window-ms", "soon"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

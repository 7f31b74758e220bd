//! Running the gpuworker binary against the simulated NVIDIA driver (tests/sim/, built by
//! build.rs into GPUWORKER_SIM_DIR and found through LD_LIBRARY_PATH like the real one).

use super::SMALL_LADDER;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const SIM_DIR: &str = env!("GPUWORKER_SIM_DIR");

/// `gpuworker transcode --json` of `segs` with `--scaler scaler`, the ladder (SMALL_LADDER
/// unless `args` give `--profiles`), extra `args` and environment `env` (LD_LIBRARY_PATH is
/// cleared unless given).
pub fn transcode(
    out: &Path,
    segs: &[PathBuf],
    scaler: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gpuworker"));
    c.args(["transcode", "-q", "--json", "--scaler", scaler, "--out"])
        .arg(out)
        .args(args);
    if !args.contains(&"--profiles") {
        c.args(["--profiles", SMALL_LADDER]);
    }
    c.args(segs).env_remove("LD_LIBRARY_PATH");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("gpuworker runs")
}

/// "decoder → encoder" of each transcoded segment, from `transcode`'s JSON.
pub fn stages(o: &Output) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("transcode --json");
    v["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| {
            format!(
                "{} → {}",
                s["decoder"].as_str().unwrap(),
                s["renditions"][0]["encoder"].as_str().unwrap()
            )
        })
        .collect()
}

/// The rendition files `<rendition>/<stem>.ts` under `out`, by rendition name.
pub fn renditions(out: &Path, stem: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let f = e.path().join(format!("{stem}.ts"));
            f.exists().then(|| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(f).unwrap(),
                )
            })
        })
        .collect();
    v.sort();
    v
}

/// Checks the simulated libraries' exit report (GPUWORKER_SIM_REPORT=1): nothing still held.
pub fn assert_released(stderr: &str) {
    for lib in ["libcuda", "libnvcuvid", "libnvidia-encode"] {
        let line = stderr
            .lines()
            .rfind(|l| l.starts_with(&format!("gpuworker-sim {lib}:")))
            .unwrap_or_else(|| panic!("no exit report from {lib}: {stderr}"));
        let held: Vec<&str> = line
            .split_whitespace()
            .filter(|w| w.contains('=') && !w.ends_with("=0"))
            .collect();
        assert!(
            held.is_empty(),
            "{lib} still holds {held:?} at exit: {stderr}"
        );
    }
}

//! NVDEC and NVENC end to end on the simulated driver (tests/sim/libnvcuvid.cpp and
//! libnvidia-encode.cpp over libavcodec, found through LD_LIBRARY_PATH): the whole GPU path
//! decode → kernels → encode with frames only in (simulated) device memory, each driver error
//! injected where it hurts, the NVENC session limit, and the probe. Every run ends with the
//! simulators' exit report: nothing may still be allocated, mapped or registered.

mod common;

use common::sim::{assert_released, renditions, stages, transcode, SIM_DIR};
use common::{frame_types, scratch, small_clip, SMALL_LADDER};
use std::path::Path;
use std::process::Command;

const GPU: [(&str, &str); 2] = [("LD_LIBRARY_PATH", SIM_DIR), ("GPUWORKER_SIM_REPORT", "1")];

fn psnr_y(source: &Path, rendition: &Path) -> f64 {
    let o = Command::new(env!("CARGO_BIN_EXE_gpuworker"))
        .args(["psnr", "--json"])
        .args([source, rendition])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    v["y"].as_f64().unwrap()
}

#[test]
fn the_whole_path_runs_on_the_device_nvdec_cuda_nvenc() {
    let dir = scratch("engines_full");
    let segs = small_clip(&dir.join("src"), 2, 1);
    let cpu = transcode(&dir.join("cpu"), &segs, "auto", &[], &[]);
    assert!(cpu.status.success());
    let gpu = transcode(&dir.join("gpu"), &segs, "cuda", &[], &GPU);
    let err = String::from_utf8_lossy(&gpu.stderr);
    assert!(gpu.status.success(), "{err}");
    assert_eq!(stages(&gpu), ["nvdec → nvenc"; 2]);
    assert_released(&err);
    for (i, stem) in ["seg0", "seg1"].iter().enumerate() {
        let names: Vec<String> = renditions(&dir.join("gpu"), stem)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["144p", "72p"]);
        for name in &names {
            let (c, g) = (
                dir.join("cpu").join(name).join(format!("{stem}.ts")),
                dir.join("gpu").join(name).join(format!("{stem}.ts")),
            );
            let (ct, gt) = (frame_types(&c), frame_types(&g));
            assert_eq!(gt.len(), ct.len(), "{stem} {name}: frame count");
            assert!(gt[0].1, "{stem} {name}: a segment starts with a keyframe");
            assert!(
                gt.iter().all(|(t, _)| t != "B"),
                "{stem} {name}: no B-frames"
            );
            // Real pictures went through: the rendition matches the source.
            let p = psnr_y(&segs[i], &g);
            assert!(p > 35.0, "{stem} {name}: PSNR {p:.2} dB");
        }
    }
}

#[test]
fn mp4_renditions_carry_nvenc_sequence_parameters() {
    let dir = scratch("engines_mp4");
    let segs = small_clip(&dir.join("src"), 1, 1);
    let ladder = r#"[{"name":"144p","width":256,"height":144,"bitrate":200000,"format":"mp4"}]"#;
    let o = transcode(
        &dir.join("out"),
        &segs,
        "cuda",
        &["--profiles", ladder],
        &GPU,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(stages(&o), ["nvdec → nvenc"]);
    let f = dir.join("out/144p/seg0.mp4");
    assert_eq!(
        frame_types(&f).len(),
        30,
        "every frame decodes from the MP4"
    );
    assert!(psnr_y(&segs[0], &f) > 35.0);
    assert_released(&err);
}

/// A one-rendition ladder, so that the n-th call of an entry point falls in a known segment.
const ONE: &str = r#"[{"name":"144p","width":256,"height":144,"bitrate":200000}]"#;

#[test]
fn injected_nvdec_and_nvenc_errors_fail_only_their_segment() {
    let dir = scratch("engines_errors");
    let segs = small_clip(&dir.join("src"), 3, 1);
    // Segments have 30 frames. NVENC encodes 30 pictures and an end-of-stream per segment, so
    // call 32 is seg1's first; the probe opens 32 sessions (no limit found) before the
    // rendition opens its own, call 33. NVDEC decodes and maps 30 pictures per segment.
    for (fail, expect, bad) in [
        (
            "cuvidDecodePicture:31:999",
            "cuvidDecodePicture failed",
            "seg1",
        ),
        (
            "cuvidMapVideoFrame64:31:700",
            "cuvidMapVideoFrame64 failed",
            "seg1",
        ),
        ("cuvidCreateDecoder:1:2", "out of memory", "seg0"),
        (
            "cuvidParseVideoData:40:1",
            "cuvidParseVideoData failed",
            "seg1",
        ),
        ("nvEncEncodePicture:32:5", "device does not exist", "seg1"),
        ("nvEncEncodePicture:33:8", "invalid parameter", "seg1"),
        ("nvEncOpenEncodeSessionEx:33:10", "session limit", "seg0"),
        (
            "nvEncRegisterResource:2:23",
            "resource register failed",
            "seg0",
        ),
        (
            "nvEncLockBitstream:45:20",
            "nvEncLockBitstream failed",
            "seg1",
        ),
    ] {
        let out = dir.join(fail.replace(':', "_"));
        let mut env = GPU.to_vec();
        env.push(("GPUWORKER_SIM_FAIL", fail));
        let o = transcode(&out, &segs, "cuda", &["--profiles", ONE], &env);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{fail}: {err}");
        assert!(err.contains(expect), "{fail}: {err}");
        assert!(!err.contains("panicked"), "{fail}: {err}");
        for stem in ["seg0", "seg1", "seg2"] {
            let n = renditions(&out, stem).len();
            if stem == bad {
                assert_eq!(n, 0, "{fail}: the failed {stem} left output");
            } else {
                assert_eq!(n, 1, "{fail}: {stem} should be unaffected: {err}");
            }
        }
        // The good segments still went through the GPU, and nothing leaked.
        assert!(stages(&o).iter().all(|s| s == "nvdec → nvenc"), "{fail}");
        assert_released(&err);
    }
}

#[test]
fn sessions_beyond_the_nvenc_limit_encode_on_the_cpu() {
    let dir = scratch("engines_limit");
    small_clip(&dir.join("src"), 2, 1);
    let report = dir.join("r.json");
    // 3 NVENC sessions allowed, 2 renditions per session: the first session gets NVENC, the
    // second would need 4 and encodes with libx264; nothing fails.
    let o = Command::new(env!("CARGO_BIN_EXE_gpuworker"))
        .args([
            "bench",
            "-q",
            "--offline",
            "--sessions",
            "2",
            "--stagger",
            "0",
        ])
        .args(["--device", "cuda:0", "--profiles", SMALL_LADDER, "--in"])
        .arg(dir.join("src"))
        .arg("--report")
        .arg(&report)
        .envs(GPU)
        .env("GPUWORKER_SIM_NVENC_SESSIONS", "3")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_released(&err);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let per = v["trials"][0]["per_segment"].as_array().unwrap();
    assert!(per.iter().all(|r| r["status"] == "ok"), "{v}");
    let mut encoders: Vec<String> = (0..2)
        .map(|k| {
            let e: std::collections::BTreeSet<_> = per
                .iter()
                .filter(|r| r["session"] == k)
                .map(|r| {
                    format!(
                        "{} → {}",
                        r["decoder"].as_str().unwrap(),
                        r["encoder"].as_str().unwrap()
                    )
                })
                .collect();
            assert_eq!(e.len(), 1, "session {k} switched encoders: {e:?}");
            e.into_iter().next().unwrap()
        })
        .collect();
    encoders.sort();
    assert_eq!(encoders, ["nvdec → libx264", "nvdec → nvenc"]);
}

#[test]
fn probe_reports_the_video_engines() {
    let probe = |env: &[(&str, &str)]| -> serde_json::Value {
        let o = Command::new(env!("CARGO_BIN_EXE_gpuworker"))
            .args(["probe", "--json"])
            .env("LD_LIBRARY_PATH", SIM_DIR)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["cuda"]["devices"][0].clone()
    };
    let d = probe(&[]);
    let e = &d["engines"];
    assert_eq!(e["nvdec"][0]["codec"], "h264", "{d}");
    assert_eq!(e["nvdec"][0]["max_width"], 4096, "{d}");
    assert_eq!(e["nvenc"], serde_json::json!(["h264"]), "{d}");
    assert_eq!(e["nvenc_session_limit"], serde_json::Value::Null, "{d}");
    assert_eq!(d["path"], "nvdec → cuda scale → nvenc");
    // An H100-like GPU: NVDEC but no NVENC, so sessions encode on the CPU.
    let d = probe(&[("GPUWORKER_SIM_NVENC", "none")]);
    assert_eq!(d["engines"]["nvenc"], serde_json::json!([]), "{d}");
    assert!(d["engines"]["nvenc_reason"]
        .as_str()
        .unwrap()
        .contains("no encode device"));
    assert_eq!(d["path"], "nvdec → cuda scale → cpu encode (libx264)");
    // A consumer card: the session limit is found by opening sessions.
    let d = probe(&[("GPUWORKER_SIM_NVENC_SESSIONS", "5")]);
    assert_eq!(d["engines"]["nvenc_session_limit"], 5, "{d}");
}

//! NVDEC and NVENC end to end on the simulated driver (tests/sim/libnvcuvid.cpp and
//! libnvidia-encode.cpp over libavcodec, found through LD_LIBRARY_PATH): the whole GPU path
//! decode → kernels → encode with frames only in (simulated) device memory, each driver error
//! injected where it hurts, the NVENC session limit, and the probe. Every run ends with the
//! simulators' exit report: nothing may still be allocated, mapped or registered.

mod common;

use common::net::{free_port, orchestrator, outcomes, Proc};
use common::sim::{assert_released, renditions, stages, transcode, SIM_DIR};
use common::{frame_types, make_clip, scratch, small_clip, SMALL_LADDER};
use std::path::Path;
use std::process::{Command, Output};

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
    // With MPEG-7 signatures: on the GPU they are taken from each NVENC input frame's luma,
    // read back from device memory.
    let cpu = transcode(&dir.join("cpu"), &segs, "auto", &["--signatures"], &[]);
    assert!(cpu.status.success());
    let gpu = transcode(&dir.join("gpu"), &segs, "cuda", &["--signatures"], &GPU);
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
            // The scalers are bit-exact, so the frames signed are the same.
            let sig =
                |d: &str| std::fs::read(dir.join(d).join(name).join(format!("{stem}.ts.bin")));
            assert_eq!(
                sig("gpu").unwrap(),
                sig("cpu").unwrap(),
                "{stem} {name}: signature"
            );
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

#[test]
fn hevc_sources_decode_on_nvdec_too() {
    let dir = scratch("engines_hevc");
    let src = dir.join("src/seg0.ts");
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    let x265 = ["-c:v", "libx265", "-x265-params", "log-level=error"];
    make_clip(&src, "256x144", 30, 1.0, 30, &x265);
    let segs = [src];
    let cpu = transcode(&dir.join("cpu"), &segs, "auto", &[], &[]);
    assert!(cpu.status.success());
    // NVDEC decodes HEVC bit-exactly, so with the CPU encoder the renditions are the CPU's.
    let mut env = GPU.to_vec();
    env.push(("GPUWORKER_SIM_NVENC", "none"));
    let gpu = transcode(&dir.join("gpu"), &segs, "cuda", &[], &env);
    let err = String::from_utf8_lossy(&gpu.stderr);
    assert!(gpu.status.success(), "{err}");
    assert_eq!(stages(&gpu), ["nvdec → libx264"]);
    assert_eq!(
        renditions(&dir.join("cpu"), "seg0"),
        renditions(&dir.join("gpu"), "seg0")
    );
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
        // With the driver's own words (nvEncGetLastErrorString).
        (
            "nvEncEncodePicture:33:8",
            "invalid parameter (8): simulated failure of nvEncEncodePicture",
            "seg1",
        ),
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

/// `bench --offline --sessions 2` on the simulated GPU with `ladder` and one extra variable;
/// the process output and the JSON report.
fn bench_two_sessions(dir: &Path, ladder: &str, var: (&str, &str)) -> (Output, serde_json::Value) {
    let report = dir.join("r.json");
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
        .args(["--device", "cuda:0", "--profiles", ladder, "--in"])
        .arg(dir.join("src"))
        .arg("--report")
        .arg(&report)
        .envs(GPU)
        .env(var.0, var.1)
        .output()
        .unwrap();
    let v = std::fs::read(&report)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&o.stderr)));
    (o, v)
}

#[test]
fn sessions_beyond_the_nvenc_limit_encode_on_the_cpu() {
    let dir = scratch("engines_limit");
    small_clip(&dir.join("src"), 2, 1);
    // 3 NVENC sessions allowed, 2 renditions per session: the first session gets NVENC, the
    // second would need 4 and encodes with libx264; nothing fails.
    let (o, v) = bench_two_sessions(&dir, SMALL_LADDER, ("GPUWORKER_SIM_NVENC_SESSIONS", "3"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_released(&err);
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

/// `probe --json`'s first GPU on the simulated driver with `env`.
fn probe(env: &[(&str, &str)]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_gpuworker"))
        .args(["probe", "--json"])
        .env("LD_LIBRARY_PATH", SIM_DIR)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["cuda"]["devices"][0].clone()
}

/// The GPU path on the simulated profile of each card operators run (tests/sim/sim_common.h):
/// the kernel image each loads, the path its sessions take (H100: no NVENC), renditions that
/// match the source, and nothing left allocated.
#[test]
fn every_card_profile_runs_its_path() {
    let dir = scratch("engines_cards");
    let segs = small_clip(&dir.join("src"), 1, 1);
    for (card, kernel, stage) in [
        ("t4", "cubin sm_75", "nvdec → nvenc"),
        ("l4", "cubin sm_89", "nvdec → nvenc"),
        ("rtx4090", "cubin sm_89", "nvdec → nvenc"),
        ("h100", "cubin sm_90", "nvdec → libx264"),
        ("rtx5090", "cubin sm_120", "nvdec → nvenc"),
    ] {
        let mut env = GPU.to_vec();
        env.push(("GPUWORKER_SIM_CARD", card));
        let d = probe(&env);
        assert_eq!(d["engines"]["kernel"], kernel, "{card}: {d}");
        let out = dir.join(card);
        let o = transcode(&out, &segs, "cuda", &["--profiles", ONE], &env);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{card}: {err}");
        assert_eq!(stages(&o), [stage], "{card}");
        assert_released(&err);
        let p = psnr_y(&segs[0], &out.join("144p").join("seg0.ts"));
        assert!(p > 35.0, "{card}: PSNR {p:.2} dB");
    }
}

/// real-gpu-rules.md R2: a device loads a cubin of its own major version (minor not above
/// its own), else the embedded PTX if its driver knows the PTX ISA version, else nothing
/// (no NVRTC here): then it takes no sessions, and they run on the CPU.
#[test]
fn each_gpu_loads_a_kernel_image_that_fits_it_or_takes_no_sessions() {
    for (sm, driver, kernel) in [
        ("70", "12090", "cubin sm_70"),                               // V100
        ("80", "12090", "cubin sm_80"),                               // A100
        ("86", "12020", "cubin sm_86"),                               // A10 on an R535 driver
        ("103", "12080", "cubin sm_100"), // B300 on R570: the 10.0 cubin
        ("130", "12090", "PTX compute_120 (compiled by the driver)"), // a later GPU
    ] {
        let d = probe(&[("GPUWORKER_SIM_SM", sm), ("GPUWORKER_SIM_DRIVER", driver)]);
        assert_eq!(
            d["engines"]["kernel"], kernel,
            "sm_{sm} driver {driver}: {d}"
        );
    }
    // A later GPU on a driver older than the PTX (8.8 needs CUDA 12.9): nothing loads.
    let env = [
        ("LD_LIBRARY_PATH", SIM_DIR),
        ("GPUWORKER_SIM_SM", "130"),
        ("GPUWORKER_SIM_DRIVER", "12080"),
    ];
    let d = probe(&env);
    let why = d["engines"]["kernel_reason"].as_str().unwrap_or_default();
    assert!(why.starts_with("cuda: not available"), "{d}");
    assert!(why.contains("UNSUPPORTED_PTX_VERSION"), "{why}");
    assert!(d["path"].as_str().unwrap().starts_with("on the CPU"), "{d}");
    let dir = scratch("engines_no_image");
    let segs = small_clip(&dir.join("src"), 1, 1);
    let o = transcode(&dir.join("out"), &segs, "cuda", &["--profiles", ONE], &env);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("GPU 0 is not used"), "{err}");
    assert_eq!(stages(&o), ["libavcodec → libx264"]);
}

#[test]
fn probe_reports_the_video_engines() {
    let d = probe(&[]);
    let e = &d["engines"];
    assert_eq!(e["nvdec"][0]["codec"], "h264", "{d}");
    assert_eq!(e["nvdec"][0]["max_width"], 4096, "{d}");
    assert_eq!(e["nvenc"], serde_json::json!(["h264", "hevc"]), "{d}");
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
    // A driver newer than our headers (R570 speaks NVENC API 13.0) serves our 11.1 calls.
    let d = probe(&[("GPUWORKER_SIM_NVENC_API", "13.0")]);
    assert_eq!(
        d["engines"]["nvenc"],
        serde_json::json!(["h264", "hevc"]),
        "{d}"
    );
    // A GeForce driver counts the cap across processes: with 6 of 8 sessions held by another
    // program (the lock files the simulated driver keeps per session), 2 are left.
    let system = scratch("engines_system_cap");
    let held: Vec<std::fs::File> = (0..6)
        .map(|i| {
            let f = std::fs::File::create(system.join(format!("slot{i}"))).unwrap();
            f.try_lock().expect("slot free");
            f
        })
        .collect();
    let dir = system.to_str().unwrap();
    let sessions = [
        ("GPUWORKER_SIM_NVENC_SESSIONS", "8"),
        ("GPUWORKER_SIM_NVENC_SYSTEM", dir),
    ];
    let d = probe(&sessions);
    assert_eq!(d["engines"]["nvenc_session_limit"], 2, "{d}");
    drop(held);
    let d = probe(&sessions);
    assert_eq!(d["engines"]["nvenc_session_limit"], 8, "{d}");
}

/// real-gpu-rules.md R4: a GeForce driver caps NVENC sessions across all processes, so a
/// rendition can be refused a session that the probe found room for (OBS or a second worker
/// took it meanwhile). The rendition then encodes on the CPU, from the GPU's scaled frames,
/// for the rest of the session instead of failing segment after segment; and the handle the
/// refused open handed back is destroyed (the simulator's exit report counts it otherwise).
#[test]
fn a_rendition_refused_an_nvenc_session_at_run_time_encodes_on_the_cpu() {
    let dir = scratch("engines_refused");
    let segs = small_clip(&dir.join("src"), 3, 1);
    let args = ["--profiles", ONE, "--signatures"];
    let cpu = transcode(&dir.join("cpu"), &segs, "auto", &args, &[]);
    assert!(cpu.status.success());
    // The probe opens up to 32 sessions; the 33rd open is the rendition's. 10 and 21 are
    // what drivers answer at the cap (NV_ENC_ERR_OUT_OF_MEMORY, ..._INCOMPATIBLE_CLIENT_KEY).
    for code in ["10", "21"] {
        let out = dir.join(format!("gpu{code}"));
        let fail = format!("nvEncOpenEncodeSessionEx:33:{code}");
        let mut env = GPU.to_vec();
        env.push(("GPUWORKER_SIM_FAIL", &fail));
        let o = transcode(&out, &segs, "cuda", &args, &env);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{fail}: {err}");
        assert!(err.contains("NVENC refused a session"), "{err}");
        assert_eq!(stages(&o), ["nvdec → libx264"; 3], "{fail}");
        assert_released(&err);
        for stem in ["seg0", "seg1", "seg2"] {
            let file = |d: &Path, ext: &str| d.join("144p").join(format!("{stem}.ts{ext}"));
            assert_eq!(
                frame_types(&file(&out, "")).len(),
                frame_types(&file(&dir.join("cpu"), "")).len()
            );
            // The scaled frames downloaded for x264 are the CPU scaler's, bit for bit.
            assert_eq!(
                std::fs::read(file(&out, ".bin")).unwrap(),
                std::fs::read(file(&dir.join("cpu"), ".bin")).unwrap(),
                "{stem} signature"
            );
        }
    }
}

#[test]
fn the_simulated_nvenc_rejects_wrong_struct_versions() {
    use gpuworker::backend::cuda::nvenc::{result::struct_version, sys};
    type Create = unsafe extern "C" fn(*mut sys::NV_ENCODE_API_FUNCTION_LIST) -> sys::NVENCSTATUS;
    let path = Path::new(SIM_DIR).join("libnvidia-encode.so.1");
    // SAFETY: the simulated library has no initialiser with effects beyond its own state, and
    // NvEncodeAPICreateInstance has this signature (nvEncodeAPI.h).
    unsafe {
        let lib = libloading::Library::new(&path).unwrap();
        let create: libloading::Symbol<Create> = lib.get(b"NvEncodeAPICreateInstance").unwrap();
        let mut fns = sys::NV_ENCODE_API_FUNCTION_LIST {
            version: struct_version(1),
            ..Default::default()
        };
        assert_eq!(create(&mut fns), sys::NV_ENC_ERR_INVALID_VERSION);
        fns.version = struct_version(2);
        assert_eq!(create(&mut fns), sys::NV_ENC_SUCCESS);
        let open = fns.nvEncOpenEncodeSessionEx.unwrap();
        let mut p = sys::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS {
            version: struct_version(2),
            deviceType: sys::NV_ENC_DEVICE_TYPE_CUDA,
            apiVersion: gpuworker::backend::cuda::nvenc::result::API_VERSION,
            ..Default::default()
        };
        let mut enc = std::ptr::null_mut();
        assert_eq!(open(&mut p, &mut enc), sys::NV_ENC_ERR_INVALID_VERSION);
        p.version = struct_version(1);
        // Right version, but no CUDA context: refused as an invalid device.
        assert_eq!(open(&mut p, &mut enc), sys::NV_ENC_ERR_INVALID_DEVICE);
    }
}

#[test]
fn a_device_error_in_one_session_leaves_the_others_serving() {
    let dir = scratch("engines_others");
    small_clip(&dir.join("src"), 3, 1);
    // Two sessions of one rendition each, three segments each: 6 × (30 pictures + end of
    // stream) NVENC calls; call 40 is in some session's second segment. The device is "lost"
    // for that one call.
    let (o, v) = bench_two_sessions(&dir, ONE, ("GPUWORKER_SIM_FAIL", "nvEncEncodePicture:40:5"));
    assert_released(&String::from_utf8_lossy(&o.stderr));
    let per = v["trials"][0]["per_segment"].as_array().unwrap();
    assert_eq!(per.len(), 6, "{v}");
    let failed: Vec<_> = per.iter().filter(|r| r["status"] != "ok").collect();
    assert_eq!(failed.len(), 1, "{v}");
    assert_eq!(failed[0]["status"], "error");
    assert!(failed[0]["error"]
        .as_str()
        .unwrap()
        .contains("device does not exist"));
    // Every other segment of both sessions went through the GPU.
    assert!(per
        .iter()
        .filter(|r| r["status"] == "ok")
        .all(|r| r["decoder"] == "nvdec" && r["encoder"] == "nvenc"));
}

#[test]
fn hevc_renditions_encode_on_nvenc_and_the_gpu_worker_claims_hevc() {
    let dir = scratch("engines_hevc_out");
    let segs = small_clip(&dir.join("src"), 1, 1);
    let ladder = r#"[{"name":"hevc","width":256,"height":144,"bitrate":200000,"encoder":"HEVC","gop":"1"},
                     {"name":"avc","width":128,"height":72,"bitrate":100000}]"#;
    let gpu = transcode(
        &dir.join("gpu"),
        &segs,
        "cuda",
        &["--profiles", ladder],
        &GPU,
    );
    let err = String::from_utf8_lossy(&gpu.stderr);
    assert!(gpu.status.success(), "{err}");
    assert_eq!(stages(&gpu), ["nvdec → nvenc"]);
    assert_released(&err);
    let hevc = dir.join("gpu/hevc/seg0.ts");
    assert_eq!(common::probe_video(&hevc, "stream", "codec_name"), "hevc");
    let types = frame_types(&hevc);
    assert_eq!(types.len(), 30);
    assert!(types[0].1, "an IDR first");
    let p = psnr_y(&segs[0], &hevc);
    assert!(p > 35.0, "HEVC from NVENC: PSNR {p:.2} dB");

    // The start-up test on the (simulated) GPU passes HEVC decode and encode: both claimed.
    let port = free_port();
    let mut orch = orchestrator(port, &dir.join("src"), &dir.join("got"), &[]);
    let addr = format!("-orchAddr=127.0.0.1:{port}");
    let work = format!("-datadir={}", dir.join("work").display());
    let mut t = Proc::start_env(
        &[
            "-transcoder",
            &addr,
            "-orchSecret=s3cret",
            "-nvidia=0",
            &work,
        ],
        &GPU,
    );
    assert_eq!(orch.wait(120), Some(0), "{}\n{}", orch.stderr(), t.stderr());
    assert!(outcomes(&orch).iter().all(|o| o["status"] == "ok"));
    let reg = orch.stderr();
    let line = reg
        .lines()
        .find(|l| l.contains("registered (capacity"))
        .unwrap();
    for c in ["15", "16", "14", "26"] {
        assert!(
            line.split(['[', ']', ',', ' ']).any(|x| x == c),
            "capability {c}: {line}\n{}",
            t.stderr()
        );
    }
    assert!(t.stderr().contains("HEVC encode (16)") && t.stderr().contains("ok nvdec → nvenc"));
    t.signal("-TERM");
    assert_eq!(t.wait(20), Some(0));
}

/// real-gpu-rules.md R3: a decoder kept from one segment is reused for the next only if it
/// has the surfaces the new sequence needs. Two segments of one size, the second with more
/// reference frames and B-frames (a larger DPB): the simulated parser cycles through the
/// surfaces the sequence callback asked for, and a decoder made for the first segment has too
/// few of them. And R7: pictures held back by the display delay all come out by the end.
#[test]
fn a_stream_that_needs_more_decode_surfaces_gets_a_new_decoder() {
    let dir = scratch("engines_dpb");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let segs = [
        src.join("seg0.ts"),
        src.join("seg1.ts"),
        src.join("seg2.ts"),
    ];
    make_clip(
        &segs[0],
        "256x144",
        25,
        1.0,
        25,
        &["-x264-params", "ref=1:bframes=0"],
    );
    make_clip(
        &segs[1],
        "256x144",
        25,
        1.0,
        25,
        &["-x264-params", "ref=6:bframes=3"],
    );
    std::fs::copy(&segs[1], &segs[2]).unwrap();
    let o = transcode(&dir.join("out"), &segs, "cuda", &["--profiles", ONE], &GPU);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(stages(&o), ["nvdec → nvenc"; 3]);
    assert_released(&err);
    for (i, seg) in segs.iter().enumerate() {
        let out = dir.join("out").join("144p").join(format!("seg{i}.ts"));
        assert_eq!(
            frame_types(&out).len(),
            25,
            "seg{i}: every picture displayed"
        );
        let p = psnr_y(seg, &out);
        assert!(p > 35.0, "seg{i}: PSNR {p:.2} dB");
    }
}

/// real-gpu-rules.md R12: a picture NVDEC reports as not decoded (cuvidGetDecodeStatus)
/// fails its segment instead of passing garbage on; the next segment is unaffected.
#[test]
fn a_picture_nvdec_failed_to_decode_fails_its_segment() {
    let dir = scratch("engines_corrupt");
    let segs = small_clip(&dir.join("src"), 2, 1);
    let mut env = GPU.to_vec();
    env.push(("GPUWORKER_SIM_CORRUPT", "3"));
    let o = transcode(&dir.join("out"), &segs, "cuda", &["--profiles", ONE], &env);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("could not decode the picture"), "{err}");
    assert_eq!(renditions(&dir.join("out"), "seg0").len(), 0);
    assert_eq!(renditions(&dir.join("out"), "seg1").len(), 1);
    assert_released(&err);
}

/// `transcode` returns only after every stage of its session dropped its codecs, device
/// memory, streams and NVENC sessions (`Session::close`), so the simulators' exit report finds
/// nothing held. With ten runs at once loading the machine, a process that exited as soon as
/// its last segment settled left some behind in about half of these tests.
#[test]
fn transcode_exits_after_every_stage_let_go_even_under_load() {
    let dir = scratch("engines_teardown");
    let segs = small_clip(&dir.join("src"), 2, 1);
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..10)
            .map(|i| {
                let (dir, segs) = (&dir, &segs);
                s.spawn(move || {
                    let out = dir.join(format!("run{i}"));
                    // Half of them with NVENC refused (x264 from downloaded device frames).
                    let mut env = GPU.to_vec();
                    if i % 2 == 1 {
                        env.push(("GPUWORKER_SIM_FAIL", "nvEncOpenEncodeSessionEx:33:10"));
                    }
                    transcode(&out, segs, "cuda", &["--signatures"], &env)
                })
            })
            .collect();
        for r in runs {
            let o = r.join().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{err}");
            assert_released(&err);
        }
    });
}

//! The `cuda` scale stage end to end on a simulated driver (tests/sim/libcuda.cpp, found
//! through LD_LIBRARY_PATH like the real one): cudarc loads it, the embedded cubin is loaded,
//! every launch runs the kernel's CPU twin. With the CPU encoder (a GPU without NVENC) the
//! renditions must be byte-identical to the CPU backend's, whether NVDEC or libavcodec
//! decodes, and each injected driver error must fail only its own segment. NVDEC and NVENC
//! themselves are tested in tests/video_engines_sim.rs.

mod common;

use common::sim::{renditions, stages, transcode, SIM_DIR};
use common::{scratch, small_clip, SMALL_LADDER};
use std::process::Command;

#[test]
fn cuda_scaling_on_the_simulated_driver_equals_the_cpu_backend_byte_for_byte() {
    let dir = scratch("cuda_sim_equal");
    let segs = small_clip(&dir.join("src"), 2, 1);
    let cpu = transcode(&dir.join("cpu"), &segs, "auto", &[], &[]);
    assert!(
        cpu.status.success(),
        "{}",
        String::from_utf8_lossy(&cpu.stderr)
    );
    assert_eq!(stages(&cpu), ["libavcodec → libx264"; 2]);
    // A GPU without NVENC (H100, H200, A100): NVDEC → CUDA scale → libx264, chosen by itself;
    // and the same with the CPU decoder.
    let no_nvenc = [
        ("LD_LIBRARY_PATH", SIM_DIR),
        ("GPUWORKER_SIM_NVENC", "none"),
    ];
    for (name, args, expect) in [
        ("nvdec", &[][..], "nvdec → libx264"),
        ("cpudec", &["--no-nvdec"][..], "libavcodec → libx264"),
    ] {
        let gpu = transcode(&dir.join(name), &segs, "cuda", args, &no_nvenc);
        assert!(
            gpu.status.success(),
            "{}",
            String::from_utf8_lossy(&gpu.stderr)
        );
        assert_eq!(stages(&gpu), [expect; 2]);
        for stem in ["seg0", "seg1"] {
            let (a, b) = (
                renditions(&dir.join("cpu"), stem),
                renditions(&dir.join(name), stem),
            );
            assert_eq!(a.len(), 2, "the test ladder has two renditions");
            for ((rendition, x), (_, y)) in a.iter().zip(&b) {
                assert!(
                    x == y,
                    "{name} {stem} {rendition}: cuda and cpu renditions differ"
                );
            }
        }
    }
}

#[test]
fn converted_sources_scale_on_the_gpu_exactly_as_on_the_cpu() {
    // 10-bit 4:2:2: decoded by libavcodec and converted to 8-bit 4:2:0 on the CPU in both
    // sessions; the GPU session scales the converted frame with the bit-exact kernel.
    let dir = scratch("cuda_sim_converted");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let seg = dir.join("src/seg0.ts");
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=30",
        "-t",
        "1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv422p10le",
        seg.to_str().unwrap(),
    ]);
    let segs = [seg];
    let cpu = transcode(&dir.join("cpu"), &segs, "auto", &[], &[]);
    assert!(
        cpu.status.success(),
        "{}",
        String::from_utf8_lossy(&cpu.stderr)
    );
    let env = [
        ("LD_LIBRARY_PATH", SIM_DIR),
        ("GPUWORKER_SIM_NVENC", "none"),
    ];
    let gpu = transcode(&dir.join("gpu"), &segs, "cuda", &[], &env);
    assert!(
        gpu.status.success(),
        "{}",
        String::from_utf8_lossy(&gpu.stderr)
    );
    assert_eq!(stages(&gpu), ["libavcodec → libx264"]);
    let (a, b) = (
        renditions(&dir.join("cpu"), "seg0"),
        renditions(&dir.join("gpu"), "seg0"),
    );
    assert_eq!(a.len(), 2);
    for ((rendition, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{rendition}: cuda and cpu renditions differ");
    }
}

#[test]
fn injected_driver_errors_fail_only_their_segment() {
    let dir = scratch("cuda_sim_errors");
    let segs = small_clip(&dir.join("src"), 3, 1);
    // seg0 has 30 frames of two launches each (the vertical and horizontal passes): launch 61
    // is seg1's first, and with 4 downloads per frame (Y and UV of 2 renditions) download 122
    // is in seg1's first frame. After the failure the stage
    // is set up afresh for seg2.
    for (fail, expect) in [
        ("cuLaunchKernel:61:700", "launch"),
        ("cuMemcpyDtoHAsync_v2:122:700", "download"),
    ] {
        let out = dir.join(fail.replace(':', "_"));
        let o = transcode(
            &out,
            &segs,
            "cuda",
            &[],
            &[
                ("LD_LIBRARY_PATH", SIM_DIR),
                ("GPUWORKER_SIM_FAIL", fail),
                ("GPUWORKER_SIM_NVENC", "none"),
            ],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{fail}: {err}");
        assert!(
            err.contains("error: cuda:") && err.contains(expect),
            "{fail}: {err}"
        );
        assert!(!err.contains("panicked"), "{fail}: {err}");
        assert_eq!(
            renditions(&out, "seg0").len(),
            2,
            "{fail}: seg0 before the error"
        );
        assert!(
            renditions(&out, "seg1").is_empty(),
            "{fail}: the failed segment left output"
        );
        assert_eq!(
            renditions(&out, "seg2").len(),
            2,
            "{fail}: seg2 after the error"
        );
    }
    // Out of device memory while setting up: that segment fails, the next ones set up again.
    let out = dir.join("oom");
    let o = transcode(
        &out,
        &segs,
        "cuda",
        &[],
        &[
            ("LD_LIBRARY_PATH", SIM_DIR),
            ("GPUWORKER_SIM_FAIL", "cuMemAlloc_v2:1:2"),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("out of device memory"), "{err}");
    assert!(renditions(&out, "seg0").is_empty());
    assert_eq!(renditions(&out, "seg1").len(), 2, "{err}");
}

#[test]
fn no_driver_means_not_available_not_a_panic() {
    let dir = scratch("cuda_sim_none");
    let segs = small_clip(&dir.join("src"), 1, 1);
    let o = transcode(&dir.join("out"), &segs, "cuda", &[], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not available: libcuda.so.1 not found"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn probe_reports_the_simulated_gpu() {
    let o = Command::new(env!("CARGO_BIN_EXE_gpuworker"))
        .args(["probe", "--json"])
        .env("LD_LIBRARY_PATH", SIM_DIR)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cuda = &v["cuda"];
    assert_eq!(cuda["available"], true, "{v}");
    assert_eq!(cuda["devices"][0]["compute_capability"], "9.0");
    assert!(cuda["devices"][0]["memory_mib"].as_u64().unwrap() > 0);
}

#[test]
fn gpu_check_runs_and_compares_on_the_simulated_driver() {
    let dir = scratch("cuda_sim_gpu_check");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gpu-check");
    let args = [
        "--size",
        "256x144",
        "--segments",
        "2",
        "--profiles",
        SMALL_LADDER,
        // The simulated NVENC is libx264 with no lookahead (one frame in, one out), a few dB
        // below the CPU encoder on this tiny clip; on a GPU the default (1 dB) applies.
        "--psnr-tolerance",
        "8",
        "--max-sessions",
        "2",
        "--diffuse-size",
        "64x64",
        "--work",
    ];
    let run = |env: &[(&str, &str)]| {
        let mut c = Command::new("bash");
        c.arg(script)
            .args(args)
            .arg(&dir)
            .env("GPUWORKER_BIN", env!("CARGO_BIN_EXE_gpuworker"));
        c.env_remove("LD_LIBRARY_PATH");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = run(&[("LD_LIBRARY_PATH", SIM_DIR)]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(out.matches(" identical ").count(), 4, "{out}");
    for run in [
        "cpu         libavcodec → libx264",
        "cuda-scale  nvdec → libx264",
        "gpu         nvdec → nvenc",
    ] {
        assert!(out.contains(run), "{run}: {out}");
    }
    // Every rendition has a gpu PSNR and a difference to cpu's within the tolerance.
    let rows: Vec<&str> = out.lines().filter(|l| l.contains(" identical ")).collect();
    assert!(
        rows.iter().all(|l| l.split_whitespace().count() == 6),
        "{out}"
    );
    assert!(
        out.contains("gpu-check: OK") && out.contains("media s/s"),
        "{out}"
    );
    // The bring-up facts: the driver's CUDA version and the kernel image the GPU loads.
    assert!(
        out.contains("driver: CUDA 12.9") && out.contains("kernel: cubin sm_90"),
        "{out}"
    );
    // The AI stage: the same bytes whether the frames were scaled on the CPU or the GPU.
    assert!(
        out.contains("diffuse seg0.ts: cpu and cuda-scale identical"),
        "{out}"
    );
    // A row per GPU and session count, each real-time or not.
    for n in [1, 2] {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["0", &n.to_string()]))
            .unwrap_or_else(|| panic!("no row for {n} sessions: {out}"));
        assert!(row.ends_with('x'), "{row}");
    }
    // Without a driver: a clear "no usable CUDA device", exit 2.
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no usable CUDA device"));
}

#[test]
fn bench_places_sessions_on_the_least_loaded_gpu() {
    let dir = scratch("cuda_sim_placement");
    small_clip(&dir.join("src"), 2, 1);
    let report = dir.join("r.json");
    let o = Command::new(env!("CARGO_BIN_EXE_gpuworker"))
        .args([
            "bench",
            "-q",
            "--offline",
            "--sessions",
            "3",
            "--stagger",
            "0",
            "--device",
            "all",
        ])
        .args(["--profiles", SMALL_LADDER, "--in"])
        .arg(dir.join("src"))
        .arg("--report")
        .arg(&report)
        .env("LD_LIBRARY_PATH", SIM_DIR)
        .env("GPUWORKER_SIM_DEVICES", "2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let per = v["trials"][0]["per_segment"].as_array().unwrap();
    assert!(per.iter().all(|r| r["status"] == "ok"), "{v}");
    // Each session stays on one device; three sessions over two devices: 2 + 1.
    let mut per_device = std::collections::BTreeMap::new();
    for k in 0..3 {
        let devices: std::collections::BTreeSet<_> = per
            .iter()
            .filter(|r| r["session"] == k)
            .map(|r| r["device"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(devices.len(), 1, "session {k} moved: {devices:?}");
        *per_device
            .entry(devices.into_iter().next().unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(
        per_device.into_iter().collect::<Vec<_>>(),
        [("cuda:0".into(), 2), ("cuda:1".into(), 1)]
    );
}

/// Runs the ignored test `name` of this binary in a child process on the simulated driver
/// (LD_LIBRARY_PATH must be set before the driver is loaded) with its exit report; the
/// child's stderr.
fn on_simulated_driver(name: &str) -> String {
    let o = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("LD_LIBRARY_PATH", SIM_DIR)
        .env("GPUWORKER_SIM_REPORT", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{name}: {out}");
    assert!(out.contains("1 passed"), "{name} did not run: {out}");
    out
}

/// real-gpu-rules.md R1 and R5: NVENC input frames are cuMemAlloc memory (the simulated
/// driver, like the real one, offers memory pools, and its NVENC refuses pool memory), and
/// they are freed with their context bound on whichever thread drops them last; a pool
/// thread that never bound a context included (the simulated cuMemFree needs one, as the
/// real driver does, and the exit report shows a leak otherwise).
#[test]
fn device_frames_are_plain_allocations_freed_with_their_context_on_any_thread() {
    let out = on_simulated_driver("child_device_frame_dropped_on_a_fresh_thread");
    assert!(
        out.contains("gpuworker-sim libcuda: live allocations=0"),
        "{out}"
    );
}

#[test]
#[ignore = "run by device_frames_are_plain_allocations_freed_with_their_context_on_any_thread"]
fn child_device_frame_dropped_on_a_fresh_thread() {
    use gpuworker::backend::cuda::frame::{alloc_nv12, device_planes};
    let ctx = cudarc::driver::CudaContext::new(0).unwrap();
    let frames: Vec<_> = (0..3).map(|_| alloc_nv12(&ctx, 64, 36).unwrap()).collect();
    let p = device_planes(&frames[0]).unwrap();
    assert_eq!(p.pitch_y % 256, 0);
    // The memory is not from the pool: the simulated NVENC would refuse it.
    assert!(pool_memory(p.y) == 0, "a stream-ordered allocation");
    drop(ctx);
    std::thread::spawn(move || drop(frames)).join().unwrap();
}

/// Asks the simulated driver whether `p` is stream-ordered (pool) memory.
fn pool_memory(p: u64) -> i32 {
    let lib = std::path::Path::new(SIM_DIR).join("libcuda.so.1");
    // SAFETY: the simulated libcuda exports this query (tests/sim/libcuda.cpp); it reads the
    // simulator's allocation table only. The library is the one already loaded.
    unsafe {
        let lib = libloading::Library::new(lib).unwrap();
        let f: libloading::Symbol<unsafe extern "C" fn(u64) -> i32> =
            lib.get(b"gpuworker_sim_is_pool_memory").unwrap();
        f(p)
    }
}

/// real-gpu-rules.md R13: a container started without the `video` driver capability has
/// libcuda but neither libnvcuvid nor libnvidia-encode; `probe` says why and what to set,
/// and the GPU still scales (decode and encode on the CPU). It also reports the driver's CUDA
/// version.
#[test]
fn probe_explains_a_container_without_the_video_capability() {
    let dir = scratch("cuda_sim_no_video");
    for name in ["libcuda.so.1", "libcuda.so"] {
        let _ = std::fs::remove_file(dir.join(name));
        std::os::unix::fs::symlink(std::path::Path::new(SIM_DIR).join(name), dir.join(name))
            .unwrap();
    }
    let probe = |env: &[(&str, &str)]| -> serde_json::Value {
        let o = Command::new(env!("CARGO_BIN_EXE_gpuworker"))
            .args(["probe", "--json"])
            .env_remove("NVIDIA_DRIVER_CAPABILITIES")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["cuda"].clone()
    };
    let lib = dir.to_str().unwrap();
    let g = probe(&[
        ("LD_LIBRARY_PATH", lib),
        ("NVIDIA_DRIVER_CAPABILITIES", "compute,utility"),
        ("GPUWORKER_SIM_DRIVER", "12080"),
    ]);
    let why = g["video_libraries"].as_str().unwrap_or_default();
    assert!(
        why.contains("includes 'video'") && why.contains("'compute,utility'"),
        "{g}"
    );
    assert_eq!(g["driver_cuda"], "12.8", "{g}");
    assert_eq!(
        g["devices"][0]["path"], "cpu decode → cuda scale → cpu encode (libx264)",
        "{g}"
    );
    // With the video libraries there is nothing to explain.
    let g = probe(&[("LD_LIBRARY_PATH", SIM_DIR)]);
    assert_eq!(g["video_libraries"], serde_json::Value::Null, "{g}");
    assert_eq!(g["driver_cuda"], "12.9", "{g}");
}

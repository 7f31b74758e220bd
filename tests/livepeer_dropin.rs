//! `gpuworker -transcoder ...` as a drop-in for `livepeer -transcoder`, against
//! `gpuworker test-orchestrator` playing go-livepeer's orchestrator and gateway rules
//! (../shared/reference/go-livepeer-dropin.md): go's command line, capabilities found by the
//! start-up test, HTTP-push jobs (segment slicing, 26) and verification jobs (MPEG-7
//! signatures, 14), the version a gateway's minimum compares, lpms's error texts, a failed
//! segment freeing its slot, downloads from storage that a pinned certificate does not
//! cover, the go-livepeer metric names and the renditions' metadata. Real processes on
//! loopback.

mod common;

use common::net::{free_port, http_get, orchestrator, outcomes, playlist, Proc};
use common::{ffmpeg, frame_types, make_clip, probe_video, scratch, small_clip};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `gpuworker` with go-livepeer's flags: `-transcoder -orchAddr=... -orchSecret=...`.
fn go_transcoder(port: u16, work: &Path, extra: &[&str]) -> Proc {
    let addr = format!("-orchAddr=127.0.0.1:{port}");
    let datadir = format!("-datadir={}", work.display());
    let mut args = vec!["-transcoder", &addr, "-orchSecret", "s3cret", &datadir];
    args.extend_from_slice(extra);
    Proc::start(&args)
}

/// The capabilities and version a transcoder registered with, from the orchestrator's log.
fn registration(orch: &Proc) -> (Vec<u32>, String) {
    assert!(orch.wait_stderr(60, |e| e.contains("registered (capacity")));
    let log = orch.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("registered (capacity"))
        .unwrap();
    let caps = line.split("capabilities [").nth(1).unwrap();
    let caps = caps.split(']').next().unwrap();
    let list = caps
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let version = line.split("version \"").nth(1).unwrap();
    (list, version.split('"').next().unwrap().to_string())
}

fn signature_matches(a: &Path, b: &Path) -> (bool, String) {
    let out = Command::new(common::net::BIN)
        .args(["signature-compare"])
        .args([a, b])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn go_command_line_serves_http_push_and_verification_jobs() {
    let dir = scratch("dropin_push");
    let segs = small_clip(&dir.join("src"), 2, 1);
    let port = free_port();
    let mut orch = orchestrator(
        port,
        &dir.join("src"),
        &dir.join("got"),
        &[
            "--streams",
            "2",
            "--http-push",
            "--clip",
            "200:700",
            "--verification",
            "--min-version",
            "0.9.0",
        ],
    );
    let cli = format!("127.0.0.1:{}", free_port());
    let cli_flag = format!("-cliAddr={cli}");
    let mut t = go_transcoder(
        port,
        &dir.join("work"),
        &[
            "-maxSessions=2",
            "-monitor",
            &cli_flag,
            "-v=6",
            "-network",
            "offchain",
            "-ethOrchAddr=0x0000000000000000000000000000000000000001",
        ],
    );
    assert_eq!(orch.wait(120), Some(0), "{}\n{}", orch.stderr(), t.stderr());
    let (caps, version) = registration(&orch);
    for c in [0, 1, 2, 12, 14, 17, 21, 22, 23, 24, 25, 26] {
        assert!(caps.contains(&c), "capability {c} not claimed: {caps:?}");
    }
    // A CPU worker leaves HEVC decode out unless -hevcDecoding=true, as go-livepeer.
    assert!(!caps.contains(&15), "{caps:?}");
    assert_eq!(version, "0.9.1");
    let log = t.stderr();
    assert!(log.contains("notice: -network is not used"), "{log}");
    assert!(log.contains("notice: -ethOrchAddr"), "{log}");
    assert!(log.contains("claimed: "), "{log}");

    let results = outcomes(&orch);
    assert_eq!(results.len(), 4);
    for r in &results {
        assert_eq!(r["status"], "ok", "{r}");
        let seq = r["seq"].as_u64().unwrap() as usize;
        for x in r["renditions"].as_array().unwrap() {
            let path = PathBuf::from(x["path"].as_str().unwrap());
            let frames = frame_types(&path);
            // 200..700 ms of a 30 fps segment: frames 6 to 21.
            assert_eq!(frames.len(), 16, "{x}");
            assert!(
                frames[0].1,
                "the first kept frame is a keyframe: {frames:?}"
            );
            let w: u64 = probe_video(&path, "stream", "width").parse().unwrap();
            let h: u64 = probe_video(&path, "stream", "height").parse().unwrap();
            assert_eq!(x["pixels"].as_u64(), Some(16 * w * h), "{x}");
            // The signature a gateway compares with another transcoder's: it matches the
            // one the ffmpeg CLI computes from the same segment at the same size.
            let phash = PathBuf::from(x["phash_path"].as_str().unwrap());
            let reference = dir.join(format!("ref_{seq}_{w}.bin"));
            if !reference.exists() {
                ffmpeg(&[
                    "-copyts",
                    "-i",
                    segs[seq].to_str().unwrap(),
                    "-vf",
                    &format!("scale={w}:{h},signature=filename={}", reference.display()),
                    "-f",
                    "null",
                    "-",
                ]);
            }
            let (ok, verdict) = signature_matches(&reference, &phash);
            assert!(
                ok,
                "{verdict}: {} against {}",
                phash.display(),
                reference.display()
            );
        }
    }
    let first = PathBuf::from(results[0]["renditions"][0]["path"].as_str().unwrap());
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "program_tags=service_provider",
        ])
        .args(["-of", "default=nw=1:nk=1"])
        .arg(&first)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Livepeer Transcoder 0.9.1 (offchain)"
    );

    // go-livepeer's series on -cliAddr, beside ours.
    let m = http_get(&cli, "/metrics");
    for line in [
        "livepeer_max_sessions_total{node_id=",
        "livepeer_segment_transcoded_total{",
        "livepeer_transcode_time_seconds_count{",
        "livepeer_upload_time_seconds_count{",
        "gpuworker_segments_total 4",
    ] {
        assert!(m.lines().any(|l| l.starts_with(line)), "{line} in:\n{m}");
    }
    assert!(m.contains("profiles=\"144p,72p\"") && m.contains("node_type=\"trcr\""));
    t.signal("-TERM");
    assert_eq!(t.wait(20), Some(0));
}

#[test]
fn a_gateways_minimum_version_and_the_version_flag() {
    let dir = scratch("dropin_version");
    small_clip(&dir.join("src"), 1, 1);
    // 0.9.1 is below the gateway's 0.9.2: go-livepeer's orchestrator finds no transcoder.
    let port = free_port();
    let mut orch = orchestrator(
        port,
        &dir.join("src"),
        &dir.join("got"),
        &["--min-version", "0.9.2"],
    );
    let _t = go_transcoder(port, &dir.join("work1"), &["-testTranscoder=false"]);
    assert_eq!(orch.wait(60), Some(1), "{}", orch.stderr());
    let r = &outcomes(&orch)[0];
    assert_eq!(
        r["error"],
        "no transcoders can provide requested capabilities"
    );
    assert_eq!(r["non_retryable"], false);
    // -livepeerVersion reports another version; -hevcDecoding=true claims HEVC decode.
    let port = free_port();
    let mut orch = orchestrator(
        port,
        &dir.join("src"),
        &dir.join("got2"),
        &["--min-version", "0.9.2"],
    );
    let _t = go_transcoder(
        port,
        &dir.join("work2"),
        &["-livepeerVersion=0.9.2", "-hevcDecoding=true"],
    );
    assert_eq!(orch.wait(60), Some(0), "{}", orch.stderr());
    let (caps, version) = registration(&orch);
    assert_eq!(version, "0.9.2");
    assert!(caps.contains(&15), "{caps:?}");
}

/// Stream, sequence number, status, error and whether a gateway takes it as non-retryable.
type Summary<'a> = (u64, u64, &'a str, Option<&'a str>, Option<bool>);

#[test]
fn input_errors_carry_lpms_texts_and_free_the_slot() {
    let dir = scratch("dropin_errors");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let good = src.join("a.ts");
    make_clip(&good, "256x144", 30, 1.0, 30, &[]);
    // The second half of a one-GOP stream: no keyframe to start from.
    let long = dir.join("long.ts");
    make_clip(&long, "256x144", 30, 2.0, 1000, &[]);
    let bytes = std::fs::read(&long).unwrap();
    let cut = (bytes.len() / 2 / 188) * 188;
    let nokf = src.join("b.ts");
    std::fs::write(&nokf, &bytes[cut..]).unwrap();
    let mpeg2 = src.join("c.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=256x144:rate=30",
        "-t",
        "1",
        "-c:v",
        "mpeg2video",
        mpeg2.to_str().unwrap(),
    ]);
    let list = playlist(&src, &[good, nokf, mpeg2]);
    // One slot; the second stream starts after the first has failed its last segment, when
    // the orchestrator believes the slot is free (it sends no teardown after an error).
    let port = free_port();
    let mut orch = orchestrator(
        port,
        &list,
        &dir.join("got"),
        &["--streams", "2", "--stagger", "6"],
    );
    let t = go_transcoder(port, &dir.join("work"), &["-maxSessions=1"]);
    assert_eq!(orch.wait(120), Some(1), "{}", orch.stderr());
    let r = outcomes(&orch);
    let summary: Vec<Summary> = r
        .iter()
        .map(|o| {
            (
                o["stream"].as_u64().unwrap(),
                o["seq"].as_u64().unwrap(),
                o["status"].as_str().unwrap(),
                o["error"].as_str(),
                o["non_retryable"].as_bool(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, 0, "ok", None, None),
            (0, 1, "error", Some("No keyframes in input"), Some(true)),
            (0, 2, "error", Some("Unsupported input codec"), Some(true)),
            (1, 0, "ok", None, None),
            (1, 1, "error", Some("No keyframes in input"), Some(true)),
            (1, 2, "error", Some("Unsupported input codec"), Some(true)),
        ],
        "{}",
        t.stderr()
    );
    // The detail stays in the worker's log.
    let log = t.stderr();
    assert!(
        log.contains("(posted as \"No keyframes in input\")"),
        "{log}"
    );
    assert!(log.contains("closed after a failed segment"), "{log}");
}

#[test]
fn a_pinned_orchestrator_certificate_leaves_storage_downloads_alone() {
    let dir = scratch("dropin_storage");
    small_clip(&dir.join("src"), 1, 1);
    let cert = dir.join("orch.pem");
    let port = free_port();
    let mut orch = orchestrator(
        port,
        &dir.join("src"),
        &dir.join("got"),
        &["--cert-out", cert.to_str().unwrap(), "--separate-storage"],
    );
    assert!(orch.wait_stderr(10, |e| e.contains("listening")));
    let _t = common::net::transcoder(
        port,
        &dir.join("work"),
        &["--orch-cert", cert.to_str().unwrap()],
    );
    assert_eq!(orch.wait(60), Some(0), "{}", orch.stderr());
    assert!(orch.stderr().contains("segments on https://"));
}

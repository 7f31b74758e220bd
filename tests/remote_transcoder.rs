//! `gpuworker transcoder` against `gpuworker test-orchestrator` (go-livepeer's orchestrator
//! side: gRPC and HTTPS on one port, self-signed certificate), both real processes on
//! loopback: concurrent streams with outputs checked by ffprobe and pixel counts, a corrupt
//! segment, a stalled download, a wrong secret, an orchestrator restart mid-stream, a pinned
//! certificate and a graceful stop.

mod common;

use common::net::{free_port, http_get, orchestrator, outcomes, playlist, transcoder, Proc};
use common::{frame_types, make_clip, probe_video, scratch, small_clip};
use std::path::Path;

#[test]
fn concurrent_streams_come_back_with_exact_pixel_counts() {
    let dir = scratch("net_streams");
    small_clip(&dir.join("src"), 3, 1);
    let port = free_port();
    let mut orch = orchestrator(
        port,
        &dir.join("src"),
        &dir.join("got"),
        &["--streams", "3"],
    );
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut t = transcoder(port, &dir.join("work"), &["--metrics-addr", &metrics]);
    assert_eq!(orch.wait(90), Some(0), "{}\n{}", orch.stderr(), t.stderr());
    let results = outcomes(&orch);
    assert_eq!(results.len(), 9);
    for r in &results {
        assert_eq!(r["status"], "ok", "{r}");
        let rend = r["renditions"].as_array().unwrap();
        assert_eq!(rend.len(), 2);
        assert_eq!(rend[0]["name"], "144p");
        for x in rend {
            // What a gateway's verifier does: decode and count.
            let path = Path::new(x["path"].as_str().unwrap());
            let frames = frame_types(path).len() as u64;
            let w: u64 = probe_video(path, "stream", "width").parse().unwrap();
            let h: u64 = probe_video(path, "stream", "height").parse().unwrap();
            assert_eq!(x["pixels"].as_u64(), Some(frames * w * h), "{x}");
            assert_eq!(frames, 30);
        }
    }
    // Every session is torn down at its stream's end; SIGTERM then stops the transcoder.
    assert!(
        t.wait_stderr(30, |e| e.matches("torn down by the orchestrator").count()
            == 3)
    );
    let m = http_get(&metrics, "/metrics");
    for line in [
        "gpuworker_segments_total 9",
        "gpuworker_segments_in_flight 0",
        "gpuworker_sessions 0",
        "gpuworker_segment_latency_seconds_count 9",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in:\n{m}");
    }
    t.signal("-TERM");
    assert_eq!(t.wait(20), Some(0), "{}", t.stderr());
    assert!(
        std::fs::read_dir(dir.join("work"))
            .unwrap()
            .next()
            .is_none(),
        "work files left"
    );
}

#[test]
fn sigterm_finishes_the_segment_in_flight_first() {
    let dir = scratch("net_sigterm");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    for i in 0..2 {
        make_clip(
            &dir.join(format!("src/seg{i}.ts")),
            "640x360",
            30,
            2.0,
            30,
            &[],
        );
    }
    let port = free_port();
    let orch = orchestrator(port, &dir.join("src"), &dir.join("got"), &["--linger"]);
    let mut t = transcoder(port, &dir.join("work"), &[]);
    assert!(
        t.wait_stderr(30, |e| e.contains("): received ")),
        "{}",
        t.stderr()
    );
    t.signal("-TERM");
    assert_eq!(t.wait(30), Some(0), "{}", t.stderr());
    let log = t.stderr();
    assert!(
        log.contains("stopping: finishing 1 segment(s) in flight"),
        "{log}"
    );
    assert!(orch.wait_stderr(5, |_| !outcomes(&orch).is_empty()));
    let r = outcomes(&orch);
    assert_eq!(r[0]["status"], "ok", "{r:?}\n{log}");
    assert_eq!(r[0]["renditions"].as_array().unwrap().len(), 2);
}

#[test]
fn a_corrupt_segment_gets_an_error_result_and_the_stream_goes_on() {
    let dir = scratch("net_corrupt");
    let segs = small_clip(&dir.join("src"), 3, 1);
    std::fs::write(&segs[1], b"\x47this is not a transport stream".repeat(100)).unwrap();
    let list = playlist(&dir.join("src"), &segs);
    let port = free_port();
    let mut orch = orchestrator(port, &list, &dir.join("got"), &[]);
    let t = transcoder(port, &dir.join("work"), &[]);
    assert_eq!(orch.wait(60), Some(1), "{}", orch.stderr());
    let r = outcomes(&orch);
    let status: Vec<&str> = r.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["ok", "error", "ok"], "{r:?}\n{}", t.stderr());
    let msg = r[1]["error"].as_str().unwrap();
    assert!(
        msg.contains("seg1") || msg.contains("segment") || msg.contains("input"),
        "{msg}"
    );
}

#[test]
fn a_stalled_download_times_out_with_an_error() {
    let dir = scratch("net_stall");
    small_clip(&dir.join("src"), 2, 1);
    let port = free_port();
    let mut orch = orchestrator(
        port,
        &dir.join("src"),
        &dir.join("got"),
        &["--stall-seq", "1"],
    );
    let t = transcoder(port, &dir.join("work"), &[]);
    assert_eq!(orch.wait(60), Some(1), "{}", orch.stderr());
    let r = outcomes(&orch);
    assert_eq!(r[0]["status"], "ok");
    assert_eq!(r[1]["status"], "error", "{r:?}\n{}", t.stderr());
    assert!(
        r[1]["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 4s"),
        "{r:?}"
    );
}

#[test]
fn a_wrong_secret_ends_the_transcoder_with_the_reason() {
    let dir = scratch("net_secret");
    small_clip(&dir.join("src"), 1, 1);
    let port = free_port();
    let orch = orchestrator(port, &dir.join("src"), &dir.join("got"), &[]);
    assert!(orch.wait_stderr(10, |e| e.contains("listening")));
    let addr = format!("127.0.0.1:{port}");
    let mut t = Proc::start(&[
        "transcoder",
        "--orch-addr",
        &addr,
        "--orch-secret",
        "wrong",
        "--work-dir",
        dir.join("work").to_str().unwrap(),
    ]);
    assert_eq!(t.wait(20), Some(1));
    assert!(t.stderr().contains("invalid secret"), "{}", t.stderr());
    // Zero capacity is refused before anything is sent.
    let mut t = Proc::start(&[
        "transcoder",
        "--orch-addr",
        &addr,
        "--orch-secret",
        "s3cret",
        "--max-sessions",
        "0",
    ]);
    assert_eq!(t.wait(20), Some(2));
    assert!(t.stderr().contains("--max-sessions"), "{}", t.stderr());
}

#[test]
fn the_transcoder_registers_again_after_an_orchestrator_restart() {
    let dir = scratch("net_restart");
    small_clip(&dir.join("src"), 3, 1);
    let port = free_port();
    let first = orchestrator(port, &dir.join("src"), &dir.join("got1"), &["--linger"]);
    let mut t = transcoder(port, &dir.join("work"), &[]);
    assert!(
        first.wait_stderr(30, |_| !outcomes(&first).is_empty()),
        "{}",
        t.stderr()
    );
    drop(first); // killed mid-stream
    let mut second = orchestrator(port, &dir.join("src"), &dir.join("got2"), &[]);
    assert_eq!(
        second.wait(90),
        Some(0),
        "{}\n{}",
        second.stderr(),
        t.stderr()
    );
    assert!(outcomes(&second).iter().all(|o| o["status"] == "ok"));
    t.signal("-TERM");
    t.wait(20);
    let log = t.stderr();
    assert!(
        log.matches("registered with the orchestrator").count() >= 2,
        "{log}"
    );
    // No segment vanished: every task received was answered or reported undeliverable.
    for line in log.lines().filter(|l| l.contains("): received ")) {
        let task = line
            .split("task ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        let done = log.lines().any(|l| {
            l.contains(&format!("task {task} ")) && l.contains("renditions in")
                || l.contains(&format!("task {task}: result not delivered"))
                || l.contains(&format!("task {task} (")) && l.contains("WARN")
        });
        assert!(done, "task {task} has no outcome:\n{log}");
    }
}

#[test]
fn a_pinned_certificate_is_required_when_given() {
    let dir = scratch("net_pin");
    small_clip(&dir.join("src"), 1, 1);
    std::fs::create_dir_all(&dir).unwrap();
    let cert = dir.join("orch.pem");
    let port = free_port();
    let mut orch = orchestrator(
        port,
        &dir.join("src"),
        &dir.join("got"),
        &["--cert-out", cert.to_str().unwrap()],
    );
    assert!(orch.wait_stderr(10, |e| e.contains("listening")));
    // Another certificate: the transcoder refuses the connection and keeps trying.
    let other = gpuworker::net::tls::self_signed("127.0.0.1").unwrap();
    let wrong = dir.join("other.pem");
    std::fs::write(&wrong, other.cert_pem).unwrap();
    let bad = transcoder(
        port,
        &dir.join("work1"),
        &["--orch-cert", wrong.to_str().unwrap()],
    );
    assert!(
        bad.wait_stderr(10, |e| e.contains("not the pinned one")),
        "{}",
        bad.stderr()
    );
    assert!(!orch.stderr().contains("registered"));
    drop(bad);
    let _good = transcoder(
        port,
        &dir.join("work2"),
        &["--orch-cert", cert.to_str().unwrap()],
    );
    assert_eq!(orch.wait(60), Some(0), "{}", orch.stderr());
}

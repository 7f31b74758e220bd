//! `gpuworker serve` on loopback, driven with a real HTTP client: a segment in, multipart
//! renditions out (checked with ffprobe and pixel counts), sticky sessions, and every refusal:
//! bad token, bad profiles, garbage, oversized bodies, a client over its session limit, the
//! worker at capacity; then /healthz and /metrics.

mod common;

use common::server::{self, Server};
use common::{frame_types, probe_video, scratch, small_clip, SMALL_LADDER};
use gpuworker::net::results;
use std::path::Path;

fn start(work: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["serve", "--work-dir", work.to_str().unwrap()];
    args.extend(["--profiles", SMALL_LADDER]);
    args.extend(extra);
    server::start(&args)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_segment_comes_back_as_multipart_renditions() {
    let dir = scratch("serve_ok");
    let segs = small_clip(&dir.join("src"), 2, 1);
    let s = start(&dir.join("work"), &["--token", "t0ken"]);
    rt().block_on(async {
        let c = reqwest::Client::new();
        let body = std::fs::read(&segs[0]).unwrap();
        let r = c
            .post(format!("{}/transcode", s.base))
            .bearer_auth("t0ken")
            .header("Session-Id", "cam1")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let pixels: u64 = r.headers()["pixels"].to_str().unwrap().parse().unwrap();
        assert_eq!(pixels, 30 * 256 * 144, "decoded pixels of the source");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let parts = results::parse(&ct, r.bytes().await.unwrap()).await.unwrap();
        assert_eq!(parts.len(), 2);
        for (i, p) in parts.iter().enumerate() {
            let f = dir.join(format!("r{i}.ts"));
            std::fs::write(&f, &p.data).unwrap();
            let frames = frame_types(&f).len() as u64;
            let w: u64 = probe_video(&f, "stream", "width").parse().unwrap();
            let h: u64 = probe_video(&f, "stream", "height").parse().unwrap();
            assert_eq!(p.pixels, frames * w * h);
            assert_eq!(p.mime, "video/mp2t");
        }
        assert_eq!(parts[0].name, "144p");
        // The next segment of the same session, with presets named in the query.
        let r = c
            .post(format!("{}/transcode?profiles=P144p30fps16x9", s.base))
            .bearer_auth("t0ken")
            .header("Session-Id", "cam1")
            .body(std::fs::read(&segs[1]).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(
            results::parse(&ct, r.bytes().await.unwrap())
                .await
                .unwrap()
                .len(),
            1
        );

        // Refusals, each with its status and a message.
        let post = |token: &str, profiles: Option<&str>, body: Vec<u8>| {
            let mut r = c
                .post(format!("{}/transcode", s.base))
                .bearer_auth(token)
                .body(body);
            if let Some(p) = profiles {
                r = r.header("Profiles", p);
            }
            r.send()
        };
        let r = post("wrong", None, body.clone()).await.unwrap();
        assert_eq!(r.status(), 401);
        // A large segment without the token still gets its 401, not a reset connection.
        let r = post("wrong", None, vec![0x47; 6_000_000]).await.unwrap();
        assert_eq!(r.status(), 401);
        let r = post("t0ken", Some("P999p"), body.clone()).await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("P999p"));
        let r = post("t0ken", None, b"\x47garbage".repeat(500))
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("not a recognizable media file"));
        let r = post("t0ken", None, Vec::new()).await.unwrap();
        assert_eq!(r.status(), 400);

        let h = c.get(format!("{}/healthz", s.base)).send().await.unwrap();
        let h: serde_json::Value = serde_json::from_slice(&h.bytes().await.unwrap()).unwrap();
        assert_eq!(h["status"], "ok");
        assert_eq!(
            c.get(format!("{}/metrics", s.base))
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
        let m = c
            .get(format!("{}/metrics", s.base))
            .bearer_auth("t0ken")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for line in [
            "gpuworker_segments_total 2",
            "gpuworker_sessions 1",
            "gpuworker_segment_latency_seconds_count 2",
            "gpuworker_errors_total{kind=\"unauthorized\"} 2",
            "gpuworker_errors_total{kind=\"request\"} 2",
            "gpuworker_errors_total{kind=\"transcode\"} 1",
            "gpuworker_device_sessions{device=\"cpu\"} 1",
            "gpuworker_segments_in_flight 0",
        ] {
            assert!(m.lines().any(|l| l == line), "{line} in:\n{m}");
        }
        assert!(m.contains("gpuworker_realtime_ratio "));
    });
    // The work directory holds nothing once requests are answered.
    assert!(std::fs::read_dir(dir.join("work"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn limits_answer_at_once() {
    let dir = scratch("serve_limits");
    let segs = small_clip(&dir.join("src"), 1, 1);
    let body = std::fs::read(&segs[0]).unwrap();
    // One session for the whole worker, at most one per client, 1 MB bodies.
    let s = start(
        &dir.join("work"),
        &[
            "--max-sessions",
            "1",
            "--per-client-sessions",
            "1",
            "--max-body-mb",
            "1",
        ],
    );
    rt().block_on(async {
        let c = reqwest::Client::new();
        let r = c
            .post(format!("{}/transcode", s.base))
            .body(vec![0x47u8; 6_000_000])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        // A sticky session holds the client's only place (and the worker's only session).
        let r = c
            .post(format!("{}/transcode", s.base))
            .header("Session-Id", "a")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = c
            .post(format!("{}/transcode", s.base))
            .header("Session-Id", "b")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert!(r.text().await.unwrap().contains("already holds 1 sessions"));
        // From another loopback address (another client): its limit allows it, the worker
        // is full.
        let c2 = reqwest::Client::builder()
            .local_address(Some("127.0.0.2".parse().unwrap()))
            .build()
            .unwrap();
        let r = c2
            .post(format!("{}/transcode", s.base))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        assert!(r.text().await.unwrap().contains("busy"));
    });
}

//! `gpuworker bench` as a user runs it: the JSON report, the CSV and the plot are produced
//! and agree with each other; --find-max searches and answers; over capacity means busy.

mod common;

use common::{gpuworker, scratch, small_clip, SMALL_LADDER};
use serde_json::Value;
use std::path::Path;

fn run_bench(dir: &Path, input: &Path, extra: &[&str]) -> (Value, String, String) {
    let (report, csv, plot) = (dir.join("r.json"), dir.join("c.csv"), dir.join("p.svg"));
    let mut args = vec![
        "bench",
        "--in",
        input.to_str().unwrap().to_owned().leak(),
        "--profiles",
        SMALL_LADDER,
        "--report",
        report.to_str().unwrap().to_owned().leak(),
        "--csv",
        csv.to_str().unwrap().to_owned().leak(),
        "--plot",
        plot.to_str().unwrap().to_owned().leak(),
    ];
    args.extend_from_slice(extra);
    let out = gpuworker(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "bench failed: {stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    (
        report,
        std::fs::read_to_string(csv).unwrap(),
        std::fs::read_to_string(plot).unwrap(),
    )
}

/// Checks one trial's internal consistency and returns its sessions.
fn check_trial(t: &Value) -> u64 {
    let seg = &t["segments"];
    let total = seg["total"].as_u64().unwrap();
    let per = t["per_segment"].as_array().unwrap();
    assert_eq!(per.len() as u64, total);
    assert_eq!(
        seg["ok"].as_u64().unwrap()
            + seg["busy"].as_u64().unwrap()
            + seg["failed"].as_u64().unwrap(),
        total
    );
    let ok: Vec<&Value> = per.iter().filter(|r| r["status"] == "ok").collect();
    assert_eq!(ok.len() as u64, seg["ok"].as_u64().unwrap());
    for key in ["latency", "latency_ratio"] {
        let l = &t[key];
        let f = |k: &str| l[k].as_f64().unwrap();
        assert!(
            f("p50") <= f("p95") && f("p95") <= f("p99") && f("p99") <= f("max"),
            "{key}: {l}"
        );
    }
    let lp = &t["livepeer"];
    assert_eq!(
        lp["total_segs_transcoded"].as_u64().unwrap(),
        ok.len() as u64
    );
    let sum: f64 = ok
        .iter()
        .map(|r| r["transcode_time"].as_f64().unwrap())
        .sum();
    assert!((lp["total_transcoding_duration"].as_f64().unwrap() - sum).abs() < 1e-6);
    if !ok.is_empty() {
        let max = ok
            .iter()
            .map(|r| r["transcode_time"].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!((t["latency"]["max"].as_f64().unwrap() - max).abs() < 1e-9);
        assert!(
            t["throughput"]["media_seconds_per_second"]
                .as_f64()
                .unwrap()
                > 0.0
        );
        // Every ok segment encoded frames in both renditions: 144p and 72p pixels.
        for r in &ok {
            assert!(r["frames"].as_u64().unwrap() > 0);
            assert_eq!(
                r["encoded_pixels"].as_u64().unwrap(),
                r["frames"].as_u64().unwrap() * (256 * 144 + 128 * 72)
            );
        }
    }
    assert!(t["usage"]["cpu_seconds"].as_f64().unwrap() > 0.0);
    assert!(t["usage"]["peak_rss_mib"].as_f64().unwrap() > 0.0);
    t["sessions"].as_u64().unwrap()
}

/// The plot is well-formed SVG with the four series, each with one point per trial.
fn check_plot(svg: &str, points: usize) {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let series: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("series"))
        .collect();
    let names: Vec<_> = series
        .iter()
        .map(|n| n.attribute("data-name").unwrap())
        .collect();
    assert_eq!(names, ["p50", "p95", "p99", "throughput"]);
    for s in series {
        assert_eq!(
            s.attribute("points").unwrap().split_whitespace().count(),
            points
        );
    }
    assert!(doc
        .descendants()
        .any(|n| n.attribute("class") == Some("limit")));
}

#[test]
fn offline_report_csv_and_plot_agree() {
    let dir = scratch("bench_offline");
    small_clip(&dir.join("src"), 2, 1);
    let (report, csv, svg) = run_bench(
        &dir,
        &dir.join("src"),
        &["--offline", "--sessions", "2", "--segments", "3", "-q"],
    );
    let trials = report["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 1);
    assert_eq!(check_trial(&trials[0]), 2);
    assert_eq!(trials[0]["segments"]["ok"], 6);
    assert_eq!(report["config"]["segments_per_session"], 3);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "timestamp,session,segment,seg_dur,transcode_time,frames"
    );
    assert_eq!(lines.len(), 7);
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 6, "{l}");
        assert!(
            f[0].len() >= 19 && f[0].as_bytes()[4] == b'-',
            "timestamp {}",
            f[0]
        );
        assert_eq!(f[5], "30", "1 s of 30 fps in rendition 0: {l}");
    }
    check_plot(&svg, 1);
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
}

#[test]
fn find_max_searches_live_sessions_and_answers() {
    let dir = scratch("bench_find_max");
    small_clip(&dir.join("src"), 2, 1);
    // An HLS media playlist, segment URIs relative to it, as livepeer_bench takes it.
    let playlist = dir.join("stream.m3u8");
    std::fs::write(
        &playlist,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.000,\nsrc/seg0.ts\n\
         #EXTINF:1.000,\nsrc/seg1.ts\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    let (report, csv, svg) = run_bench(&dir, &playlist, &["--find-max", "--max-sessions", "3"]);
    assert_eq!(report["config"]["inputs"].as_array().unwrap().len(), 2);
    let fm = &report["find_max"];
    assert_eq!(fm["searched_up_to"], 3);
    let trials = report["trials"].as_array().unwrap();
    let sessions: Vec<u64> = trials.iter().map(check_trial).collect();
    // Doubling from 1 up to the bound: 1, 2, then 3 (the bound).
    assert_eq!(sessions, [1, 2, 3][..sessions.len()]);
    let max = fm["max_sessions"].as_u64().unwrap();
    // The answer is the largest real-time trial, and every trial up to it is real-time.
    for t in trials {
        let n = t["sessions"].as_u64().unwrap();
        assert_eq!(t["live"], true);
        if n <= max {
            assert_eq!(t["realtime"], true, "{n} sessions");
            assert!(t["latency_ratio"]["p95"].as_f64().unwrap() <= 0.8);
        }
    }
    // A tiny ladder on 256x144 is far below real time on any machine that runs the tests.
    assert!(max >= 1, "{report}");
    let rows = csv.lines().count() - 1;
    let ok: u64 = trials
        .iter()
        .map(|t| t["segments"]["ok"].as_u64().unwrap())
        .sum();
    assert_eq!(rows as u64, ok);
    check_plot(&svg, trials.len());
}

#[test]
fn sessions_over_capacity_are_refused_busy() {
    let dir = scratch("bench_busy");
    small_clip(&dir.join("src"), 2, 1);
    let (report, csv, _) = run_bench(
        &dir,
        &dir.join("src"),
        &[
            "--offline",
            "--sessions",
            "3",
            "--capacity",
            "1",
            "--stagger",
            "0",
            "-q",
        ],
    );
    let t = &report["trials"][0];
    check_trial(t);
    assert_eq!(t["sessions_refused"], 2);
    assert_eq!(t["segments"]["ok"], 2);
    assert_eq!(t["segments"]["busy"], 4);
    assert_eq!(t["realtime"], false);
    let busy = t["per_segment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "busy")
        .unwrap();
    assert!(busy["error"].as_str().unwrap().contains("busy"), "{busy}");
    assert_eq!(
        csv.lines().count(),
        3,
        "only transcoded segments are CSV rows"
    );
}

#[test]
fn bad_bench_arguments_fail_clearly() {
    let dir = scratch("bench_bad");
    for (args, want) in [
        (vec!["bench", "--device", "cuda:0"], "not available"),
        (
            vec!["bench", "--in", "/nonexistent/x.txt"],
            "expected an HLS media playlist",
        ),
        (vec!["bench", "--find-max", "--offline"], "--find-max"),
    ] {
        let out = gpuworker(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let p = dir.join("empty.m3u8");
    std::fs::write(&p, "#EXTM3U\n#EXT-X-ENDLIST\n").unwrap();
    let out = gpuworker(&["bench", "--in", p.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no segments"));
}

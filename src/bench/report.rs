//! Benchmark output: livepeer_bench's CSV and summary table, our own summary, and the JSON
//! report (`--report`).

use super::{Trial, REALTIME_MARGIN};
use serde::Serialize;
use std::io::Write;

/// Everything a benchmark run measured, as `--report` writes it.
#[derive(Debug, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub machine: Machine,
    pub config: serde_json::Value,
    pub trials: Vec<Trial>,
    /// Present after `--find-max`.
    pub find_max: Option<FindMax>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub simd: &'static str,
    pub ffmpeg: String,
}

impl Machine {
    pub fn this() -> Self {
        let info = crate::backend::cpu::probe();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cores: info.cores,
            cpu,
            simd: info.simd,
            ffmpeg: info.ffmpeg,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FindMax {
    pub max_sessions: usize,
    /// The rule a trial had to meet.
    pub criterion: String,
    pub searched_up_to: usize,
}

impl FindMax {
    pub fn new(max_sessions: usize, searched_up_to: usize) -> Self {
        FindMax {
            max_sessions,
            criterion: format!(
                "live; every segment transcoded (none refused or failed); p95 of latency / \
                 segment duration <= {REALTIME_MARGIN}"
            ),
            searched_up_to,
        }
    }
}

/// livepeer_bench's per-segment CSV.
pub fn write_csv(out: &mut dyn Write, trials: &[Trial]) -> std::io::Result<()> {
    writeln!(
        out,
        "timestamp,session,segment,seg_dur,transcode_time,frames"
    )?;
    for t in trials {
        for r in t.records.iter().filter(|r| r.status == "ok") {
            writeln!(
                out,
                "{},{},{},{:.4},{:.4},{}",
                r.timestamp, r.session, r.segment, r.seg_dur, r.transcode_time, r.frames
            )?;
        }
    }
    Ok(())
}

/// livepeer_bench's summary table for one trial.
pub fn livepeer_table(t: &Trial) -> String {
    let l = &t.livepeer;
    let rows = [
        ("Concurrent Sessions", t.sessions.to_string()),
        ("Total Segs Transcoded", l.total_segs_transcoded.to_string()),
        (
            "Real-Time Segs Transcoded",
            l.realtime_segs_transcoded.to_string(),
        ),
        (
            "* Real-Time Segs Ratio *",
            format!("{:.4}", l.realtime_segs_ratio),
        ),
        (
            "Total Source Duration",
            format!("{:.3}s", l.total_source_duration),
        ),
        (
            "Total Transcoding Duration",
            format!("{:.3}s", l.total_transcoding_duration),
        ),
        (
            "* Real-Time Duration Ratio *",
            format!("{:.4}", l.realtime_duration_ratio),
        ),
    ];
    let mut s = String::new();
    for (k, v) in rows {
        s.push_str(&format!("| {k:<28} | {v:<10} |\n"));
    }
    s
}

/// Our summary of one trial: what livepeer_bench does not say.
pub fn summary(t: &Trial) -> String {
    let c = &t.segments;
    let mut s = format!(
        "{} session{} ({}, {}), {} segments: {} ok, {} busy, {} failed; {} within their duration\n",
        t.sessions,
        if t.sessions == 1 { "" } else { "s" },
        if t.live { "live" } else { "offline" },
        if t.sessions_refused > 0 {
            format!("{} refused at admission", t.sessions_refused)
        } else {
            "all admitted".into()
        },
        c.total,
        c.ok,
        c.busy,
        c.failed,
        c.realtime
    );
    let l = &t.latency;
    s.push_str(&format!(
        "latency   p50 {:.3} s  p95 {:.3} s  p99 {:.3} s  max {:.3} s  (p95 = {:.2} x segment duration)\n",
        l.p50, l.p95, l.p99, l.max, t.latency_ratio.p95
    ));
    let th = &t.throughput;
    s.push_str(&format!(
        "throughput {:.2} media s per wall s, {:.1} frames/s, {:.1} Mpixel/s decoded, {:.1} Mpixel/s encoded\n",
        th.media_seconds_per_second,
        th.frames_per_second,
        th.decoded_pixels_per_second / 1e6,
        th.encoded_pixels_per_second / 1e6
    ));
    let u = &t.usage;
    s.push_str(&format!(
        "usage     {:.1} CPU s in {:.1} s wall = {:.2} of {} cores; peak RSS {:.0} MiB\n",
        u.cpu_seconds, t.wall_seconds, u.cores_used, u.cores, u.peak_rss_mib
    ));
    let st = &t.stages;
    let total =
        (st.decode_seconds + st.diffuse_seconds + st.scale_seconds + st.encode_seconds).max(1e-9);
    if st.diffuse_seconds > 0.0 {
        s.push_str(&format!(
            "diffuse   {:.1} s ({:.0}% of stage time), {:.2} frames/s per stream\n",
            st.diffuse_seconds,
            100.0 * st.diffuse_seconds / total,
            st.diffuse_fps
        ));
    }
    s.push_str(&format!(
        "stages    decode {:.1} s ({:.0}%), scale {:.1} s ({:.0}%), encode+mux {:.1} s ({:.0}%)\n",
        st.decode_seconds,
        100.0 * st.decode_seconds / total,
        st.scale_seconds,
        100.0 * st.scale_seconds / total,
        st.encode_seconds,
        100.0 * st.encode_seconds / total
    ));
    s.push_str(&format!(
        "verdict   {}\n",
        if t.realtime {
            "real-time"
        } else {
            "NOT real-time"
        }
    ));
    s
}

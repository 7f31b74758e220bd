//! `gpuworker bench`: a load generator for the worker. N sessions each feed a stream of
//! segments, at real-time pace (live: segment j of a session arrives j segment-durations
//! after the session starts) or as fast as the session accepts them (offline). Every segment's
//! latency is measured from its arrival to its last rendition on disk. A trial summarises
//! them (percentiles, throughput, CPU, memory, per-stage time, and livepeer_bench's own
//! fields); `find_max` searches for the most sessions that stay real-time.

pub mod input;
pub mod plot;
pub mod report;
pub mod stats;

use crate::error::Error;
use crate::pipeline::{SegmentReport, SessionConfig, Ticket};
use crate::worker::{Worker, WorkerConfig};
use input::InputSegment;
use serde::Serialize;
use stats::Percentiles;
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Real-time margin: a trial passes when the p95 of latency / segment duration is at most
/// this (Livepeer's docs advise keeping 20 % for the network).
pub const REALTIME_MARGIN: f64 = 0.8;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub inputs: Vec<InputSegment>,
    pub session: SessionConfig,
    pub live: bool,
    /// Segments per session; inputs are cycled. 0 = each input once.
    pub segments: usize,
    /// Delay between session starts; None = spread over one segment duration.
    pub stagger: Option<Duration>,
    /// Scratch directory for renditions.
    pub out: PathBuf,
    /// Keep renditions instead of deleting each once measured.
    pub keep: bool,
    /// Worker capacity in sessions (admission control); 0 = as many as the trial runs.
    pub capacity: usize,
    /// Stage pool threads; 0 = one per core.
    pub threads: usize,
    /// CUDA devices to place sessions on (empty: CPU).
    pub devices: Vec<usize>,
}

/// One segment's outcome, as livepeer_bench's CSV has it plus what it lacks.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentRecord {
    /// Completion time, `2006-01-02 15:04:05.9999` (UTC).
    pub timestamp: String,
    pub session: usize,
    pub segment: usize,
    /// Where the session ran: `cpu` or `cuda:N`.
    pub device: String,
    /// Decoder and encoder that did the work (`libavcodec`/`nvdec`, `libx264`/`nvenc`; empty
    /// when the segment failed).
    pub decoder: String,
    pub encoder: String,
    pub seg_dur: f64,
    /// Seconds from arrival to completion (0 when refused).
    pub transcode_time: f64,
    /// Frames encoded in the first rendition.
    pub frames: u64,
    pub decoded_frames: u64,
    pub decoded_pixels: u64,
    pub encoded_pixels: u64,
    /// `ok`, `busy` (refused by admission control) or `error`.
    pub status: &'static str,
    pub error: Option<String>,
    pub decode_seconds: f64,
    pub diffuse_seconds: f64,
    pub scale_seconds: f64,
    pub encode_seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    pub total: usize,
    pub ok: usize,
    pub busy: usize,
    pub failed: usize,
    /// Finished within their own duration (livepeer_bench's "real-time" segments).
    pub realtime: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    pub media_seconds_per_second: f64,
    pub frames_per_second: f64,
    pub decoded_pixels_per_second: f64,
    pub encoded_pixels_per_second: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    pub cpu_seconds: f64,
    /// CPU seconds per wall second.
    pub cores_used: f64,
    pub cores: usize,
    pub peak_rss_mib: f64,
}

/// Thread seconds per stage, summed over the trial's segments.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stages {
    pub decode_seconds: f64,
    /// The diffuse stage, and the frames per second it ran at (0 without one).
    pub diffuse_seconds: f64,
    pub diffuse_fps: f64,
    pub scale_seconds: f64,
    pub encode_seconds: f64,
}

/// The summary livepeer_bench prints, computed the way it does (sums over sessions).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LivepeerSummary {
    pub total_segs_transcoded: usize,
    pub realtime_segs_transcoded: usize,
    pub realtime_segs_ratio: f64,
    pub total_source_duration: f64,
    pub total_transcoding_duration: f64,
    pub realtime_duration_ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub sessions: usize,
    pub sessions_refused: usize,
    pub live: bool,
    pub segments: Counts,
    /// Seconds from arrival to completion, over the segments that succeeded.
    pub latency: Percentiles,
    /// Latency divided by the segment's duration.
    pub latency_ratio: Percentiles,
    pub wall_seconds: f64,
    pub media_seconds: f64,
    pub throughput: Throughput,
    pub usage: Usage,
    pub stages: Stages,
    pub livepeer: LivepeerSummary,
    /// No refusal, no failure and p95 latency ratio within [`REALTIME_MARGIN`].
    pub realtime: bool,
    /// Every segment, in session and segment order.
    #[serde(rename = "per_segment")]
    pub records: Vec<SegmentRecord>,
}

/// Progress of a trial, shown on stderr: a bar on a terminal, plain lines otherwise.
pub struct Progress {
    pub quiet: bool,
    done: AtomicUsize,
    total: AtomicUsize,
    label: Mutex<String>,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress {
            quiet,
            done: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            label: Mutex::new(String::new()),
        }
    }

    fn start(&self, label: String, total: usize) {
        self.done.store(0, SeqCst);
        self.total.store(total, SeqCst);
        *self.label.lock().unwrap_or_else(|p| p.into_inner()) = label;
    }

    fn show(&self, elapsed: f64, last: bool) {
        if self.quiet {
            return;
        }
        let (done, total) = (self.done.load(SeqCst), self.total.load(SeqCst).max(1));
        let label = self.label.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if std::io::stderr().is_terminal() {
            let filled = done * 30 / total;
            eprint!(
                "\r{label} [{}{}] {done}/{total} segments {elapsed:5.1} s",
                "#".repeat(filled),
                "-".repeat(30 - filled)
            );
            if last {
                eprintln!();
            }
        } else {
            eprintln!("{label}: {done}/{total} segments, {elapsed:.1} s");
        }
    }
}

/// Runs one trial with `sessions` concurrent sessions.
pub fn run_trial(cfg: &BenchConfig, sessions: usize, progress: &Progress) -> Trial {
    let per_session = if cfg.segments == 0 {
        cfg.inputs.len()
    } else {
        cfg.segments
    };
    let capacity = if cfg.capacity == 0 {
        sessions
    } else {
        cfg.capacity
    };
    let worker = Worker::new(WorkerConfig {
        threads: cfg.threads,
        capacity,
        devices: cfg.devices.clone(),
    });
    let mean_dur = cfg.inputs.iter().map(|s| s.duration).sum::<f64>() / cfg.inputs.len() as f64;
    let stagger = cfg
        .stagger
        .unwrap_or_else(|| Duration::from_secs_f64(mean_dur / sessions as f64));
    progress.start(
        format!(
            "{sessions} session{} {}",
            if sessions == 1 { "" } else { "s" },
            if cfg.live { "live" } else { "offline" }
        ),
        sessions * per_session,
    );
    let records = Mutex::new(Vec::new());
    let refused = AtomicUsize::new(0);
    let finished = AtomicBool::new(false);
    let peak_rss = Mutex::new(0.0f64);
    let cpu0 = stats::cpu_seconds();
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut last_shown = Instant::now();
            while !finished.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                let rss = stats::memory_mib().0;
                let mut peak = peak_rss.lock().unwrap_or_else(|p| p.into_inner());
                *peak = peak.max(rss);
                let every = if std::io::stderr().is_terminal() {
                    0.2
                } else {
                    5.0
                };
                if last_shown.elapsed().as_secs_f64() >= every {
                    progress.show(t0.elapsed().as_secs_f64(), false);
                    last_shown = Instant::now();
                }
            }
        });
        let drivers: Vec<_> = (0..sessions)
            .map(|k| {
                let (worker, records, refused) = (&worker, &records, &refused);
                scope.spawn(move || {
                    std::thread::sleep(stagger * k as u32);
                    let mine = drive_session(worker, cfg, k, per_session, progress, refused);
                    records
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(mine);
                })
            })
            .collect();
        for d in drivers {
            let _ = d.join();
        }
        finished.store(true, SeqCst);
    });
    let wall = t0.elapsed().as_secs_f64();
    let cpu = stats::cpu_seconds() - cpu0;
    progress.show(wall, true);
    let mut records = records.into_inner().unwrap_or_else(|p| p.into_inner());
    records.sort_by_key(|r| (r.session, r.segment));
    let peak = *peak_rss.lock().unwrap_or_else(|p| p.into_inner());
    summarise(
        sessions,
        refused.load(SeqCst),
        cfg.live,
        records,
        wall,
        cpu,
        peak,
    )
}

/// Feeds one session its segments and records each outcome.
fn drive_session(
    worker: &Worker,
    cfg: &BenchConfig,
    k: usize,
    count: usize,
    progress: &Progress,
    refused: &AtomicUsize,
) -> Vec<SegmentRecord> {
    let inputs: Vec<&InputSegment> = cfg.inputs.iter().cycle().take(count).collect();
    let mut records = Vec::with_capacity(count);
    let device = std::cell::Cell::new(None::<usize>);
    let record = |j: usize, seg: &InputSegment, result: Result<SegmentReport, Error>| {
        progress.done.fetch_add(1, SeqCst);
        let mut r = outcome(k, j, seg.duration, result);
        r.device = device.get().map_or("cpu".into(), |d| format!("cuda:{d}"));
        r
    };
    let session = match worker.open_session(cfg.session.clone()) {
        Ok(s) => s,
        Err(e) => {
            refused.fetch_add(1, SeqCst);
            return inputs
                .iter()
                .enumerate()
                .map(|(j, seg)| record(j, seg, Err(Error::Busy(e.to_string()))))
                .collect();
        }
    };
    device.set(session.device());
    let dir = cfg.out.join(format!("session{k}"));
    let outputs_for = |j: usize| -> Vec<PathBuf> {
        cfg.session
            .profiles
            .iter()
            .enumerate()
            .map(|(i, p)| dir.join(format!("{j}_{i}.{}", p.container.extension())))
            .collect()
    };
    let _ = std::fs::create_dir_all(&dir);
    let mut pending: VecDeque<(usize, Ticket, Vec<PathBuf>)> = VecDeque::new();
    // Records a settled segment and, unless kept, removes its renditions.
    let done = |j: usize, outs: &[PathBuf], r, records: &mut Vec<_>| {
        if !cfg.keep {
            for o in outs {
                let _ = std::fs::remove_file(o);
            }
        }
        records.push(record(j, inputs[j], r));
    };
    let settle = |(j, ticket, outs): (usize, Ticket, Vec<PathBuf>), records: &mut Vec<_>| {
        done(j, &outs, ticket.wait(), records)
    };
    let start = Instant::now();
    let mut arrival = 0.0;
    for (j, seg) in inputs.iter().enumerate() {
        if cfg.live {
            // Settle what finishes before this segment arrives, then wait for its arrival.
            loop {
                let wait = arrival - start.elapsed().as_secs_f64();
                if wait <= 0.0 {
                    break;
                }
                match pending.front() {
                    Some((_, t, _)) => {
                        if let Some(r) = t.wait_timeout(Duration::from_secs_f64(wait)) {
                            let (j0, _, outs) = pending.pop_front().expect("front");
                            done(j0, &outs, r, &mut records);
                        }
                    }
                    None => std::thread::sleep(Duration::from_secs_f64(wait)),
                }
            }
            arrival += seg.duration;
        }
        let outs = outputs_for(j);
        loop {
            match session.submit(&seg.path, &outs) {
                Ok(t) => {
                    pending.push_back((j, t, outs));
                    break;
                }
                // Offline: the session is full, so wait for its oldest segment.
                Err(e) if e.is_busy() && !cfg.live && !pending.is_empty() => {
                    settle(pending.pop_front().expect("front"), &mut records)
                }
                // Live: the segment arrived and the session cannot take it.
                Err(e) => {
                    records.push(record(j, seg, Err(e)));
                    break;
                }
            }
        }
    }
    while let Some(p) = pending.pop_front() {
        settle(p, &mut records);
    }
    // Its stages (and NVENC sessions) go before the next session of this slot opens.
    session.close(Duration::from_secs(10));
    if !cfg.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    records
}

fn outcome(k: usize, j: usize, dur: f64, r: Result<SegmentReport, Error>) -> SegmentRecord {
    let mut rec = SegmentRecord {
        timestamp: livepeer_timestamp(SystemTime::now()),
        session: k,
        segment: j,
        device: "cpu".into(),
        decoder: String::new(),
        encoder: String::new(),
        seg_dur: dur,
        transcode_time: 0.0,
        frames: 0,
        decoded_frames: 0,
        decoded_pixels: 0,
        encoded_pixels: 0,
        status: "ok",
        error: None,
        decode_seconds: 0.0,
        diffuse_seconds: 0.0,
        scale_seconds: 0.0,
        encode_seconds: 0.0,
    };
    match r {
        Ok(r) => {
            rec.transcode_time = r.wall_seconds;
            rec.frames = r.renditions.first().map_or(0, |x| x.frames);
            rec.decoded_frames = r.decoded_frames;
            rec.decoded_pixels = r.decoded_pixels;
            rec.encoded_pixels = r.renditions.iter().map(|x| x.pixels).sum();
            rec.decode_seconds = r.decode_seconds;
            rec.diffuse_seconds = r.diffuse_seconds;
            rec.scale_seconds = r.scale_seconds;
            rec.encode_seconds = r.encode_seconds;
            rec.decoder = r.decoder;
            rec.encoder = r
                .renditions
                .first()
                .map(|x| x.encoder.clone())
                .unwrap_or_default();
        }
        Err(e) => {
            rec.status = if e.is_busy() { "busy" } else { "error" };
            rec.error = Some(e.to_string());
        }
    }
    rec
}

fn summarise(
    sessions: usize,
    refused: usize,
    live: bool,
    records: Vec<SegmentRecord>,
    wall: f64,
    cpu: f64,
    peak_rss_mib: f64,
) -> Trial {
    let ok: Vec<&SegmentRecord> = records.iter().filter(|r| r.status == "ok").collect();
    let counts = Counts {
        total: records.len(),
        ok: ok.len(),
        busy: records.iter().filter(|r| r.status == "busy").count(),
        failed: records.iter().filter(|r| r.status == "error").count(),
        realtime: ok.iter().filter(|r| r.transcode_time <= r.seg_dur).count(),
    };
    let lat: Vec<f64> = ok.iter().map(|r| r.transcode_time).collect();
    let ratio: Vec<f64> = ok.iter().map(|r| r.transcode_time / r.seg_dur).collect();
    let sum = |f: fn(&SegmentRecord) -> f64| ok.iter().map(|r| f(r)).sum::<f64>();
    let media = sum(|r| r.seg_dur);
    let per_s = |x: f64| if wall > 0.0 { x / wall } else { 0.0 };
    let latency_ratio = Percentiles::of(&ratio);
    let transcoding = sum(|r| r.transcode_time);
    Trial {
        sessions,
        sessions_refused: refused,
        live,
        latency: Percentiles::of(&lat),
        latency_ratio,
        wall_seconds: wall,
        media_seconds: media,
        throughput: Throughput {
            media_seconds_per_second: per_s(media),
            frames_per_second: per_s(sum(|r| r.decoded_frames as f64)),
            decoded_pixels_per_second: per_s(sum(|r| r.decoded_pixels as f64)),
            encoded_pixels_per_second: per_s(sum(|r| r.encoded_pixels as f64)),
        },
        usage: Usage {
            cpu_seconds: cpu,
            cores_used: per_s(cpu),
            cores: crate::worker::cores(),
            peak_rss_mib,
        },
        stages: Stages {
            decode_seconds: sum(|r| r.decode_seconds),
            diffuse_seconds: sum(|r| r.diffuse_seconds),
            diffuse_fps: {
                let (s, f) = (sum(|r| r.diffuse_seconds), sum(|r| r.decoded_frames as f64));
                if s > 0.0 {
                    f / s
                } else {
                    0.0
                }
            },
            scale_seconds: sum(|r| r.scale_seconds),
            encode_seconds: sum(|r| r.encode_seconds),
        },
        livepeer: LivepeerSummary {
            total_segs_transcoded: counts.ok,
            realtime_segs_transcoded: counts.realtime,
            realtime_segs_ratio: if counts.ok > 0 {
                counts.realtime as f64 / counts.ok as f64
            } else {
                0.0
            },
            total_source_duration: media,
            total_transcoding_duration: transcoding,
            realtime_duration_ratio: if media > 0.0 {
                transcoding / media
            } else {
                0.0
            },
        },
        realtime: counts.total > 0
            && counts.ok == counts.total
            && latency_ratio.p95 <= REALTIME_MARGIN,
        segments: counts,
        records,
    }
}

/// The largest number of concurrent live sessions that stays real-time, searched by doubling
/// and then bisection up to `max_sessions`; returns it (0 if even one session is not) and
/// every trial run, in the order run.
pub fn find_max(
    cfg: &BenchConfig,
    max_sessions: usize,
    progress: &Progress,
) -> (usize, Vec<Trial>) {
    let mut trials: Vec<Trial> = Vec::new();
    let run = |n: usize, trials: &mut Vec<Trial>| {
        let t = run_trial(cfg, n, progress);
        let pass = t.realtime;
        if !progress.quiet {
            eprintln!(
                "  {n} sessions: p95 latency {:.2} s = {:.2} x segment, {}",
                t.latency.p95,
                t.latency_ratio.p95,
                if pass { "real-time" } else { "NOT real-time" }
            );
        }
        trials.push(t);
        pass
    };
    let (mut lo, mut hi) = (0, max_sessions + 1);
    let mut n = 1;
    while n <= max_sessions {
        if run(n, &mut trials) {
            lo = n;
            if n == max_sessions {
                break;
            }
            n = (n * 2).min(max_sessions);
        } else {
            hi = n;
            break;
        }
    }
    while hi - lo > 1 && hi <= max_sessions {
        let mid = (lo + hi) / 2;
        if run(mid, &mut trials) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo, trials)
}

/// `2006-01-02 15:04:05.9999` in UTC, as livepeer_bench's CSV writes its timestamps.
pub fn livepeer_timestamp(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let frac = format!("{:04}", d.subsec_micros() / 100);
    // Go's ".9999" drops trailing zeros (and the dot when all are zero).
    let frac = frac.trim_end_matches('0');
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}{}{frac}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        if frac.is_empty() { "" } else { "." }
    )
}

/// A scratch directory for one benchmark run.
pub fn scratch_dir(base: Option<&Path>) -> PathBuf {
    match base {
        Some(b) => b.to_path_buf(),
        None => std::env::temp_dir().join(format!("gpuworker-bench-{}", std::process::id())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_livepeer_format() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_136_214_245_123);
        assert_eq!(livepeer_timestamp(t), "2006-01-02 15:04:05.123");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(livepeer_timestamp(t), "2000-02-29 00:00:00");
    }
}

//! What this transcoder claims, found out at start as go-livepeer's `-testTranscoder` does
//! (core/transcoder.go `TestTranscoderCapabilities`, core/capabilities.go
//! `CapabilityTestLookup`): every capability that has a test is tried on every device by
//! transcoding a built-in sample into four renditions, and is claimed only if every device
//! produced them. The samples are go-livepeer's (core/test_segment.sh: 144x144, 5 frames),
//! made by `scripts/gen-capability-samples`. The H.264 test also asks for segment slicing and
//! MPEG-7 signatures, so those two default capabilities are claimed only when they work.
//!
//! Policy, as go-livepeer's (cmd/livepeer/starter/starter.go:660-721): a CPU-only worker
//! leaves out HEVC decoding (slow on a CPU) unless `-hevcDecoding=true`, and HEVC encoding
//! (libx265 is far from real time at the ladder's sizes); `-hevcDecoding=false` always
//! leaves out HEVC decoding; `-testTranscoder=false` claims the defaults untested.

use super::capabilities::{self as caps, DEFAULT};
use crate::error::{Error, Result};
use crate::pipeline::{Clip, SegmentOptions, Session, SessionConfig};
use crate::profile::{CodecProfile, Container, Gop, OutputCodec, Profile};
use crate::worker::{Worker, WorkerConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One built-in sample and the output go-livepeer tests it with.
struct Test {
    cap: u32,
    file: &'static str,
    data: &'static [u8],
    /// go-livepeer's test output box (146x146, or 145x145 for HEVC and VP8/VP9).
    size: u32,
    codec: OutputCodec,
}

macro_rules! sample {
    ($f:literal) => {
        (
            $f,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/capability-samples/",
                $f
            )) as &'static [u8],
        )
    };
}

fn tests() -> Vec<Test> {
    let t = |cap, (file, data): (&'static str, &'static [u8]), size, codec| Test {
        cap,
        file,
        data,
        size,
        codec,
    };
    use OutputCodec::{Hevc, H264};
    vec![
        t(caps::H264, sample!("h264.ts"), 146, H264),
        t(caps::HEVC_DECODE, sample!("hevc.ts"), 145, H264),
        t(caps::HEVC_ENCODE, sample!("h264.ts"), 145, Hevc),
        t(caps::VP8_DECODE, sample!("vp8.webm"), 145, H264),
        t(caps::VP9_DECODE, sample!("vp9.webm"), 145, H264),
        t(
            caps::H264_DECODE_444_8BIT,
            sample!("h264-444-8bit.ts"),
            146,
            H264,
        ),
        t(
            caps::H264_DECODE_422_8BIT,
            sample!("h264-422-8bit.ts"),
            146,
            H264,
        ),
        t(
            caps::H264_DECODE_444_10BIT,
            sample!("h264-444-10bit.ts"),
            146,
            H264,
        ),
        t(
            caps::H264_DECODE_422_10BIT,
            sample!("h264-422-10bit.ts"),
            146,
            H264,
        ),
        t(
            caps::H264_DECODE_420_10BIT,
            sample!("h264-420-10bit.ts"),
            146,
            H264,
        ),
    ]
}

/// Where and how to test.
#[derive(Debug, Clone)]
pub struct Options {
    /// CUDA devices the worker transcodes on; empty = the CPU.
    pub devices: Vec<usize>,
    /// `-testTranscoder`.
    pub test: bool,
    /// `-hevcDecoding` (unset, true or false).
    pub hevc_decoding: Option<bool>,
    pub work_dir: PathBuf,
    pub preset: String,
}

/// The outcome on one device: the path it took (decoder → encoder), or why it failed.
pub type Outcome = std::result::Result<String, String>;

/// The capability table and what is claimed.
#[derive(Debug, Clone)]
pub struct Report {
    pub devices: Vec<String>,
    /// Per tested capability, its outcome on each device (None: not tried, by policy).
    pub rows: Vec<(u32, Vec<Option<Outcome>>)>,
    pub claimed: Vec<u32>,
    /// Why a claim differs from the tests (policy, flags).
    pub notes: Vec<String>,
}

fn profile(size: u32, codec: OutputCodec) -> Profile {
    Profile {
        name: format!("test{size}"),
        width: size,
        height: size,
        bitrate: 1_000_000,
        fps: 0,
        fps_den: 1,
        profile: CodecProfile::EncoderDefault,
        gop: Gop::Default,
        container: Container::Mpegts,
        quality: 0,
        codec,
    }
}

/// Transcodes `t`'s sample on `worker` into four renditions, as go-livepeer's test does, and
/// returns once the session's stages (and the NVENC sessions they hold) are gone, so that
/// neither admission nor a GPU's session limit turns the next test away.
fn try_one(worker: &Worker, t: &Test, dir: &Path, preset: &str) -> Outcome {
    let mut cfg = SessionConfig::new(vec![profile(t.size, t.codec); 4]);
    cfg.preset = preset.to_string();
    let session = worker.open_session(cfg).map_err(|e| e.to_string())?;
    let outcome = transcode_sample(&session, t, dir);
    session.close(Duration::from_secs(5));
    outcome
}

fn transcode_sample(session: &Session, t: &Test, dir: &Path) -> Outcome {
    let input = dir.join(t.file);
    std::fs::write(&input, t.data).map_err(|e| format!("{}: {e}", input.display()))?;
    let outputs: Vec<PathBuf> = (0..4)
        .map(|i| dir.join(format!("{}-{i}.ts", t.cap)))
        .collect();
    // The H.264 test also exercises slicing and signatures (capabilities 26 and 14).
    let opts = SegmentOptions {
        clip: (t.cap == caps::H264).then_some(Clip {
            from_ms: 0,
            to_ms: 100,
        }),
        signature: t.cap == caps::H264,
        service: None,
    };
    let ticket = session
        .submit_with(&input, &outputs, opts)
        .map_err(|e| e.to_string())?;
    let report = ticket
        .wait_timeout(Duration::from_secs(60))
        .unwrap_or(Err(Error::Codec {
            stage: "test",
            detail: "timed out after 60 s".into(),
        }))
        .map_err(|e| e.to_string())?;
    for o in &outputs {
        let _ = std::fs::remove_file(o);
    }
    let _ = std::fs::remove_file(&input);
    if report.renditions.len() != 4 || report.decoded_pixels == 0 {
        return Err("empty result".into());
    }
    if report
        .renditions
        .iter()
        .any(|r| r.frames == 0 || r.pixels == 0)
    {
        return Err("a rendition has no frames".into());
    }
    if t.cap == caps::H264
        && report
            .renditions
            .iter()
            .any(|r| r.signature.as_ref().is_none_or(|s| s.is_empty()))
    {
        return Err("no MPEG-7 signature".into());
    }
    Ok(format!(
        "{} → {}",
        report.decoder, report.renditions[0].encoder
    ))
}

/// Whether a passed test counts on this kind of device (go-livepeer's software policy).
fn policy(cap: u32, gpu: bool, path: &str) -> Option<&'static str> {
    match cap {
        caps::HEVC_ENCODE if !gpu => Some("software HEVC encoding is not real time"),
        caps::HEVC_ENCODE if !path.ends_with("nvenc") => Some("HEVC is encoded on the CPU"),
        _ => None,
    }
}

/// Runs the tests (unless `-testTranscoder=false`) and decides the capabilities.
pub fn run(opts: &Options) -> Result<Report> {
    let gpu = !opts.devices.is_empty();
    let devices: Vec<Option<usize>> = if gpu {
        opts.devices.iter().copied().map(Some).collect()
    } else {
        vec![None]
    };
    let labels = devices
        .iter()
        .map(|d| d.map_or("cpu".to_string(), |n| format!("cuda:{n}")))
        .collect();
    let mut report = Report {
        devices: labels,
        rows: Vec::new(),
        claimed: Vec::new(),
        notes: Vec::new(),
    };
    let mut claimed: Vec<u32> = DEFAULT.to_vec();
    if !opts.test {
        if !gpu {
            // go-livepeer's software set: the optional video capabilities but HEVC and VP9.
            claimed.extend([17, 21, 22, 23, 24, 25]);
        }
        report
            .notes
            .push("-testTranscoder=false: capabilities claimed untested".into());
    } else {
        let dir = opts.work_dir.join("capability-test");
        std::fs::create_dir_all(&dir).map_err(|e| Error::Output {
            path: dir.clone(),
            detail: e.to_string(),
        })?;
        let workers: Vec<Worker> = devices
            .iter()
            .map(|d| {
                Worker::new(WorkerConfig {
                    threads: 0,
                    capacity: 1,
                    devices: d.iter().copied().collect(),
                })
            })
            .collect();
        for t in tests() {
            let outcomes: Vec<Option<Outcome>> = workers
                .iter()
                .map(|w| Some(try_one(w, &t, &dir, &opts.preset)))
                .collect();
            let passed = outcomes.iter().all(|o| matches!(o, Some(Ok(_))));
            let vetoed = outcomes
                .iter()
                .flatten()
                .filter_map(|o| o.as_ref().ok())
                .find_map(|path| policy(t.cap, gpu, path));
            match (t.cap, passed, vetoed) {
                (caps::H264, false, _) => {
                    let why = outcomes
                        .iter()
                        .flatten()
                        .find_map(|o| o.clone().err())
                        .unwrap_or_default();
                    return Err(Error::Codec {
                        stage: "capability test",
                        detail: format!(
                            "required capability \"{}\" is not supported: {why}",
                            caps::name(t.cap)
                        ),
                    });
                }
                (_, true, Some(why)) => report
                    .notes
                    .push(format!("{} not claimed: {why}", caps::name(t.cap))),
                (c, true, None) if c != caps::H264 => claimed.push(c),
                _ => {}
            }
            report.rows.push((t.cap, outcomes));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    match opts.hevc_decoding {
        None if !gpu && claimed.contains(&caps::HEVC_DECODE) => {
            claimed.retain(|&c| c != caps::HEVC_DECODE);
            report.notes.push(
                "HEVC decode not claimed: slow on a CPU (-hevcDecoding=true claims it)".into(),
            );
        }
        Some(true) if !claimed.contains(&caps::HEVC_DECODE) => {
            claimed.push(caps::HEVC_DECODE);
            report
                .notes
                .push("HEVC decode claimed by -hevcDecoding=true (may be slow)".into());
        }
        Some(false) => {
            claimed.retain(|&c| c != caps::HEVC_DECODE);
            report
                .notes
                .push("HEVC decode not claimed: -hevcDecoding=false".into());
        }
        _ => {}
    }
    claimed.sort_unstable();
    claimed.dedup();
    report.claimed = claimed;
    Ok(report)
}

impl Report {
    /// The table for the log: one line per tested capability, one column per device.
    pub fn table(&self) -> String {
        let mut t = format!("{:<28}", "capability");
        for d in &self.devices {
            t.push_str(&format!(" {d:<32}"));
        }
        for (cap, outcomes) in &self.rows {
            t.push_str(&format!(
                "\n{:<28}",
                format!("{} ({cap})", caps::name(*cap))
            ));
            for o in outcomes {
                let cell = match o {
                    Some(Ok(path)) => format!("ok {path}"),
                    Some(Err(e)) => format!("no: {e}"),
                    None => "-".into(),
                };
                t.push_str(&format!(" {cell:<32}"));
            }
        }
        for n in &self.notes {
            t.push_str(&format!("\n{n}"));
        }
        let names: Vec<String> = self.claimed.iter().map(|c| c.to_string()).collect();
        t.push_str(&format!("\nclaimed: {}", names.join(",")));
        t
    }
}

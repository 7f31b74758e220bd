//! `gpuworker transcode`: one session over consecutive segments, a summary at the end.

use anyhow::Context;
use gpuworker::backend::cpu::scale::Kernels;
use gpuworker::media::testsrc;
use gpuworker::pipeline::{Clip, SegmentOptions, SegmentReport, SessionConfig, Ticket};
use gpuworker::profile;
use gpuworker::worker::{Worker, WorkerConfig};
use std::collections::HashSet;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Outputs go to OUT/<profile name>/<input name>.ts (or .mp4). Each file \
    appears only once complete. Inputs are consecutive segments of one stream; a bad segment is \
    reported and skipped, and the exit status is 1 if any segment failed.\n\n\
    Examples:\n  gpuworker transcode                         # built-in 1080p30 clip, bench ladder\n  \
    gpuworker transcode seg*.ts --profiles P720p30fps16x9,P360p30fps16x9 --out out\n  \
    gpuworker transcode in.ts --profiles ladder.json --json"
)]
pub struct Args {
    /// MPEG-TS segments of one stream, in order (none: the built-in test clip).
    pub inputs: Vec<PathBuf>,
    /// Ladder: a go-livepeer transcodingOptions JSON file (or inline JSON), a comma list of
    /// presets (P720p30fps16x9, P360p30fps16x9, ...), or `bench` (240p/250k, 360p/800k,
    /// 480p/1600k, 720p/3000k, source fps, 1 s GOP).
    #[arg(long, short, default_value = "bench")]
    pub profiles: String,
    /// Output directory.
    #[arg(long, short, default_value = "out")]
    pub out: PathBuf,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// x264 preset (ultrafast ... placebo).
    #[arg(long, default_value = gpuworker::backend::cpu::encode::DEFAULT_PRESET)]
    pub x264_preset: String,
    /// Threads inside each decoder/encoder. 1 leaves parallelism to the worker's stage pool;
    /// 0 = libavcodec's automatic choice.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Stage pool threads; 0 = one per core.
    #[arg(long, short, default_value_t = 0)]
    pub jobs: usize,
    /// CUDA device for --scaler cuda (the first of a list; `all` = device 0 here).
    #[arg(long, default_value = "0")]
    pub nvidia: String,
    /// Scaler implementation: auto (the fastest this CPU has), portable, avx2, or cuda (on the
    /// --nvidia GPU, which then also decodes with NVDEC and encodes with NVENC where it has
    /// them: H100, H200 and A100 have no NVENC, so their renditions encode on the CPU).
    #[arg(long, default_value = "auto")]
    pub scaler: String,
    /// With --scaler cuda: decode on the CPU even where NVDEC could.
    #[arg(long)]
    pub no_nvdec: bool,
    /// With --scaler cuda: encode on the CPU (libx264) even where NVENC could.
    #[arg(long)]
    pub no_nvenc: bool,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Clip every rendition of every segment to FROM:TO milliseconds after its first frame
    /// (go-livepeer's segment slicing; 0 leaves that end open, e.g. 500:0).
    #[arg(long, value_name = "FROM:TO")]
    pub clip: Option<String>,
    /// Also write each rendition's MPEG-7 video signature beside it, as `<rendition>.bin`
    /// (what lpms writes for a gateway's verification).
    #[arg(long)]
    pub signatures: bool,
    #[command(flatten)]
    pub diffuse: super::ai::DiffuseArgs,
}

fn output_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let profiles = profile::parse_spec(&args.profiles)?;
    let clip = match &args.clip {
        None => None,
        Some(spec) => {
            let (from, to) = gpuworker::pipeline::clip::parse_range(spec)
                .ok_or_else(|| anyhow::anyhow!("--clip {spec}: expected FROM:TO in ms"))?;
            Clip::new(from, to).map_err(|e| anyhow::anyhow!("--clip {spec}: {e} (TO < FROM)"))?
        }
    };
    let opts = SegmentOptions {
        clip,
        signature: args.signatures,
        service: None,
    };
    let kernels = match args.scaler.as_str() {
        "auto" | "cuda" => Kernels::detect(),
        name => Kernels::by_name(name).ok_or_else(|| {
            let have: Vec<_> = Kernels::available().iter().map(|k| k.name()).collect();
            anyhow::anyhow!(
                "--scaler '{name}': expected auto, cuda or one this CPU has: {}",
                have.join(", ")
            )
        })?,
    };
    let inputs = if args.inputs.is_empty() {
        let dir = args.out.join("source");
        if !args.quiet {
            eprintln!(
                "no input given: writing the built-in 1080p30 test clip to {}",
                dir.display()
            );
        }
        testsrc::write_clip(&dir, &testsrc::ClipSpec::default())?
    } else {
        args.inputs.clone()
    };
    let mut stems = HashSet::new();
    for i in &inputs {
        let stem = i
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("segment")
            .to_string();
        anyhow::ensure!(
            stems.insert(stem.clone()),
            "two inputs are named '{stem}': outputs would collide"
        );
    }
    let mut dirs = HashSet::new();
    for p in &profiles {
        let dir = output_name(&p.name);
        anyhow::ensure!(
            dirs.insert(dir.clone()),
            "two profiles are named '{}'",
            p.name
        );
        std::fs::create_dir_all(args.out.join(&dir))
            .with_context(|| format!("cannot create {}", args.out.join(&dir).display()))?;
    }

    let mut cfg = SessionConfig::new(profiles.clone());
    cfg.preset = args.x264_preset.clone();
    cfg.threads = args.threads;
    cfg.kernels = kernels;
    cfg.nvdec = !args.no_nvdec;
    cfg.nvenc = !args.no_nvenc;
    cfg.diffuse = args.diffuse.factory()?;
    let devices = if args.scaler == "cuda" {
        // Without a driver each segment fails with "not available: …", as any GPU error would.
        let found = gpuworker::backend::cuda::probe().devices.len().max(1);
        let list = gpuworker::sched::placement::parse_devices(&args.nvidia, found)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        list[..1].to_vec()
    } else {
        Vec::new()
    };
    let worker = Worker::new(WorkerConfig {
        threads: args.jobs,
        capacity: 1,
        devices,
    });
    let session = worker.open_session(cfg)?;
    let started = Instant::now();
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    // Segments are pipelined: the next one is decoded while the last renditions still encode.
    let mut in_flight: VecDeque<(usize, &PathBuf, Ticket)> = VecDeque::new();
    let mut settle = |(n, input, ticket): (usize, &PathBuf, Ticket)| match ticket.wait() {
        Ok(r) => {
            for rend in &r.renditions {
                let Some(sig) = &rend.signature else { continue };
                let mut path = rend.path.clone().into_os_string();
                path.push(".bin");
                if let Err(e) = std::fs::write(&path, sig) {
                    eprintln!("error: {}: {e}", PathBuf::from(path).display());
                }
            }
            if !args.quiet {
                eprintln!(
                    "[{}/{}] {}: {} frames, {:.2} s media, done {:.2} s after submission",
                    n + 1,
                    inputs.len(),
                    input.display(),
                    r.decoded_frames,
                    r.duration,
                    r.wall_seconds,
                );
            }
            reports.push(r);
        }
        Err(e) => {
            eprintln!("error: {e}");
            failures.push(e.to_string());
        }
    };
    for (n, input) in inputs.iter().enumerate() {
        let stem = input
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("segment");
        let outputs: Vec<PathBuf> = profiles
            .iter()
            .map(|p| {
                args.out
                    .join(output_name(&p.name))
                    .join(format!("{stem}.{}", p.container.extension()))
            })
            .collect();
        loop {
            match session.submit_with(input, &outputs, opts.clone()) {
                Ok(t) => {
                    in_flight.push_back((n, input, t));
                    break;
                }
                Err(e) if e.is_busy() => settle(in_flight.pop_front().expect("a segment held")),
                Err(e) => return Err(e.into()),
            }
        }
    }
    while let Some(t) = in_flight.pop_front() {
        settle(t);
    }
    let wall = started.elapsed().as_secs_f64();
    if args.json {
        let v = serde_json::json!({
            "segments": reports,
            "failed": failures,
            "wall_seconds": wall,
            "scaler": session.scaler_name(),
            "x264_preset": args.x264_preset,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_summary(
            &reports,
            wall,
            session.scaler_name().as_deref().unwrap_or("-"),
        );
    }
    // Every stage drops its codecs and device memory before the process exits.
    if !session.close(std::time::Duration::from_secs(10)) {
        tracing::warn!("the session's stages did not finish within 10 s");
    }
    Ok(if failures.is_empty() { 0 } else { 1 })
}

fn print_summary(reports: &[SegmentReport], wall: f64, scaler: &str) {
    if reports.is_empty() {
        println!("no segment transcoded");
        return;
    }
    let media: f64 = reports.iter().map(|r| r.duration).sum();
    let frames: u64 = reports.iter().map(|r| r.decoded_frames).sum();
    let pixels: u64 = reports.iter().map(|r| r.decoded_pixels).sum();
    let (sw, sh) = (reports[0].source_width, reports[0].source_height);
    println!(
        "source {sw}x{sh}: {} segments, {frames} frames, {pixels} decoded pixels, {media:.2} s media",
        reports.len()
    );
    println!(
        "{:<16} {:>10} {:>7} {:>13} {:>10} {:>9} {:>10} {:>9}",
        "rendition", "size", "frames", "pixels", "bytes", "kbps", "video kbps", "target"
    );
    for (i, first) in reports[0].renditions.iter().enumerate() {
        let (mut f, mut p, mut b, mut video_bits) = (0, 0, 0, 0.0);
        for seg in reports {
            let r = &seg.renditions[i];
            (f, p, b) = (f + r.frames, p + r.pixels, b + r.bytes);
            video_bits += r.video_bitrate as f64 * seg.duration;
        }
        println!(
            "{:<16} {:>10} {:>7} {:>13} {:>10} {:>9.0} {:>10.0} {:>9}",
            first.name,
            format!("{}x{}", first.width, first.height),
            f,
            p,
            b,
            b as f64 * 8.0 / media / 1000.0,
            video_bits / media / 1000.0,
            first.target_bitrate / 1000
        );
    }
    let sum = |f: fn(&SegmentReport) -> f64| reports.iter().map(f).sum::<f64>();
    let last = &reports[reports.len() - 1];
    let encoder = last.renditions.first().map_or("-", |r| r.encoder.as_str());
    println!(
        "wall {wall:.2} s = {:.2}x real time; stage thread time: decode ({}) {:.2} s,{} scale ({scaler}) {:.2} s, encode ({encoder}) {:.2} s",
        media / wall,
        last.decoder,
        sum(|r| r.decode_seconds),
        match sum(|r| r.diffuse_seconds) {
            0.0 => String::new(),
            d => format!(
                " diffuse {d:.2} s ({:.2} frames/s),",
                sum(|r| r.decoded_frames as f64) / d
            ),
        },
        sum(|r| r.scale_seconds),
        sum(|r| r.encode_seconds)
    );
}

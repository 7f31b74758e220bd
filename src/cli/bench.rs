//! `gpuworker bench`: how many concurrent real-time streams does this machine sustain?

use anyhow::{bail, Context};
use gpuworker::backend::cpu::scale::Kernels;
use gpuworker::bench::{self, input, plot, report, BenchConfig, Progress, Trial};
use gpuworker::media::testsrc;
use gpuworker::pipeline::SessionConfig;
use gpuworker::profile;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Each session is one stream with its own decoder, scaler and encoders. \
    Live (the default): segment j of a session arrives j segment-durations after the session \
    starts, and its latency runs from arrival to the last rendition written. A session that \
    cannot take a segment when it arrives refuses it as busy. Offline: segments are fed as \
    fast as sessions take them.\n\n\
    A live trial is real-time when every segment is transcoded and the p95 of latency / \
    segment duration is at most 0.8 (Livepeer's advice: keep 20% for the network).\n\n\
    Examples:\n  gpuworker bench --find-max                   # built-in 1080p30 clip, bench ladder\n  \
    gpuworker bench --in bbb/source.m3u8 --sessions 4 --csv bench.csv\n  \
    gpuworker bench --in segs/ --offline --sessions 8 --report r.json --plot p.svg"
)]
pub struct Args {
    /// HLS media playlist (.m3u8) or directory of .ts segments (none: the built-in clip, 4 x 2 s
    /// of 1080p30).
    #[arg(long = "in")]
    pub input: Option<PathBuf>,
    /// Ladder, as for `transcode`: JSON file or inline JSON, preset list, or `bench`.
    #[arg(long, short, default_value = "bench")]
    pub profiles: String,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 1)]
    pub sessions: usize,
    /// Feed segments as fast as possible instead of at real-time pace.
    #[arg(long, conflicts_with = "live")]
    pub offline: bool,
    /// Feed segments at real-time pace (the default).
    #[arg(long)]
    pub live: bool,
    /// Segments per session (inputs are cycled); 0 = each input once.
    #[arg(long, default_value_t = 0)]
    pub segments: usize,
    /// Run the whole benchmark this many times (a summary per run).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Where sessions scale: cpu, or CUDA devices (cuda:0,1 or all), sessions placed on the
    /// least-loaded device. On a GPU, sessions decode with NVDEC and encode with NVENC where
    /// the GPU has them and its NVENC session limit allows; otherwise on the CPU.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// With --device cuda: decode on the CPU even where NVDEC could.
    #[arg(long)]
    pub no_nvdec: bool,
    /// With --device cuda: encode on the CPU (libx264) even where NVENC could (the path of
    /// GPUs without NVENC, for comparison).
    #[arg(long)]
    pub no_nvenc: bool,
    #[command(flatten)]
    pub diffuse: super::ai::DiffuseArgs,
    /// Search for the most concurrent live sessions that stay real-time.
    #[arg(long)]
    pub find_max: bool,
    /// Upper bound of the --find-max search (default: 8 per core).
    #[arg(long)]
    pub max_sessions: Option<usize>,
    /// Worker capacity in sessions (admission control); sessions beyond it are refused as
    /// busy. Default: as many as the trial runs.
    #[arg(long, default_value_t = 0)]
    pub capacity: usize,
    /// Seconds between session starts (default: one segment duration spread over the sessions).
    #[arg(long)]
    pub stagger: Option<f64>,
    /// Write livepeer_bench's per-segment CSV here (`-` = stdout).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write the full JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write an SVG plot of latency percentiles and throughput against sessions here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Scratch directory for renditions (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the renditions.
    #[arg(long)]
    pub keep: bool,
    /// x264 preset.
    #[arg(long, default_value = gpuworker::backend::cpu::encode::DEFAULT_PRESET)]
    pub x264_preset: String,
    /// Stage pool threads; 0 = one per core.
    #[arg(long, short, default_value_t = 0)]
    pub jobs: usize,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Writes `bytes` to `path` through a part file, so a partial file never has the final name.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    std::fs::write(&part, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::rename(&part, path).with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let devices = if args.device == "cpu" {
        Vec::new()
    } else {
        let list = match args.device.as_str() {
            "all" | "cuda" => "all",
            d => d
                .strip_prefix("cuda:")
                .ok_or_else(|| anyhow::anyhow!("--device '{d}': expected cpu, cuda:0,1 or all"))?,
        };
        let info = gpuworker::backend::cuda::probe();
        if let Some(reason) = info.reason {
            bail!("--device {}: {reason}", args.device);
        }
        gpuworker::sched::placement::parse_devices(list, info.devices.len())
            .map_err(|e| anyhow::anyhow!("--device {}: {e}", args.device))?
    };
    if args.find_max && args.offline {
        bail!("--find-max searches live sessions; leave out --offline");
    }
    anyhow::ensure!(args.sessions >= 1, "--sessions must be at least 1");
    anyhow::ensure!(args.repeat >= 1, "--repeat must be at least 1");
    let profiles = profile::parse_spec(&args.profiles)?;
    let scratch = bench::scratch_dir(args.out.as_deref());
    let owns_scratch = args.out.is_none();
    let inputs = match &args.input {
        Some(p) => input::load(p)?,
        None => {
            let dir = scratch.join("source");
            if !args.quiet {
                eprintln!("no --in given: writing the built-in 1080p30 clip (4 x 2 s segments)");
            }
            let spec = testsrc::ClipSpec {
                segments: 4,
                ..Default::default()
            };
            testsrc::write_clip(&dir, &spec)?
                .into_iter()
                .map(|path| {
                    Ok(input::InputSegment {
                        duration: input::media_duration(&path)?,
                        path,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        }
    };
    let mut session = SessionConfig::new(profiles.clone());
    session.preset = args.x264_preset.clone();
    session.kernels = Kernels::detect();
    session.nvdec = !args.no_nvdec;
    session.nvenc = !args.no_nvenc;
    session.diffuse = args.diffuse.factory()?;
    let cfg = BenchConfig {
        inputs,
        session,
        live: !args.offline,
        segments: args.segments,
        stagger: args.stagger.map(Duration::from_secs_f64),
        out: scratch.join("renditions"),
        keep: args.keep,
        capacity: args.capacity,
        threads: args.jobs,
        devices,
    };
    let source = args
        .input
        .as_ref()
        .map_or("built-in clip".into(), |p| p.display().to_string());
    let machine = report::Machine::this();
    if !args.quiet {
        eprintln!("| Source File                  | {source}");
        eprintln!("| Transcoding Options          | {}", args.profiles);
        eprintln!(
            "| Concurrent Sessions          | {}",
            if args.find_max {
                "search".into()
            } else {
                args.sessions.to_string()
            }
        );
        eprintln!("| Live Mode                    | {}", cfg.live);
        eprintln!(
            "| Device                       | cpu ({} cores, {})",
            machine.cores, machine.cpu
        );
        eprintln!("| Repeat Times                 | {}", args.repeat);
    }

    let progress = Progress::new(args.quiet);
    let mut trials: Vec<Trial> = Vec::new();
    let mut found = None;
    if args.find_max {
        let limit = args.max_sessions.unwrap_or(8 * machine.cores).max(1);
        let (max, t) = bench::find_max(&cfg, limit, &progress);
        found = Some(report::FindMax::new(max, limit));
        trials = t;
    } else {
        for r in 0..args.repeat {
            let t = bench::run_trial(&cfg, args.sessions, &progress);
            if args.repeat > 1 {
                println!("== repeat {} of {}", r + 1, args.repeat);
            }
            print!("{}", report::livepeer_table(&t));
            print!("{}", report::summary(&t));
            trials.push(t);
        }
    }
    if let Some(f) = &found {
        println!(
            "{:>9} {:>6} {:>6} {:>9} {:>9} {:>9} {:>11} {:>6}",
            "sessions", "ok", "busy", "p50 s", "p95 s", "p99 s", "media s/s", "cores"
        );
        let mut sorted: Vec<&Trial> = trials.iter().collect();
        sorted.sort_by_key(|t| t.sessions);
        for t in sorted {
            println!(
                "{:>9} {:>6} {:>6} {:>9.3} {:>9.3} {:>9.3} {:>11.2} {:>6.2} {}",
                t.sessions,
                t.segments.ok,
                t.segments.busy,
                t.latency.p50,
                t.latency.p95,
                t.latency.p99,
                t.throughput.media_seconds_per_second,
                t.usage.cores_used,
                if t.realtime { "real-time" } else { "-" }
            );
        }
        let best = trials.iter().find(|t| t.sessions == f.max_sessions);
        match best {
            Some(t) => println!(
                "max real-time sessions: {} (p95 latency {:.2} s = {:.2} x segment duration; {:.2} media s per wall s)",
                f.max_sessions, t.latency.p95, t.latency_ratio.p95, t.throughput.media_seconds_per_second
            ),
            None => println!(
                "max real-time sessions: 0 (one session is not real-time on this machine with this ladder)"
            ),
        }
    }

    if let Some(path) = &args.csv {
        let mut buf = Vec::new();
        report::write_csv(&mut buf, &trials)?;
        if path.as_os_str() == "-" {
            print!("{}", String::from_utf8_lossy(&buf));
        } else {
            write_atomic(path, &buf)?;
        }
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "gpuworker bench: {source}, {} profiles, {} cores ({})",
            profiles.len(),
            machine.cores,
            machine.cpu
        );
        write_atomic(path, plot::svg(&trials, &title).as_bytes())?;
    }
    let failed: usize = trials.iter().map(|t| t.segments.failed).sum();
    if let Some(path) = &args.report {
        let config = serde_json::json!({
            "input": source,
            "profiles": profiles.iter().map(|p| &p.name).collect::<Vec<_>>(),
            "live": cfg.live,
            "sessions": args.sessions,
            "segments_per_session": if cfg.segments == 0 { cfg.inputs.len() } else { cfg.segments },
            "inputs": cfg.inputs,
            "repeat": args.repeat,
            "x264_preset": args.x264_preset,
            "capacity": args.capacity,
            "device": args.device,
        });
        let rep = report::Report {
            version: env!("CARGO_PKG_VERSION"),
            machine,
            config,
            trials,
            find_max: found,
        };
        write_atomic(path, serde_json::to_string_pretty(&rep)?.as_bytes())?;
    }
    if owns_scratch {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

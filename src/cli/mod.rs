//! Subcommands and their arguments.

mod ai;
mod bench;
pub mod livepeer_flags;
pub mod network;
mod probe;
mod tools;
mod transcode;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "gpuworker",
    version,
    about = "Video transcoding worker: MPEG-TS segments in, an adaptive-bitrate ladder out.",
    long_about = "Video transcoding worker: MPEG-TS segments in, an adaptive-bitrate ladder of \
                  H.264 renditions out, with exact pixel accounting (go-livepeer compatible).\n\n\
                  Start with `gpuworker probe`, then `gpuworker transcode` (no input = a built-in \
                  1080p30 test clip)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the backends this machine can use, and why others are missing.
    Probe {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Transcode segments of one stream into every rendition of a ladder.
    Transcode(transcode::Args),
    /// Measure concurrent sessions: latency percentiles, throughput, CPU and memory;
    /// --find-max searches for the most real-time live sessions.
    Bench(bench::Args),
    /// Write the built-in test clip as MPEG-TS segments.
    Testsrc {
        /// Directory for seg0.ts, seg1.ts, ...
        #[arg(long, default_value = "testsrc")]
        out: PathBuf,
        /// Number of segments.
        #[arg(long, default_value_t = 2)]
        segments: u32,
        /// Seconds per segment.
        #[arg(long, default_value_t = 2)]
        segment_seconds: u32,
        /// Frame size, WIDTHxHEIGHT.
        #[arg(long, default_value = "1920x1080")]
        size: String,
        /// Frames per second.
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Leave out the audio track.
        #[arg(long)]
        no_audio: bool,
    },
    /// Print, as a JSON array, the ffmpeg CLI arguments that transcode INPUT like `transcode`
    /// does (same sizes, x264 options, rate control, GOP), for side-by-side comparisons.
    FfmpegCmd {
        input: PathBuf,
        /// Output prefix: renditions go to PREFIX<profile name>.ts
        prefix: String,
        #[arg(long, short, default_value = "bench")]
        profiles: String,
        #[arg(long, default_value = gpuworker::backend::cpu::encode::DEFAULT_PRESET)]
        x264_preset: String,
    },
    /// Join a go-livepeer orchestrator as a remote transcoder (like `livepeer -transcoder`).
    Transcoder(network::TranscoderArgs),
    /// Serve the HTTP API: POST /transcode, GET /healthz, GET /metrics.
    Serve(network::ServeArgs),
    /// Run go-livepeer's orchestrator side for trying a transcoder: plays segments to the
    /// transcoders that register and checks what comes back.
    TestOrchestrator(network::OrchestratorArgs),
    /// Serve the Livepeer AI runner's API (text-to-image, image-to-image, upscale) with a
    /// local diffusers model on candle, or generate once with --prompt.
    Ai(ai::AiArgs),
    /// Write a tiny random-weight diffusers model (for trying `ai` and `--diffuse` without
    /// real weights).
    AiTestmodel(ai::TestModelArgs),
    /// Compare two binary MPEG-7 video signatures as a go-livepeer gateway's fast
    /// verification does (lpms CompareSignatureByBuffer): prints whole, partial, no match or
    /// InvalidSignData; exits 0 on a match, 1 otherwise.
    SignatureCompare {
        /// The trusted transcoder's signature (e.g. `ffmpeg ... -vf signature=filename=a.bin`).
        a: PathBuf,
        /// The other transcoder's signature (e.g. `transcode --signatures` writes `*.ts.bin`).
        b: PathBuf,
    },
    /// PSNR of a rendition against its source scaled by the float64 reference resampler.
    Psnr {
        /// The source segment.
        source: PathBuf,
        /// The rendition made from it.
        rendition: PathBuf,
        /// Compare every N-th frame.
        #[arg(long, default_value_t = 1)]
        every: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// The log level unless GPUWORKER_LOG says otherwise: servers report what they do.
    pub fn default_log(&self) -> &'static str {
        match self {
            Command::Transcoder(_)
            | Command::Serve(_)
            | Command::TestOrchestrator(_)
            | Command::Ai(_) => "warn,gpuworker=info",
            _ => "warn",
        }
    }
}

/// Runs a subcommand; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Probe { json } => probe::run(json),
        Command::Transcode(args) => transcode::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Transcoder(args) => network::transcoder(args),
        Command::Serve(args) => network::serve(args),
        Command::Ai(args) => ai::ai(args),
        Command::AiTestmodel(args) => ai::test_model(args),
        Command::TestOrchestrator(args) => network::test_orchestrator(args),
        Command::Testsrc {
            out,
            segments,
            segment_seconds,
            size,
            fps,
            no_audio,
        } => tools::testsrc(out, segments, segment_seconds, &size, fps, !no_audio),
        Command::FfmpegCmd {
            input,
            prefix,
            profiles,
            x264_preset,
        } => tools::ffmpeg_cmd(&input, &prefix, &profiles, &x264_preset),
        Command::SignatureCompare { a, b } => tools::signature_compare(&a, &b),
        Command::Psnr {
            source,
            rendition,
            every,
            json,
        } => tools::psnr(&source, &rendition, every, json),
    }
}

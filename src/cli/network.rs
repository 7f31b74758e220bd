//! `gpuworker transcoder`, `gpuworker serve` and `gpuworker test-orchestrator`.

use anyhow::{bail, Context};
use gpuworker::net::{
    capability_test, serve, sessions::SessionTable, test_orchestrator, tls::Trust, transcoder,
};
use gpuworker::pipeline::SessionConfig;
use gpuworker::worker::{Worker, WorkerConfig};
use gpuworker::{bench::input, profile};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// GPU and CPU options shared by the network front ends.
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// NVIDIA GPUs to use: `0,1` or `all` (default: CPU only). Sessions are placed on the
    /// least-loaded GPU; each uses NVDEC and NVENC where the GPU has them.
    #[arg(long)]
    pub nvidia: Option<String>,
    /// Stage pool threads; 0 = one per core.
    #[arg(long, short, default_value_t = 0)]
    pub jobs: usize,
    /// x264 preset for renditions encoded on the CPU.
    #[arg(long, default_value = gpuworker::backend::cpu::encode::DEFAULT_PRESET)]
    pub x264_preset: String,
    /// Directory for segments and renditions in flight (removed as each one is answered).
    #[arg(long, default_value = "/tmp/gpuworker-work")]
    pub work_dir: PathBuf,
}

impl WorkerArgs {
    /// The defaults of the command-line options.
    pub fn defaults() -> Self {
        WorkerArgs {
            nvidia: None,
            jobs: 0,
            x264_preset: gpuworker::backend::cpu::encode::DEFAULT_PRESET.to_string(),
            work_dir: PathBuf::from("/tmp/gpuworker-work"),
        }
    }

    /// The CUDA devices `--nvidia` names (none without it).
    fn devices(&self) -> anyhow::Result<Vec<usize>> {
        Ok(match &self.nvidia {
            None => Vec::new(),
            Some(spec) => {
                let info = gpuworker::backend::cuda::probe();
                if let Some(reason) = &info.reason {
                    bail!("--nvidia {spec}: {reason}");
                }
                gpuworker::sched::placement::parse_devices(spec, info.devices.len())
                    .map_err(|e| anyhow::anyhow!("--nvidia {spec}: {e}"))?
            }
        })
    }

    fn worker(&self, capacity: usize) -> anyhow::Result<Arc<Worker>> {
        Ok(Arc::new(Worker::new(WorkerConfig {
            threads: self.jobs,
            capacity,
            devices: self.devices()?,
        })))
    }

    fn session(&self) -> SessionConfig {
        let mut s = SessionConfig::new(Vec::new());
        s.preset = self.x264_preset.clone();
        s
    }
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example (with the test orchestrator of `gpuworker test-orchestrator`):\n  \
    gpuworker transcoder --orch-addr 127.0.0.1:8935 --orch-secret secret.txt --max-sessions 4\n\n\
    go-livepeer's own command line works too: gpuworker -transcoder -orchAddr=HOST \
    -orchSecret=SECRET -maxSessions=N [-nvidia=0,1|all] [-monitor -cliAddr=ADDR] [-v=6]\n\n\
    Stops on SIGTERM or Ctrl-C after finishing the segments in flight. Logs: GPUWORKER_LOG=debug."
)]
pub struct TranscoderArgs {
    /// Orchestrator address, HOST[:PORT] (default port 8935, `:PORT` for 127.0.0.1,
    /// `https://HOST` for 443; only the first of a comma list).
    #[arg(long)]
    pub orch_addr: String,
    /// The orchestrator's transcoder secret, or a file that holds it.
    #[arg(long)]
    pub orch_secret: String,
    /// Concurrent streams announced to the orchestrator as capacity. The worker never
    /// refuses a stream the orchestrator sends within it.
    #[arg(long, default_value_t = 10)]
    pub max_sessions: usize,
    /// Test every capability on every device at start and claim only what passed
    /// (go-livepeer's -testTranscoder); false claims the defaults untested.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub test_transcoder: bool,
    /// Claim HEVC decoding (true), never claim it (false); unset: where the test passed on
    /// a GPU (a CPU-only worker leaves it out, as go-livepeer).
    #[arg(long)]
    pub hevc_decoding: Option<bool>,
    /// The version registered with the orchestrator (gateways' -orchMinLivepeerVersion
    /// compares it): the go-livepeer release whose protocol this worker implements.
    #[arg(long, default_value = gpuworker::net::capabilities::LIVEPEER_VERSION)]
    pub livepeer_version: String,
    /// Accept only the orchestrator certificate in this PEM file (default: any certificate,
    /// as go-livepeer does).
    #[arg(long)]
    pub orch_cert: Option<String>,
    /// Serve Prometheus `/metrics` (and `/healthz`) on this address, e.g. 127.0.0.1:7935.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  gpuworker serve --listen 127.0.0.1:8080 &\n  \
    curl -s --data-binary @seg0.ts -H 'Profiles: P360p30fps16x9,P240p30fps16x9' \
    http://127.0.0.1:8080/transcode -o out.multipart\n  curl -s http://127.0.0.1:8080/metrics"
)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Require `Authorization: Bearer TOKEN` (a string, or a file that holds it).
    #[arg(long)]
    pub token: Option<String>,
    /// Sessions admitted at once; beyond them requests get 503.
    #[arg(long, default_value_t = 16)]
    pub max_sessions: usize,
    /// Sessions one client address may hold at once (429 beyond).
    #[arg(long, default_value_t = 4)]
    pub per_client_sessions: usize,
    /// Largest segment accepted, in MB (413 beyond).
    #[arg(long, default_value_t = 300)]
    pub max_body_mb: usize,
    /// Profiles for requests that name none (JSON, preset names or `bench`).
    #[arg(long, default_value = "P360p30fps16x9,P240p30fps16x9")]
    pub profiles: String,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Example:\n  gpuworker testsrc --out clip --segments 4\n  \
    gpuworker test-orchestrator --listen 127.0.0.1:8935 --secret s3cret --in clip --streams 2 &\n  \
    gpuworker transcoder --orch-addr 127.0.0.1:8935 --orch-secret s3cret --max-sessions 2\n\n\
    Prints one JSON line per segment (status, renditions, pixels) and exits 0 when every \
    segment came back transcoded, 1 otherwise."
)]
pub struct OrchestratorArgs {
    #[arg(long, default_value = "127.0.0.1:8935")]
    pub listen: SocketAddr,
    /// The secret transcoders must present.
    #[arg(long)]
    pub secret: String,
    /// Segments to play: an m3u8 playlist, a directory of .ts files or one file.
    #[arg(long = "in")]
    pub input: PathBuf,
    /// Concurrent streams (each plays every segment).
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Ladder sent with each segment (JSON, preset names or `bench`).
    #[arg(long, default_value = "P360p30fps16x9,P240p30fps16x9")]
    pub profiles: String,
    /// Write received renditions under this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the orchestrator's certificate (PEM) here, for `transcoder --orch-cert`.
    #[arg(long)]
    pub cert_out: Option<PathBuf>,
    /// Serve this segment number only after 10 s (to try the transcoder's download timeout).
    #[arg(long)]
    pub stall_seq: Option<i64>,
    /// Keep serving after the streams are played.
    #[arg(long)]
    pub linger: bool,
    /// Jobs come from an HTTP-push gateway: they require segment slicing (capability 26).
    #[arg(long)]
    pub http_push: bool,
    /// With --http-push: slice every segment to FROM:TO ms (Content-Slice-From/-To).
    #[arg(long, value_name = "FROM:TO", requires = "http_push")]
    pub clip: Option<String>,
    /// The gateway verifies: jobs require MPEG-7 signatures (capability 14) and ask for them.
    #[arg(long)]
    pub verification: bool,
    /// The gateway's -orchMinLivepeerVersion.
    #[arg(long)]
    pub min_version: Option<String>,
    /// Start the streams once this many transcoders have registered.
    #[arg(long, default_value_t = 1)]
    pub wait_transcoders: usize,
    /// Start stream k this many seconds after stream k-1.
    #[arg(long, default_value_t = 0.0)]
    pub stagger: f64,
    /// Serve segments from a second address with its own certificate (like a gateway's
    /// object store) instead of from the orchestrator's.
    #[arg(long)]
    pub separate_storage: bool,
}

/// Segments one stream may have queued (go-livepeer's `maxSegmentChannels`, core/lb.go).
const SESSION_DEPTH: usize = 4;

/// The host name, go-livepeer's metrics `node_id`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

pub fn transcoder(args: TranscoderArgs) -> anyhow::Result<i32> {
    if args.max_sessions == 0 {
        bail!("--max-sessions must be at least 1");
    }
    if gpuworker::net::capabilities::parse_version(&args.livepeer_version).is_none() {
        bail!(
            "--livepeer-version {}: not a semantic version (gateways would refuse it)",
            args.livepeer_version
        );
    }
    let trust = match &args.orch_cert {
        Some(path) => Trust::pin_file(path)?,
        None => Trust::Any,
    };
    let devices = args.worker.devices()?;
    let tested = capability_test::run(&capability_test::Options {
        devices: devices.clone(),
        test: args.test_transcoder,
        hevc_decoding: args.hevc_decoding,
        work_dir: args.worker.work_dir.clone(),
        preset: args.worker.x264_preset.clone(),
    })?;
    for line in tested.table().lines() {
        tracing::info!("{line}");
    }
    // go-livepeer never refuses work locally: admission only guards against a runaway, with
    // room for the orchestrator's teardowns to arrive after its slots are reused.
    let mut session = args.worker.session();
    session.depth = SESSION_DEPTH;
    let worker = Arc::new(Worker::new(WorkerConfig {
        threads: args.worker.jobs,
        capacity: args.max_sessions * 2 + 2,
        devices,
    }));
    let cfg = transcoder::TranscoderConfig {
        orch_addr: transcoder::orchestrator_address(&args.orch_addr),
        secret: transcoder::read_secret(&args.orch_secret),
        max_sessions: args.max_sessions,
        trust,
        work_dir: args.worker.work_dir.clone(),
        session,
        metrics_addr: args.metrics_addr,
        capabilities: tested.claimed,
        version: args.livepeer_version.clone(),
        node_id: hostname(),
    };
    let rt = runtime()?;
    let result = rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            stop_signal().await;
            let _ = tx.send(true);
        });
        transcoder::run(cfg, worker, rx).await
    });
    match result {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}

pub fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    let profiles = profile::parse_spec(&args.profiles).context("--profiles")?;
    let worker = args.worker.worker(args.max_sessions)?;
    let cfg = serve::ServeConfig {
        listen: args.listen,
        token: args.token.as_deref().map(transcoder::read_secret),
        max_body: args.max_body_mb.saturating_mul(1_000_000),
        per_client_sessions: args.per_client_sessions.max(1),
        default_profiles: profiles,
        work_dir: args.worker.work_dir.clone(),
    };
    let sessions = SessionTable::new(worker, args.worker.session());
    runtime()?.block_on(serve::run(cfg, sessions, stop_signal()))?;
    Ok(0)
}

pub fn test_orchestrator(args: OrchestratorArgs) -> anyhow::Result<i32> {
    let profiles = profile::parse_spec(&args.profiles).context("--profiles")?;
    let segments: Vec<(PathBuf, f64)> = input::load(&args.input)?
        .into_iter()
        .map(|s| (s.path, s.duration))
        .collect();
    if segments.is_empty() {
        bail!("{}: no segments", args.input.display());
    }
    let clip = match &args.clip {
        None => None,
        Some(spec) => Some(
            gpuworker::pipeline::clip::parse_range(spec)
                .ok_or_else(|| anyhow::anyhow!("--clip {spec}: expected FROM:TO in ms"))?,
        ),
    };
    let cfg = test_orchestrator::OrchestratorConfig {
        listen: args.listen,
        secret: transcoder::read_secret(&args.secret),
        streams: args.streams.max(1),
        segments,
        profiles,
        out: args.out,
        cert_out: args.cert_out,
        stall_seq: args.stall_seq,
        linger: args.linger,
        gateway: test_orchestrator::gateway::GatewayMode {
            http_push: args.http_push,
            clip,
            verification: args.verification,
            min_version: args.min_version,
        },
        wait_transcoders: args.wait_transcoders,
        stagger: std::time::Duration::from_secs_f64(args.stagger.max(0.0)),
        separate_storage: args.separate_storage,
    };
    let outcomes = runtime()?.block_on(test_orchestrator::run(cfg))?;
    let ok = outcomes.iter().filter(|o| o.status == "ok").count();
    eprintln!(
        "test-orchestrator: {} segments, {ok} transcoded, {} failed",
        outcomes.len(),
        outcomes.len() - ok
    );
    Ok(if ok == outcomes.len() { 0 } else { 1 })
}

//! `gpuworker transcoder` (and `gpuworker -transcoder ...`): a drop-in for `livepeer
//! -transcoder`. It registers with an orchestrator over gRPC (TLS, certificate not checked
//! unless pinned) with the capabilities its start-up test found ([`super::capability_test`])
//! and a go-livepeer version, receives one NotifySegment per segment and hands each to
//! [`super::task`]. Lost connections are retried with exponential backoff up to a minute; a
//! wrong secret, a zero capacity or a cancelled stream ends the process, as in go-livepeer
//! (server/ot_rpc.go:68-82); a stop request finishes the segments in flight first.
//! Facts: ../shared/reference/go-livepeer-dropin.md.

use super::capabilities;
use super::livepeer_metrics::LivepeerMetrics;
use super::metrics::Metrics;
use super::proto::{transcoder_client::TranscoderClient, RegisterRequest};
use super::sessions::{SessionTable, IDLE};
use super::tls::{self, Trust};
use crate::pipeline::SessionConfig;
use crate::worker::Worker;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The longest wait between registration attempts (go-livepeer: one minute).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct TranscoderConfig {
    /// `host:port` of the orchestrator.
    pub orch_addr: String,
    pub secret: String,
    /// Concurrent streams announced to the orchestrator (and admitted by the worker).
    pub max_sessions: usize,
    pub trust: Trust,
    /// Where downloaded segments and renditions are written while in flight.
    pub work_dir: PathBuf,
    /// Settings every session starts from (its profiles come with each segment).
    pub session: SessionConfig,
    /// Serve `/metrics` (Prometheus text) and `/healthz` here.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The capabilities registered (and required of every segment).
    pub capabilities: Vec<u32>,
    /// The version registered (go-livepeer semver).
    pub version: String,
    /// go-livepeer's `node_id` label of the metrics (the host name).
    pub node_id: String,
}

/// The orchestrator's `host:port`, as go-livepeer reads `-orchAddr` (starter.go
/// `parseOrchAddrs`, `defaultAddr`): the first of a comma list; `:p` is 127.0.0.1:p; a bare
/// host gets 8935; a host given with a scheme (`https://host`) keeps the scheme's port, 443,
/// as gRPC dials it.
pub fn orchestrator_address(spec: &str) -> String {
    let first = spec.split(',').next().unwrap_or(spec).trim();
    let (scheme, rest) = match first.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, first),
    };
    let s = rest.trim_end_matches('/');
    if let Some(p) = s.strip_prefix(':') {
        return format!("127.0.0.1:{p}");
    }
    let has_port = match s.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    match (has_port, scheme) {
        (true, _) => s.to_string(),
        (false, Some(_)) => format!("{s}:443"),
        (false, None) => format!("{s}:8935"),
    }
}

/// `--orch-secret`: the contents of the file if the argument names one (trimmed; an empty
/// file gives the path itself, as go-livepeer's common/readfromfile.go), else the argument.
pub fn read_secret(arg: &str) -> String {
    match std::fs::read_to_string(arg) {
        Ok(s) if std::path::Path::new(arg).is_file() && !s.trim().is_empty() => {
            s.trim().to_string()
        }
        _ => arg.to_string(),
    }
}

/// What every task of one transcoder shares.
pub(crate) struct Ctx {
    pub cfg: TranscoderConfig,
    /// To the orchestrator (pinned when `--orch-cert` says so).
    pub http: reqwest::Client,
    /// For segment downloads, which may come from the gateway's object store: any
    /// certificate, as go-livepeer (core/os.go:23-26).
    pub downloads: reqwest::Client,
    pub results_url: String,
    pub streams: SessionTable,
    pub metrics: Metrics,
    pub livepeer: LivepeerMetrics,
}

/// Why the transcoder stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    #[error("the orchestrator refused registration: {0}")]
    Refused(String),
    /// The orchestrator cancelled the stream (go-livepeer's transcoder exits then).
    #[error("execution interrupted: the orchestrator cancelled the stream")]
    Interrupted,
    #[error("{0}")]
    Setup(String),
}

/// Runs until `stop` turns true (then finishes the segments in flight) or the orchestrator
/// refuses us for good.
pub async fn run(
    cfg: TranscoderConfig,
    worker: Arc<Worker>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Fatal> {
    let setup = |e: String| Fatal::Setup(e);
    std::fs::create_dir_all(&cfg.work_dir)
        .map_err(|e| setup(format!("work dir {}: {e}", cfg.work_dir.display())))?;
    let h2 =
        tls::client_config(&cfg.trust, &[b"h2", b"http/1.1"]).map_err(|e| setup(e.to_string()))?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(h2.clone())
        .build()
        .map_err(|e| setup(e.to_string()))?;
    let any =
        tls::client_config(&Trust::Any, &[b"h2", b"http/1.1"]).map_err(|e| setup(e.to_string()))?;
    let downloads = reqwest::Client::builder()
        .use_preconfigured_tls(any)
        .build()
        .map_err(|e| setup(e.to_string()))?;
    let ctx = Arc::new(Ctx {
        results_url: format!("https://{}/transcodeResults", cfg.orch_addr),
        streams: SessionTable::new(worker, cfg.session.clone()),
        livepeer: LivepeerMetrics::new(
            &cfg.node_id,
            &cfg.version,
            &cfg.orch_addr,
            cfg.max_sessions,
        ),
        cfg,
        http,
        downloads,
        metrics: Metrics::default(),
    });
    let grpc_tls =
        Arc::new(tls::client_config(&ctx.cfg.trust, &[b"h2"]).map_err(|e| setup(e.to_string()))?);
    let janitor = tokio::spawn(close_idle_sessions(ctx.clone()));
    let monitor = match ctx.cfg.metrics_addr {
        Some(addr) => Some(serve_metrics(ctx.clone(), addr).await?),
        None => None,
    };
    let mut backoff = Backoff::new();
    let result = loop {
        if *stop.borrow() {
            break Ok(());
        }
        match serve_once(&ctx, &grpc_tls, &mut stop, &mut backoff).await {
            Ok(Ended::Stopped) => break Ok(()),
            Ok(Ended::Lost(why)) => tracing::warn!("orchestrator stream ended: {why}"),
            Err(e @ (Fatal::Refused(_) | Fatal::Interrupted)) => break Err(e),
            Err(e) => tracing::warn!("{e}"),
        }
        let wait = backoff.next();
        tracing::info!("registering again in {:.1} s", wait.as_secs_f64());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    };
    janitor.abort();
    if let Some(m) = monitor {
        m.abort();
    }
    result
}

/// `/metrics` and `/healthz` on `addr`, for the operator's Prometheus.
async fn serve_metrics(
    ctx: Arc<Ctx>,
    addr: std::net::SocketAddr,
) -> Result<tokio::task::JoinHandle<()>, Fatal> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Fatal::Setup(format!("--metrics-addr {addr}: {e}")))?;
    tracing::info!("metrics on http://{addr}/metrics");
    let m = ctx.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || async move {
                let snap = m.streams.worker().snapshot();
                let mut text = m.metrics.render(&snap);
                text.push_str(&m.livepeer.render(m.streams.count("")));
                text
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }))
}

enum Ended {
    Stopped,
    Lost(String),
}

/// One registration: connect, register, handle segments until the stream ends. Segments in
/// flight are finished (and their results posted) before returning.
async fn serve_once(
    ctx: &Arc<Ctx>,
    tls: &Arc<rustls::ClientConfig>,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Result<Ended, Fatal> {
    let addr = ctx.cfg.orch_addr.clone();
    let mut client = connect(&addr, tls.clone())
        .await
        .map_err(|e| Fatal::Setup(format!("cannot connect to the orchestrator at {addr}: {e}")))?;
    let req = RegisterRequest {
        secret: ctx.cfg.secret.clone(),
        capacity: ctx.cfg.max_sessions as i64,
        capabilities: Some(capabilities::message(
            &ctx.cfg.capabilities,
            &ctx.cfg.version,
        )),
    };
    let mut stream = match client.register_transcoder(req).await {
        Ok(r) => r.into_inner(),
        Err(status) => return Err(classify(status)),
    };
    tracing::info!(
        "registered with the orchestrator at {addr} (capacity {})",
        ctx.cfg.max_sessions
    );
    let mut jobs = JoinSet::new();
    let ended = loop {
        tokio::select! {
            msg = stream.message() => match msg {
                Ok(Some(notify)) => {
                    backoff.reset();
                    jobs.spawn(super::task::handle(ctx.clone(), notify));
                }
                Ok(None) => break Ended::Lost("closed by the orchestrator".into()),
                Err(status) => {
                    if let e @ (Fatal::Refused(_) | Fatal::Interrupted) = classify(status.clone()) {
                        while jobs.join_next().await.is_some() {}
                        return Err(e);
                    }
                    break Ended::Lost(format!("connection lost: {}", status.message()));
                }
            },
            _ = stop.changed() => {
                tracing::info!("stopping: finishing {} segment(s) in flight", jobs.len());
                break Ended::Stopped;
            }
        }
    };
    while jobs.join_next().await.is_some() {}
    Ok(ended)
}

/// go-livepeer's fatal errors (server/ot_rpc.go `checkTranscoderError`): the messages
/// "invalid secret" and "zero capacity", and the status `Canceled`; anything else is retried.
fn classify(status: tonic::Status) -> Fatal {
    let msg = status.message();
    if msg == "invalid secret" || msg == "zero capacity" {
        Fatal::Refused(msg.to_string())
    } else if status.code() == tonic::Code::Cancelled {
        Fatal::Interrupted
    } else {
        Fatal::Setup(format!(
            "registration failed: {} ({:?})",
            msg,
            status.code()
        ))
    }
}

/// A gRPC channel over our own TLS (tonic's TLS cannot skip certificate checks).
async fn connect(
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<TranscoderClient<tonic::transport::Channel>, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5));
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let connector = tower::service_fn(move |uri: tonic::transport::Uri| {
        let (tls, host) = (tls.clone(), host.clone());
        async move {
            let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
            let tcp = tokio::net::TcpStream::connect(authority).await?;
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("{e}: {}", source_chain(&e)))?;
    Ok(TranscoderClient::new(channel).max_decoding_message_size(64 << 20))
}

pub(crate) fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// Closes sessions the orchestrator stopped sending segments to.
async fn close_idle_sessions(ctx: Arc<Ctx>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        for sid in ctx.streams.close_idle() {
            tracing::info!("session {sid} closed after {} s idle", IDLE.as_secs());
        }
    }
}

/// The metrics label of a failed segment.
pub fn error_kind(e: &crate::Error) -> &'static str {
    if e.is_busy() {
        "busy"
    } else {
        "transcode"
    }
}

/// go-livepeer's backoff (cenkalti/backoff defaults): 0.5 s, ×1.5 each time, ±50 % jitter,
/// at most a minute.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            next: Duration::from_millis(500),
        }
    }

    fn reset(&mut self) {
        self.next = Duration::from_millis(500);
    }

    fn next(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next.mul_f64(1.5)).min(MAX_BACKOFF);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = 0.5 + f64::from(nanos % 1000) / 1000.0; // 0.5 ..< 1.5
        base.mul_f64(jitter).min(MAX_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orchestrator_addresses_get_the_default_port() {
        assert_eq!(orchestrator_address("o.example"), "o.example:8935");
        assert_eq!(
            orchestrator_address("https://o.example:9000/"),
            "o.example:9000"
        );
        assert_eq!(orchestrator_address("https://o.example"), "o.example:443");
        assert_eq!(orchestrator_address(":9935"), "127.0.0.1:9935");
        assert_eq!(orchestrator_address("127.0.0.1:1,10.0.0.1"), "127.0.0.1:1");
        assert_eq!(orchestrator_address("[::1]"), "[::1]:8935");
        assert_eq!(orchestrator_address("[::1]:7"), "[::1]:7");
    }

    #[test]
    fn go_livepeers_fatal_statuses_end_the_transcoder() {
        // server/ot_rpc.go checkTranscoderError: two messages and the Canceled code.
        assert!(matches!(
            classify(tonic::Status::unknown("invalid secret")),
            Fatal::Refused(_)
        ));
        assert!(matches!(
            classify(tonic::Status::unknown("zero capacity")),
            Fatal::Refused(_)
        ));
        assert!(matches!(
            classify(tonic::Status::cancelled("context canceled")),
            Fatal::Interrupted
        ));
        assert!(matches!(
            classify(tonic::Status::unavailable("gone")),
            Fatal::Setup(_)
        ));
        assert!(matches!(
            classify(tonic::Status::unknown("an invalid secret, maybe")),
            Fatal::Setup(_)
        ));
    }

    #[test]
    fn backoff_grows_to_a_minute_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<Duration> = (0..30).map(|_| b.next()).collect();
        assert!(waits[0] <= Duration::from_millis(750));
        assert!(waits.iter().all(|w| *w <= MAX_BACKOFF));
        assert!(waits[29] >= Duration::from_secs(30));
        b.reset();
        assert!(b.next() <= Duration::from_millis(750));
    }
}

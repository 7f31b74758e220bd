//! `gpuworker transcoder`: a drop-in for `livepeer -transcoder`. It registers with an
//! orchestrator over gRPC (TLS, certificate not checked unless pinned), receives one
//! NotifySegment per segment, downloads it, transcodes it in the session of its
//! `auth_token.session_id` and posts the renditions (or the error) to `/transcodeResults`.
//! Lost connections are retried with exponential backoff up to a minute; a wrong secret or a
//! zero capacity ends the process with the orchestrator's message; a stop request finishes
//! the segments in flight first. Facts: ../shared/reference/livepeer-transcoder-notes.md §1.

use super::capabilities;
use super::download;
use super::metrics::Metrics;
use super::profiles;
use super::proto::{transcoder_client::TranscoderClient, NotifySegment, RegisterRequest};
use super::results::{self, Part};
use super::sessions::{SessionTable, WorkDir, IDLE};
use super::tls::{self, Trust};
use crate::pipeline::SessionConfig;
use crate::worker::Worker;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
}

/// `host[:port]` with go-livepeer's default port 8935 (and no scheme).
pub fn orchestrator_address(spec: &str) -> String {
    let s = spec
        .split(',')
        .next()
        .unwrap_or(spec)
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let has_port = match s.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        s.to_string()
    } else {
        format!("{s}:8935")
    }
}

/// `--orch-secret`: the contents of the file if the argument names one (trimmed), else the
/// argument itself, as go-livepeer reads it.
pub fn read_secret(arg: &str) -> String {
    match std::fs::read_to_string(arg) {
        Ok(s) if std::path::Path::new(arg).is_file() => s.trim().to_string(),
        _ => arg.to_string(),
    }
}

struct Ctx {
    cfg: TranscoderConfig,
    http: reqwest::Client,
    results_url: String,
    streams: SessionTable,
    metrics: Metrics,
}

/// Why the transcoder stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    #[error("the orchestrator refused registration: {0}")]
    Refused(String),
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
    let ctx = Arc::new(Ctx {
        results_url: format!("https://{}/transcodeResults", cfg.orch_addr),
        streams: SessionTable::new(worker, cfg.session.clone()),
        cfg,
        http,
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
            Err(e @ Fatal::Refused(_)) => break Err(e),
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
            get(move || async move { m.metrics.render(&m.streams.worker().snapshot()) }),
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
        capabilities: Some(capabilities::ours()),
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
                    jobs.spawn(handle(ctx.clone(), notify));
                }
                Ok(None) => break Ended::Lost("closed by the orchestrator".into()),
                Err(status) => {
                    if let e @ Fatal::Refused(_) = classify(status.clone()) {
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

/// go-livepeer's fatal registration errors are plain messages: "invalid secret" and "zero
/// capacity"; anything else is retried.
fn classify(status: tonic::Status) -> Fatal {
    let msg = status.message();
    if msg.contains("invalid secret") || msg.contains("zero capacity") {
        Fatal::Refused(msg.to_string())
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

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// One NotifySegment, start to posted result.
async fn handle(ctx: Arc<Ctx>, notify: NotifySegment) {
    let seg = notify.seg_data.clone().unwrap_or_default();
    let sid = seg
        .auth_token
        .as_ref()
        .map(|a| a.session_id.clone())
        .unwrap_or_default();
    if notify.url.is_empty() {
        if !sid.is_empty() && ctx.streams.remove(&sid) {
            tracing::info!("session {sid} torn down by the orchestrator");
        }
        return;
    }
    let task = notify.task_id;
    tracing::info!(
        "task {task} (session {sid}, seq {}): received {}",
        seg.seq,
        notify.url
    );
    ctx.metrics.begin();
    let started = Instant::now();
    let result = transcode(&ctx, &notify, &sid).await;
    match &result {
        Ok((_, parts, media)) => {
            ctx.metrics.ok(*media, started.elapsed().as_secs_f64());
            tracing::info!(
                "task {task} (session {sid}, seq {}): {} renditions in {:.2} s",
                seg.seq,
                parts.len(),
                started.elapsed().as_secs_f64()
            );
        }
        Err((kind, e)) => {
            ctx.metrics.error(kind, true);
            tracing::warn!("task {task} (session {sid}, seq {}): {e}", seg.seq);
        }
    }
    let body = result
        .map(|(pixels, parts, _)| (pixels, parts))
        .map_err(|(_, e)| e);
    if let Err(e) = post(&ctx, task, body).await {
        tracing::error!("task {task}: result not delivered: {e}");
    }
}

type Outcome = Result<(u64, Vec<Part>, f64), (&'static str, String)>;

async fn transcode(ctx: &Arc<Ctx>, notify: &NotifySegment, sid: &str) -> Outcome {
    let seg = notify.seg_data.clone().unwrap_or_default();
    let profiles = profiles::from_segdata(&seg).map_err(|e| ("input", e.to_string()))?;
    if let Some(c) = &seg.capabilities {
        if !capabilities::covers(
            &capabilities::bitstring(capabilities::SUPPORTED),
            &c.bitstring,
        ) {
            return Err(("capabilities", "incompatible segment capabilities".into()));
        }
    }
    if !(0..=300_000).contains(&seg.duration) {
        return Err((
            "input",
            format!("segment duration {} ms out of range", seg.duration),
        ));
    }
    let data = download::fetch(&ctx.http, &notify.url)
        .await
        .map_err(|e| ("download", e.to_string()))?;
    let dir = ctx.cfg.work_dir.join(format!("task-{}", notify.task_id));
    let cleanup = WorkDir(dir.clone());
    std::fs::create_dir_all(&dir).map_err(|e| ("io", e.to_string()))?;
    let input = dir.join("segment.ts");
    std::fs::write(&input, &data).map_err(|e| ("io", e.to_string()))?;
    let outputs: Vec<PathBuf> = (0..profiles.len())
        .map(|i| dir.join(format!("{i}.{}", profiles[i].container.extension())))
        .collect();
    let mimes: Vec<&str> = profiles.iter().map(|p| p.container.mime()).collect();
    let key = if sid.is_empty() {
        format!("task-{}", notify.task_id)
    } else {
        sid.to_string()
    };
    let _closing = sid.is_empty().then(|| ctx.streams.closing(&key));
    let stream = ctx
        .streams
        .get(&key, &profiles, seg.force_session_reinit)
        .map_err(|e| (error_kind(&e), e.to_string()))?;
    // Errors name the segment by its URL, not by our temporary file.
    let local = input.display().to_string();
    let report = stream
        .transcode(input, outputs)
        .await
        .map_err(|e| (error_kind(&e), e.to_string().replace(&local, &notify.url)))?;
    let parts = results::parts_of(&report, &mimes).map_err(|e| ("io", e.to_string()))?;
    drop(cleanup);
    Ok((report.decoded_pixels, parts, report.duration))
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

/// POSTs a task's result (renditions and decoded pixels, or an error) to the orchestrator.
async fn post(
    ctx: &Ctx,
    task: i64,
    result: Result<(u64, Vec<Part>), String>,
) -> Result<(), String> {
    let req = ctx
        .http
        .post(&ctx.results_url)
        .header("Authorization", results::PROTOCOL)
        .header("Credentials", &ctx.cfg.secret)
        .header("TaskId", task.to_string())
        .timeout(Duration::from_secs(120));
    let req = match result {
        Ok((pixels, parts)) => {
            let body = results::multipart(&parts);
            req.header("Content-Type", body.content_type)
                .header("Pixels", pixels.to_string())
                .body(body.bytes)
        }
        Err(message) => req
            .header("Content-Type", results::ERROR_MIME)
            .header("Pixels", "0")
            .body(message),
    };
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{e}: {}", source_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("the orchestrator answered {}", resp.status()));
    }
    Ok(())
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
        assert_eq!(orchestrator_address("127.0.0.1:1,10.0.0.1"), "127.0.0.1:1");
        assert_eq!(orchestrator_address("[::1]"), "[::1]:8935");
        assert_eq!(orchestrator_address("[::1]:7"), "[::1]:7");
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

//! `gpuworker test-orchestrator`: go-livepeer's orchestrator side of the remote-transcoder
//! protocol, with the gateway's part of each job, for trying a transcoder out and for the
//! tests. It serves gRPC and HTTPS on one port with a fresh self-signed certificate (as
//! go-livepeer does), accepts transcoders that know the secret, and plays streams of
//! segments to them: each segment is published under `/stream/<session>/<seq>.tempfile`,
//! announced with a NotifySegment carrying the job's capabilities (and the clip and
//! signature request the gateway mode asks for), and its result awaited on
//! `/transcodeResults` for max(8 s, 4 × duration). Transcoders are chosen, loaded and freed
//! by go-livepeer's own rules ([`manager`]); results are read as go-livepeer's orchestrator
//! and gateway read them ([`super::results`], [`gateway`]). Each outcome is printed as a
//! JSON line; renditions and signatures can be written out for inspection. Its messages and
//! gRPC server are generated from go-livepeer's lp_rpc.proto verbatim
//! ([`super::proto::upstream`]).

pub mod gateway;
pub mod manager;

// The orchestrator side speaks through code generated from go-livepeer's own file, not ours.
use super::proto::upstream::capabilities::Constraints;
use super::proto::upstream::transcoder_server::{Transcoder, TranscoderServer};
use super::proto::upstream::{
    AuthToken, Capabilities, NotifySegment, RegisterRequest, SegData, SegParameters, VideoProfile,
};
use super::results::{self, Part};
use super::tls;
use crate::profile::Profile;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use gateway::GatewayMode;
use manager::{Job, Manager};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    pub listen: SocketAddr,
    pub secret: String,
    /// Concurrent streams to play.
    pub streams: usize,
    /// The segments every stream plays, in order, and their durations in seconds.
    pub segments: Vec<(PathBuf, f64)>,
    pub profiles: Vec<Profile>,
    /// Where to write received renditions (`<out>/stream<k>/<seq>_<i>.<ext>`).
    pub out: Option<PathBuf>,
    /// Write the certificate (PEM) here, for `--orch-cert`.
    pub cert_out: Option<PathBuf>,
    /// Serve this sequence number only after 10 s (a stalled download).
    pub stall_seq: Option<i64>,
    /// Keep serving after the streams are played (until stopped).
    pub linger: bool,
    /// How the gateway sends its jobs (HTTP push, clip, verification, minimum version).
    pub gateway: GatewayMode,
    /// Streams start once this many transcoders have registered.
    pub wait_transcoders: usize,
    /// Stream k starts k × this after the first.
    pub stagger: Duration,
    /// Serve segments from a second address with a certificate of its own (a gateway's
    /// object store), rather than from the orchestrator's.
    pub separate_storage: bool,
}

/// What became of one segment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub stream: usize,
    pub seq: i64,
    pub task: i64,
    /// `ok`, `error` (the transcoder's or the orchestrator's message) or `timeout`.
    pub status: &'static str,
    pub error: Option<String>,
    /// For an error: whether the gateway ends the session on it (lpms's non-retryable
    /// texts) rather than suspending this orchestrator.
    pub non_retryable: Option<bool>,
    pub renditions: Vec<RenditionOut>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RenditionOut {
    pub name: String,
    pub mime: String,
    pub bytes: usize,
    pub pixels: u64,
    pub path: Option<PathBuf>,
    /// Size of the MPEG-7 signature that came with it, and where it was written.
    pub phash_bytes: Option<usize>,
    pub phash_path: Option<PathBuf>,
}

type Reply = Result<Vec<Part>, String>;

struct Orch {
    cfg: OrchestratorConfig,
    base_url: String,
    manager: Mutex<Manager>,
    next_transcoder: AtomicU64,
    next_task: AtomicI64,
    tasks: Mutex<HashMap<i64, oneshot::Sender<Reply>>>,
    published: Mutex<HashMap<String, bytes::Bytes>>,
}

impl Orch {
    fn manager(&self) -> std::sync::MutexGuard<'_, Manager> {
        self.manager.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Service(Arc<Orch>);

#[tonic::async_trait]
impl Transcoder for Service {
    type RegisterTranscoderStream = tokio_stream_shim::Receiver;

    async fn register_transcoder(
        &self,
        req: tonic::Request<RegisterRequest>,
    ) -> Result<tonic::Response<Self::RegisterTranscoderStream>, tonic::Status> {
        let r = req.into_inner();
        // go-livepeer returns plain errors, which gRPC carries as Unknown with the message.
        if r.secret != self.0.cfg.secret {
            return Err(tonic::Status::unknown("invalid secret"));
        }
        if r.capacity <= 0 {
            return Err(tonic::Status::unknown("zero capacity"));
        }
        let (tx, rx) = mpsc::channel(64);
        let id = self.0.next_transcoder.fetch_add(1, Ordering::Relaxed);
        let (bits, version) = r
            .capabilities
            .as_ref()
            .map(|c| (c.bitstring.clone(), c.version.clone()))
            .unwrap_or_default();
        eprintln!(
            "test-orchestrator: transcoder {id} registered (capacity {}, capabilities {:?}, version {version:?})",
            r.capacity,
            super::capabilities::list(&bits)
        );
        self.0.manager().add(id, tx, r.capacity, r.capabilities);
        Ok(tonic::Response::new(tokio_stream_shim::Receiver(rx)))
    }
}

/// A minimal `Stream` over an mpsc receiver (what tokio-stream's ReceiverStream does).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct Receiver(
        pub tokio::sync::mpsc::Receiver<Result<super::NotifySegment, tonic::Status>>,
    );

    impl futures_util::Stream for Receiver {
        type Item = Result<super::NotifySegment, tonic::Status>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}

async fn segment(
    State(o): State<Arc<Orch>>,
    UrlPath((session, file)): UrlPath<(String, String)>,
) -> Result<bytes::Bytes, StatusCode> {
    let key = format!("{session}/{file}");
    let data = o.published.lock().expect("published").get(&key).cloned();
    let seq: Option<i64> = file.strip_suffix(".tempfile").and_then(|s| s.parse().ok());
    if seq.is_some() && seq == o.cfg.stall_seq {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    data.ok_or(StatusCode::NOT_FOUND)
}

async fn transcode_results(
    State(o): State<Arc<Orch>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> (StatusCode, &'static str) {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    if h("authorization") != results::PROTOCOL || h("credentials") != o.cfg.secret {
        return (StatusCode::UNAUTHORIZED, "invalid credentials");
    }
    let Ok(task) = h("taskid").parse::<i64>() else {
        return (StatusCode::BAD_REQUEST, "invalid TaskId");
    };
    let ctype = h("content-type").to_string();
    let reply: Reply = if ctype == results::ERROR_MIME {
        Err(String::from_utf8_lossy(&body).into_owned())
    } else {
        if h("pixels").parse::<u64>().is_err() {
            return (StatusCode::BAD_REQUEST, "Invalid Pixels");
        }
        if results::boundary_of(&ctype).is_err() {
            // go-livepeer ignores other media types (the task then times out).
            return (StatusCode::OK, "ignored");
        }
        // A body that does not parse fails the task with the parser's words (500).
        results::parse(&ctype, body)
            .await
            .map_err(|e| e.to_string())
    };
    let failed = reply.is_err() && ctype != results::ERROR_MIME;
    if let Some(tx) = o.tasks.lock().expect("tasks").remove(&task) {
        let _ = tx.send(reply);
    }
    if failed {
        return (StatusCode::INTERNAL_SERVER_ERROR, "bad multipart body");
    }
    (StatusCode::OK, "OK")
}

/// Runs the orchestrator: serves until every stream is played (or forever with `linger`),
/// and returns the outcomes.
pub async fn run(cfg: OrchestratorConfig) -> anyhow::Result<Vec<Outcome>> {
    let host = cfg.listen.ip().to_string();
    let cert = tls::self_signed(&host)?;
    if let Some(p) = &cfg.cert_out {
        std::fs::write(p, &cert.cert_pem)?;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(&cert)?));
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    // Segments come from the orchestrator itself, or from an object store of their own (with
    // its own certificate), as a gateway's external storage.
    let storage = match cfg.separate_storage {
        false => None,
        true => {
            let l = tokio::net::TcpListener::bind((cfg.listen.ip(), 0)).await?;
            let cert = tls::self_signed(&host)?;
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(&cert)?));
            Some((l, acceptor))
        }
    };
    let base_url = match &storage {
        Some((l, _)) => format!("https://{}", l.local_addr()?),
        None => format!("https://{addr}"),
    };
    let orch = Arc::new(Orch {
        base_url,
        cfg: cfg.clone(),
        manager: Mutex::new(Manager::default()),
        next_transcoder: AtomicU64::new(0),
        next_task: AtomicI64::new(0),
        tasks: Mutex::new(HashMap::new()),
        published: Mutex::new(HashMap::new()),
    });
    let segments = axum::Router::new()
        .route("/stream/:session/:file", get(segment))
        .with_state(orch.clone());
    let results = axum::Router::new()
        .route("/transcodeResults", post(transcode_results))
        .layer(axum::extract::DefaultBodyLimit::max(results_limit()))
        .with_state(orch.clone());
    let grpc = tonic::service::Routes::new(TranscoderServer::new(Service(orch.clone())));
    let mut app = grpc.into_axum_router().merge(results);
    match storage {
        Some((l, acceptor)) => {
            eprintln!(
                "test-orchestrator: segments on {} (its own certificate)",
                orch.base_url
            );
            tokio::spawn(serve_tls(l, acceptor, segments));
        }
        None => app = app.merge(segments),
    }
    eprintln!("test-orchestrator: listening on https://{addr} (gRPC and HTTPS)");
    let server = tokio::spawn(serve_tls(listener, acceptor, app));
    // The streams start once the transcoders they are meant for have registered.
    while orch.manager().live().0 < cfg.wait_transcoders {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut players = tokio::task::JoinSet::new();
    for k in 0..cfg.streams {
        let (o, delay) = (orch.clone(), cfg.stagger.mul_f64(k as f64));
        players.spawn(async move {
            tokio::time::sleep(delay).await;
            play(o, k).await
        });
    }
    let mut outcomes = Vec::new();
    while let Some(r) = players.join_next().await {
        outcomes.extend(r?);
    }
    // Let the teardown messages reach the transcoders before the process may exit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let pending = orch
            .manager()
            .senders()
            .iter()
            .any(|t| !t.is_closed() && t.capacity() < t.max_capacity());
        if !pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    if cfg.linger {
        let _ = server.await;
    }
    outcomes.sort_by_key(|o| (o.stream, o.seq));
    Ok(outcomes)
}

/// Serves `app` over TLS on `listener`, HTTP/2 and HTTP/1.1, until the process ends.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
        });
    }
}

fn results_limit() -> usize {
    super::download::MAX_BYTES as usize * 2
}

/// Plays one stream: every segment in order, then the teardown (go-livepeer's
/// `endTranscodingSession`: sent only if the stream still has a transcoder, which then frees
/// its slot).
async fn play(o: Arc<Orch>, k: usize) -> Vec<Outcome> {
    let session = format!("stream{k}");
    let mut out = Vec::new();
    let mut job: Option<Job> = None;
    for (seq, (path, dur)) in o.cfg.segments.iter().enumerate() {
        let seq = seq as i64;
        let data = match tokio::fs::read(path).await {
            Ok(d) => bytes::Bytes::from(d),
            Err(e) => {
                eprintln!("test-orchestrator: {}: {e}", path.display());
                continue;
            }
        };
        // The gateway probes the stream once, at its first segment.
        let job = job.get_or_insert_with(|| Job {
            bits: super::capabilities::bitstring(&gateway::job_capabilities(
                path,
                &o.cfg.profiles,
                &o.cfg.gateway,
            )),
            min_version: o.cfg.gateway.min_version.clone().unwrap_or_default(),
        });
        let file = format!("{seq}.tempfile");
        o.published
            .lock()
            .expect("published")
            .insert(format!("{session}/{file}"), data);
        let outcome = dispatch(&o, k, &session, seq, *dur, &file, job).await;
        println!("{}", serde_json::to_string(&outcome).unwrap_or_default());
        out.push(outcome);
    }
    let teardown = NotifySegment {
        seg_data: Some(SegData {
            auth_token: Some(AuthToken {
                session_id: session.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let tx = o.manager().session_tx(&session);
    if let Some(tx) = tx {
        let _ = tx.try_send(Ok(teardown));
    }
    o.manager().complete(&session);
    out
}

/// A profile in upstream's message type: our wire form, re-read through upstream's code.
fn upstream_profile(p: &Profile) -> VideoProfile {
    use prost::Message;
    let bytes = super::profiles::to_wire(p).encode_to_vec();
    VideoProfile::decode(bytes.as_slice()).expect("the same wire format")
}

/// Sends one segment to the transcoder go-livepeer's rules pick (retrying on another when the
/// send fails, as `RemoteTranscoderManager.Transcode` does) and waits for its result.
async fn dispatch(
    o: &Arc<Orch>,
    k: usize,
    session: &str,
    seq: i64,
    dur: f64,
    file: &str,
    job: &Job,
) -> Outcome {
    let task = o.next_task.fetch_add(1, Ordering::Relaxed);
    let g = &o.cfg.gateway;
    let notify = NotifySegment {
        url: format!("{}/stream/{session}/{file}", o.base_url),
        task_id: task,
        orch_id: "offchain".into(),
        profiles: b"invalid".to_vec(),
        seg_data: Some(SegData {
            manifest_id: session.as_bytes().to_vec(),
            seq,
            duration: (dur * 1000.0) as i32,
            auth_token: Some(AuthToken {
                session_id: session.into(),
                ..Default::default()
            }),
            capabilities: Some(Capabilities {
                bitstring: job.bits.clone(),
                constraints: Some(Constraints {
                    min_version: job.min_version.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            calc_perceptual_hash: g.verification,
            segment_parameters: g.clip.map(|(from, to)| SegParameters { from, to }),
            full_profiles3: o.cfg.profiles.iter().map(upstream_profile).collect(),
            ..Default::default()
        }),
    };
    let mut outcome = Outcome {
        stream: k,
        seq,
        task,
        status: "ok",
        error: None,
        non_retryable: None,
        renditions: Vec::new(),
    };
    let fail = |mut outcome: Outcome, status: &'static str, error: String| {
        outcome.status = status;
        outcome.non_retryable = Some(gateway::non_retryable(&error));
        outcome.error = Some(error);
        outcome
    };
    let (rx, transcoder) = loop {
        let picked = o.manager().select(session, job);
        let (id, tx) = match picked {
            Ok(t) => t,
            Err(text) => return fail(outcome, "error", text.to_string()),
        };
        let (reply, rx) = oneshot::channel();
        o.tasks.lock().expect("tasks").insert(task, reply);
        if tx.send(Ok(notify.clone())).await.is_ok() {
            break (rx, id);
        }
        o.tasks.lock().expect("tasks").remove(&task);
        o.manager().drop_remote(id);
    };
    let limit = Duration::from_secs_f64((4.0 * dur).max(8.0));
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(Ok(parts))) => {
            if g.verification
                && parts
                    .iter()
                    .any(|p| p.phash.as_ref().is_none_or(|h| h.is_empty()))
            {
                // The gateway downloads a rendition's hash and fails the segment without one.
                let msg = "error downloading perceptual hash: none came back".to_string();
                return fail(outcome, "error", msg);
            }
            for (i, p) in parts.into_iter().enumerate() {
                outcome.renditions.push(keep(o, session, seq, i, p));
            }
            outcome
        }
        Ok(Ok(Err(message))) => {
            // Any error frees the stream's slot, without a teardown.
            o.manager().complete(session);
            fail(outcome, "error", message)
        }
        Ok(Err(_)) | Err(_) => {
            // "Remote transcoder took too long": fatal for that transcoder, whose stream the
            // orchestrator ends.
            o.tasks.lock().expect("tasks").remove(&task);
            o.manager().complete(session);
            o.manager().drop_remote(transcoder);
            fail(
                outcome,
                "timeout",
                format!(
                    "Remote transcoder took too long (no result within {:.0} s)",
                    limit.as_secs_f64()
                ),
            )
        }
    }
}

/// Describes (and, with `--out`, writes) one rendition of a result and its signature.
fn keep(o: &Orch, session: &str, seq: i64, i: usize, p: Part) -> RenditionOut {
    let dir = o.cfg.out.as_ref().map(|d| d.join(session));
    if let Some(d) = &dir {
        let _ = std::fs::create_dir_all(d);
    }
    let ext = if p.mime == "video/mp4" { "mp4" } else { "ts" };
    let path = dir.as_ref().map(|d| d.join(format!("{seq}_{i}.{ext}")));
    if let Some(path) = &path {
        let _ = std::fs::write(path, &p.data);
    }
    let phash_path = match (&dir, &p.phash) {
        (Some(d), Some(h)) => {
            let f = d.join(format!("{seq}_{i}.bin"));
            let _ = std::fs::write(&f, h);
            Some(f)
        }
        _ => None,
    };
    RenditionOut {
        name: p.name,
        mime: p.mime,
        bytes: p.data.len(),
        pixels: p.pixels,
        path,
        phash_bytes: p.phash.as_ref().map(Vec::len),
        phash_path,
    }
}

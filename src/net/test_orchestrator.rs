//! `gpuworker test-orchestrator`: go-livepeer's orchestrator side of the remote-transcoder
//! protocol, for trying a transcoder out and for the tests. It serves gRPC and HTTPS on one
//! port with a fresh self-signed certificate (as go-livepeer does), accepts transcoders that
//! know the secret, and plays streams of segments to them: each segment is published under
//! `/stream/<session>/<seq>.tempfile`, announced with a NotifySegment, and its result awaited on
//! `/transcodeResults` for max(8 s, 4 × duration). Each outcome is printed as a JSON line;
//! renditions can be written out for inspection. Its messages and gRPC server are generated
//! from go-livepeer's lp_rpc.proto verbatim ([`super::proto::upstream`]).

// The orchestrator side speaks through code generated from go-livepeer's own file, not ours.
use super::proto::upstream::transcoder_server::{Transcoder, TranscoderServer};
use super::proto::upstream::{AuthToken, NotifySegment, RegisterRequest, SegData, VideoProfile};
use super::results::{self, Part};
use super::tls;
use crate::profile::Profile;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
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
}

/// What became of one segment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub stream: usize,
    pub seq: i64,
    pub task: i64,
    /// `ok`, `error` (the transcoder's message) or `timeout`.
    pub status: &'static str,
    pub error: Option<String>,
    pub renditions: Vec<RenditionOut>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RenditionOut {
    pub name: String,
    pub mime: String,
    pub bytes: usize,
    pub pixels: u64,
    pub path: Option<PathBuf>,
}

type Reply = Result<Vec<Part>, String>;

struct Registered {
    id: u64,
    tx: mpsc::Sender<Result<NotifySegment, tonic::Status>>,
}

struct Orch {
    cfg: OrchestratorConfig,
    base_url: String,
    transcoders: Mutex<Vec<Registered>>,
    next_id: AtomicI64,
    tasks: Mutex<HashMap<i64, oneshot::Sender<Reply>>>,
    published: Mutex<HashMap<String, bytes::Bytes>>,
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
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed) as u64;
        eprintln!(
            "test-orchestrator: transcoder {id} registered (capacity {}, capabilities {:x?})",
            r.capacity,
            r.capabilities.map(|c| c.bitstring).unwrap_or_default()
        );
        self.0
            .transcoders
            .lock()
            .expect("transcoders")
            .push(Registered { id, tx });
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
        match results::parse(&ctype, body).await {
            Ok(parts) => Ok(parts),
            Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "bad multipart body"),
        }
    };
    if let Some(tx) = o.tasks.lock().expect("tasks").remove(&task) {
        let _ = tx.send(reply);
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
    let orch = Arc::new(Orch {
        base_url: format!("https://{addr}"),
        cfg: cfg.clone(),
        transcoders: Mutex::new(Vec::new()),
        next_id: AtomicI64::new(0),
        tasks: Mutex::new(HashMap::new()),
        published: Mutex::new(HashMap::new()),
    });
    let http = axum::Router::new()
        .route("/stream/:session/:file", get(segment))
        .route("/transcodeResults", post(transcode_results))
        .layer(axum::extract::DefaultBodyLimit::max(results_limit()))
        .with_state(orch.clone());
    let grpc = tonic::service::Routes::new(TranscoderServer::new(Service(orch.clone())));
    let app = grpc.into_axum_router().merge(http);
    eprintln!("test-orchestrator: listening on https://{addr} (gRPC and HTTPS)");
    let server = tokio::spawn(async move {
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
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    let mut players = tokio::task::JoinSet::new();
    for k in 0..cfg.streams {
        players.spawn(play(orch.clone(), k));
    }
    let mut outcomes = Vec::new();
    while let Some(r) = players.join_next().await {
        outcomes.extend(r?);
    }
    // Let the teardown messages reach the transcoders before the process may exit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let pending = orch
            .transcoders
            .lock()
            .expect("transcoders")
            .iter()
            .any(|t| !t.tx.is_closed() && t.tx.capacity() < t.tx.max_capacity());
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

fn results_limit() -> usize {
    super::download::MAX_BYTES as usize * 2
}

/// Plays one stream: every segment in order, then the teardown.
async fn play(o: Arc<Orch>, k: usize) -> Vec<Outcome> {
    let session = format!("stream{k}");
    let mut out = Vec::new();
    for (seq, (path, dur)) in o.cfg.segments.iter().enumerate() {
        let seq = seq as i64;
        let data = match tokio::fs::read(path).await {
            Ok(d) => bytes::Bytes::from(d),
            Err(e) => {
                eprintln!("test-orchestrator: {}: {e}", path.display());
                continue;
            }
        };
        let file = format!("{seq}.tempfile");
        o.published
            .lock()
            .expect("published")
            .insert(format!("{session}/{file}"), data);
        let outcome = dispatch(&o, k, &session, seq, *dur, &file).await;
        println!("{}", serde_json::to_string(&outcome).unwrap_or_default());
        out.push(outcome);
    }
    // The end of the stream: an empty URL with the session id tears the session down.
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
    for t in o.transcoders.lock().expect("transcoders").iter() {
        let _ = t.tx.try_send(Ok(teardown.clone()));
    }
    out
}

/// A profile in upstream's message type: our wire form, re-read through upstream's code.
fn upstream_profile(p: &Profile) -> VideoProfile {
    use prost::Message;
    let bytes = super::profiles::to_wire(p).encode_to_vec();
    VideoProfile::decode(bytes.as_slice()).expect("the same wire format")
}

/// Sends one segment to a transcoder (waiting for one to register, retrying on another if
/// the send fails) and waits for its result.
async fn dispatch(
    o: &Arc<Orch>,
    k: usize,
    session: &str,
    seq: i64,
    dur: f64,
    file: &str,
) -> Outcome {
    let task = o.next_id.fetch_add(1, Ordering::Relaxed);
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
            full_profiles3: o.cfg.profiles.iter().map(upstream_profile).collect(),
            ..Default::default()
        }),
    };
    let (tx, rx) = oneshot::channel();
    o.tasks.lock().expect("tasks").insert(task, tx);
    // The stream sticks to the first live transcoder.
    loop {
        let target = o
            .transcoders
            .lock()
            .expect("transcoders")
            .iter()
            .find(|t| !t.tx.is_closed())
            .map(|t| (t.id, t.tx.clone()));
        match target {
            Some((id, t)) => {
                if t.send(Ok(notify.clone())).await.is_ok() {
                    break;
                }
                o.transcoders
                    .lock()
                    .expect("transcoders")
                    .retain(|t| t.id != id);
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let limit = Duration::from_secs_f64((4.0 * dur).max(8.0));
    let mut outcome = Outcome {
        stream: k,
        seq,
        task,
        status: "ok",
        error: None,
        renditions: Vec::new(),
    };
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(Ok(parts))) => {
            for (i, p) in parts.into_iter().enumerate() {
                let path = o.cfg.out.as_ref().map(|dir| {
                    let ext = if p.mime == "video/mp4" { "mp4" } else { "ts" };
                    dir.join(session).join(format!("{seq}_{i}.{ext}"))
                });
                if let Some(path) = &path {
                    let _ = std::fs::create_dir_all(path.parent().expect("parent"));
                    let _ = std::fs::write(path, &p.data);
                }
                outcome.renditions.push(RenditionOut {
                    name: p.name,
                    mime: p.mime,
                    bytes: p.data.len(),
                    pixels: p.pixels,
                    path,
                });
            }
        }
        Ok(Ok(Err(message))) => {
            outcome.status = "error";
            outcome.error = Some(message);
        }
        Ok(Err(_)) | Err(_) => {
            o.tasks.lock().expect("tasks").remove(&task);
            outcome.status = "timeout";
            outcome.error = Some(format!("no result within {:.0} s", limit.as_secs_f64()));
        }
    }
    outcome
}

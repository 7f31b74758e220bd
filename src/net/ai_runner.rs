//! `gpuworker ai --listen`: an HTTP service that answers like Livepeer's AI runner
//! (`ai-runner-openapi.yaml`), so an orchestrator's `aiModels.json` can point at it as an
//! external container. One pipeline and one model per process, as the runner.
//!
//! * `POST /text-to-image` (JSON), `/image-to-image` and `/upscale` (multipart), each also
//!   with a trailing `/`; only the loaded pipeline's route exists.
//! * `GET /health`, `/version`, `/hardware/info`, `/hardware/stats`.
//!
//! Generations run one at a time (as in the runner, whose routes block its single worker),
//! images of a request one after another with seeds seed, seed+1, ...; a request that would
//! not fit in memory is refused with the runner's 500 out-of-memory answer.

use super::ai_params::{self, ApiError, Fields, Job, Limits, Part, Pipeline};
use super::request_body::{self, BodyError};
use crate::diffusion::model::Model;
use crate::diffusion::DiffusionError;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct AiConfig {
    pub listen: SocketAddr,
    pub pipeline: Pipeline,
    /// Reported by /version and /hardware/*, and checked against requests' `model_id`.
    pub model_id: String,
    /// Require `Authorization: Bearer <token>` on the generate routes (the runner's AUTH_TOKEN).
    pub token: Option<String>,
    pub max_body: usize,
    pub limits: Limits,
    /// Requests that may wait for the model; more are answered 503.
    pub max_queue: usize,
    /// The version /version reports.
    pub version: String,
    /// The CUDA device the model runs on (for /hardware/*), if any.
    pub cuda_device: Option<usize>,
}

struct App {
    cfg: AiConfig,
    model: Arc<Model>,
    gpu: Option<Gpu>,
    gate: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    /// Nanoseconds spent generating, and when /hardware/stats last looked.
    busy_ns: AtomicU64,
    last_stats: Mutex<(Instant, u64)>,
}

/// Serves until `stop` resolves.
pub async fn run(
    cfg: AiConfig,
    model: Arc<Model>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    eprintln!(
        "ai: {} with {} listening on http://{}",
        cfg.pipeline.name(),
        cfg.model_id,
        listener.local_addr()?
    );
    let route = format!("/{}", cfg.pipeline.name());
    let app = Arc::new(App {
        gpu: gpu(cfg.cuda_device),
        cfg,
        model,
        gate: tokio::sync::Semaphore::new(1),
        waiting: AtomicUsize::new(0),
        busy_ns: AtomicU64::new(0),
        last_stats: Mutex::new((Instant::now(), 0)),
    });
    let mut router = axum::Router::new();
    for (path, handler) in [
        ("/health", get(health)),
        ("/version", get(version)),
        ("/hardware/info", get(hardware_info)),
        ("/hardware/stats", get(hardware_stats)),
        (route.as_str(), post(generate)),
    ] {
        router = router
            .route(path, handler.clone())
            .route(&format!("{path}/"), handler);
    }
    // FastAPI's answer for a route that is not there.
    let router = router
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"detail": "Not Found"})),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await?;
    Ok(())
}

async fn health() -> Response {
    axum::Json(json!({"status": "OK"})).into_response()
}

async fn version(State(app): State<Arc<App>>) -> Response {
    axum::Json(json!({
        "pipeline": app.cfg.pipeline.name(),
        "model_id": app.cfg.model_id,
        "version": app.cfg.version,
    }))
    .into_response()
}

/// What /hardware/* report about the model's GPU that does not change: read once at start.
struct Gpu {
    index: usize,
    name: String,
    memory_total: u64,
    major: u32,
    minor: u32,
}

fn gpu(cuda_device: Option<usize>) -> Option<Gpu> {
    let index = cuda_device?;
    let d = crate::backend::cuda::probe()
        .devices
        .into_iter()
        .find(|d| d.index == index)?;
    let (major, minor) = d
        .compute_capability
        .split_once('.')
        .map(|(a, b)| (a.parse().unwrap_or(0), b.parse().unwrap_or(0)))
        .unwrap_or((0, 0));
    Some(Gpu {
        index,
        name: d.name,
        memory_total: d.memory_mib << 20,
        major,
        minor,
    })
}

/// The `gpu_info` or `gpu_stats` map: the GPU's id, name and memory (free memory read now)
/// plus `more` (an empty map on a CPU-only worker).
fn gpu_map(app: &App, more: impl Fn(&Gpu) -> Value) -> Value {
    let mut map = serde_json::Map::new();
    if let Some(g) = &app.gpu {
        let free = crate::backend::cuda::free_memory(g.index).unwrap_or(g.memory_total);
        let mut v = json!({"id": g.index.to_string(), "name": g.name,
                           "memory_total": g.memory_total, "memory_free": free});
        if let (Some(v), Value::Object(m)) = (v.as_object_mut(), more(g)) {
            v.extend(m);
        }
        map.insert(g.index.to_string(), v);
    }
    Value::Object(map)
}

async fn hardware_info(State(app): State<Arc<App>>) -> Response {
    axum::Json(json!({
        "pipeline": app.cfg.pipeline.name(),
        "model_id": app.cfg.model_id,
        "gpu_info": gpu_map(&app, |g| json!({"major": g.major, "minor": g.minor})),
    }))
    .into_response()
}

async fn hardware_stats(State(app): State<Arc<App>>) -> Response {
    // Utilisation is this runner's share of time spent generating since the last look
    // (measured here; no NVML counters are read).
    let busy = app.busy_ns.load(Ordering::Relaxed);
    let util = {
        let mut last = app.last_stats.lock().expect("stats lock");
        let span = last.0.elapsed().as_nanos().max(1) as u64;
        let pct = ((busy - last.1) * 100 / span).min(100);
        *last = (Instant::now(), busy);
        pct
    };
    let more = |_: &Gpu| json!({"utilization_compute": util, "utilization_memory": util});
    axum::Json(json!({
        "pipeline": app.cfg.pipeline.name(),
        "model_id": app.cfg.model_id,
        "gpu_stats": gpu_map(&app, more),
    }))
    .into_response()
}

/// The body, up to the limit.
async fn read_body(body: Body, max: usize) -> Result<bytes::Bytes, ApiError> {
    request_body::read_limited(body, max)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { limit } => ApiError::Status(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body exceeds the limit of {limit} bytes."),
            ),
            BodyError::Read(_) => ApiError::bad(e.to_string()),
        })
}

/// The parts of a multipart form, by name (files as bytes).
async fn form(headers: &HeaderMap, body: bytes::Bytes) -> Result<HashMap<String, Part>, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Ok(boundary) = multer::parse_boundary(ct) else {
        // FastAPI reads no form at all: every required field is missing.
        return Ok(HashMap::new());
    };
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut parts = HashMap::new();
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(ApiError::bad(format!("malformed multipart body: {e}"))),
        };
        let name = field.name().unwrap_or("").to_string();
        let is_file = field.file_name().is_some();
        let data = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad(format!("malformed multipart body: {e}")))?;
        let part = if is_file {
            Part::File(data)
        } else {
            Part::Text(String::from_utf8_lossy(&data).into_owned())
        };
        parts.insert(name, part);
    }
    Ok(parts)
}

async fn generate(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    match generate_inner(&app, &headers, body).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn generate_inner(
    app: &Arc<App>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, ApiError> {
    let body = read_body(body, app.cfg.max_body).await?;
    let pipeline = app.cfg.pipeline;
    let factor = app.model.factor();
    let (json, parts);
    let fields = if pipeline == Pipeline::TextToImage {
        json = ai_params::json_fields(&body)?;
        Fields::Json(&json)
    } else {
        parts = form(headers, body).await?;
        Fields::Form(&parts)
    };
    // The runner validates the body before it checks the token.
    let job = ai_params::job(pipeline, fields, app.cfg.limits, factor, &app.cfg.model_id)?;
    if !super::serve::bearer_ok(app.cfg.token.as_deref(), headers) {
        return Err(ApiError::Status(
            StatusCode::UNAUTHORIZED,
            "Invalid bearer token.".into(),
        ));
    }
    let job = job?;
    if app.waiting.fetch_add(1, Ordering::SeqCst) >= app.cfg.max_queue {
        app.waiting.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::Status(
            StatusCode::SERVICE_UNAVAILABLE,
            "The runner is busy; try again.".into(),
        ));
    }
    let permit = app.gate.acquire().await;
    app.waiting.fetch_sub(1, Ordering::SeqCst);
    let _permit = permit
        .map_err(|_| ApiError::Status(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()))?;
    let started = Instant::now();
    let model = app.model.clone();
    let result = tokio::task::spawn_blocking(move || run_job(&model, &job)).await;
    app.busy_ns
        .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    match result {
        Ok(Ok(images)) => Ok(json!({ "images": images })),
        Ok(Err(e)) => {
            tracing::warn!("{}: {e}", pipeline.name());
            Err(match e {
                DiffusionError::Input(msg) => ApiError::bad(msg),
                e if e.is_oom() => ApiError::Status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    pipeline.oom_error().into(),
                ),
                _ => ApiError::Status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    pipeline.default_error().into(),
                ),
            })
        }
        Err(e) => {
            tracing::error!("{}: generation panicked: {e}", pipeline.name());
            Err(ApiError::Status(
                StatusCode::INTERNAL_SERVER_ERROR,
                pipeline.default_error().into(),
            ))
        }
    }
}

/// Generates the job's images one after another (seed + i), as the runner does.
fn run_job(model: &Model, job: &Job) -> Result<Vec<Value>, DiffusionError> {
    let b = &job.base;
    let cond = model.condition(&b.prompt, &b.negative_prompt, b.guidance_scale)?;
    let mut out = Vec::with_capacity(job.images);
    for i in 0..job.images {
        let seed = job.seed.wrapping_add(i as i64);
        let mut req = job.base.clone();
        req.seed = seed as u64;
        let t = Instant::now();
        let img = model.generate_with(&cond, &req)?;
        tracing::info!(
            "image {}/{} {}x{} seed {seed}: {:.2} s",
            i + 1,
            job.images,
            img.width,
            img.height,
            t.elapsed().as_secs_f64()
        );
        out.push(json!({"url": img.png_data_url(), "seed": seed, "nsfw": false}));
    }
    Ok(out)
}

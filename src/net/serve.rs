//! `gpuworker serve`: the HTTP API.
//!
//! * `POST /transcode`: the body is one segment; the profiles come from the `Profiles` header
//!   or the `profiles` query parameter (a transcodingOptions JSON or a comma list of preset
//!   names; default: the server's `--profiles`). Segments with the same `Session-Id` header
//!   share one session (decoders and encoders stay open, in order). The answer is
//!   `multipart/mixed`, one part per rendition in profile order with `Content-Type`,
//!   `Content-Length`, `Pixels` and `Rendition-Name`, and the decoded pixels in `Pixels`.
//! * `GET /healthz`, `GET /metrics` (Prometheus text).
//!
//! Errors: 401 without the bearer token (when one is configured), 400 bad profiles, 413 a body
//! over the limit, 422 a segment that cannot be transcoded, 429 a client over its session
//! limit, 503 (with Retry-After) the worker at capacity.

use super::metrics::Metrics;
use super::profiles::WireProfileError;
use super::request_body::{self, BodyError};
use super::results;
use super::sessions::{SessionTable, WorkDir};
use crate::profile::{self, Profile};
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// Require `Authorization: Bearer <token>` on /transcode and /metrics.
    pub token: Option<String>,
    /// Largest accepted segment, in bytes.
    pub max_body: usize,
    /// Sessions one client address may hold at once.
    pub per_client_sessions: usize,
    pub default_profiles: Vec<Profile>,
    pub work_dir: PathBuf,
}

struct App {
    cfg: ServeConfig,
    sessions: SessionTable,
    metrics: Metrics,
    next: AtomicU64,
}

/// Serves until `stop` resolves.
pub async fn run(
    cfg: ServeConfig,
    sessions: SessionTable,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.work_dir)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    eprintln!("serve: listening on http://{}", listener.local_addr()?);
    let app = Arc::new(App {
        cfg,
        sessions,
        metrics: Metrics::default(),
        next: AtomicU64::new(0),
    });
    let janitor = {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                app.sessions.close_idle();
            }
        })
    };
    let router = axum::Router::new()
        .route("/transcode", post(transcode))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(app);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await?;
    janitor.abort();
    Ok(())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut r = (status, format!("{}\n", message.into())).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn authorized(app: &App, headers: &HeaderMap) -> bool {
    bearer_ok(app.cfg.token.as_deref(), headers)
}

/// Whether `headers` carry `Authorization: Bearer <token>` (always, when no token is set).
pub fn bearer_ok(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.as_bytes() == token.as_bytes())
}

/// The profiles of a request: header, else query, else the server's default.
pub fn request_profiles(
    header: Option<&str>,
    query: Option<&str>,
    default: &[Profile],
) -> Result<Vec<Profile>, String> {
    match header.or(query) {
        Some(spec) if !spec.trim().is_empty() => {
            profile::parse_spec(spec).map_err(|e| format!("profiles: {e}"))
        }
        _ if default.is_empty() => Err(WireProfileError::Empty.to_string()),
        _ => Ok(default.to_vec()),
    }
}

async fn transcode(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !authorized(&app, &headers) {
        app.metrics.error("unauthorized", false);
        // Read the segment off the socket first, or the client may see a reset, not the 401.
        let _ = request_body::read_limited(body, 0).await;
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let body = match request_body::read_limited(body, app.cfg.max_body).await {
        Ok(b) => b,
        Err(e @ BodyError::TooLarge { .. }) => {
            app.metrics.error("request", false);
            return error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string());
        }
        Err(e) => {
            app.metrics.error("request", false);
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let profiles = match request_profiles(
        h("profiles"),
        query.get("profiles").map(String::as_str),
        &app.cfg.default_profiles,
    ) {
        Ok(p) => p,
        Err(e) => {
            app.metrics.error("request", false);
            return error(StatusCode::BAD_REQUEST, e);
        }
    };
    if body.is_empty() {
        app.metrics.error("request", false);
        return error(StatusCode::BAD_REQUEST, "empty body: POST one segment");
    }
    let client = format!("{}/", peer.ip());
    let n = app.next.fetch_add(1, Ordering::Relaxed);
    let key = match h("session-id") {
        Some(id) if !id.is_empty() && id.len() <= 128 => format!("{client}{id}"),
        _ => format!("{client}request-{n}"),
    };
    let sticky = h("session-id").is_some_and(|id| !id.is_empty() && id.len() <= 128);
    if app.sessions.count(&key) == 0 && app.sessions.count(&client) >= app.cfg.per_client_sessions {
        app.metrics.error("client_limit", false);
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this client already holds {} sessions",
                app.cfg.per_client_sessions
            ),
        );
    }
    let _closing = (!sticky).then(|| app.sessions.closing(&key));
    let stream = match app.sessions.get(&key, &profiles, false) {
        Ok(s) => s,
        Err(e) if e.is_busy() => {
            app.metrics.error("busy", false);
            return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
        Err(e) => {
            app.metrics.error("session", false);
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    };
    let dir = app.cfg.work_dir.join(format!("request-{n}"));
    let _cleanup = WorkDir(dir.clone());
    let written =
        std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join("in.ts"), &body));
    if let Err(e) = written {
        app.metrics.error("io", false);
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    let outputs: Vec<PathBuf> = profiles
        .iter()
        .enumerate()
        .map(|(i, p)| dir.join(format!("{i}.{}", p.container.extension())))
        .collect();
    app.metrics.begin();
    let started = Instant::now();
    let result = stream
        .transcode(dir.join("in.ts"), outputs, Default::default())
        .await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let (kind, status) = if e.is_busy() {
                ("busy", StatusCode::SERVICE_UNAVAILABLE)
            } else {
                ("transcode", StatusCode::UNPROCESSABLE_ENTITY)
            };
            app.metrics.error(kind, true);
            return error(status, e.to_string());
        }
    };
    app.metrics
        .ok(report.duration, started.elapsed().as_secs_f64());
    let mimes: Vec<&str> = profiles.iter().map(|p| p.container.mime()).collect();
    let parts = match results::parts_of(&report, &mimes) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let body = results::multipart(&parts);
    let mut r = Response::new(axum::body::Body::from(body.bytes));
    let hs = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&body.content_type) {
        hs.insert(header::CONTENT_TYPE, v);
    }
    hs.insert("Pixels", HeaderValue::from(report.decoded_pixels));
    r
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let s = app.sessions.worker().snapshot();
    axum::Json(serde_json::json!({
        "status": "ok",
        "sessions": s.sessions,
        "capacity": s.capacity,
    }))
    .into_response()
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !authorized(&app, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let text = app.metrics.render(&app.sessions.worker().snapshot());
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

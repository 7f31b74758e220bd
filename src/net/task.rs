//! One NotifySegment, start to posted result, as go-livepeer's remote transcoder handles it
//! (server/ot_rpc.go `runTranscode`, `sendTranscodeResult`): the segment data is read
//! (profiles, duration, capabilities, clip), the segment downloaded, transcoded in its
//! stream's session and the renditions posted, each followed by its MPEG-7 signature when
//! the segment asks for one; or the error is posted, in lpms's words where lpms has them
//! ([`super::lpms_errors`]). A failed task drops its stream's session at once: the
//! orchestrator frees that slot without a teardown (core/orchestrator.go:1241-1251), and the
//! worker's count must stay the orchestrator's.

use super::capabilities;
use super::download;
use super::livepeer_metrics::FailCode;
use super::lpms_errors;
use super::profiles;
use super::proto::NotifySegment;
use super::results::{self, Part};
use super::sessions::WorkDir;
use super::transcoder::Ctx;
use crate::pipeline::{Clip, SegmentOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a task failed: what is posted (lpms's text where it has one), what is logged, and
/// the go-livepeer error code it counts under.
struct Failure {
    posted: String,
    detail: String,
    code: FailCode,
    kind: &'static str,
}

impl Failure {
    fn new(posted: &str, detail: impl ToString, code: FailCode, kind: &'static str) -> Self {
        let detail = detail.to_string();
        let code = if lpms_errors::non_retryable(posted) {
            FailCode::NonRetryable
        } else {
            code
        };
        Failure {
            posted: posted.to_string(),
            detail,
            code,
            kind,
        }
    }

    /// Our own words, posted and logged.
    fn ours(detail: impl ToString, code: FailCode, kind: &'static str) -> Self {
        let d = detail.to_string();
        Failure::new(&d, &d, code, kind)
    }

    fn transcode(e: &crate::Error, url: &str, local: &str) -> Self {
        let detail = e.to_string().replace(local, url);
        let kind = super::transcoder::error_kind(e);
        match lpms_errors::for_error(e) {
            Some(text) => Failure::new(text, detail, FailCode::Transcode, kind),
            None => Failure::ours(detail, FailCode::Transcode, kind),
        }
    }
}

/// `Livepeer Transcoder <version> (<orchId>)`, the metadata a go-livepeer transcoder writes
/// into every rendition (core/streamdata.go:198-204).
pub fn service(version: &str, orch_id: &str) -> String {
    format!("Livepeer Transcoder {version} ({orch_id})")
}

/// Handles one NotifySegment: a teardown, or a segment to transcode and answer.
pub(crate) async fn handle(ctx: Arc<Ctx>, notify: NotifySegment) {
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
    let body = match result {
        Ok((pixels, parts, media, profiles, transcode)) => {
            let total = started.elapsed().as_secs_f64();
            ctx.metrics.ok(media, total);
            ctx.livepeer.transcoded(&profiles, transcode, total);
            tracing::info!(
                "task {task} (session {sid}, seq {}): {} renditions in {total:.2} s",
                seg.seq,
                parts.len(),
            );
            Ok((pixels, parts))
        }
        Err(f) => {
            // The orchestrator ends this stream's slot on any error; so do we.
            if !sid.is_empty() && ctx.streams.remove(&sid) {
                tracing::info!("session {sid} closed after a failed segment");
            }
            ctx.metrics.error(f.kind, true);
            ctx.livepeer.failed(f.code);
            if f.posted == f.detail {
                tracing::warn!("task {task} (session {sid}, seq {}): {}", seg.seq, f.detail);
            } else {
                tracing::warn!(
                    "task {task} (session {sid}, seq {}): {} (posted as {:?})",
                    seg.seq,
                    f.detail,
                    f.posted
                );
            }
            Err(f.posted)
        }
    };
    let t = Instant::now();
    match post(&ctx, task, body).await {
        Ok(()) => ctx.livepeer.uploaded(t.elapsed().as_secs_f64()),
        Err(e) => tracing::error!("task {task}: result not delivered: {e}"),
    }
}

/// Decoded pixels, the parts, media seconds, the profile names and the transcode time.
type Done = (u64, Vec<Part>, f64, String, f64);

async fn transcode(ctx: &Arc<Ctx>, notify: &NotifySegment, sid: &str) -> Result<Done, Failure> {
    let seg = notify.seg_data.clone().unwrap_or_default();
    let input_err =
        |posted: &str, detail: String| Failure::new(posted, detail, FailCode::Transcode, "input");
    // go-livepeer's order: segment data (profiles, duration), capabilities, download.
    let profiles = profiles::from_segdata(&seg)
        .map_err(|e| input_err(lpms_errors::for_profiles(&e), e.to_string()))?;
    if !(0..=300_000).contains(&seg.duration) {
        return Err(input_err(
            "invalid duration",
            format!("segment duration {} ms out of range", seg.duration),
        ));
    }
    if let Some(c) = &seg.capabilities {
        if !capabilities::covers(
            &capabilities::bitstring(&ctx.cfg.capabilities),
            &c.bitstring,
        ) {
            let missing: Vec<u32> = capabilities::list(&c.bitstring)
                .into_iter()
                .filter(|x| !ctx.cfg.capabilities.contains(x))
                .collect();
            return Err(Failure::new(
                "incompatible segment capabilities",
                format!("incompatible segment capabilities: this worker lacks {missing:?}"),
                FailCode::Transcode,
                "capabilities",
            ));
        }
    }
    let clip = match &seg.segment_parameters {
        Some(p) => Clip::new(p.from, p.to)
            .map_err(|e| input_err(&e.to_string(), format!("clip {}..{} ms: {e}", p.from, p.to)))?,
        None => None,
    };
    let t = Instant::now();
    let data = download::fetch(&ctx.downloads, &notify.url)
        .await
        .map_err(|e| Failure::ours(e, FailCode::Download, "download"))?;
    ctx.livepeer.downloaded(t.elapsed().as_secs_f64());
    let dir = ctx.cfg.work_dir.join(format!("task-{}", notify.task_id));
    let cleanup = WorkDir(dir.clone());
    let io = |e: std::io::Error| Failure::ours(e, FailCode::Transcode, "io");
    std::fs::create_dir_all(&dir).map_err(io)?;
    let input = dir.join("segment.ts");
    std::fs::write(&input, &data).map_err(io)?;
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
    let local = input.display().to_string();
    let stream = ctx
        .streams
        .get(&key, &profiles, seg.force_session_reinit)
        .map_err(|e| Failure::transcode(&e, &notify.url, &local))?;
    let opts = SegmentOptions {
        clip,
        signature: seg.calc_perceptual_hash,
        service: Some(service(&ctx.cfg.version, &notify.orch_id)),
    };
    let t = Instant::now();
    let report = stream
        .transcode(input, outputs, opts)
        .await
        .map_err(|e| Failure::transcode(&e, &notify.url, &local))?;
    let transcode = t.elapsed().as_secs_f64();
    let parts = results::parts_of(&report, &mimes).map_err(io)?;
    drop(cleanup);
    let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
    Ok((
        report.decoded_pixels,
        parts,
        report.duration,
        names.join(","),
        transcode,
    ))
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
        .map_err(|e| format!("{e}: {}", super::transcoder::source_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("the orchestrator answered {}", resp.status()));
    }
    Ok(())
}

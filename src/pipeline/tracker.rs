//! Completion of one segment. The source and every rendition of a session report their part
//! of a segment here; when the last one has, the segment is settled: either every rendition
//! file is renamed into place and the report goes to the submitter, or (if any part failed)
//! every part file is removed and the first real error goes back instead. A segment is never
//! half-committed and never lost: dropping the tracker unsettled tells the submitter so.

use crate::error::{Error, Result};
use crate::media::mux::Finished;
use crate::pipeline::report::{RenditionReport, SegmentReport};
use crossbeam::channel::Sender;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the source stage knows about a finished segment.
#[derive(Debug)]
pub(crate) struct SourcePart {
    pub index: u64,
    pub source_width: u32,
    pub source_height: u32,
    pub decoded_frames: u64,
    pub decoded_pixels: u64,
    pub duration: f64,
    /// The decoder that read it ("libavcodec", "nvdec").
    pub decoder: &'static str,
    pub decode: Duration,
    pub diffuse: Duration,
    pub scale: Duration,
}

/// What one rendition stage produced.
#[derive(Debug)]
pub(crate) struct RenditionPart {
    pub name: String,
    pub file: Finished,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub target_bitrate: u64,
    /// The encoder that wrote it ("libx264", "nvenc").
    pub encoder: &'static str,
    pub encode: Duration,
    /// Of `encode`, the time spent on the signature.
    pub sign: Duration,
    /// The MPEG-7 video signature, when the segment asked for one.
    pub signature: Option<Vec<u8>>,
}

struct State {
    source: Option<Result<SourcePart>>,
    renditions: Vec<Option<Result<RenditionPart>>>,
    /// Reports still expected.
    remaining: usize,
    reply: Option<Sender<Result<SegmentReport>>>,
}

pub(crate) struct Tracker {
    input: PathBuf,
    submitted: Instant,
    state: Mutex<State>,
    /// The session's count of unsettled segments.
    in_flight: Arc<AtomicUsize>,
}

impl Tracker {
    pub fn new(
        input: PathBuf,
        renditions: usize,
        reply: Sender<Result<SegmentReport>>,
        in_flight: Arc<AtomicUsize>,
    ) -> Self {
        Tracker {
            input,
            in_flight,
            submitted: Instant::now(),
            state: Mutex::new(State {
                source: None,
                renditions: (0..renditions).map(|_| None).collect(),
                remaining: renditions + 1,
                reply: Some(reply),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The source failed before any rendition was told about the segment.
    pub fn fail_early(&self, e: Error) {
        let mut s = self.lock();
        s.source = Some(Err(e));
        s.remaining = 0;
        self.settle(&mut s);
    }

    pub fn source_done(&self, part: Result<SourcePart>) {
        let mut s = self.lock();
        s.source = Some(part);
        s.remaining -= 1;
        if s.remaining == 0 {
            self.settle(&mut s);
        }
    }

    pub fn rendition_done(&self, i: usize, part: Result<RenditionPart>) {
        let mut s = self.lock();
        s.renditions[i] = Some(part);
        s.remaining -= 1;
        if s.remaining == 0 {
            self.settle(&mut s);
        }
    }

    fn settle(&self, s: &mut State) {
        let Some(reply) = s.reply.take() else {
            return;
        };
        let result = self.outcome(s);
        self.in_flight.fetch_sub(1, SeqCst);
        let _ = reply.send(result);
    }

    fn outcome(&self, s: &mut State) -> Result<SegmentReport> {
        let source = match s.source.take() {
            Some(Ok(p)) => p,
            Some(Err(e)) => return Err(e),
            None => return Err(Error::Aborted),
        };
        let mut parts = Vec::with_capacity(s.renditions.len());
        for r in s.renditions.iter_mut() {
            match r.take() {
                Some(Ok(p)) => parts.push(p),
                Some(Err(e)) => return Err(e),
                None => return Err(Error::Aborted),
            }
        }
        let duration = source.duration.max(1e-9);
        let mut renditions = Vec::with_capacity(parts.len());
        let (mut encode, mut sign) = (Duration::ZERO, Duration::ZERO);
        // Commit only once every part is complete; a failed rename removes the rest.
        for p in parts {
            let path = p.file.path().to_path_buf();
            let written = p.file.commit()?;
            encode += p.encode;
            sign += p.sign;
            renditions.push(RenditionReport {
                name: p.name,
                path,
                width: p.width,
                height: p.height,
                frames: p.frames,
                pixels: p.frames * p.width as u64 * p.height as u64,
                bytes: written.bytes,
                bitrate: (written.bytes as f64 * 8.0 / duration) as u64,
                video_bitrate: (written.video_bytes as f64 * 8.0 / duration) as u64,
                target_bitrate: p.target_bitrate,
                encoder: p.encoder.into(),
                signature: p.signature,
            });
        }
        Ok(SegmentReport {
            input: self.input.clone(),
            index: source.index,
            source_width: source.source_width,
            source_height: source.source_height,
            decoded_frames: source.decoded_frames,
            decoded_pixels: source.decoded_pixels,
            duration,
            decoder: source.decoder.into(),
            renditions,
            wall_seconds: self.submitted.elapsed().as_secs_f64(),
            decode_seconds: source.decode.as_secs_f64(),
            diffuse_seconds: source.diffuse.as_secs_f64(),
            scale_seconds: source.scale.as_secs_f64(),
            encode_seconds: encode.as_secs_f64(),
            signature_seconds: sign.as_secs_f64(),
        })
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        // Dropped unsettled (its session closed): the submitter sees `Error::Closed`.
        if self.lock().reply.take().is_some() {
            self.in_flight.fetch_sub(1, SeqCst);
        }
    }
}

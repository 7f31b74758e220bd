//! A session is one stream. Its stages are actors on the worker's CPU pool, connected by
//! bounded lock-free queues and fed from bounded frame pools:
//!
//! ```text
//!  submit(segment) ─► jobs ─► Source (demux ─► decode ─► scale, every rendition in one pass)
//!                                 │ Start · Frame · Audio · End, one bounded inbox per rendition
//!                                 ▼
//!                   Rendition i (fps timing ─► encode ─► mux) ──► Tracker ──► Ticket
//!                                 │ used frame buffers back to the source's pool
//!                                 ▼
//!                             free frames (bounded per rendition)
//! ```
//!
//! The decoder, scaler and encoders live across the stream's consecutive segments. Segments
//! of a session are processed in order; while renditions still encode segment k the source
//! already decodes segment k+1, and the stages of other sessions share the same cores.
//! A segment that fails leaves no output and resets the session's codecs, so the next good
//! segment transcodes normally; other sessions never notice.

use crate::error::{Error, Result};
use crate::pipeline::clip::Clip;
use crate::pipeline::rendition::RenditionTask;
use crate::pipeline::report::SegmentReport;
use crate::pipeline::source::Source;
use crate::pipeline::tracker::Tracker;
use crate::profile::Profile;
use crate::sched::pool::{wake, Wake};
use crate::sched::{Actor, DeviceLease, Permit, PoolHandle};
use crossbeam::channel::{bounded, Receiver, RecvTimeoutError};
use crossbeam::queue::ArrayQueue;
use ffmpeg_next as ff;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// How a session transcodes.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub profiles: Vec<Profile>,
    /// x264 preset.
    pub preset: String,
    /// Threads inside each decoder/encoder. 1 (the default) leaves parallelism to the
    /// worker's pool; 0 = libavcodec's automatic choice.
    pub threads: usize,
    pub kernels: crate::backend::cpu::scale::Kernels,
    /// Scale on this CUDA device instead of with `kernels` (set by the worker's placement).
    pub cuda_device: Option<usize>,
    /// On `cuda_device`: decode with NVDEC where the GPU takes the stream (H.264 or HEVC in
    /// Annex B, 8-bit 4:2:0).
    pub nvdec: bool,
    /// On `cuda_device`: encode with NVENC (frames stay in device memory end to end).
    pub nvenc: bool,
    /// Written into each output's metadata (`service_provider`).
    pub service: String,
    /// Segments a session holds at once (queued or in progress); more are refused as busy.
    pub depth: usize,
    /// Image-to-image on every decoded frame before scaling (`transcode --diffuse`).
    pub diffuse: Option<Arc<dyn crate::pipeline::stage::FrameFilterFactory>>,
}

impl SessionConfig {
    pub fn new(profiles: Vec<Profile>) -> Self {
        SessionConfig {
            profiles,
            preset: crate::backend::cpu::encode::DEFAULT_PRESET.to_string(),
            threads: 1,
            kernels: crate::backend::cpu::scale::Kernels::detect(),
            cuda_device: None,
            nvdec: true,
            nvenc: true,
            service: format!("gpuworker {}", env!("CARGO_PKG_VERSION")),
            depth: 3,
            diffuse: None,
        }
    }
}

/// What one segment asks for beyond its session's profiles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentOptions {
    /// Segment slicing (go-livepeer `segment_parameters`), applied to every rendition.
    pub clip: Option<Clip>,
    /// Compute each rendition's MPEG-7 video signature (go-livepeer `calc_perceptual_hash`).
    pub signature: bool,
    /// Written into each output's metadata instead of the session's `service`.
    pub service: Option<String>,
}

/// Scaled frame buffers per rendition: one being written, one held for repeats, two queued.
pub(crate) const FRAMES_PER_RENDITION: usize = 4;
/// Inbox slots per rendition beyond its frames (audio packets and control messages).
const INBOX_SLACK: usize = 256;

/// What the source sends a rendition.
pub(crate) enum ToRendition {
    /// A new segment begins.
    Start(Box<Start>),
    /// The next scaled frame and its source timestamp.
    Frame {
        frame: ff::frame::Video,
        pts: i64,
    },
    Audio(ff::Packet),
    /// The segment's source is exhausted; `end_pts` is where its last frame ends.
    End {
        end_pts: i64,
    },
    /// The segment failed at the source: drop its output.
    Abort,
}

pub(crate) struct Start {
    pub output: PathBuf,
    pub size: (u32, u32),
    pub time_base: ff::Rational,
    pub frame_rate: ff::Rational,
    pub audio: Option<(ff::codec::Parameters, ff::Rational)>,
    pub tracker: Arc<Tracker>,
    pub clip: Option<Clip>,
    pub signature: bool,
    pub service: String,
}

/// A segment waiting for the source.
pub(crate) struct Job {
    pub input: PathBuf,
    pub outputs: Vec<PathBuf>,
    pub tracker: Arc<Tracker>,
    pub opts: SegmentOptions,
}

/// What the stages of one session share: inboxes, frame pools and wake handles.
pub(crate) struct Link {
    pub inboxes: Vec<ArrayQueue<ToRendition>>,
    pub free: Vec<ArrayQueue<ff::frame::Video>>,
    pub jobs: ArrayQueue<Job>,
    /// Segments submitted and not yet settled (each tracker decrements it when it settles).
    pub in_flight: Arc<AtomicUsize>,
    /// The source is waiting for a free buffer or inbox slot.
    pub source_waiting: AtomicBool,
    pub source: OnceLock<Weak<dyn Wake>>,
    pub renditions: OnceLock<Vec<Weak<dyn Wake>>>,
    _permit: Permit,
    /// The session's GPU, when it has one.
    lease: Option<DeviceLease>,
}

impl Link {
    pub fn wake_source(&self) {
        if let Some(w) = self.source.get() {
            wake(w);
        }
    }

    pub fn wake_rendition(&self, i: usize) {
        if let Some(w) = self.renditions.get() {
            wake(&w[i]);
        }
    }

    /// Called by a rendition after it freed a buffer or an inbox slot.
    pub fn freed(&self) {
        if self.source_waiting.load(SeqCst) && self.source_waiting.swap(false, SeqCst) {
            self.wake_source();
        }
    }

    /// Gives back one NVENC session of the session's reservation (a rendition that the driver
    /// refused one encodes on the CPU).
    pub fn release_nvenc(&self) {
        if let Some(l) = &self.lease {
            l.release_nvenc();
        }
    }

    /// Returns a used frame buffer to rendition `i`'s pool.
    pub fn recycle(&self, i: usize, frame: ff::frame::Video) {
        let _ = self.free[i].push(frame);
        self.freed();
    }
}

/// A segment's result, once it is settled.
pub struct Ticket {
    rx: Receiver<Result<SegmentReport>>,
}

impl Ticket {
    /// Waits for the segment to finish.
    pub fn wait(self) -> Result<SegmentReport> {
        self.rx.recv().unwrap_or(Err(Error::Closed))
    }

    /// Waits at most `timeout`; `None` if the segment is still in progress.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<SegmentReport>> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Err(Error::Closed)),
        }
    }
}

pub struct Session {
    link: Arc<Link>,
    source: Arc<Actor<Source>>,
    /// Held so the rendition stages live as long as the session (wakers are weak).
    _renditions: Vec<Arc<Actor<RenditionTask>>>,
    profiles: usize,
    depth: usize,
}

impl Session {
    /// Starts a session's stages on `pool`. `permit` is its place under admission control; it
    /// is released when the last stage of the session is gone.
    pub fn open(
        pool: &PoolHandle,
        permit: Permit,
        lease: Option<DeviceLease>,
        cfg: SessionConfig,
    ) -> Result<Self> {
        if cfg.profiles.is_empty() {
            return Err(crate::profile::ProfileError::Empty.into());
        }
        crate::media::init();
        let n = cfg.profiles.len();
        let depth = cfg.depth.max(1);
        let link = Arc::new(Link {
            inboxes: (0..n)
                .map(|_| ArrayQueue::new(FRAMES_PER_RENDITION + INBOX_SLACK))
                .collect(),
            free: (0..n)
                .map(|_| ArrayQueue::new(2 * FRAMES_PER_RENDITION))
                .collect(),
            jobs: ArrayQueue::new(depth),
            in_flight: Arc::new(AtomicUsize::new(0)),
            source_waiting: AtomicBool::new(false),
            source: OnceLock::new(),
            renditions: OnceLock::new(),
            _permit: permit,
            lease,
        });
        let busy = |e: crate::sched::pool::PoolFull| Error::Busy(e.to_string());
        let cfg = Arc::new(cfg);
        let renditions = (0..n)
            .map(|i| Actor::spawn(pool, RenditionTask::new(i, cfg.clone(), link.clone())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(busy)?;
        let source = Actor::spawn(pool, Source::new(cfg.clone(), link.clone())).map_err(busy)?;
        let _ = link.source.set(source.waker());
        let _ = link
            .renditions
            .set(renditions.iter().map(|r| r.waker()).collect());
        Ok(Session {
            link,
            source,
            _renditions: renditions,
            profiles: n,
            depth,
        })
    }

    /// Queues one segment; `outputs` has one path per profile, in profile order. Refused with
    /// [`Error::Busy`] when the session already holds `depth` segments.
    pub fn submit(&self, input: &Path, outputs: &[PathBuf]) -> Result<Ticket> {
        self.submit_with(input, outputs, SegmentOptions::default())
    }

    /// [`Session::submit`] with per-segment options (clip, signatures, metadata).
    pub fn submit_with(
        &self,
        input: &Path,
        outputs: &[PathBuf],
        opts: SegmentOptions,
    ) -> Result<Ticket> {
        assert_eq!(outputs.len(), self.profiles, "one output per profile");
        let held = self.link.in_flight.fetch_add(1, SeqCst);
        if held >= self.depth {
            self.link.in_flight.fetch_sub(1, SeqCst);
            return Err(Error::Busy(format!(
                "busy: this session already holds {} segments",
                self.depth
            )));
        }
        let (tx, rx) = bounded(1);
        let tracker = Arc::new(Tracker::new(
            input.to_path_buf(),
            self.profiles,
            tx,
            self.link.in_flight.clone(),
        ));
        let job = Job {
            input: input.to_path_buf(),
            outputs: outputs.to_vec(),
            tracker,
            opts,
        };
        if self.link.jobs.push(job).is_err() {
            unreachable!("the job queue holds `depth` segments and `in_flight` admitted fewer");
        }
        self.source.wake();
        Ok(Ticket { rx })
    }

    /// Transcodes one segment and waits for it.
    pub fn transcode(&self, input: &Path, outputs: &[PathBuf]) -> Result<SegmentReport> {
        self.submit(input, outputs)?.wait()
    }

    /// Name of the scaler implementation in use (after the first segment).
    pub fn scaler_name(&self) -> Option<String> {
        self.source.with(|s| s.scaler_name())
    }

    /// Segments submitted and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.link.in_flight.load(SeqCst)
    }

    /// The CUDA device the session runs on, if any.
    pub fn device(&self) -> Option<usize> {
        self.source.with(|s| s.device())
    }

    /// Ends the session and waits, at most `timeout`, until every stage is gone from the pool
    /// with what it holds (codecs, device memory, NVENC sessions): dropping a session only
    /// lets the stages go when the pool next lets go of them. False on timeout. A process
    /// that exits after this leaves nothing behind (and a GPU's NVENC sessions are free for
    /// what comes next).
    pub fn close(self, timeout: Duration) -> bool {
        let link = Arc::downgrade(&self.link);
        drop(self);
        let deadline = std::time::Instant::now() + timeout;
        // The stages share the link; it goes with the last of them.
        while link.strong_count() > 0 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }
}

//! The source stage of a session: demux → decode → [diffuse] → scale (every rendition in one
//! pass). It
//! takes queued segments one at a time, works one packet or one frame per step, and hands
//! each scaled frame to the rendition stages. When a rendition's frame pool or inbox is
//! empty it stops and is woken when a buffer comes back: that is the backpressure that keeps
//! every session's memory bounded.

use crate::backend::cpu::{decode::CpuDecoder, scale::CpuScaler};
use crate::backend::cuda::{decode::NvdecDecoder, scale::CudaScaler};
use crate::error::{Error, Result};
use crate::media::demux::{pixel_format_supported, pixel_name, Segment};
use crate::media::frame::{conversion, convert_to_i420, make_writable};
use crate::pipeline::session::{
    Job, Link, SessionConfig, Start, ToRendition, FRAMES_PER_RENDITION,
};
use crate::pipeline::stage::{FrameFilter, MultiScaler, VideoDecoder};
use crate::pipeline::tracker::{SourcePart, Tracker};
use crate::scale::{filter::DEFAULT_KERNEL, ScalePlan};
use crate::sched::Step;
use ffmpeg_next as ff;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The segment being read.
struct Current {
    seg: Segment,
    tracker: Arc<Tracker>,
    /// The demuxer is exhausted and the decoder has been told.
    eof: bool,
    /// The decoder may hold more frames for the last packet sent.
    pending: bool,
    /// `decoded` holds a frame not yet handed on; `scaled` holds its scaled renditions and
    /// `sent` says which of them are already on their way.
    have_frame: bool,
    scaled_ready: bool,
    sent: u64,
    pts: i64,
    decoded_frames: u64,
    decoded_pixels: u64,
    first_pts: Option<i64>,
    end_pts: Option<i64>,
    frame_ticks: i64,
    decode: Duration,
    diffuse: Duration,
    scale: Duration,
}

pub(crate) struct Source {
    cfg: Arc<SessionConfig>,
    link: Arc<Link>,
    decoder: Option<Box<dyn VideoDecoder>>,
    scaler: Option<Box<dyn MultiScaler>>,
    diffuser: Option<Box<dyn FrameFilter>>,
    source_size: Option<(u32, u32)>,
    sizes: Vec<(u32, u32)>,
    /// Buffers of the current size handed out per rendition (the pool's bound).
    allocated: Vec<usize>,
    decoded: ff::frame::Video,
    /// The decoded frame as 8-bit 4:2:0, when its own format is another one.
    converted: ff::frame::Video,
    /// `converted` holds the current frame (rather than `decoded`).
    use_converted: bool,
    /// The frames the scaler writes, one per rendition; swapped for pool buffers as they go.
    scaled: Vec<ff::frame::Video>,
    /// Messages that did not fit into a full inbox, in order.
    outbox: VecDeque<(usize, ToRendition)>,
    cur: Option<Current>,
    segments: u64,
}

impl Source {
    pub fn new(cfg: Arc<SessionConfig>, link: Arc<Link>) -> Self {
        let n = cfg.profiles.len();
        Source {
            cfg,
            link,
            decoder: None,
            scaler: None,
            diffuser: None,
            source_size: None,
            sizes: Vec::with_capacity(n),
            allocated: vec![0; n],
            decoded: ff::frame::Video::empty(),
            converted: ff::frame::Video::empty(),
            use_converted: false,
            scaled: Vec::with_capacity(n),
            outbox: VecDeque::with_capacity(4 * n + 16),
            cur: None,
            segments: 0,
        }
    }

    pub fn device(&self) -> Option<usize> {
        self.cfg.cuda_device
    }

    pub fn scaler_name(&self) -> Option<String> {
        self.scaler.as_ref().map(|s| s.name())
    }

    fn n(&self) -> usize {
        self.cfg.profiles.len()
    }

    /// Sends `msg` to rendition `i`, behind anything already waiting in the outbox.
    fn send(&mut self, i: usize, msg: ToRendition) {
        if self.outbox.is_empty() {
            match self.link.inboxes[i].push(msg) {
                Ok(()) => self.link.wake_rendition(i),
                Err(msg) => self.outbox.push_back((i, msg)),
            }
        } else {
            self.outbox.push_back((i, msg));
        }
    }

    /// Moves outbox messages into inboxes; false if one is still full.
    fn flush_outbox(&mut self) -> bool {
        while let Some((i, msg)) = self.outbox.pop_front() {
            match self.link.inboxes[i].push(msg) {
                Ok(()) => self.link.wake_rendition(i),
                Err(msg) => {
                    self.outbox.push_front((i, msg));
                    return false;
                }
            }
        }
        true
    }

    /// Runs `attempt`; if it cannot proceed, asks the renditions for a wake-up and tries once
    /// more (a buffer or inbox slot may have come back before the flag was seen).
    fn or_wait<T>(&mut self, mut attempt: impl FnMut(&mut Self) -> Option<T>) -> Option<T> {
        if let Some(v) = attempt(self) {
            return Some(v);
        }
        self.link.source_waiting.store(true, SeqCst);
        let v = attempt(self)?;
        self.link.source_waiting.store(false, SeqCst);
        Some(v)
    }

    /// Begins a queued segment: opens it, sets up codecs and tells every rendition.
    fn begin(&mut self, job: Job) {
        let seg = match Segment::open(&job.input) {
            Ok(s) => s,
            Err(e) => return job.tracker.fail_early(e),
        };
        if let Err(e) = self.prepare(&seg) {
            self.recover();
            return job.tracker.fail_early(e);
        }
        let audio = seg
            .audio
            .and_then(|i| seg.input.stream(i))
            .map(|s| (s.parameters(), s.time_base()));
        for (i, output) in job.outputs.into_iter().enumerate() {
            let start = Start {
                output,
                size: self.sizes[i],
                time_base: seg.time_base,
                frame_rate: seg.frame_rate,
                audio: audio.clone(),
                tracker: job.tracker.clone(),
                clip: job.opts.clip,
                signature: job.opts.signature,
                service: job
                    .opts
                    .service
                    .clone()
                    .unwrap_or_else(|| self.cfg.service.clone()),
            };
            self.send(i, ToRendition::Start(Box::new(start)));
        }
        self.cur = Some(Current {
            frame_ticks: ticks_per_frame(seg.time_base, seg.frame_rate),
            seg,
            tracker: job.tracker,
            eof: false,
            pending: false,
            have_frame: false,
            scaled_ready: false,
            sent: 0,
            pts: 0,
            decoded_frames: 0,
            decoded_pixels: 0,
            first_pts: None,
            end_pts: None,
            decode: Duration::ZERO,
            diffuse: Duration::ZERO,
            scale: Duration::ZERO,
        });
    }

    /// Sets up the decoder and scaler for this segment's source, reusing what still fits.
    fn prepare(&mut self, seg: &Segment) -> Result<()> {
        // NVDEC where the session's GPU decodes this stream, else the CPU.
        // (A diffuse stage on the CPU reads host frames: then decoding stays on the CPU.)
        let nvdec = self.cfg.cuda_device.filter(|&d| {
            self.cfg.nvdec
                && self
                    .cfg
                    .diffuse
                    .as_ref()
                    .is_none_or(|x| x.takes_device_frames())
                && crate::backend::cuda::decode::codec_for(seg)
                    .is_some_and(|c| crate::backend::cuda::engines::engines(d).decodes(c))
        });
        let fits =
            |d: &dyn VideoDecoder| d.accepts(seg) && (d.name() == "nvdec") == nvdec.is_some();
        if !self.decoder.as_deref().is_some_and(fits) {
            self.decoder = None;
            self.decoder = Some(match nvdec {
                Some(device) => Box::new(NvdecDecoder::open(seg, device)?),
                None => Box::new(CpuDecoder::open(seg, self.cfg.threads)?),
            });
        }
        if let (Some(d), None) = (&self.cfg.diffuse, &self.diffuser) {
            self.diffuser = Some(d.make(nvdec.is_some())?);
        }
        let src = (seg.width, seg.height);
        if self.source_size != Some(src) {
            self.sizes.clear();
            self.sizes.extend(
                self.cfg
                    .profiles
                    .iter()
                    .map(|p| p.output_size(src.0, src.1)),
            );
            let outs: Vec<(usize, usize)> = self
                .sizes
                .iter()
                .map(|&(w, h)| (w as usize, h as usize))
                .collect();
            let plan = ScalePlan::new(DEFAULT_KERNEL, (src.0 as usize, src.1 as usize), &outs);
            // The old scaler's buffers go first (device memory is finite).
            self.scaler = None;
            self.scaled.clear();
            let scaler: Box<dyn MultiScaler> = if let Some(device) = self.cfg.cuda_device {
                Box::new(CudaScaler::new(plan, device, self.cfg.nvenc)?)
            } else {
                Box::new(CpuScaler::new(plan, self.cfg.kernels))
            };
            for &(w, h) in &self.sizes {
                self.scaled.push(scaler.alloc_output(w, h)?);
            }
            self.scaler = Some(scaler);
            // A new generation of buffers; old ones are dropped as they come back.
            self.allocated.fill(1);
            for q in &self.link.free {
                while q.pop().is_some() {}
            }
            self.source_size = Some(src);
        }
        Ok(())
    }

    /// After a failed segment: drop what may hold half a segment, keep what is reusable.
    fn recover(&mut self) {
        if let Some(d) = self.decoder.as_mut() {
            d.reset();
        }
        self.source_size = None;
    }

    /// Ends the current segment with `e`: every rendition drops its output.
    fn abort(&mut self, e: Error) {
        let Some(cur) = self.cur.take() else { return };
        self.recover();
        for i in 0..self.n() {
            self.send(i, ToRendition::Abort);
        }
        cur.tracker.source_done(Err(e));
    }

    fn finish(&mut self) {
        let Some(end) = self.cur.as_ref().and_then(|c| c.end_pts) else {
            let path = self.cur.as_ref().expect("current").seg.path.clone();
            return self.abort(Error::NoKeyframe { path });
        };
        let cur = self.cur.take().expect("current segment");
        if let Some(d) = self.decoder.as_mut() {
            d.reset();
        }
        for i in 0..self.n() {
            self.send(i, ToRendition::End { end_pts: end });
        }
        let ticks = end - cur.first_pts.unwrap_or(end);
        cur.tracker.source_done(Ok(SourcePart {
            index: self.segments,
            source_width: cur.seg.width,
            source_height: cur.seg.height,
            decoded_frames: cur.decoded_frames,
            decoded_pixels: cur.decoded_pixels,
            duration: ticks as f64 * f64::from(cur.seg.time_base),
            decoder: self.decoder.as_ref().map_or("none", |d| d.name()),
            decode: cur.decode,
            diffuse: cur.diffuse,
            scale: cur.scale,
        }));
        self.segments += 1;
    }

    /// One piece of work on the current segment.
    fn advance(&mut self) -> Result<Step> {
        let cur = self.cur.as_mut().expect("current segment");
        if cur.have_frame {
            return self.hand_on();
        }
        let dec = self.decoder.as_mut().expect("decoder");
        if cur.pending {
            let t = Instant::now();
            let got = dec.receive_frame(&mut self.decoded)?;
            cur.decode += t.elapsed();
            if got {
                self.accept_frame()?;
            } else {
                cur.pending = false;
            }
            return Ok(Step::More);
        }
        if cur.eof {
            self.finish();
            return Ok(Step::More);
        }
        let (video, audio) = (cur.seg.video, cur.seg.audio);
        match cur.seg.input.packets().next() {
            Some((stream, packet)) if stream.index() == video => {
                let t = Instant::now();
                dec.send_packet(&packet)?;
                cur.decode += t.elapsed();
                cur.pending = true;
            }
            Some((stream, packet)) if Some(stream.index()) == audio => {
                for i in 0..self.n() {
                    self.send(i, ToRendition::Audio(packet.clone()));
                }
            }
            Some(_) => {}
            None => {
                let t = Instant::now();
                dec.send_eof()?;
                cur.decode += t.elapsed();
                cur.eof = true;
                cur.pending = true;
            }
        }
        Ok(Step::More)
    }

    /// Checks and counts a freshly decoded frame.
    fn accept_frame(&mut self) -> Result<()> {
        let cur = self.cur.as_mut().expect("current segment");
        let frame = &self.decoded;
        let (w, h) = (frame.width(), frame.height());
        if !pixel_format_supported(frame.format()) && frame.format() != ff::format::Pixel::CUDA {
            return Err(Error::UnsupportedPixelFormat {
                path: cur.seg.path.clone(),
                format: pixel_name(frame.format()),
            });
        }
        let src = self.source_size.expect("prepared");
        if (w, h) != src {
            return Err(Error::SizeChange {
                path: cur.seg.path.clone(),
                from: format!("{}x{}", src.0, src.1),
                to: format!("{w}x{h}"),
            });
        }
        let pts = frame
            .timestamp()
            .or(frame.pts())
            .or(cur.end_pts)
            .unwrap_or(0);
        // Other planar YUV formats become 8-bit 4:2:0 here, before any scaler sees them.
        self.use_converted = matches!(conversion(frame.format()), Some(Some(_)));
        if self.use_converted {
            convert_to_i420(frame, &mut self.converted);
        }
        cur.decoded_frames += 1;
        cur.decoded_pixels += w as u64 * h as u64;
        cur.first_pts.get_or_insert(pts);
        let end = pts + cur.frame_ticks;
        cur.end_pts = Some(cur.end_pts.map_or(end, |e| e.max(end)));
        cur.pts = pts;
        cur.have_frame = true;
        cur.scaled_ready = false;
        cur.sent = 0;
        Ok(())
    }

    /// Scales the decoded frame (once) and hands each rendition its frame, swapping in a
    /// buffer from that rendition's pool; waits when a pool is empty.
    fn hand_on(&mut self) -> Result<Step> {
        let cur = self.cur.as_mut().expect("current segment");
        if !cur.scaled_ready {
            let source = if self.use_converted {
                &mut self.converted
            } else {
                &mut self.decoded
            };
            if let Some(d) = self.diffuser.as_mut() {
                let t = Instant::now();
                d.process(source)?;
                cur.diffuse += t.elapsed();
            }
            let t = Instant::now();
            for f in &mut self.scaled {
                if f.format() != ff::format::Pixel::CUDA {
                    make_writable(f).map_err(|e| Error::codec("scaler", e))?;
                }
            }
            let scaler = self.scaler.as_mut().expect("prepared");
            scaler.scale(source, &mut self.scaled)?;
            cur.scale += t.elapsed();
            cur.scaled_ready = true;
        }
        let pts = cur.pts;
        for i in 0..self.n() {
            if self.cur.as_ref().expect("current").sent & (1 << i) != 0 {
                continue;
            }
            let Some(spare) = self.or_wait(|s| s.spare(i)) else {
                return Ok(Step::Idle);
            };
            let spare = spare?;
            let frame = std::mem::replace(&mut self.scaled[i], spare);
            self.send(i, ToRendition::Frame { frame, pts });
            self.cur.as_mut().expect("current").sent |= 1 << i;
        }
        let cur = self.cur.as_mut().expect("current");
        cur.have_frame = false;
        Ok(Step::More)
    }

    /// A buffer of the current size for rendition `i`: from its pool, or new while the pool
    /// is under its bound.
    fn spare(&mut self, i: usize) -> Option<Result<ff::frame::Video>> {
        let size = self.sizes[i];
        while let Some(f) = self.link.free[i].pop() {
            if (f.width(), f.height()) == size {
                return Some(Ok(f));
            }
        }
        if self.allocated[i] < FRAMES_PER_RENDITION {
            self.allocated[i] += 1;
            let scaler = self.scaler.as_ref().expect("prepared");
            return Some(scaler.alloc_output(size.0, size.1));
        }
        None
    }
}

impl crate::sched::Task for Source {
    fn step(&mut self) -> Step {
        if self.or_wait(|s| s.flush_outbox().then_some(())).is_none() {
            return Step::Idle;
        }
        if self.cur.is_none() {
            return match self.link.jobs.pop() {
                Some(job) => {
                    self.begin(job);
                    Step::More
                }
                None => Step::Idle,
            };
        }
        match self.advance() {
            Ok(step) => step,
            Err(e) => {
                self.abort(e);
                Step::More
            }
        }
    }
}

/// Timestamp ticks of one frame at `rate` in `tb` (at least 1).
fn ticks_per_frame(tb: ff::Rational, rate: ff::Rational) -> i64 {
    let num = tb.denominator() as i64 * rate.denominator() as i64;
    let den = tb.numerator() as i64 * rate.numerator() as i64;
    if den <= 0 {
        1
    } else {
        ((num + den / 2) / den).max(1)
    }
}

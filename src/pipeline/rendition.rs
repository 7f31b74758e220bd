//! The rendition stage of a session: frame-rate timing → encode → mux, for one profile. It
//! takes scaled frames from its inbox in order, encodes each (again, where fps conversion
//! repeats it), writes packets and copied audio into the segment's part file, and at the end
//! of a segment drains the encoder and reports to the segment's tracker. Used buffers go back
//! to the source's pool.

use crate::backend::cpu::encode::{CpuEncoder, EncoderSettings};
use crate::backend::cuda::encode::{NvencEncoder, OpenError};
use crate::backend::cuda::frame::{device_planes, DeviceReader};
use crate::error::{Error, Result};
use crate::media::mux::RenditionWriter;
use crate::mpeg7::Signer;
use crate::pipeline::clip::{ClipState, Keep};
use crate::pipeline::fps::Timing;
use crate::pipeline::session::{Link, SessionConfig, Start, ToRendition};
use crate::pipeline::stage::VideoEncoder;
use crate::pipeline::tracker::{RenditionPart, Tracker};
use crate::profile::{Gop, Profile};
use crate::sched::Step;
use ffmpeg_next as ff;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The segment being written.
struct Current {
    tracker: Arc<Tracker>,
    /// None once the segment has failed here (`failed` says why).
    writer: Option<RenditionWriter>,
    failed: Option<Error>,
    frames: u64,
    encode: Duration,
    /// Time spent signing frames (inside `encode`).
    sign: Duration,
    /// Segment slicing, when the segment asks for it.
    clip: Option<ClipState>,
    /// The MPEG-7 signature being computed, when the segment asks for one.
    signer: Option<Signer>,
}

pub(crate) struct RenditionTask {
    index: usize,
    cfg: Arc<SessionConfig>,
    link: Arc<Link>,
    profile: Profile,
    size: (u32, u32),
    encoder: Option<Box<dyn VideoEncoder>>,
    timing: Timing,
    /// Timestamp at or after which the next keyframe is forced.
    next_keyframe: Option<i64>,
    /// The next frame is the first of a segment (forced IDR).
    segment_start: bool,
    /// The last frame received: fps conversion may repeat it.
    prev: Option<ff::frame::Video>,
    packet: ff::Packet,
    /// Reads device frames back: their luma for a signature, or whole for the CPU encoder.
    reader: Option<DeviceReader>,
    /// The driver refused this rendition an NVENC session: it encodes on the CPU for the rest
    /// of the session.
    nvenc_refused: bool,
    cur: Option<Current>,
}

impl RenditionTask {
    pub fn new(index: usize, cfg: Arc<SessionConfig>, link: Arc<Link>) -> Self {
        let profile = cfg.profiles[index].clone();
        RenditionTask {
            index,
            timing: Timing::new(ff::Rational::new(1, 90000), profile.frame_rate()),
            profile,
            cfg,
            link,
            size: (0, 0),
            encoder: None,
            next_keyframe: None,
            segment_start: true,
            prev: None,
            packet: ff::Packet::empty(),
            reader: None,
            nvenc_refused: false,
            cur: None,
        }
    }

    fn start(&mut self, s: Start) {
        let tracker = s.tracker.clone();
        let opened = self.open(&s).and_then(|w| {
            let signer = if s.signature {
                Some(self.signer(&s, &w)?)
            } else {
                None
            };
            Ok((w, signer))
        });
        let (writer, signer, failed) = match opened {
            Ok((w, sig)) => (Some(w), sig, None),
            Err(e) => {
                self.reset();
                (None, None, Some(e))
            }
        };
        let clip = s.clip.map(|c| {
            let video_tb = self.timing.out_time_base(s.time_base);
            ClipState::new(c, video_tb, s.audio.as_ref().map(|a| a.1))
        });
        self.segment_start = true;
        self.cur = Some(Current {
            tracker,
            writer,
            failed,
            frames: 0,
            encode: Duration::ZERO,
            sign: Duration::ZERO,
            clip,
            signer,
        });
    }

    /// A signature of this rendition's frames for the segment, written beside its output.
    /// Device frames are signed from their luma, downloaded.
    fn signer(&self, s: &Start, writer: &RenditionWriter) -> Result<Signer> {
        let mut file = s.output.as_os_str().to_owned();
        file.push(".sig");
        let device = self
            .encoder
            .as_ref()
            .is_some_and(|e| e.takes_device_frames());
        let format = if device {
            ff::format::Pixel::GRAY8
        } else {
            ff::format::Pixel::YUV420P
        };
        Signer::new(
            std::path::Path::new(&file),
            self.size.0,
            self.size.1,
            format,
            writer.video_time_base(),
        )
    }

    /// Sets up the encoder for the segment (reusing it when nothing changed) and its writer.
    fn open(&mut self, s: &Start) -> Result<RenditionWriter> {
        if self.size != s.size {
            self.size = s.size;
            self.timing = Timing::new(s.time_base, self.profile.frame_rate());
        }
        let settings = EncoderSettings::for_profile(
            &self.profile,
            self.size,
            self.timing.out_time_base(s.time_base),
            s.frame_rate,
            &self.cfg.preset,
            self.cfg.threads,
        );
        if self.encoder.as_ref().map(|e| e.settings()) != Some(&settings) {
            self.encoder = None;
            self.encoder = Some(self.open_encoder(&settings)?);
            self.timing = Timing::new(s.time_base, self.profile.frame_rate());
            self.next_keyframe = None;
        }
        let enc = self.encoder.as_ref().expect("opened");
        RenditionWriter::create(
            &s.output,
            self.profile.container,
            enc.context(),
            enc.time_base(),
            s.audio.as_ref().map(|(p, tb)| (p, *tb)),
            &s.service,
        )
    }

    /// NVENC where the session has it, else (or once the driver refused a session) the CPU.
    fn open_encoder(&mut self, settings: &EncoderSettings) -> Result<Box<dyn VideoEncoder>> {
        let nvenc = self.cfg.nvenc && !self.nvenc_refused;
        if let Some(device) = self.cfg.cuda_device.filter(|_| nvenc) {
            match NvencEncoder::open(settings, device) {
                Ok(e) => return Ok(Box::new(e)),
                Err(refused @ OpenError::Refused(_)) => {
                    tracing::warn!(
                        rendition = %self.profile.name,
                        device,
                        "{refused}; this rendition encodes on the CPU for the rest of the session"
                    );
                    self.nvenc_refused = true;
                    self.link.release_nvenc();
                }
                Err(OpenError::Failed(e)) => return Err(e),
            }
        }
        Ok(Box::new(CpuEncoder::open(settings)?))
    }

    /// Forgets codec state after a failure; the next segment starts afresh.
    fn reset(&mut self) {
        self.encoder = None;
        self.size = (0, 0);
        self.next_keyframe = None;
        if let Some(f) = self.prev.take() {
            self.link.recycle(self.index, f);
        }
    }

    fn frame(&mut self, frame: ff::frame::Video, pts: i64) -> Result<()> {
        // The previous frame fills the output slots up to this frame's (fps conversion).
        let repeats = self.timing.repeats_before(pts);
        if self.prev.is_some() {
            for slot in repeats.clone() {
                if let Err(e) = self.encode_prev(slot) {
                    // The buffer goes back to the pool even when the segment fails here.
                    self.link.recycle(self.index, frame);
                    return Err(e);
                }
            }
        }
        self.timing.advance_to(repeats.end);
        if let Some(old) = self.prev.replace(frame) {
            self.link.recycle(self.index, old);
        }
        if let Some(out_pts) = self.timing.place(pts) {
            self.encode_prev(out_pts)?;
        }
        Ok(())
    }

    /// Encodes the held frame at `pts` and writes what comes out (unless the segment's clip
    /// drops it; a clip that starts later shifts the timestamp).
    fn encode_prev(&mut self, pts: i64) -> Result<()> {
        let pts = match self.cur.as_mut().and_then(|c| c.clip.as_mut()) {
            None => pts,
            Some(clip) => match clip.video(pts) {
                Keep::Drop => return Ok(()),
                Keep::At { pts, .. } => pts,
            },
        };
        let t = Instant::now();
        let on_device = device_planes(self.prev.as_ref().expect("held frame")).is_some();
        let enc_device = self.encoder.as_ref().expect("opened").takes_device_frames();
        if on_device && self.reader.is_none() {
            self.reader = Some(DeviceReader::new(self.cfg.cuda_device.unwrap_or(0))?);
        }
        // Device frames for the CPU encoder (NVENC refused this rendition): downloaded whole.
        let download = on_device && !enc_device;
        if download {
            let reader = self.reader.as_mut().expect("reader");
            reader.download(self.prev.as_ref().expect("held frame"))?;
        }
        if let Some(signer) = self.cur.as_mut().and_then(|c| c.signer.as_mut()) {
            let prev = self.prev.as_mut().expect("held frame");
            let frame = match (on_device, download) {
                (true, true) => self.reader.as_mut().expect("reader").picture(),
                (true, false) => self.reader.as_mut().expect("reader").luma(prev)?,
                (false, _) => prev,
            };
            signer.push(frame, pts)?;
            self.cur.as_mut().expect("segment").sign += t.elapsed();
        }
        let enc = self.encoder.as_mut().expect("opened");
        let tb = enc.time_base();
        let mut idr = self.segment_start;
        if let Gop::Seconds(s) = self.profile.gop {
            if self.next_keyframe.is_some_and(|k| pts >= k) {
                idr = true;
            }
            if idr {
                let ticks = (s * tb.denominator() as f64 / tb.numerator() as f64).round() as i64;
                self.next_keyframe = Some(pts + ticks.max(1));
            }
        }
        self.segment_start = false;
        let frame = match download {
            true => self.reader.as_mut().expect("reader").picture(),
            false => self.prev.as_mut().expect("held frame"),
        };
        enc.send_frame(frame, pts, idr)?;
        let cur = self.cur.as_mut().expect("segment");
        cur.frames += 1;
        let writer = cur.writer.as_mut().expect("writer");
        while enc.receive_packet(&mut self.packet)? {
            writer.write_video(&mut self.packet, tb)?;
        }
        cur.encode += t.elapsed();
        Ok(())
    }

    /// End of segment: last repeats, drain the encoder, reset it for the next segment.
    fn end(&mut self, end_pts: i64) -> Result<RenditionPart> {
        let repeats = self.timing.repeats_at_end(end_pts);
        if self.prev.is_some() {
            for slot in repeats.clone() {
                self.encode_prev(slot)?;
            }
        }
        self.timing.advance_to(repeats.end);
        let t = Instant::now();
        let enc = self.encoder.as_mut().expect("opened");
        let tb = enc.time_base();
        enc.send_eof()?;
        let cur = self.cur.as_mut().expect("segment");
        let writer = cur.writer.as_mut().expect("writer");
        while enc.receive_packet(&mut self.packet)? {
            writer.write_video(&mut self.packet, tb)?;
        }
        enc.reset()?;
        cur.encode += t.elapsed();
        let t = Instant::now();
        let signature = cur.signer.take().map(Signer::finish).transpose()?;
        cur.sign += t.elapsed();
        cur.encode += t.elapsed();
        let file = cur.writer.take().expect("writer").finish()?;
        Ok(RenditionPart {
            name: self.profile.name.clone(),
            file,
            width: self.size.0,
            height: self.size.1,
            frames: cur.frames,
            target_bitrate: self.profile.bitrate,
            encoder: enc.name(),
            encode: cur.encode,
            sign: cur.sign,
            signature,
        })
    }

    /// Runs `f` on the current segment unless it already failed here; a failure drops the
    /// segment's output and the encoder.
    fn guarded(&mut self, f: impl FnOnce(&mut Self) -> Result<()>) {
        if self.cur.as_ref().is_none_or(|c| c.failed.is_some()) {
            return;
        }
        if let Err(e) = f(self) {
            let cur = self.cur.as_mut().expect("segment");
            cur.writer = None;
            cur.failed = Some(e);
            self.reset();
        }
    }

    fn handle(&mut self, msg: ToRendition) {
        match msg {
            ToRendition::Start(s) => self.start(*s),
            ToRendition::Frame { frame, pts } => {
                if self.cur.as_ref().is_none_or(|c| c.failed.is_some()) {
                    self.link.recycle(self.index, frame);
                } else {
                    self.guarded(|r| r.frame(frame, pts));
                }
            }
            ToRendition::Audio(mut p) => self.guarded(|r| {
                let cur = r.cur.as_mut().expect("segment");
                if let Some(clip) = cur.clip.as_mut() {
                    let Some(pts) = p.pts() else { return Ok(()) };
                    let Some(shift) = clip.audio(pts) else {
                        return Ok(());
                    };
                    p.set_pts(Some(pts - shift));
                    p.set_dts(p.dts().map(|d| d - shift));
                }
                cur.writer.as_mut().expect("writer").write_audio(p)
            }),
            ToRendition::End { end_pts } => {
                let mut part = None;
                self.guarded(|r| {
                    part = Some(r.end(end_pts)?);
                    Ok(())
                });
                let Some(cur) = self.cur.take() else { return };
                let result = match (part, cur.failed) {
                    (Some(p), _) => Ok(p),
                    (None, Some(e)) => Err(e),
                    (None, None) => Err(Error::Aborted),
                };
                cur.tracker.rendition_done(self.index, result);
            }
            ToRendition::Abort => {
                // reset() clears the size, so the next Start rebuilds the timing.
                self.reset();
                if let Some(cur) = self.cur.take() {
                    cur.tracker
                        .rendition_done(self.index, Err(cur.failed.unwrap_or(Error::Aborted)));
                }
            }
        }
    }
}

impl crate::sched::Task for RenditionTask {
    fn step(&mut self) -> Step {
        match self.link.inboxes[self.index].pop() {
            Some(msg) => {
                self.link.freed();
                self.handle(msg);
                Step::More
            }
            None => Step::Idle,
        }
    }
}

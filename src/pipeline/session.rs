//! A session is one stream. It keeps its decoder, scaler and encoders across the stream's
//! consecutive segments (reopening them per segment is what makes go-livepeer's software path
//! slow), and turns each segment into one output file per rendition:
//!
//! ```text
//! Segment::open ─► decoder ─► frame ─► scaler (every rendition, one pass)
//!                                        └─► per rendition: timing (fps) ─► encoder ─► writer
//! audio packets ───────────────────────────────────────────────────────────────► every writer
//! ```
//!
//! Every output segment starts with an IDR frame. A segment that fails leaves no output and
//! resets the session's codecs, so the next good segment transcodes normally.

use crate::backend::cpu::{decode::CpuDecoder, encode::CpuEncoder, encode::EncoderSettings};
use crate::backend::cpu::{scale::CpuScaler, scale::Kernels};
use crate::error::{Error, Result};
use crate::media::demux::{pixel_format_supported, pixel_name, Segment};
use crate::media::frame::make_writable;
use crate::media::mux::RenditionWriter;
use crate::pipeline::fps::Timing;
use crate::pipeline::report::{RenditionReport, SegmentReport};
use crate::pipeline::stage::{MultiScaler, VideoDecoder, VideoEncoder};
use crate::profile::{Gop, Profile};
use crate::scale::{filter::DEFAULT_KERNEL, ScalePlan};
use ffmpeg_next as ff;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How a session transcodes.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub profiles: Vec<Profile>,
    /// x264 preset.
    pub preset: String,
    /// Threads per codec instance; 0 = libavcodec's automatic choice.
    pub threads: usize,
    pub kernels: Kernels,
    /// Written into each output's metadata (`service_provider`).
    pub service: String,
}

impl SessionConfig {
    pub fn new(profiles: Vec<Profile>) -> Self {
        SessionConfig {
            profiles,
            preset: crate::backend::cpu::encode::DEFAULT_PRESET.to_string(),
            threads: 0,
            kernels: Kernels::detect(),
            service: format!("gpuworker {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Per-rendition state that lives across segments.
struct Rendition {
    profile: Profile,
    size: (u32, u32),
    encoder: Option<CpuEncoder>,
    timing: Timing,
    /// Timestamp at or after which the next keyframe is forced.
    next_keyframe: Option<i64>,
    /// The next frame is the first of a segment (forced IDR).
    segment_start: bool,
}

/// Per-segment counters of one rendition.
#[derive(Default, Clone, Copy)]
struct Counts {
    frames: u64,
}

pub struct Session {
    cfg: SessionConfig,
    decoder: Option<CpuDecoder>,
    scaler: Option<Box<dyn MultiScaler>>,
    source_size: Option<(u32, u32)>,
    renditions: Vec<Rendition>,
    /// Scaled output of the current frame, one per rendition.
    scaled: Vec<ff::frame::Video>,
    decoded: ff::frame::Video,
    segments: u64,
}

/// Everything one segment run needs besides the session's long-lived state.
struct SegmentRun {
    path: PathBuf,
    writers: Vec<RenditionWriter>,
    counts: Vec<Counts>,
    decoded_frames: u64,
    decoded_pixels: u64,
    first_pts: Option<i64>,
    end_pts: Option<i64>,
    frame_ticks: i64,
    time_base: ff::Rational,
    decode: Duration,
    scale: Duration,
    encode: Duration,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Result<Self> {
        if cfg.profiles.is_empty() {
            return Err(crate::profile::ProfileError::Empty.into());
        }
        crate::media::init();
        Ok(Session {
            cfg,
            decoder: None,
            scaler: None,
            source_size: None,
            renditions: Vec::new(),
            scaled: Vec::new(),
            decoded: ff::frame::Video::empty(),
            segments: 0,
        })
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Name of the scaler implementation in use (after the first segment).
    pub fn scaler_name(&self) -> Option<String> {
        self.scaler.as_ref().map(|s| s.name())
    }

    /// Transcodes one segment into `outputs` (one path per profile, in profile order).
    pub fn transcode(&mut self, input: &Path, outputs: &[PathBuf]) -> Result<SegmentReport> {
        assert_eq!(
            outputs.len(),
            self.cfg.profiles.len(),
            "one output per profile"
        );
        let started = Instant::now();
        let result = self.run(input, outputs);
        match result {
            Ok(mut report) => {
                report.wall_seconds = started.elapsed().as_secs_f64();
                self.segments += 1;
                Ok(report)
            }
            Err(e) => {
                self.recover();
                Err(e)
            }
        }
    }

    /// After a failed segment: drop what may hold half a segment, keep what is reusable.
    fn recover(&mut self) {
        if let Some(d) = self.decoder.as_mut() {
            d.reset();
        }
        for r in &mut self.renditions {
            r.encoder = None;
            r.timing = Timing::new(ff::Rational::new(1, 90000), r.profile.frame_rate());
            r.next_keyframe = None;
        }
        self.source_size = None;
    }

    fn run(&mut self, input: &Path, outputs: &[PathBuf]) -> Result<SegmentReport> {
        let mut seg = Segment::open(input)?;
        if !self.decoder.as_ref().is_some_and(|d| d.accepts(&seg)) {
            self.decoder = Some(CpuDecoder::open(&seg, self.cfg.threads)?);
        }
        self.prepare(&seg)?;
        let audio = seg.audio.and_then(|i| seg.input.stream(i));
        let writers = self
            .renditions
            .iter()
            .zip(outputs)
            .map(|(r, path)| {
                let enc = r.encoder.as_ref().expect("encoder opened by prepare");
                RenditionWriter::create(
                    path,
                    r.profile.container,
                    enc.context(),
                    enc.time_base(),
                    audio.as_ref(),
                    &self.cfg.service,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let frame_ticks = ticks_per_frame(seg.time_base, seg.frame_rate);
        let mut run = SegmentRun {
            path: input.to_path_buf(),
            counts: vec![Counts::default(); writers.len()],
            writers,
            decoded_frames: 0,
            decoded_pixels: 0,
            first_pts: None,
            end_pts: None,
            frame_ticks,
            time_base: seg.time_base,
            decode: Duration::ZERO,
            scale: Duration::ZERO,
            encode: Duration::ZERO,
        };
        for r in &mut self.renditions {
            r.segment_start = true;
        }

        let (video, audio) = (seg.video, seg.audio);
        for (stream, packet) in seg.input.packets() {
            if stream.index() == video {
                let t = Instant::now();
                self.decoder_mut().send_packet(&packet)?;
                run.decode += t.elapsed();
                self.drain_decoder(&mut run)?;
            } else if Some(stream.index()) == audio {
                for w in &mut run.writers {
                    w.write_audio(&packet)?;
                }
            }
        }
        let t = Instant::now();
        self.decoder_mut().send_eof()?;
        run.decode += t.elapsed();
        self.drain_decoder(&mut run)?;
        self.decoder_mut().reset();
        if run.decoded_frames == 0 {
            return Err(Error::NoKeyframe {
                path: input.to_path_buf(),
            });
        }
        self.finish_renditions(&mut run)?;
        self.report(run, &seg, outputs)
    }

    fn decoder_mut(&mut self) -> &mut CpuDecoder {
        self.decoder.as_mut().expect("decoder opened")
    }

    /// Sets up the scaler and encoders for this segment's source, reusing what still fits.
    fn prepare(&mut self, seg: &Segment) -> Result<()> {
        let src = (seg.width, seg.height);
        if self.renditions.is_empty() {
            self.renditions = self
                .cfg
                .profiles
                .iter()
                .map(|p| Rendition {
                    profile: p.clone(),
                    size: (0, 0),
                    encoder: None,
                    timing: Timing::new(seg.time_base, p.frame_rate()),
                    next_keyframe: None,
                    segment_start: true,
                })
                .collect();
        }
        if self.source_size != Some(src) {
            let sizes: Vec<(u32, u32)> = self
                .cfg
                .profiles
                .iter()
                .map(|p| p.output_size(src.0, src.1))
                .collect();
            let plan = ScalePlan::new(
                DEFAULT_KERNEL,
                (src.0 as usize, src.1 as usize),
                &sizes
                    .iter()
                    .map(|&(w, h)| (w as usize, h as usize))
                    .collect::<Vec<_>>(),
            );
            self.scaler = Some(Box::new(CpuScaler::new(plan, self.cfg.kernels)));
            self.scaled = sizes
                .iter()
                .map(|&(w, h)| ff::frame::Video::new(ff::format::Pixel::YUV420P, w, h))
                .collect();
            for (r, &size) in self.renditions.iter_mut().zip(&sizes) {
                r.size = size;
                r.timing = Timing::new(seg.time_base, r.profile.frame_rate());
            }
            self.source_size = Some(src);
        }
        for r in &mut self.renditions {
            let tb = r.timing.out_time_base(seg.time_base);
            let settings = EncoderSettings::for_profile(
                &r.profile,
                r.size,
                tb,
                seg.frame_rate,
                &self.cfg.preset,
                self.cfg.threads,
            );
            if r.encoder.as_ref().map(|e| e.settings()) != Some(&settings) {
                r.encoder = Some(CpuEncoder::open(&settings)?);
                r.timing = Timing::new(seg.time_base, r.profile.frame_rate());
                r.next_keyframe = None;
            }
        }
        Ok(())
    }

    fn drain_decoder(&mut self, run: &mut SegmentRun) -> Result<()> {
        loop {
            let t = Instant::now();
            let got = {
                let (dec, frame) = (self.decoder.as_mut().expect("decoder"), &mut self.decoded);
                dec.receive_frame(frame)?
            };
            run.decode += t.elapsed();
            if !got {
                return Ok(());
            }
            self.process_frame(run)?;
        }
    }

    fn process_frame(&mut self, run: &mut SegmentRun) -> Result<()> {
        let frame = &self.decoded;
        let (w, h) = (frame.width(), frame.height());
        if !pixel_format_supported(frame.format()) {
            return Err(Error::UnsupportedPixelFormat {
                path: run.path.clone(),
                format: pixel_name(frame.format()),
            });
        }
        let src = self.source_size.expect("prepared");
        if (w, h) != src {
            return Err(Error::SizeChange {
                path: run.path.clone(),
                from: format!("{}x{}", src.0, src.1),
                to: format!("{w}x{h}"),
            });
        }
        let pts = frame
            .timestamp()
            .or(frame.pts())
            .or(run.end_pts)
            .unwrap_or(0);
        run.decoded_frames += 1;
        run.decoded_pixels += w as u64 * h as u64;
        run.first_pts.get_or_insert(pts);
        let end = pts + run.frame_ticks;
        run.end_pts = Some(run.end_pts.map_or(end, |e| e.max(end)));

        // The previous frame fills the output slots up to this frame's (fps conversion).
        for i in 0..self.renditions.len() {
            let repeats = self.renditions[i].timing.repeats_before(pts);
            for slot in repeats.clone() {
                self.encode(i, slot, run)?;
            }
            self.renditions[i].timing.advance_to(repeats.end);
        }

        let t = Instant::now();
        for f in &mut self.scaled {
            make_writable(f).map_err(|e| Error::codec("scaler", e))?;
        }
        self.scaler
            .as_mut()
            .expect("prepared")
            .scale(&self.decoded, &mut self.scaled)?;
        run.scale += t.elapsed();

        for i in 0..self.renditions.len() {
            if let Some(out_pts) = self.renditions[i].timing.place(pts) {
                self.encode(i, out_pts, run)?;
            }
        }
        Ok(())
    }

    /// Encodes rendition `i`'s current scaled frame at `pts` and writes what comes out.
    fn encode(&mut self, i: usize, pts: i64, run: &mut SegmentRun) -> Result<()> {
        let t = Instant::now();
        let r = &mut self.renditions[i];
        let enc = r.encoder.as_mut().expect("prepared");
        let tb = enc.time_base();
        let mut idr = r.segment_start;
        if let Gop::Seconds(s) = r.profile.gop {
            if r.next_keyframe.is_some_and(|k| pts >= k) {
                idr = true;
            }
            if idr {
                let ticks = (s * tb.denominator() as f64 / tb.numerator() as f64).round() as i64;
                r.next_keyframe = Some(pts + ticks.max(1));
            }
        }
        r.segment_start = false;
        enc.send_frame(&mut self.scaled[i], pts, idr)?;
        run.counts[i].frames += 1;
        let mut packet = ff::Packet::empty();
        while enc.receive_packet(&mut packet)? {
            run.writers[i].write_video(&mut packet, tb)?;
        }
        run.encode += t.elapsed();
        Ok(())
    }

    /// End of segment: last repeats, drain every encoder, reset it for the next segment.
    fn finish_renditions(&mut self, run: &mut SegmentRun) -> Result<()> {
        let end = run.end_pts.expect("at least one frame");
        for i in 0..self.renditions.len() {
            let repeats = self.renditions[i].timing.repeats_at_end(end);
            for slot in repeats.clone() {
                self.encode(i, slot, run)?;
            }
            self.renditions[i].timing.advance_to(repeats.end);
            let t = Instant::now();
            let r = &mut self.renditions[i];
            let enc = r.encoder.as_mut().expect("prepared");
            let tb = enc.time_base();
            enc.send_eof()?;
            let mut packet = ff::Packet::empty();
            while enc.receive_packet(&mut packet)? {
                run.writers[i].write_video(&mut packet, tb)?;
            }
            enc.reset()?;
            run.encode += t.elapsed();
        }
        Ok(())
    }

    fn report(&self, run: SegmentRun, seg: &Segment, outputs: &[PathBuf]) -> Result<SegmentReport> {
        let ticks = run.end_pts.unwrap_or(0) - run.first_pts.unwrap_or(0);
        let duration = (ticks as f64 * f64::from(run.time_base)).max(1e-9);
        let mut renditions = Vec::with_capacity(run.writers.len());
        for (((w, r), c), path) in run
            .writers
            .into_iter()
            .zip(&self.renditions)
            .zip(&run.counts)
            .zip(outputs)
        {
            let written = w.finish()?;
            renditions.push(RenditionReport {
                name: r.profile.name.clone(),
                path: path.clone(),
                width: r.size.0,
                height: r.size.1,
                frames: c.frames,
                pixels: c.frames * r.size.0 as u64 * r.size.1 as u64,
                bytes: written.bytes,
                bitrate: (written.bytes as f64 * 8.0 / duration) as u64,
                video_bitrate: (written.video_bytes as f64 * 8.0 / duration) as u64,
                target_bitrate: r.profile.bitrate,
            });
        }
        Ok(SegmentReport {
            input: run.path,
            index: self.segments,
            source_width: seg.width,
            source_height: seg.height,
            decoded_frames: run.decoded_frames,
            decoded_pixels: run.decoded_pixels,
            duration,
            renditions,
            wall_seconds: 0.0,
            decode_seconds: run.decode.as_secs_f64(),
            scale_seconds: run.scale.as_secs_f64(),
            encode_seconds: run.encode.as_secs_f64(),
        })
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

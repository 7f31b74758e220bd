//! Encoding on the CPU: libx264 (H.264) or libx265 (HEVC, lpms's software HEVC encoder)
//! through libavcodec, configured exactly as the options of an `ffmpeg -c:v libx264 ...`
//! command line (see [`EncoderSettings::options`]), so that `scripts/compare-ffmpeg` can give
//! the ffmpeg CLI the very same settings.

use crate::error::{Error, Result};
use crate::pipeline::stage::VideoEncoder;
use crate::profile::{CodecProfile, Gop, OutputCodec, Profile};
use ffmpeg_next as ff;

/// Everything that configures one rendition's encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    /// Time base of the frames' timestamps.
    pub time_base: ff::Rational,
    /// Nominal frame rate (rate control and GOP length in frames).
    pub frame_rate: ff::Rational,
    pub bitrate: u64,
    pub quality: u32,
    pub profile: CodecProfile,
    pub gop: Gop,
    /// x264 preset (default `veryfast`).
    pub preset: String,
    /// Encoder threads; 0 = libavcodec's automatic choice.
    pub threads: usize,
    /// Codec headers out of band (MP4) instead of in the stream (MPEG-TS).
    pub global_header: bool,
    pub codec: OutputCodec,
}

/// The x264 preset used unless `--x264-preset` says otherwise.
pub const DEFAULT_PRESET: &str = "veryfast";

impl EncoderSettings {
    /// Settings for a profile's rendition; the frame rate is the profile's, or the source's
    /// (`source_rate`) when the profile passes timestamps through.
    pub fn for_profile(
        p: &Profile,
        size: (u32, u32),
        time_base: ff::Rational,
        source_rate: ff::Rational,
        preset: &str,
        threads: usize,
    ) -> Self {
        let frame_rate = p
            .frame_rate()
            .map(|(n, d)| ff::Rational::new(n as i32, d as i32))
            .unwrap_or(source_rate);
        EncoderSettings {
            width: size.0,
            height: size.1,
            time_base,
            frame_rate,
            bitrate: p.bitrate,
            quality: p.quality,
            profile: p.profile,
            gop: p.gop,
            preset: preset.to_string(),
            threads,
            global_header: p.container == crate::profile::Container::Mp4,
            codec: p.codec,
        }
    }

    /// Keyframe interval in frames (None = encoder default).
    pub fn gop_frames(&self) -> Option<u32> {
        match self.gop {
            Gop::Default => None,
            Gop::Intra => Some(1),
            Gop::Seconds(s) => Some(((s * f64::from(self.frame_rate)).round() as u32).max(1)),
        }
    }

    /// The libavcodec encoder these settings open.
    pub fn encoder_name(&self) -> &'static str {
        match self.codec {
            OutputCodec::H264 => "libx264",
            OutputCodec::Hevc => "libx265",
        }
    }

    /// libavcodec options, named as on the ffmpeg command line (`-preset veryfast` ...).
    /// Rate control follows lpms: bitrate = maxrate = minrate = bufsize (a 1 s VBV), or CRF
    /// with the bitrate as a cap.
    pub fn options(&self) -> Vec<(&'static str, String)> {
        if self.codec == OutputCodec::Hevc {
            return self.x265_options();
        }
        let mut o = vec![("preset", self.preset.clone()), ("forced-idr", "1".into())];
        let br = self.bitrate.to_string();
        if self.quality > 0 {
            o.push(("crf", self.quality.to_string()));
            o.push(("maxrate", br.clone()));
            o.push(("bufsize", br));
        } else {
            o.push(("b", br.clone()));
            o.push(("maxrate", br.clone()));
            o.push(("minrate", br.clone()));
            o.push(("bufsize", br));
        }
        if let Some(name) = self.profile.x264_name() {
            o.push(("profile", name.into()));
        }
        o.push(("bf", self.profile.b_frames().to_string()));
        if let Some(g) = self.gop_frames() {
            o.push(("g", g.to_string()));
            o.push(("sc_threshold", "0".into()));
        }
        o.push(("threads", self.threads.to_string()));
        o
    }
}

impl EncoderSettings {
    /// libx265 through libavcodec: the same rate control, GOP and B-frames as libx264 (the
    /// wrapper maps maxrate/bufsize to x265's VBV), scene cuts off with a GOP, closed GOPs
    /// so every forced IDR starts a decodable segment, and x265's own log kept quiet.
    fn x265_options(&self) -> Vec<(&'static str, String)> {
        let br = self.bitrate.to_string();
        let mut o = vec![("preset", self.preset.clone()), ("forced-idr", "1".into())];
        if self.quality > 0 {
            o.push(("crf", self.quality.to_string()));
        } else {
            o.push(("b", br.clone()));
        }
        o.push(("maxrate", br.clone()));
        o.push(("bufsize", br));
        o.push(("bf", self.profile.b_frames().to_string()));
        let mut params = String::from("log-level=error:open-gop=0");
        if let Some(g) = self.gop_frames() {
            o.push(("g", g.to_string()));
            params.push_str(":scenecut=0");
        }
        if self.threads == 1 {
            params.push_str(":pools=none");
        }
        o.push(("x265-params", params));
        o.push(("threads", self.threads.to_string()));
        o
    }
}

pub struct CpuEncoder {
    enc: ff::encoder::Video,
    settings: EncoderSettings,
    /// libx264 in some FFmpeg versions cannot be reset after a drain; then it is reopened.
    can_flush: bool,
    drained: bool,
}

impl CpuEncoder {
    pub fn open(settings: &EncoderSettings) -> Result<Self> {
        let name = settings.encoder_name();
        let codec = ff::encoder::find_by_name(name).ok_or_else(|| Error::Codec {
            stage: "encoder",
            detail: format!("{name} is not available in this FFmpeg build"),
        })?;
        let mut enc = ff::codec::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| Error::codec("encoder", e))?;
        enc.set_width(settings.width);
        enc.set_height(settings.height);
        enc.set_format(ff::format::Pixel::YUV420P);
        enc.set_time_base(settings.time_base);
        enc.set_frame_rate(Some(settings.frame_rate));
        if settings.global_header {
            enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        }
        let mut dict = ff::Dictionary::new();
        for (k, v) in settings.options() {
            dict.set(k, &v);
        }
        let enc = enc
            .open_as_with(codec, dict)
            .map_err(|e| Error::codec("encoder", format!("cannot open {name}: {e}")))?;
        // SAFETY: `codec` is a static AVCodec descriptor from libavcodec.
        let caps = unsafe { (*codec.as_ptr()).capabilities };
        Ok(CpuEncoder {
            enc,
            settings: settings.clone(),
            can_flush: caps & ff::ffi::AV_CODEC_CAP_ENCODER_FLUSH as i32 != 0,
            drained: false,
        })
    }
}

impl VideoEncoder for CpuEncoder {
    fn send_frame(&mut self, frame: &mut ff::frame::Video, pts: i64, idr: bool) -> Result<()> {
        frame.set_pts(Some(pts));
        frame.set_kind(if idr {
            ff::picture::Type::I
        } else {
            ff::picture::Type::None
        });
        self.enc
            .send_frame(frame)
            .map_err(|e| Error::codec("encoder", e))
    }

    fn send_eof(&mut self) -> Result<()> {
        self.drained = true;
        self.enc.send_eof().map_err(|e| Error::codec("encoder", e))
    }

    fn receive_packet(&mut self, packet: &mut ff::Packet) -> Result<bool> {
        match self.enc.receive_packet(packet) {
            Ok(()) => Ok(true),
            Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => Ok(false),
            Err(ff::Error::Eof) => Ok(false),
            Err(e) => Err(Error::codec("encoder", e)),
        }
    }

    fn reset(&mut self) -> Result<()> {
        if self.can_flush {
            // SAFETY: the context is open; flushing an encoder with the flush capability
            // returns it to its initial state.
            unsafe { ff::ffi::avcodec_flush_buffers(self.enc.as_mut_ptr()) };
        } else if self.drained {
            *self = CpuEncoder::open(&self.settings)?;
        }
        self.drained = false;
        Ok(())
    }

    fn time_base(&self) -> ff::Rational {
        self.settings.time_base
    }

    fn name(&self) -> &'static str {
        self.settings.encoder_name()
    }

    fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    fn context(&self) -> &ff::codec::Context {
        &self.enc
    }
}

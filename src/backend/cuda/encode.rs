//! Encoding on the GPU with NVENC: device frames from the CUDA scaler are encoded where they
//! are (each pool buffer registered with NVENC once, mapped per frame). One session per
//! rendition lives across segments; each segment starts with a forced IDR that carries SPS
//! and PPS, so no reopen is needed between segments.

use super::frame::{device_planes, BufferRef};
use super::memory::bind;
use super::nvenc::{safe, EncodeConfig, Session};
use crate::backend::cpu::encode::EncoderSettings;
use crate::error::{Error, Result};
use crate::pipeline::stage::VideoEncoder;
use crate::profile::{CodecProfile, Gop, OutputCodec};
use cudarc::driver::CudaContext;
use ffmpeg_next as ff;
use std::collections::VecDeque;
use std::sync::Arc;

fn err(e: impl std::fmt::Display) -> Error {
    Error::Codec {
        stage: "nvenc",
        detail: e.to_string(),
    }
}

/// The NVENC configuration for a rendition's settings: the same bitrate, VBV, GOP and
/// profile as the CPU encoder's, no B-frames.
pub fn config_for(s: &EncoderSettings) -> EncodeConfig {
    let hevc = s.codec == OutputCodec::Hevc;
    EncodeConfig {
        codec: if hevc {
            safe::CODEC_HEVC
        } else {
            safe::CODEC_H264
        },
        width: s.width,
        height: s.height,
        frame_rate: (
            s.frame_rate.numerator().max(1) as u32,
            s.frame_rate.denominator().max(1) as u32,
        ),
        bitrate: s.bitrate.min(u32::MAX as u64) as u32,
        quality: s.quality.min(51) as u8,
        gop: match s.gop {
            Gop::Default => None,
            _ => s.gop_frames(),
        },
        profile: match s.profile {
            // The H.264 profiles say nothing about HEVC: 8-bit 4:2:0 is Main.
            _ if hevc => Some(safe::HEVC_MAIN),
            CodecProfile::EncoderDefault => None,
            CodecProfile::Baseline => Some(safe::H264_BASELINE),
            CodecProfile::Main => Some(safe::H264_MAIN),
            CodecProfile::High => Some(safe::H264_HIGH),
            CodecProfile::ConstrainedHigh => Some(safe::H264_CONSTRAINED_HIGH),
        },
    }
}

/// Why NVENC gave a rendition no encoder.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The driver refused a session. On GeForce cards it caps NVENC sessions across all
    /// processes, so another program (OBS, a second worker) may hold them even though this
    /// worker's probe found room at start (real-gpu-rules.md R4): encode on the CPU instead.
    #[error("NVENC refused a session (the driver's session limit is reached, perhaps by another process): {0}")]
    Refused(String),
    #[error(transparent)]
    Failed(#[from] Error),
}

pub struct NvencEncoder {
    // Field order matters: the session (and its registrations) goes before the buffers.
    session: Session,
    /// References that keep every registered buffer's device memory alive.
    held: Vec<BufferRef>,
    ctx: Arc<CudaContext>,
    settings: EncoderSettings,
    /// Stream parameters for the muxer (codec, size, SPS/PPS for MP4).
    params: ff::codec::Context,
    out: VecDeque<(Vec<u8>, i64, bool)>,
}

impl NvencEncoder {
    pub fn open(settings: &EncoderSettings, ordinal: usize) -> Result<Self, OpenError> {
        let ctx = super::context::context(ordinal)
            .map_err(|e| err(format!("cannot open device {ordinal}: {e}")))?;
        bind(&ctx)?;
        let mut session = Session::open(ctx.cu_ctx() as *mut _).map_err(|e| {
            if e.is_session_limit() {
                OpenError::Refused(e.to_string())
            } else {
                OpenError::Failed(err(e))
            }
        })?;
        session.initialize(&config_for(settings)).map_err(err)?;
        let extradata = if settings.global_header {
            session.sequence_params().map_err(err)?
        } else {
            Vec::new()
        };
        let params = stream_params(settings, &extradata);
        Ok(NvencEncoder {
            session,
            held: Vec::new(),
            ctx,
            settings: settings.clone(),
            params,
            out: VecDeque::new(),
        })
    }
}

/// A codec context that only describes the stream (codec, size, time base, extradata).
fn stream_params(s: &EncoderSettings, extradata: &[u8]) -> ff::codec::Context {
    let mut c = ff::codec::Context::new();
    // SAFETY: the context is freshly allocated and not opened; the fields set are plain
    // values, and extradata is copied into a padded av_malloc buffer that the context owns
    // and frees.
    unsafe {
        let raw = c.as_mut_ptr();
        (*raw).codec_type = ff::ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
        (*raw).codec_id = match s.codec {
            OutputCodec::H264 => ff::ffi::AVCodecID::AV_CODEC_ID_H264,
            OutputCodec::Hevc => ff::ffi::AVCodecID::AV_CODEC_ID_HEVC,
        };
        (*raw).width = s.width as i32;
        (*raw).height = s.height as i32;
        (*raw).pix_fmt = ff::ffi::AVPixelFormat::AV_PIX_FMT_YUV420P;
        (*raw).time_base = s.time_base.into();
        (*raw).framerate = s.frame_rate.into();
        (*raw).bit_rate = s.bitrate as i64;
        if !extradata.is_empty() {
            let pad = ff::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
            let buf = ff::ffi::av_mallocz(extradata.len() + pad) as *mut u8;
            if !buf.is_null() {
                std::ptr::copy_nonoverlapping(extradata.as_ptr(), buf, extradata.len());
                (*raw).extradata = buf;
                (*raw).extradata_size = extradata.len() as i32;
            }
        }
    }
    c
}

impl Drop for NvencEncoder {
    fn drop(&mut self) {
        // The session is destroyed (next, with the fields) with its context current.
        let _ = bind(&self.ctx);
    }
}

impl VideoEncoder for NvencEncoder {
    fn send_frame(&mut self, frame: &mut ff::frame::Video, pts: i64, idr: bool) -> Result<()> {
        let p = device_planes(frame).ok_or_else(|| err("NVENC takes device frames only"))?;
        if !self.session.is_registered(p.y) {
            self.held.extend(BufferRef::of(frame));
        }
        bind(&self.ctx)?;
        let mut data = Vec::new();
        let e = self
            .session
            .encode(p.y, p.pitch_y as u32, pts, idr, &mut data)
            .map_err(err)?;
        self.out.push_back((data, e.pts, e.keyframe));
        Ok(())
    }

    fn send_eof(&mut self) -> Result<()> {
        bind(&self.ctx)?;
        self.session.end_of_stream().map_err(err)
    }

    fn receive_packet(&mut self, packet: &mut ff::Packet) -> Result<bool> {
        let Some((data, pts, key)) = self.out.pop_front() else {
            return Ok(false);
        };
        *packet = ff::Packet::copy(&data);
        packet.set_pts(Some(pts));
        packet.set_dts(Some(pts));
        if key {
            packet.set_flags(ff::packet::Flags::KEY);
        }
        Ok(true)
    }

    fn reset(&mut self) -> Result<()> {
        // Synchronous mode holds nothing; the next segment's first frame is a forced IDR.
        self.out.clear();
        Ok(())
    }

    fn time_base(&self) -> ff::Rational {
        self.settings.time_base
    }

    fn name(&self) -> &'static str {
        "nvenc"
    }

    fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    fn takes_device_frames(&self) -> bool {
        true
    }

    fn context(&self) -> &ff::codec::Context {
        &self.params
    }
}

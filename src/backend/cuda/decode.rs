//! Decoding on the GPU with NVDEC: packets go to the NVDEC parser, decoded pictures come out
//! as device frames (see `frame.rs`) that stay mapped until the source stage releases them,
//! so the scaler reads them in place. H.264 and HEVC in Annex B (MPEG-TS segments, as
//! go-livepeer sends them) where the GPU decodes them; anything else stays on the CPU decoder.

use super::frame::{release, wrap_mapped};
use super::memory::bind;
use super::nvdec::{sys, Parser};
use crate::error::{Error, Result};
use crate::media::demux::Segment;
use crate::pipeline::stage::VideoDecoder;
use cudarc::driver::{CudaContext, CudaStream};
use ffmpeg_next as ff;
use std::sync::Arc;

fn err(e: impl std::fmt::Display) -> Error {
    Error::Codec {
        stage: "nvdec",
        detail: e.to_string(),
    }
}

/// The NVDEC codec for a stream, if this path takes it: H.264 or HEVC whose parameter sets
/// travel in band (Annex B; an `avcC`/`hvcC` record in extradata, which starts with 1, means
/// length-prefixed packets).
pub fn codec_for(seg: &Segment) -> Option<sys::cudaVideoCodec> {
    // NVDEC output surfaces here are NV12: 8-bit 4:2:0 only (other formats decode on the
    // CPU and are converted before the scaler).
    if !matches!(
        seg.format,
        ff::format::Pixel::None | ff::format::Pixel::YUV420P | ff::format::Pixel::YUVJ420P
    ) {
        return None;
    }
    let codec = match seg.codec {
        ff::codec::Id::H264 => sys::cudaVideoCodec_H264,
        ff::codec::Id::HEVC => sys::cudaVideoCodec_HEVC,
        _ => return None,
    };
    // SAFETY: the parameters object is valid; extradata is null or `extradata_size` bytes.
    let record = unsafe {
        let p = &*seg.video_params.as_ptr();
        !p.extradata.is_null() && p.extradata_size > 0 && *p.extradata == 1
    };
    (!record).then_some(codec)
}

pub struct NvdecDecoder {
    // Field order matters: the parser (and its decoder) go before the context.
    parser: Parser,
    codec: sys::cudaVideoCodec,
    /// The parser's timestamp clock (see [`clock_rate`]).
    clock: u32,
    /// Where mapped pictures are post-processed (this session's, not the legacy stream).
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
}

impl NvdecDecoder {
    pub fn open(seg: &Segment, ordinal: usize) -> Result<Self> {
        let codec = codec_for(seg).ok_or_else(|| {
            err(format!(
                "{}: only H.264 and HEVC in Annex B are decoded on the GPU",
                seg.path.display()
            ))
        })?;
        let ctx = super::context::context(ordinal)
            .map_err(|e| err(format!("cannot open device {ordinal}: {e}")))?;
        bind(&ctx)?;
        let clock = clock_rate(seg.time_base);
        let parser = Parser::new(codec, clock, None).map_err(err)?;
        let stream = ctx.new_stream().map_err(err)?;
        Ok(NvdecDecoder {
            parser,
            codec,
            clock,
            stream,
            ctx,
        })
    }

    fn parse(&mut self, data: &[u8], pts: Option<i64>, end: bool) -> Result<()> {
        bind(&self.ctx)?;
        self.parser.parse(data, pts, end).map_err(err)
    }
}

/// The parser's clock for timestamps in `tb` (ticks per second; 90 kHz for MPEG-TS). 0 means
/// 10 MHz to NVDEC, which is right only for such a time base.
fn clock_rate(tb: ff::Rational) -> u32 {
    match (tb.numerator(), tb.denominator()) {
        (1, d) if d > 0 => d as u32,
        _ => 0,
    }
}

impl Drop for NvdecDecoder {
    fn drop(&mut self) {
        // The parser and decoder are destroyed (next, with the fields) in their context.
        let _ = bind(&self.ctx);
    }
}

impl VideoDecoder for NvdecDecoder {
    fn send_packet(&mut self, packet: &ff::Packet) -> Result<()> {
        let Some(data) = packet.data() else {
            return Ok(());
        };
        self.parse(data, packet.pts().or(packet.dts()), false)
    }

    fn send_eof(&mut self) -> Result<()> {
        self.parse(&[], None, true)
    }

    fn receive_frame(&mut self, frame: &mut ff::frame::Video) -> Result<bool> {
        // The previous picture is no longer needed: unmap it before mapping the next.
        bind(&self.ctx)?;
        release(frame);
        let Some(d) = self.parser.next_display() else {
            return Ok(false);
        };
        let mapped = self
            .parser
            .map(d, self.stream.cu_stream() as _)
            .map_err(err)?;
        // The scaler reads the picture from its own stream.
        self.stream.synchronize().map_err(err)?;
        wrap_mapped(frame, &self.ctx, mapped, d.timestamp);
        Ok(true)
    }

    fn reset(&mut self) {
        // A fresh parser for the next segment; the decoder is kept if the format repeats.
        let reuse = self.parser.decoder().cloned();
        if bind(&self.ctx).is_ok() {
            if let Ok(p) = Parser::new(self.codec, self.clock, reuse) {
                self.parser = p;
            }
        }
    }

    fn accepts(&self, seg: &Segment) -> bool {
        codec_for(seg) == Some(self.codec)
    }

    fn name(&self) -> &'static str {
        "nvdec"
    }
}

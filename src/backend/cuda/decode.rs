//! Decoding on the GPU with NVDEC: packets go to the NVDEC parser, decoded pictures come out
//! as device frames (see `frame.rs`) that stay mapped until the source stage releases them,
//! so the scaler reads them in place. H.264 and HEVC in Annex B (MPEG-TS segments, as
//! go-livepeer sends them) where the GPU decodes them; anything else stays on the CPU decoder.

use super::frame::{release, wrap_mapped};
use super::nvdec::{sys, Parser};
use crate::error::{Error, Result};
use crate::media::demux::Segment;
use crate::pipeline::stage::VideoDecoder;
use cudarc::driver::CudaContext;
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
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| err(format!("cannot open device {ordinal}: {e}")))?;
        ctx.bind_to_thread().map_err(err)?;
        let parser = Parser::new(codec, None).map_err(err)?;
        Ok(NvdecDecoder { parser, codec, ctx })
    }

    fn parse(&mut self, data: &[u8], pts: i64, end: bool) -> Result<()> {
        self.ctx.bind_to_thread().map_err(err)?;
        self.parser.parse(data, pts, end).map_err(err)
    }
}

impl Drop for NvdecDecoder {
    fn drop(&mut self) {
        // The parser and decoder are destroyed (next, with the fields) in their context.
        let _ = self.ctx.bind_to_thread();
    }
}

impl VideoDecoder for NvdecDecoder {
    fn send_packet(&mut self, packet: &ff::Packet) -> Result<()> {
        let Some(data) = packet.data() else {
            return Ok(());
        };
        self.parse(data, packet.pts().or(packet.dts()).unwrap_or(0), false)
    }

    fn send_eof(&mut self) -> Result<()> {
        self.parse(&[], 0, true)
    }

    fn receive_frame(&mut self, frame: &mut ff::frame::Video) -> Result<bool> {
        // The previous picture is no longer needed: unmap it before mapping the next.
        self.ctx.bind_to_thread().map_err(err)?;
        release(frame);
        let Some(d) = self.parser.next_display() else {
            return Ok(false);
        };
        let mapped = self.parser.map(d).map_err(err)?;
        wrap_mapped(frame, &self.ctx, mapped, d.timestamp);
        Ok(true)
    }

    fn reset(&mut self) {
        // A fresh parser for the next segment; the decoder is kept if the format repeats.
        let reuse = self.parser.decoder().cloned();
        if self.ctx.bind_to_thread().is_ok() {
            if let Ok(p) = Parser::new(self.codec, reuse) {
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

//! Decoding on the CPU through libavcodec (h264, hevc). One decoder lives as long as its
//! session; between segments it is drained and reset rather than reopened.

use crate::error::{Error, Result};
use crate::media::demux::Segment;
use crate::pipeline::stage::VideoDecoder;
use ffmpeg_next as ff;

/// What must match for a decoder to be reused for a new segment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamKey {
    codec: ff::codec::Id,
    width: u32,
    height: u32,
    extradata: Vec<u8>,
}

fn key(seg: &Segment) -> StreamKey {
    // SAFETY: the parameters object is valid; extradata is either null or
    // `extradata_size` readable bytes owned by it.
    let extradata = unsafe {
        let p = &*seg.video_params.as_ptr();
        if p.extradata.is_null() || p.extradata_size <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(p.extradata, p.extradata_size as usize).to_vec()
        }
    };
    StreamKey {
        codec: seg.codec,
        width: seg.width,
        height: seg.height,
        extradata,
    }
}

pub struct CpuDecoder {
    dec: ff::decoder::Video,
    key: StreamKey,
}

impl CpuDecoder {
    /// Opens a decoder for the segment's video stream; `threads` 0 = one per core.
    pub fn open(seg: &Segment, threads: usize) -> Result<Self> {
        let mut ctx = ff::codec::Context::from_parameters(seg.video_params.clone())
            .map_err(|e| Error::codec("decoder", e))?;
        ctx.set_threading(ff::codec::threading::Config {
            kind: ff::codec::threading::Type::Frame,
            count: threads,
            ..Default::default()
        });
        let mut dec = ctx.decoder();
        dec.set_packet_time_base(seg.time_base);
        let dec = dec.video().map_err(|e| Error::codec("decoder", e))?;
        Ok(CpuDecoder { dec, key: key(seg) })
    }
}

impl VideoDecoder for CpuDecoder {
    fn accepts(&self, seg: &Segment) -> bool {
        self.key == key(seg)
    }

    fn name(&self) -> &'static str {
        "libavcodec"
    }

    fn send_packet(&mut self, packet: &ff::Packet) -> Result<()> {
        match self.dec.send_packet(packet) {
            // Invalid data in one packet is reported by the frames (or their absence); the
            // decoder conceals and carries on, as FFmpeg does.
            Ok(()) | Err(ff::Error::InvalidData) => Ok(()),
            Err(e) => Err(Error::codec("decoder", e)),
        }
    }

    fn send_eof(&mut self) -> Result<()> {
        self.dec.send_eof().map_err(|e| Error::codec("decoder", e))
    }

    fn receive_frame(&mut self, frame: &mut ff::frame::Video) -> Result<bool> {
        match self.dec.receive_frame(frame) {
            Ok(()) => Ok(true),
            Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => Ok(false),
            Err(ff::Error::Eof) => Ok(false),
            Err(ff::Error::InvalidData) => Ok(false),
            Err(e) => Err(Error::codec("decoder", e)),
        }
    }

    fn reset(&mut self) {
        self.dec.flush();
    }
}

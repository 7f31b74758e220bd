//! Stage traits, in libavcodec's send/receive style: explicit EOF, explicit reset, no hidden
//! threads. The CPU backend implements them today; the CUDA backend implements the same.

use crate::error::Result;
use ffmpeg_next as ff;

/// Compressed packets in, decoded frames out.
pub trait VideoDecoder: Send {
    fn send_packet(&mut self, packet: &ff::Packet) -> Result<()>;
    /// Signals the end of the segment; frames still held by the decoder then come out.
    fn send_eof(&mut self) -> Result<()>;
    /// The next decoded frame, or `false` when more input (or nothing more) is needed.
    fn receive_frame(&mut self, frame: &mut ff::frame::Video) -> Result<bool>;
    /// Returns a drained decoder to its initial state for the next segment.
    fn reset(&mut self);
    /// Whether this decoder can go on with `seg` (same codec and parameters).
    fn accepts(&self, seg: &crate::media::demux::Segment) -> bool;
    /// Name of the implementation (for reports).
    fn name(&self) -> &'static str;
}

/// Frames in, compressed packets out.
pub trait VideoEncoder: Send {
    /// Encodes `frame` at `pts` (in [`VideoEncoder::time_base`]); `idr` forces an IDR frame.
    fn send_frame(&mut self, frame: &mut ff::frame::Video, pts: i64, idr: bool) -> Result<()>;
    fn send_eof(&mut self) -> Result<()>;
    fn receive_packet(&mut self, packet: &mut ff::Packet) -> Result<bool>;
    /// Returns a drained encoder to a state where its next frame starts a new stream.
    fn reset(&mut self) -> Result<()>;
    fn time_base(&self) -> ff::Rational;
    /// Name of the implementation (for reports).
    fn name(&self) -> &'static str;
    /// What the encoder was opened with (a change means a new encoder).
    fn settings(&self) -> &crate::backend::cpu::encode::EncoderSettings;
    /// Codec parameters for the muxer's stream (extradata included).
    fn context(&self) -> &ff::codec::Context;
    /// Whether it encodes device frames (its input stays in GPU memory).
    fn takes_device_frames(&self) -> bool {
        false
    }
}

/// Rewrites a decoded frame in place before scaling (the diffuse stage). Host frames stay
/// host frames; device frames may be replaced by other device frames of the same size.
pub trait FrameFilter: Send {
    fn process(&mut self, frame: &mut ff::frame::Video) -> Result<()>;
    /// Name of the implementation (for reports).
    fn name(&self) -> &'static str;
}

/// Makes each session its own [`FrameFilter`] (the diffuse stage's configuration).
pub trait FrameFilterFactory: Send + Sync + std::fmt::Debug {
    /// Whether its filters take device frames, so NVDEC may keep decoding on a GPU session.
    fn takes_device_frames(&self) -> bool;
    /// A filter for frames in device memory (`device_frames`) or on the host.
    fn make(&self, device_frames: bool) -> Result<Box<dyn FrameFilter>>;
}

/// One source frame in, every rendition of the ladder out, in one pass.
pub trait MultiScaler: Send {
    fn scale(&mut self, src: &ff::frame::Video, dst: &mut [ff::frame::Video]) -> Result<()>;
    /// Name of the implementation (for reports).
    fn name(&self) -> String;
    /// A new output buffer of `w`x`h` in the memory this scaler writes (host YUV 4:2:0 unless
    /// the implementation writes device frames for a GPU encoder).
    fn alloc_output(&self, w: u32, h: u32) -> Result<ff::frame::Video> {
        Ok(ff::frame::Video::new(ff::format::Pixel::YUV420P, w, h))
    }
}

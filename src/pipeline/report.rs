//! What a segment produced: the pixel accounting that payment and verification rely on
//! (DESIGN.md §1), sizes, bitrates and time spent per stage.

use serde::Serialize;
use std::path::PathBuf;

/// One rendition of one segment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RenditionReport {
    pub name: String,
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    /// Frames sent to the encoder.
    pub frames: u64,
    /// `frames * width * height`: what a verifier counts when it decodes the output.
    pub pixels: u64,
    pub bytes: u64,
    /// Bits per second of the whole file (audio and container included) over the media duration.
    pub bitrate: u64,
    /// Bits per second of the video stream alone: compare this with `target_bitrate`.
    pub video_bitrate: u64,
    pub target_bitrate: u64,
    /// The encoder that wrote it: "libx264" (CPU) or "nvenc".
    pub encoder: String,
    /// Its MPEG-7 video signature (binary), when the segment asked for one.
    #[serde(skip)]
    pub signature: Option<Vec<u8>>,
}

/// One segment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SegmentReport {
    pub input: PathBuf,
    pub index: u64,
    pub source_width: u32,
    pub source_height: u32,
    /// Decoded source frames and `Σ width * height` over them.
    pub decoded_frames: u64,
    pub decoded_pixels: u64,
    /// Media duration of the segment in seconds.
    pub duration: f64,
    /// The decoder that read it: "libavcodec" (CPU) or "nvdec".
    pub decoder: String,
    pub renditions: Vec<RenditionReport>,
    /// Wall time of the whole segment and CPU time spent in each stage, in seconds.
    pub wall_seconds: f64,
    pub decode_seconds: f64,
    /// Image-to-image on the decoded frames (0 without a diffuse stage).
    pub diffuse_seconds: f64,
    pub scale_seconds: f64,
    pub encode_seconds: f64,
    /// Of `encode_seconds`, the MPEG-7 signatures (0 when none was asked for).
    pub signature_seconds: f64,
}

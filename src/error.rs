//! The library's error type. Every variant names the problem in words a user can act on; the
//! CLI prints it as one line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {problem}")]
    Input { path: PathBuf, problem: String },
    #[error(
        "{path}: truncated MPEG-TS segment: {size} bytes is not a whole number of 188-byte packets"
    )]
    Truncated { path: PathBuf, size: u64 },
    #[error("{path}: no video stream (audio-only or empty segment)")]
    NoVideo { path: PathBuf },
    #[error(
        "{path}: unsupported input codec '{codec}' (this worker decodes h264, hevc, vp8 and vp9)"
    )]
    UnsupportedCodec { path: PathBuf, codec: String },
    #[error("{path}: unsupported pixel format '{format}' (this worker transcodes planar YUV 4:2:0, 4:2:2 and 4:4:4 of 8 to 16 bits, and nv12)")]
    UnsupportedPixelFormat { path: PathBuf, format: String },
    #[error("{path}: no decodable video frame (the segment has no keyframe, or starts mid-GOP without one)")]
    NoKeyframe { path: PathBuf },
    #[error("{path}: corrupt video data: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: the video size changed within the segment ({from} -> {to})")]
    SizeChange {
        path: PathBuf,
        from: String,
        to: String,
    },
    #[error("{stage}: {detail}")]
    Codec { stage: &'static str, detail: String },
    #[error("output {path}: {detail}")]
    Output { path: PathBuf, detail: String },
    #[error(transparent)]
    Profile(#[from] crate::profile::ProfileError),
    /// Admission control said no: at capacity in sessions, or a session's segment queue is full.
    #[error("{0}")]
    Busy(String),
    /// Another stage of the same segment failed first (its error is the one reported).
    #[error("segment abandoned after a failure in another stage")]
    Aborted,
    /// The session was closed before the segment finished.
    #[error("session closed before the segment finished")]
    Closed,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A codec-stage error from an FFmpeg status.
    pub fn codec(stage: &'static str, e: impl std::fmt::Display) -> Self {
        Error::Codec {
            stage,
            detail: e.to_string(),
        }
    }
}

impl From<crate::sched::Busy> for Error {
    fn from(b: crate::sched::Busy) -> Self {
        Error::Busy(b.to_string())
    }
}

impl Error {
    /// Whether this is an admission refusal ("busy") rather than a failure.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Busy(_))
    }
}

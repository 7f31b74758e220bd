//! The error texts a go-livepeer gateway understands. A gateway treats a transcoding error as
//! the input's fault, and ends the session instead of suspending the orchestrator, only when
//! its text is *exactly* one of lpms's `NonRetryableErrs` (go-livepeer server/broadcast.go
//! 1680-1699; lpms ffmpeg/ffmpeg_errors.go:54-78). So a failure lpms names is posted with
//! lpms's text, and the detail stays in our log; anything else keeps our own words.
//! Facts: ../shared/reference/go-livepeer-dropin.md §1.4 and §7.

use crate::error::Error;
use crate::net::profiles::WireProfileError;

/// lpms `NonRetryableErrs`: its own errors, six FFmpeg `av_strerror` texts and six of
/// ffmpeg.go's transcoder errors.
pub const NON_RETRYABLE: &[&str] = &[
    "Unsupported input pixel format",
    "Error initializing filtergraph",
    "Too many outputs",
    "Unsupported input codec",
    "No keyframes in input",
    "Unrecoverable state, restart process",
    "Encoded frames runaway",
    "Decoder not found",
    "Demuxer not found",
    "Encoder not found",
    "Muxer not found",
    "Option not found",
    "Invalid argument",
    "TranscoderInvalidResolution",
    "TranscoderInvalidVideo",
    "TranscoderUnrecognizedFormat",
    "TranscoderUnrecognizedProfile",
    "TranscoderInvalidGOP",
    "TranscoderIncompatibleDevices",
];

/// `av_strerror(AVERROR_INVALIDDATA)`: what lpms reports for input it cannot demux or decode.
/// Retryable for a gateway, as it is from a go-livepeer transcoder.
pub const INVALID_DATA: &str = "Invalid data found when processing input";

/// Whether a gateway ends the session on this text rather than suspending the orchestrator.
pub fn non_retryable(text: &str) -> bool {
    NON_RETRYABLE.contains(&text)
}

/// The text a go-livepeer transcoder posts for the same failure, if lpms names it.
pub fn for_error(e: &Error) -> Option<&'static str> {
    Some(match e {
        // lpms opens the input with avformat_open_input: garbage is AVERROR_INVALIDDATA.
        Error::Input { .. } | Error::Truncated { .. } | Error::Corrupt { .. } => INVALID_DATA,
        // ffmpeg.go Transcode: a first segment without video frames.
        Error::NoVideo { .. } => "TranscoderInvalidVideo",
        Error::UnsupportedCodec { .. } => "Unsupported input codec",
        Error::UnsupportedPixelFormat { .. } => "Unsupported input pixel format",
        Error::NoKeyframe { .. } => "No keyframes in input",
        Error::Profile(_) => "Invalid argument",
        _ => return None,
    })
}

/// What go-livepeer says about profiles it cannot read (server/segment_rpc.go:44-46 and
/// `makeFfmpegVideoProfiles`; lpms for what it refuses later).
pub fn for_profiles(e: &WireProfileError) -> &'static str {
    match e {
        WireProfileError::Empty => "Invalid argument",
        WireProfileError::TooMany(_) => "Too many outputs",
        WireProfileError::Format(_) => "unrecognized profile output format",
        WireProfileError::Profile(_) => "unrecognized encoder profile",
        WireProfileError::Codec(_) => "unrecognized video codec",
        WireProfileError::Gop { .. } => "TranscoderInvalidGOP",
        WireProfileError::Size { .. } => "TranscoderInvalidResolution",
        WireProfileError::Invalid { .. } => "Invalid argument",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn input_errors_map_to_lpms_texts_a_gateway_does_not_retry() {
        let path = PathBuf::from("x.ts");
        for (e, text) in [
            (
                Error::NoKeyframe { path: path.clone() },
                "No keyframes in input",
            ),
            (
                Error::UnsupportedCodec {
                    path: path.clone(),
                    codec: "mpeg2video".into(),
                },
                "Unsupported input codec",
            ),
            (
                Error::UnsupportedPixelFormat {
                    path: path.clone(),
                    format: "rgb24".into(),
                },
                "Unsupported input pixel format",
            ),
            (
                Error::NoVideo { path: path.clone() },
                "TranscoderInvalidVideo",
            ),
        ] {
            assert_eq!(for_error(&e), Some(text));
            assert!(non_retryable(text), "{text}");
        }
        assert!(!non_retryable(INVALID_DATA));
        assert!(!non_retryable("TranscoderInvalidClipConfig"));
        assert_eq!(for_error(&Error::Busy("busy".into())), None);
        assert_eq!(for_error(&Error::Closed), None);
    }
}

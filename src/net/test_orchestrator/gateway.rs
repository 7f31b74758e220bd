//! What the gateway side contributes to a job, as go-livepeer computes it: the job's
//! capabilities (core/capabilities.go `JobCapabilities`, from the stream's codec and pixel
//! format, the requested profiles, HTTP push and verification), and its reading of a result
//! (server/broadcast.go: a perceptual hash must come back when one was asked for, and an
//! error is the input's fault only if its text is one of lpms's non-retryable ones).

use super::super::capabilities as caps;
use super::super::lpms_errors;
use crate::profile::{CodecProfile, Container, Gop, OutputCodec, Profile};
use ffmpeg_next as ff;
use std::path::Path;

/// How the gateway sends its streams.
#[derive(Debug, Clone, Default)]
pub struct GatewayMode {
    /// HTTP push (`/live/...` uploads): every job needs segment slicing (26).
    pub http_push: bool,
    /// `Content-Slice-From`/`-To` in ms (HTTP push only): sent as `segment_parameters`.
    pub clip: Option<(u64, u64)>,
    /// Verification on (`VerificationFreq > 0`): every job needs 14 and asks for signatures.
    pub verification: bool,
    /// `-orchMinLivepeerVersion`.
    pub min_version: Option<String>,
}

/// The input's decode capability and, for H.264, its chroma/depth capability
/// (`inputCodecToCapability`, the `chromaDepth` switch). Unknown inputs count as H.264.
fn input_capabilities(path: &Path) -> Vec<u32> {
    crate::media::init();
    let Ok(input) = ff::format::input(path) else {
        return vec![caps::H264];
    };
    let Some(v) = input.streams().best(ff::media::Type::Video) else {
        return vec![caps::H264];
    };
    let params = v.parameters();
    let id = params.id();
    let format = ff::codec::Context::from_parameters(params)
        // SAFETY: the context was filled from the stream's parameters; `pix_fmt` is a plain
        // field of it.
        .map(|ctx| ff::format::Pixel::from(unsafe { (*ctx.as_ptr()).pix_fmt }))
        .unwrap_or(ff::format::Pixel::None);
    use ff::format::Pixel as P;
    match id {
        ff::codec::Id::HEVC => vec![caps::HEVC_DECODE],
        ff::codec::Id::VP8 => vec![caps::VP8_DECODE],
        ff::codec::Id::VP9 => vec![caps::VP9_DECODE],
        _ => {
            let depth = match format {
                P::YUV444P | P::YUVJ444P => Some(caps::H264_DECODE_444_8BIT),
                P::YUV422P | P::YUVJ422P => Some(caps::H264_DECODE_422_8BIT),
                P::YUV444P10LE => Some(caps::H264_DECODE_444_10BIT),
                P::YUV422P10LE => Some(caps::H264_DECODE_422_10BIT),
                P::YUV420P10LE => Some(caps::H264_DECODE_420_10BIT),
                _ => None,
            };
            std::iter::once(caps::H264).chain(depth).collect()
        }
    }
}

/// `JobCapabilities(params, segPar)` for a stream of `segment` into `profiles`.
pub fn job_capabilities(segment: &Path, profiles: &[Profile], mode: &GatewayMode) -> Vec<u32> {
    let mut c = vec![caps::AUTH_TOKEN];
    if mode.verification {
        c.push(caps::MPEG7_SIGNATURE);
    }
    if mode.http_push {
        c.push(caps::SEGMENT_SLICING);
    }
    c.extend(input_capabilities(segment));
    for p in profiles {
        c.push(match p.container {
            Container::Mpegts => caps::MPEGTS,
            Container::Mp4 => caps::MP4,
        });
        c.push(match p.codec {
            OutputCodec::H264 => caps::H264,
            OutputCodec::Hevc => caps::HEVC_ENCODE,
        });
        // go-livepeer's profiles carry fpsDen 0 unless set; ours default to 1.
        if p.fps_den > 1 {
            c.push(caps::FRACTIONAL_FRAMERATES);
        }
        match p.profile {
            CodecProfile::EncoderDefault => {}
            CodecProfile::Baseline => c.push(caps::PROFILE_H264_BASELINE),
            CodecProfile::Main => c.push(caps::PROFILE_H264_MAIN),
            CodecProfile::High => c.push(caps::PROFILE_H264_HIGH),
            CodecProfile::ConstrainedHigh => c.push(caps::PROFILE_H264_CONSTRAINED_HIGH),
        }
        if p.gop != Gop::Default {
            c.push(caps::GOP);
        }
    }
    c.sort_unstable();
    c.dedup();
    c
}

/// What the gateway does with an error text: `true` ends the session (the input's fault),
/// `false` suspends the orchestrator and retries elsewhere.
pub fn non_retryable(error: &str) -> bool {
    lpms_errors::non_retryable(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_push_and_verification_add_their_capabilities() {
        let p = crate::profile::preset("P240p30fps16x9").unwrap();
        let none = Path::new("/nonexistent.ts");
        let plain = job_capabilities(none, std::slice::from_ref(&p), &GatewayMode::default());
        assert_eq!(plain, [caps::H264, caps::MPEGTS, caps::AUTH_TOKEN]);
        let push = job_capabilities(
            none,
            &[p],
            &GatewayMode {
                http_push: true,
                verification: true,
                ..Default::default()
            },
        );
        assert!(push.contains(&caps::SEGMENT_SLICING));
        assert!(push.contains(&caps::MPEG7_SIGNATURE));
    }
}

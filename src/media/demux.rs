//! Opening one input segment: container checks, stream selection and the input's facts.

use crate::error::{Error, Result};
use ff::format::Pixel;
use ffmpeg_next as ff;
use std::path::{Path, PathBuf};

/// Codecs the decode stage accepts (go-livepeer's input codecs: H.264, HEVC, VP8, VP9).
pub const SUPPORTED_CODECS: &[ff::codec::Id] = &[
    ff::codec::Id::H264,
    ff::codec::Id::HEVC,
    ff::codec::Id::VP8,
    ff::codec::Id::VP9,
];

/// Pixel formats that are transcoded: 8-bit 4:2:0 as is, other planar YUV (4:2:2, 4:4:4,
/// 9 to 16 bits) converted to it first ([`crate::media::frame::conversion`]).
pub fn pixel_format_supported(p: Pixel) -> bool {
    crate::media::frame::conversion(p).is_some()
}

/// An opened segment and the facts the session needs about its video.
pub struct Segment {
    pub path: PathBuf,
    pub input: ff::format::context::Input,
    pub video: usize,
    pub audio: Option<usize>,
    pub video_params: ff::codec::Parameters,
    pub codec: ff::codec::Id,
    pub width: u32,
    pub height: u32,
    pub time_base: ff::Rational,
    /// Frame rate of the video stream (average, else nominal; 30/1 when unknown).
    pub frame_rate: ff::Rational,
    /// Pixel format the container declares (None when it does not say).
    pub format: Pixel,
}

impl Segment {
    /// Opens and validates a segment file.
    pub fn open(path: &Path) -> Result<Self> {
        let input_err = |problem: String| Error::Input {
            path: path.to_path_buf(),
            problem,
        };
        let meta = std::fs::metadata(path).map_err(|e| input_err(format!("cannot read: {e}")))?;
        if meta.len() == 0 {
            return Err(input_err("empty file".into()));
        }
        check_ts_truncation(path, meta.len())?;
        let input = ff::format::input(path)
            .map_err(|e| input_err(format!("not a recognizable media file ({e})")))?;
        if input.probe_score() < 25 && input.format().name() != "mpegts" {
            return Err(input_err(format!(
                "not a recognizable media file (best guess '{}' with probe score {})",
                input.format().name(),
                input.probe_score()
            )));
        }
        let video = input
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| Error::NoVideo {
                path: path.to_path_buf(),
            })?;
        let video_params = video.parameters();
        let codec = video_params.id();
        if !SUPPORTED_CODECS.contains(&codec) {
            return Err(Error::UnsupportedCodec {
                path: path.to_path_buf(),
                codec: format!("{codec:?}").to_lowercase(),
            });
        }
        let ctx = ff::codec::Context::from_parameters(video_params.clone())
            .map_err(|e| input_err(format!("bad video stream parameters ({e})")))?;
        // SAFETY: `ctx` owns a valid AVCodecContext filled from the stream's parameters; we
        // only read plain fields that libavformat wrote.
        let (width, height, format) = unsafe {
            let c = &*ctx.as_ptr();
            (c.width, c.height, Pixel::from(c.pix_fmt))
        };
        if width <= 0 || height <= 0 {
            // A video stream whose size the demuxer could not learn has no SPS before its
            // end: nothing in it can be decoded without the GOP's keyframe.
            return Err(Error::NoKeyframe {
                path: path.to_path_buf(),
            });
        }
        if format != Pixel::None && !pixel_format_supported(format) {
            return Err(Error::UnsupportedPixelFormat {
                path: path.to_path_buf(),
                format: pixel_name(format),
            });
        }
        let frame_rate = [video.avg_frame_rate(), video.rate()]
            .into_iter()
            .find(|r| r.numerator() > 0 && r.denominator() > 0 && f64::from(*r) < 1000.0)
            .unwrap_or(ff::Rational::new(30, 1));
        let audio = input
            .streams()
            .best(ff::media::Type::Audio)
            .map(|s| s.index());
        Ok(Segment {
            path: path.to_path_buf(),
            video: video.index(),
            time_base: video.time_base(),
            audio,
            video_params,
            codec,
            width: width as u32,
            height: height as u32,
            frame_rate,
            format,
            input,
        })
    }
}

/// A name for a pixel format as FFmpeg spells it.
pub fn pixel_name(p: Pixel) -> String {
    p.descriptor()
        .map(|d| d.name().to_string())
        .unwrap_or_else(|| format!("{p:?}").to_lowercase())
}

/// An MPEG-TS file that starts with a sync byte must be a whole number of 188-byte packets;
/// anything else was cut off in transfer.
fn check_ts_truncation(path: &Path, size: u64) -> Result<()> {
    use std::io::Read;
    let mut head = [0u8; 189];
    let mut f = std::fs::File::open(path).map_err(|e| Error::Input {
        path: path.to_path_buf(),
        problem: format!("cannot read: {e}"),
    })?;
    let n = f.read(&mut head).unwrap_or(0);
    let looks_ts = n >= 1 && head[0] == 0x47 && (n < 189 || head[188] == 0x47);
    if looks_ts && size % 188 != 0 {
        return Err(Error::Truncated {
            path: path.to_path_buf(),
            size,
        });
    }
    Ok(())
}

//! Profiles as they arrive on the wire (go-livepeer `makeFfmpegVideoProfiles`): the first
//! non-empty list of `fullProfiles3`, `fullProfiles2`, `fullProfiles`, each converted to our
//! [`Profile`]. An empty name becomes `net_<W>x<H>_<bitrate>`; a GOP is in milliseconds, -1 is
//! all-intra; colour depth and chroma format are dropped, as go-livepeer does. Errors are
//! typed so the transcoder can post go-livepeer's own texts ([`super::lpms_errors`]).

use super::proto::{video_profile, SegData, VideoProfile};
use crate::profile::{CodecProfile, Container, Gop, OutputCodec, Profile, MAX_RENDITIONS};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireProfileError {
    #[error("no transcoding profiles in the segment data")]
    Empty,
    #[error("{0} profiles, at most {MAX_RENDITIONS} are supported")]
    TooMany(usize),
    #[error("unknown output format {0}")]
    Format(i32),
    #[error("unknown H.264 profile {0}")]
    Profile(i32),
    #[error("unknown video codec {0}")]
    Codec(i32),
    #[error("profile {name}: GOP {gop} ms is not valid")]
    Gop { name: String, gop: i32 },
    #[error("profile {name}: size {width}x{height} out of range")]
    Size {
        name: String,
        width: i32,
        height: i32,
    },
    #[error("profile {name}: {problem}")]
    Invalid { name: String, problem: String },
}

/// The profiles a segment asks for, in order.
pub fn from_segdata(seg: &SegData) -> Result<Vec<Profile>, WireProfileError> {
    let list = [&seg.full_profiles3, &seg.full_profiles2, &seg.full_profiles]
        .into_iter()
        .find(|l| !l.is_empty())
        .ok_or(WireProfileError::Empty)?;
    if list.len() > MAX_RENDITIONS {
        return Err(WireProfileError::TooMany(list.len()));
    }
    list.iter().map(convert).collect()
}

fn convert(p: &VideoProfile) -> Result<Profile, WireProfileError> {
    let name = if p.name.is_empty() {
        format!("net_{}x{}_{}", p.width, p.height, p.bitrate)
    } else {
        p.name.clone()
    };
    let bad = |problem: String| WireProfileError::Invalid {
        name: name.clone(),
        problem,
    };
    // go-livepeer's own checks first, in its order (format, profile, codec).
    let container = match video_profile::Format::try_from(p.format) {
        Ok(video_profile::Format::Mpegts) => Container::Mpegts,
        Ok(video_profile::Format::Mp4) => Container::Mp4,
        Err(_) => return Err(WireProfileError::Format(p.format)),
    };
    let profile = match video_profile::Profile::try_from(p.profile) {
        Ok(video_profile::Profile::EncoderDefault) => CodecProfile::EncoderDefault,
        Ok(video_profile::Profile::H264Baseline) => CodecProfile::Baseline,
        Ok(video_profile::Profile::H264Main) => CodecProfile::Main,
        Ok(video_profile::Profile::H264High) => CodecProfile::High,
        Ok(video_profile::Profile::H264ConstrainedHigh) => CodecProfile::ConstrainedHigh,
        Err(_) => return Err(WireProfileError::Profile(p.profile)),
    };
    let codec = match video_profile::VideoCodec::try_from(p.encoder) {
        Ok(video_profile::VideoCodec::H264) => OutputCodec::H264,
        Ok(video_profile::VideoCodec::H265) => OutputCodec::Hevc,
        Ok(c) => {
            return Err(bad(format!(
                "encoder {} is not supported (H264 and H265 only)",
                c.as_str_name()
            )))
        }
        Err(_) => return Err(WireProfileError::Codec(p.encoder)),
    };
    if p.width <= 0 || p.height <= 0 || p.width > 8192 || p.height > 8192 {
        return Err(WireProfileError::Size {
            name,
            width: p.width,
            height: p.height,
        });
    }
    if p.bitrate <= 0 {
        return Err(bad(format!("bitrate {} must be positive", p.bitrate)));
    }
    if p.fps > 1000 || p.fps_den > 1000 {
        return Err(bad(format!(
            "frame rate {}/{} out of range",
            p.fps, p.fps_den
        )));
    }
    let gop = match p.gop {
        0 => Gop::Default,
        -1 => Gop::Intra,
        g if g < 0 => return Err(WireProfileError::Gop { name, gop: g }),
        g => Gop::Seconds(f64::from(g) / 1000.0),
    };
    Ok(Profile {
        name,
        width: p.width as u32,
        height: p.height as u32,
        bitrate: p.bitrate as u64,
        fps: p.fps,
        fps_den: p.fps_den,
        profile,
        gop,
        container,
        quality: p.quality.min(51),
        codec,
    })
}

/// The wire form of one of our profiles (for the test orchestrator and tests).
pub fn to_wire(p: &Profile) -> VideoProfile {
    VideoProfile {
        name: p.name.clone(),
        width: p.width as i32,
        height: p.height as i32,
        bitrate: p.bitrate.min(i32::MAX as u64) as i32,
        fps: p.fps,
        fps_den: p.fps_den,
        format: match p.container {
            Container::Mpegts => video_profile::Format::Mpegts,
            Container::Mp4 => video_profile::Format::Mp4,
        } as i32,
        profile: match p.profile {
            CodecProfile::EncoderDefault => video_profile::Profile::EncoderDefault,
            CodecProfile::Baseline => video_profile::Profile::H264Baseline,
            CodecProfile::Main => video_profile::Profile::H264Main,
            CodecProfile::High => video_profile::Profile::H264High,
            CodecProfile::ConstrainedHigh => video_profile::Profile::H264ConstrainedHigh,
        } as i32,
        gop: match p.gop {
            Gop::Default => 0,
            Gop::Intra => -1,
            Gop::Seconds(s) => (s * 1000.0).round() as i32,
        },
        quality: p.quality,
        encoder: match p.codec {
            OutputCodec::H264 => video_profile::VideoCodec::H264,
            OutputCodec::Hevc => video_profile::VideoCodec::H265,
        } as i32,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str, w: i32, h: i32) -> VideoProfile {
        VideoProfile {
            name: name.into(),
            width: w,
            height: h,
            bitrate: 600_000,
            fps: 30,
            ..Default::default()
        }
    }

    #[test]
    fn the_newest_non_empty_list_wins() {
        let seg = SegData {
            full_profiles: vec![wire("old", 640, 360)],
            full_profiles2: vec![wire("mid", 640, 360)],
            ..Default::default()
        };
        assert_eq!(from_segdata(&seg).unwrap()[0].name, "mid");
        let seg = SegData {
            full_profiles: vec![wire("old", 640, 360)],
            ..Default::default()
        };
        assert_eq!(from_segdata(&seg).unwrap()[0].name, "old");
        assert_eq!(
            from_segdata(&SegData::default()),
            Err(WireProfileError::Empty)
        );
    }

    #[test]
    fn go_livepeer_conversions() {
        let mut p = wire("", 426, 240);
        p.gop = -1;
        p.format = video_profile::Format::Mp4 as i32;
        let seg = SegData {
            full_profiles3: vec![p.clone()],
            ..Default::default()
        };
        let out = &from_segdata(&seg).unwrap()[0];
        assert_eq!(out.name, "net_426x240_600000");
        assert_eq!(out.gop, Gop::Intra);
        assert_eq!(out.container, Container::Mp4);
        p.gop = 2000;
        assert_eq!(convert(&p).unwrap().gop, Gop::Seconds(2.0));
        assert_eq!(
            convert(&to_wire(&convert(&p).unwrap())).unwrap(),
            convert(&p).unwrap()
        );
        p.encoder = video_profile::VideoCodec::Vp9 as i32;
        assert!(convert(&p).unwrap_err().to_string().contains("VP9"));
        p.encoder = video_profile::VideoCodec::H265 as i32;
        assert_eq!(convert(&p).unwrap().codec, OutputCodec::Hevc);
        p.encoder = 9;
        assert_eq!(convert(&p), Err(WireProfileError::Codec(9)));
        p.encoder = 0;
        p.width = 0;
        assert!(matches!(convert(&p), Err(WireProfileError::Size { .. })));
        p.width = 426;
        p.gop = -2;
        assert!(matches!(convert(&p), Err(WireProfileError::Gop { .. })));
    }
}

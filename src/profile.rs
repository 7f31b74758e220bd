//! Rendition profiles: go-livepeer's `-transcodingOptions` JSON, the lpms preset names, and the
//! rule that turns a requested box into the encoded size for a given source (lpms
//! `createCOutputParams`: the larger source side becomes `max(w, h)`, the other keeps the aspect
//! ratio, rounded to even, with NVENC's H.264 minimums applied to every backend).

use serde::Serialize;
use std::fmt;

/// Smallest H.264 frame lpms allows (`nvidiaCodecSizeLimts`, used for every backend).
pub const H264_MIN_W: u32 = 146;
pub const H264_MIN_H: u32 = 50;
/// Largest H.264 frame lpms allows.
pub const H264_MAX_SIDE: u32 = 4096;

/// Errors in a profile specification. Each names the offending profile and field.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProfileError {
    #[error("profile JSON is malformed: {0}")]
    Json(String),
    #[error("profile list is empty")]
    Empty,
    #[error("unknown preset '{0}' (known: {known})", known = preset_names().join(", "))]
    UnknownPreset(String),
    #[error("profile '{name}': {field} {problem}")]
    Field {
        name: String,
        field: &'static str,
        problem: String,
    },
    #[error("more than {0} renditions in one ladder")]
    TooMany(usize),
}

/// H.264 profile requested for a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodecProfile {
    EncoderDefault,
    Baseline,
    Main,
    High,
    ConstrainedHigh,
}

impl CodecProfile {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "" | "none" => Self::EncoderDefault,
            "h264baseline" => Self::Baseline,
            "h264main" => Self::Main,
            "h264high" => Self::High,
            "h264constrainedhigh" => Self::ConstrainedHigh,
            _ => return None,
        })
    }

    /// x264 profile name, as lpms maps it (constrained high is High without B-frames).
    pub fn x264_name(self) -> Option<&'static str> {
        match self {
            Self::EncoderDefault => None,
            Self::Baseline => Some("baseline"),
            Self::Main => Some("main"),
            Self::High | Self::ConstrainedHigh => Some("high"),
        }
    }

    /// B-frames lpms uses for a software encoder with this profile.
    pub fn b_frames(self) -> u32 {
        match self {
            Self::Baseline | Self::ConstrainedHigh => 0,
            Self::Main | Self::High | Self::EncoderDefault => 3,
        }
    }
}

/// Keyframe interval of a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gop {
    /// Encoder default (x264: up to 250 frames, scene cuts allowed).
    Default,
    /// Every frame is an IDR.
    Intra,
    /// An IDR at least every so many seconds of media time, aligned across renditions.
    Seconds(f64),
}

/// The codec a rendition is encoded with (lpms `VideoCodec`; JSON names as lpms's
/// `VideoCodecName`: "H.264", "HEVC").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputCodec {
    #[default]
    H264,
    Hevc,
}

impl OutputCodec {
    /// lpms's name of the codec.
    pub fn lpms_name(self) -> &'static str {
        match self {
            Self::H264 => "H.264",
            Self::Hevc => "HEVC",
        }
    }
}

/// Output container of a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    Mpegts,
    Mp4,
}

impl Container {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Mpegts => "ts",
            Self::Mp4 => "mp4",
        }
    }
    pub fn muxer(self) -> &'static str {
        match self {
            Self::Mpegts => "mpegts",
            Self::Mp4 => "mp4",
        }
    }
    pub fn mime(self) -> &'static str {
        match self {
            Self::Mpegts => "video/mp2t",
            Self::Mp4 => "video/mp4",
        }
    }
}

/// One rendition of the ladder, as requested.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub name: String,
    /// Requested box; the encoded size follows [`Profile::output_size`].
    pub width: u32,
    pub height: u32,
    /// Target bitrate in bits per second.
    pub bitrate: u64,
    /// Output frame rate numerator; 0 = pass the source timestamps through.
    pub fps: u32,
    pub fps_den: u32,
    pub profile: CodecProfile,
    pub gop: Gop,
    pub container: Container,
    /// CRF (0 = off). With a CRF the bitrate becomes a cap.
    pub quality: u32,
    pub codec: OutputCodec,
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{} {}k",
            self.name,
            self.width,
            self.height,
            self.bitrate / 1000
        )
    }
}

/// Most renditions one session takes (lpms `MAX_OUTPUT_SIZE`).
pub const MAX_RENDITIONS: usize = 10;

const PRESETS: &[(&str, u32, u32, u64, u32)] = &[
    ("P720p60fps16x9", 1280, 720, 6_000_000, 60),
    ("P720p30fps16x9", 1280, 720, 4_000_000, 30),
    ("P720p25fps16x9", 1280, 720, 3_500_000, 25),
    ("P720p30fps4x3", 960, 720, 3_500_000, 30),
    ("P576p30fps16x9", 1024, 576, 1_500_000, 30),
    ("P576p25fps16x9", 1024, 576, 1_500_000, 25),
    ("P360p30fps16x9", 640, 360, 1_200_000, 30),
    ("P360p25fps16x9", 640, 360, 1_000_000, 25),
    ("P360p30fps4x3", 480, 360, 1_000_000, 30),
    ("P240p30fps16x9", 426, 240, 600_000, 30),
    ("P240p25fps16x9", 426, 240, 600_000, 25),
    ("P240p30fps4x3", 320, 240, 600_000, 30),
    ("P144p30fps16x9", 256, 144, 400_000, 30),
];

/// Names of the built-in presets, in lpms order.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.0).collect()
}

/// A built-in preset by its exact lpms name.
pub fn preset(name: &str) -> Option<Profile> {
    PRESETS
        .iter()
        .find(|p| p.0 == name)
        .map(|&(name, width, height, bitrate, fps)| Profile {
            name: name.to_string(),
            width,
            height,
            bitrate,
            fps,
            fps_den: 1,
            profile: CodecProfile::EncoderDefault,
            gop: Gop::Default,
            container: Container::Mpegts,
            quality: 0,
            codec: OutputCodec::H264,
        })
}

/// The ladder `livepeer_bench` users run (go-livepeer `cmd/livepeer_bench/transcodingOptions.json`):
/// 240p/250k, 360p/800k, 480p/1600k, 720p/3000k, source fps, constrained high, 1 s GOP.
pub fn bench_ladder() -> Vec<Profile> {
    [
        ("240p0", 426, 240, 250_000),
        ("360p0", 640, 360, 800_000),
        ("480p0", 854, 480, 1_600_000),
        ("720p0", 1280, 720, 3_000_000),
    ]
    .iter()
    .map(|&(name, width, height, bitrate)| Profile {
        name: name.to_string(),
        width,
        height,
        bitrate,
        fps: 0,
        fps_den: 1,
        profile: CodecProfile::ConstrainedHigh,
        gop: Gop::Seconds(1.0),
        container: Container::Mpegts,
        quality: 0,
        codec: OutputCodec::H264,
    })
    .collect()
}

/// Parses `--profiles`: a path to a JSON file, inline JSON, a comma list of preset names, or
/// the word `bench` for [`bench_ladder`].
pub fn parse_spec(spec: &str) -> Result<Vec<Profile>, ProfileError> {
    let trimmed = spec.trim();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        return parse_json(trimmed);
    }
    let path = std::path::Path::new(trimmed);
    if trimmed.ends_with(".json") || path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ProfileError::Json(format!("cannot read {}: {e}", path.display())))?;
        return parse_json(&text);
    }
    if trimmed == "bench" {
        return Ok(bench_ladder());
    }
    let profiles = trimmed
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| preset(name).ok_or_else(|| ProfileError::UnknownPreset(name.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    check_ladder(profiles)
}

fn check_ladder(profiles: Vec<Profile>) -> Result<Vec<Profile>, ProfileError> {
    if profiles.is_empty() {
        return Err(ProfileError::Empty);
    }
    if profiles.len() > MAX_RENDITIONS {
        return Err(ProfileError::TooMany(MAX_RENDITIONS));
    }
    Ok(profiles)
}

/// Parses go-livepeer's JSON: a top-level array of profiles, or `{"profiles": [...]}` as webhooks
/// send it. Keys match case-insensitively, as Go's `encoding/json` does.
pub fn parse_json(text: &str) -> Result<Vec<Profile>, ProfileError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ProfileError::Json(e.to_string()))?;
    let list = match &value {
        serde_json::Value::Array(items) => items.clone(),
        serde_json::Value::Object(map) => match lookup(map, "profiles") {
            Some(serde_json::Value::Array(items)) => items.clone(),
            _ => {
                return Err(ProfileError::Json(
                    "expected an array of profiles or {\"profiles\": [...]}".into(),
                ))
            }
        },
        _ => return Err(ProfileError::Json("expected an array of profiles".into())),
    };
    let profiles = list
        .iter()
        .enumerate()
        .map(|(i, item)| parse_one(i, item))
        .collect::<Result<Vec<_>, _>>()?;
    check_ladder(profiles)
}

fn lookup<'a>(
    map: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<&'a serde_json::Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn parse_one(index: usize, item: &serde_json::Value) -> Result<Profile, ProfileError> {
    let map = item
        .as_object()
        .ok_or_else(|| ProfileError::Json(format!("profile #{index} is not an object")))?;
    let label = lookup(map, "name")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let display = label.clone().unwrap_or_else(|| format!("#{index}"));
    let bad = |field: &'static str, problem: String| ProfileError::Field {
        name: display.clone(),
        field,
        problem,
    };
    let int = |field: &'static str, required: bool| -> Result<Option<i64>, ProfileError> {
        match lookup(map, field) {
            None | Some(serde_json::Value::Null) if !required => Ok(None),
            None | Some(serde_json::Value::Null) => Err(bad(field, "is missing".into())),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| bad(field, format!("must be an integer, got {v}"))),
        }
    };
    let positive = |field: &'static str, v: i64, max: i64| -> Result<u64, ProfileError> {
        if v <= 0 {
            Err(bad(field, format!("must be positive, got {v}")))
        } else if v > max {
            Err(bad(field, format!("must be at most {max}, got {v}")))
        } else {
            Ok(v as u64)
        }
    };
    let width = positive("width", int("width", true)?.unwrap(), H264_MAX_SIDE as i64)? as u32;
    let height = positive(
        "height",
        int("height", true)?.unwrap(),
        H264_MAX_SIDE as i64,
    )? as u32;
    let bitrate = positive("bitrate", int("bitrate", true)?.unwrap(), 1_000_000_000)?;
    let fps = match int("fps", false)?.unwrap_or(0) {
        v if v < 0 => return Err(bad("fps", format!("must not be negative, got {v}"))),
        v if v > 1000 => return Err(bad("fps", format!("must be at most 1000, got {v}"))),
        v => v as u32,
    };
    let fps_den = match int("fpsDen", false)?.unwrap_or(0) {
        0 => 1,
        v if v < 0 => return Err(bad("fpsDen", format!("must not be negative, got {v}"))),
        v => v as u32,
    };
    let profile = match lookup(map, "profile") {
        None | Some(serde_json::Value::Null) => CodecProfile::EncoderDefault,
        Some(serde_json::Value::String(s)) => CodecProfile::parse(s).ok_or_else(|| {
            bad(
                "profile",
                format!("'{s}' is unknown (h264baseline, h264main, h264high, h264constrainedhigh)"),
            )
        })?,
        Some(v) => return Err(bad("profile", format!("must be a string, got {v}"))),
    };
    let gop = match lookup(map, "gop") {
        None | Some(serde_json::Value::Null) => Gop::Default,
        Some(v) => parse_gop(v).map_err(|problem| bad("gop", problem))?,
    };
    let codec = match lookup(map, "encoder")
        .and_then(|v| v.as_str())
        .unwrap_or("")
    {
        "" | "H.264" => OutputCodec::H264,
        "HEVC" => OutputCodec::Hevc,
        other => {
            return Err(bad(
                "encoder",
                format!("'{other}' is not supported (this worker encodes H.264 and HEVC)"),
            ))
        }
    };
    let container = match lookup(map, "format").and_then(|v| v.as_str()) {
        None | Some("") | Some("mpegts") => Container::Mpegts,
        Some("mp4") => Container::Mp4,
        Some(other) => return Err(bad("format", format!("'{other}' is not mpegts or mp4"))),
    };
    let quality = match int("quality", false)?.unwrap_or(0) {
        v if !(0..=51).contains(&v) => {
            return Err(bad(
                "quality",
                format!("must be a CRF from 0 to 51, got {v}"),
            ))
        }
        v => v as u32,
    };
    let name = label.unwrap_or_else(|| format!("custom_{width}x{height}_{bitrate}"));
    Ok(Profile {
        name,
        width,
        height,
        bitrate,
        fps,
        fps_den,
        profile,
        gop,
        container,
        quality,
        codec,
    })
}

fn parse_gop(v: &serde_json::Value) -> Result<Gop, String> {
    let seconds = match v {
        serde_json::Value::String(s) if s.eq_ignore_ascii_case("intra") => return Ok(Gop::Intra),
        serde_json::Value::String(s) if s.is_empty() => return Ok(Gop::Default),
        serde_json::Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("'{s}' is not a number of seconds or \"intra\""))?,
        serde_json::Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        other => return Err(format!("must be seconds or \"intra\", got {other}")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("must not be negative, got {seconds}"));
    }
    Ok(if seconds == 0.0 {
        Gop::Default
    } else {
        Gop::Seconds(seconds)
    })
}

impl Profile {
    /// Encoded size for a source of `src_w` x `src_h`: lpms' scale expression, evaluated as
    /// FFmpeg's scale filter evaluates it (`-2` keeps the aspect ratio, rounded to even).
    pub fn output_size(&self, src_w: u32, src_h: u32) -> (u32, u32) {
        let (iw, ih) = (src_w as f64, src_h as f64);
        let max_d = self.width.max(self.height) as f64;
        let (wmin, hmin) = (H264_MIN_W as f64, H264_MIN_H as f64);
        let trunc_even = |v: f64| ((v / 2.0).trunc() * 2.0) as i64;
        let w = trunc_even(if iw >= ih {
            if max_d * ih / iw >= hmin {
                max_d
            } else {
                -2.0
            }
        } else if wmin >= max_d * iw / ih {
            wmin
        } else {
            -2.0
        });
        let h = trunc_even(if ih > iw {
            if max_d * iw / ih >= wmin {
                max_d
            } else {
                -2.0
            }
        } else if hmin >= max_d * ih / iw {
            hmin
        } else {
            -2.0
        });
        // av_rescale rounds half away from zero; then the result is made even.
        let keep = |other: i64, num: u32, den: u32| -> i64 {
            let n = other as i128 * num as i128;
            let d = den as i128 * 2;
            (((n * 2 + d) / (2 * d)) * 2) as i64
        };
        let (w, h) = match (w < 0, h < 0) {
            (true, false) => (keep(h, src_w, src_h), h),
            (false, true) => (w, keep(w, src_h, src_w)),
            (false, false) => (w, h),
            (true, true) => (src_w as i64 & !1, src_h as i64 & !1),
        };
        (w.max(2) as u32, h.max(2) as u32)
    }

    /// Output frame rate, if the profile converts it.
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        (self.fps > 0).then_some((self.fps, self.fps_den.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_bench() {
        let p = parse_spec("P720p30fps16x9, P240p30fps16x9").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].width, p[0].height, p[0].bitrate),
            (1280, 720, 4_000_000)
        );
        assert!(matches!(
            parse_spec("P999p"),
            Err(ProfileError::UnknownPreset(_))
        ));
        assert_eq!(parse_spec("bench").unwrap(), bench_ladder());
    }

    #[test]
    fn aspect_rule_matches_lpms() {
        let p = preset("P240p30fps16x9").unwrap();
        assert_eq!(p.output_size(1920, 1080), (426, 240));
        assert_eq!(p.output_size(1080, 1920), (240, 426));
        let p720 = preset("P720p30fps16x9").unwrap();
        assert_eq!(p720.output_size(1440, 1080), (1280, 960));
        assert_eq!(p720.output_size(1918, 1080), (1280, 720));
        assert_eq!(p720.output_size(1080, 1920), (720, 1280));
        // A very wide source hits the 50-pixel minimum height; the width follows the aspect.
        let p144 = preset("P144p30fps16x9").unwrap();
        assert_eq!(p144.output_size(4000, 500), (400, 50));
    }

    #[test]
    fn json_fields() {
        let p = parse_json(
            r#"[{"name":"a","width":640,"height":360,"bitrate":800000,"FPS":30,"fpsDen":1001,
                 "profile":"H264ConstrainedHigh","gop":"0.5","format":"mp4"},
                {"width":426,"height":240,"bitrate":250000,"gop":"intra"}]"#,
        )
        .unwrap();
        assert_eq!(p[0].fps, 30);
        assert_eq!(p[0].fps_den, 1001);
        assert_eq!(p[0].profile, CodecProfile::ConstrainedHigh);
        assert_eq!(p[0].gop, Gop::Seconds(0.5));
        assert_eq!(p[0].container, Container::Mp4);
        assert_eq!(p[1].name, "custom_426x240_250000");
        assert_eq!(p[1].gop, Gop::Intra);
        let wrapped = parse_json(r#"{"profiles":[{"width":2,"height":2,"bitrate":1}]}"#).unwrap();
        assert_eq!(wrapped.len(), 1);
    }

    #[test]
    fn json_errors_name_the_problem() {
        let err = |s: &str| parse_json(s).unwrap_err().to_string();
        assert!(err("[{").contains("malformed"));
        assert!(err(r#"[{"name":"x","width":0,"height":2,"bitrate":1}]"#).contains("width"));
        assert!(err(r#"[{"name":"x","width":2,"height":-5,"bitrate":1}]"#).contains("height"));
        assert!(err(r#"[{"name":"x","width":2,"height":2,"bitrate":-1}]"#).contains("bitrate"));
        assert!(
            err(r#"[{"name":"x","width":2,"height":2,"bitrate":1,"gop":"-1"}]"#).contains("gop")
        );
        assert!(
            err(r#"[{"name":"x","width":2,"height":2,"bitrate":1,"encoder":"VP9"}]"#)
                .contains("VP9")
        );
        assert!(err("[]").contains("empty"));
    }
}

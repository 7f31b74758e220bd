//! go-livepeer's capabilities (core/capabilities.go at 0.9.1): their numbers and names, the
//! bitstring a transcoder registers with (capability N sets bit N % 64 of word N / 64), the
//! sets a go-livepeer transcoder claims, and the version it reports. What *this* worker claims
//! is decided at start by [`super::capability_test`]; this module only knows the protocol.

use super::proto;

pub const H264: u32 = 0;
pub const MPEGTS: u32 = 1;
pub const MP4: u32 = 2;
pub const FRACTIONAL_FRAMERATES: u32 = 3;
pub const STORAGE_DIRECT: u32 = 4;
pub const STORAGE_S3: u32 = 5;
pub const STORAGE_GCS: u32 = 6;
pub const PROFILE_H264_BASELINE: u32 = 7;
pub const PROFILE_H264_MAIN: u32 = 8;
pub const PROFILE_H264_HIGH: u32 = 9;
pub const PROFILE_H264_CONSTRAINED_HIGH: u32 = 10;
pub const GOP: u32 = 11;
pub const AUTH_TOKEN: u32 = 12;
pub const MPEG7_SIGNATURE: u32 = 14;
pub const HEVC_DECODE: u32 = 15;
pub const HEVC_ENCODE: u32 = 16;
pub const VP8_DECODE: u32 = 17;
pub const VP9_DECODE: u32 = 18;
pub const VP8_ENCODE: u32 = 19;
pub const VP9_ENCODE: u32 = 20;
pub const H264_DECODE_444_8BIT: u32 = 21;
pub const H264_DECODE_422_8BIT: u32 = 22;
pub const H264_DECODE_444_10BIT: u32 = 23;
pub const H264_DECODE_422_10BIT: u32 = 24;
pub const H264_DECODE_420_10BIT: u32 = 25;
pub const SEGMENT_SLICING: u32 = 26;

/// The go-livepeer release whose transcoder protocol this worker implements, reported as our
/// version unless `-livepeerVersion` says otherwise (gateways' `-orchMinLivepeerVersion`
/// compares it, core/capabilities.go `isVersionCompatible`).
pub const LIVEPEER_VERSION: &str = "0.9.1";

/// `DefaultCapabilities()`: what every go-livepeer orchestrator advertises to gateways and
/// every transcoder is assumed to do (core/capabilities.go:187-206).
pub const DEFAULT: &[u32] = &[
    H264,
    MPEGTS,
    MP4,
    FRACTIONAL_FRAMERATES,
    STORAGE_DIRECT,
    STORAGE_S3,
    STORAGE_GCS,
    PROFILE_H264_BASELINE,
    PROFILE_H264_MAIN,
    PROFILE_H264_HIGH,
    PROFILE_H264_CONSTRAINED_HIGH,
    GOP,
    AUTH_TOKEN,
    MPEG7_SIGNATURE,
    SEGMENT_SLICING,
];

/// The video part of `OptionalCapabilities()` (core/capabilities.go:208-228); the AI pipelines
/// listed there are not transcoder work.
pub const OPTIONAL_VIDEO: &[u32] = &[
    HEVC_DECODE,
    HEVC_ENCODE,
    VP8_DECODE,
    VP9_DECODE,
    H264_DECODE_444_8BIT,
    H264_DECODE_422_8BIT,
    H264_DECODE_444_10BIT,
    H264_DECODE_422_10BIT,
    H264_DECODE_420_10BIT,
];

/// go-livepeer's display name of a capability (`CapabilityNameLookup`).
pub fn name(cap: u32) -> &'static str {
    match cap {
        H264 => "H.264",
        MPEGTS => "MPEGTS",
        MP4 => "MP4",
        FRACTIONAL_FRAMERATES => "Fractional framerates",
        STORAGE_DIRECT => "Storage direct",
        STORAGE_S3 => "Storage S3",
        STORAGE_GCS => "Storage GCS",
        PROFILE_H264_BASELINE => "H264 Baseline profile",
        PROFILE_H264_MAIN => "H264 Main profile",
        PROFILE_H264_HIGH => "H264 High profile",
        PROFILE_H264_CONSTRAINED_HIGH => "H264 Constrained, Contained High profile",
        GOP => "GOP",
        AUTH_TOKEN => "Auth token",
        13 => "Scene classification",
        MPEG7_SIGNATURE => "MPEG7 signature",
        HEVC_DECODE => "HEVC decode",
        HEVC_ENCODE => "HEVC encode",
        VP8_DECODE => "VP8 decode",
        VP9_DECODE => "VP9 decode",
        VP8_ENCODE => "VP8 encode",
        VP9_ENCODE => "VP9 encode",
        H264_DECODE_444_8BIT => "H264 Decode YUV444 8-bit",
        H264_DECODE_422_8BIT => "H264 Decode YUV422 8-bit",
        H264_DECODE_444_10BIT => "H264 Decode YUV444 10-bit",
        H264_DECODE_422_10BIT => "H264 Decode YUV422 10-bit",
        H264_DECODE_420_10BIT => "H264 Decode YUV420 10-bit",
        SEGMENT_SLICING => "Segment slicing",
        27 => "Text to image",
        28 => "Image to image",
        29 => "Image to video",
        30 => "Upscale",
        31 => "Audio to text",
        32 => "Segment anything 2",
        33 => "Llm",
        34 => "Image to text",
        35 => "Live video to video",
        36 => "Text to speech",
        37 => "byoc",
        _ => "unknown",
    }
}

/// The bitstring words for `caps` (go-livepeer `NewCapabilityString`).
pub fn bitstring(caps: &[u32]) -> Vec<u64> {
    let words = caps.iter().map(|&c| c as usize / 64 + 1).max().unwrap_or(0);
    let mut v = vec![0u64; words];
    for &c in caps {
        v[c as usize / 64] |= 1 << (c % 64);
    }
    v
}

/// The capabilities set in a bitstring, in order.
pub fn list(bits: &[u64]) -> Vec<u32> {
    (0..bits.len() as u32 * 64)
        .filter(|&c| bits[c as usize / 64] & (1 << (c % 64)) != 0)
        .collect()
}

/// go-livepeer's `CapabilityString.CompatibleWith`: every bit of `job` is in `ours`, and `job`
/// has no more words than `ours` (even zero words: Go compares lengths first).
pub fn covers(ours: &[u64], job: &[u64]) -> bool {
    job.len() <= ours.len() && job.iter().zip(ours).all(|(j, o)| j & o == *j)
}

/// What a transcoder registers with (`NewCapabilities(caps, nil).ToNetCapabilities()`): each
/// capability at capacity 1, the version, empty constraints.
pub fn message(caps: &[u32], version: &str) -> proto::Capabilities {
    proto::Capabilities {
        bitstring: bitstring(caps),
        mandatories: Vec::new(),
        capacities: caps.iter().map(|&c| (c, 1)).collect(),
        version: version.to_string(),
        constraints: Some(proto::capabilities::Constraints::default()),
    }
}

/// A semantic version as go-livepeer reads one (Masterminds semver: `v` prefix allowed,
/// missing minor/patch are 0, the pre-release and build suffixes are dropped for comparison).
pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.trim().strip_prefix('v').unwrap_or(v.trim());
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let mut num = |required: bool| -> Option<u64> {
        match parts.next() {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok(),
            None if !required => Some(0),
            _ => None,
        }
    };
    let (major, minor, patch) = (num(true)?, num(false)?, num(false)?);
    parts.next().is_none().then_some((major, minor, patch))
}

/// go-livepeer's `isVersionCompatible(minVersion, version)` (core/capabilities.go:453-479):
/// no minimum accepts anything; an empty, "undefined" or unparsable version is refused; an
/// unparsable minimum accepts anything; otherwise `version >= minVersion` ignoring suffixes.
pub fn version_compatible(min_version: &str, version: &str) -> bool {
    if min_version.is_empty() {
        return true;
    }
    if version.is_empty() || version == "undefined" {
        return false;
    }
    let Some(min) = parse_version(min_version) else {
        return true;
    };
    parse_version(version).is_some_and(|v| v >= min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_livepeer_defaults_encode_as_documented() {
        // go-livepeer's default set: bits 0-12, 14 and 26 = 0x4005FFF.
        assert_eq!(bitstring(DEFAULT), [0x4005FFF]);
        assert_eq!(bitstring(&[64, 1]), [2, 1]);
        assert_eq!(list(&bitstring(DEFAULT)), DEFAULT_SORTED);
    }

    const DEFAULT_SORTED: &[u32] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 26];

    #[test]
    fn compatibility_is_go_livepeers() {
        let ours = bitstring(&[H264, MPEGTS, AUTH_TOKEN, SEGMENT_SLICING]);
        assert!(covers(&ours, &bitstring(&[H264, AUTH_TOKEN])));
        assert!(covers(&ours, &bitstring(&[H264, SEGMENT_SLICING])));
        assert!(!covers(&ours, &bitstring(&[H264, MPEG7_SIGNATURE])));
        assert!(!covers(&ours, &bitstring(&[70])));
        // More words than ours fails even when the extra word is zero (Go checks lengths).
        assert!(!covers(&ours, &[1, 0]));
    }

    #[test]
    fn versions_compare_as_semver_without_suffixes() {
        assert!(version_compatible("", "anything"));
        assert!(version_compatible("0.9.1", "0.9.1"));
        assert!(version_compatible("0.9.0", "0.9.1-abcdef"));
        assert!(version_compatible("0.9.1-rc1", "0.9.1"));
        assert!(version_compatible("v0.8", "0.9.1"));
        assert!(!version_compatible("0.9.2", "0.9.1"));
        assert!(!version_compatible("0.7.2", "0.1.0"));
        assert!(!version_compatible("0.9.0", ""));
        assert!(!version_compatible("0.9.0", "undefined"));
        assert!(!version_compatible("0.9.0", "gpuworker"));
        assert!(version_compatible("not-a-version", "0.1.0"));
        assert_eq!(parse_version("1.2"), Some((1, 2, 0)));
        assert_eq!(parse_version("1.2.3.4"), None);
    }
}

//! The capability bitstring a transcoder registers with (go-livepeer core/capabilities.go):
//! capability N sets bit N % 64 of word N / 64. We claim only what we really do: no MPEG-7
//! video signature (14) and no segment slicing (26), which go-livepeer's defaults include.

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
pub const SEGMENT_SLICING: u32 = 26;

/// What gpuworker supports. Storage capabilities are the orchestrator's business (a remote
/// transcoder only downloads from and posts to its orchestrator), so they are claimed as
/// go-livepeer's transcoders do.
pub const SUPPORTED: &[u32] = &[
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
    HEVC_DECODE,
];

/// The bitstring words for `caps`.
pub fn bitstring(caps: &[u32]) -> Vec<u64> {
    let words = caps.iter().map(|&c| c as usize / 64 + 1).max().unwrap_or(0);
    let mut v = vec![0u64; words];
    for &c in caps {
        v[c as usize / 64] |= 1 << (c % 64);
    }
    v
}

/// Whether every bit of `job` is in `ours` (the orchestrator's and transcoder's own check).
pub fn covers(ours: &[u64], job: &[u64]) -> bool {
    job.iter()
        .enumerate()
        .all(|(i, &w)| w & !ours.get(i).copied().unwrap_or(0) == 0)
}

/// The Capabilities message a transcoder registers with: each capability at capacity 1 (as
/// go-livepeer's NewCapabilities), our version, empty constraints.
pub fn ours() -> proto::Capabilities {
    proto::Capabilities {
        bitstring: bitstring(SUPPORTED),
        mandatories: Vec::new(),
        capacities: SUPPORTED.iter().map(|&c| (c, 1)).collect(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        constraints: Some(proto::capabilities::Constraints::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_livepeer_defaults_encode_as_documented() {
        // go-livepeer's default set: bits 0-12, 14 and 26 = 0x4005FFF.
        let mut defaults: Vec<u32> = (0..=12).collect();
        defaults.extend([14, 26]);
        assert_eq!(bitstring(&defaults), [0x4005FFF]);
        assert_eq!(bitstring(&[64, 1]), [2, 1]);
    }

    #[test]
    fn ours_leave_out_what_we_do_not_do() {
        let b = bitstring(SUPPORTED);
        assert_eq!(b[0] & (1 << MPEG7_SIGNATURE), 0);
        assert_eq!(b[0] & (1 << SEGMENT_SLICING), 0);
        assert!(covers(&b, &bitstring(&[H264, MPEGTS, AUTH_TOKEN])));
        assert!(!covers(&b, &bitstring(&[H264, MPEG7_SIGNATURE])));
        assert!(!covers(&b, &bitstring(&[70])));
    }
}

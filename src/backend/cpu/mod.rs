//! The CPU backend: decode and encode through libavcodec, scaling with our own fixed-point
//! multi-rendition scaler.

pub mod decode;
#[cfg(feature = "diffusion")]
pub mod diffuse;
pub mod encode;
pub mod scale;
#[cfg(target_arch = "x86_64")]
mod scale_x86;

use crate::error::Result;
use crate::media::frame::src_view;
use crate::pipeline::stage::MultiScaler;
use ffmpeg_next as ff;

impl MultiScaler for scale::CpuScaler {
    fn scale(&mut self, src: &ff::frame::Video, dst: &mut [ff::frame::Video]) -> Result<()> {
        scale::CpuScaler::scale(self, &src_view(src), dst);
        Ok(())
    }

    fn name(&self) -> String {
        format!("cpu-{}", self.kernels().name())
    }
}

/// What the CPU backend offers on this machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CpuInfo {
    pub cores: usize,
    pub simd: &'static str,
    pub scaler: &'static str,
    pub decoders: Vec<String>,
    pub encoders: Vec<String>,
    pub ffmpeg: String,
    /// How each kind of input reaches the scalers (on every backend).
    pub input_paths: Vec<(&'static str, &'static str)>,
}

/// How inputs reach the scalers: 8-bit 4:2:0 as decoded, the other formats go-livepeer
/// takes converted to it on the CPU first (`scale/convert.rs`), also in GPU sessions.
pub const INPUT_PATHS: &[(&str, &str)] = &[
    (
        "H.264/HEVC 8-bit 4:2:0",
        "decoded as is (NVDEC in GPU sessions where the GPU takes the stream)",
    ),
    (
        "H.264/HEVC 4:2:2, 4:4:4, 9-16 bit",
        "libavcodec, then converted to 8-bit 4:2:0 on the CPU before the scaler (GPU sessions upload the converted frame)",
    ),
    ("VP8, VP9", "libavcodec, 4:2:0 as is, other formats converted as above"),
];

/// Probes cores, SIMD level and the codecs this machine's libavcodec provides.
pub fn probe() -> CpuInfo {
    crate::media::init();
    let simd = simd_level();
    let has_dec = |name: &str| ff::decoder::find_by_name(name).is_some();
    let has_enc = |name: &str| ff::encoder::find_by_name(name).is_some();
    let decoders = ["h264", "hevc", "vp8", "vp9"]
        .into_iter()
        .filter(|n| has_dec(n))
        .map(String::from)
        .collect();
    let encoders = ["libx264", "libx265"]
        .into_iter()
        .filter(|n| has_enc(n))
        .map(String::from)
        .collect();
    let v = ff::codec::version();
    CpuInfo {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        simd,
        scaler: scale::Kernels::detect().name(),
        decoders,
        encoders,
        ffmpeg: format!("libavcodec {}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff),
        input_paths: INPUT_PATHS.to_vec(),
    }
}

fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            return "avx512bw";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
        if std::arch::is_x86_feature_detected!("sse4.1") {
            return "sse4.1";
        }
        "sse2"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "neon"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "none"
    }
}

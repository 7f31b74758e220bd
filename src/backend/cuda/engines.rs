//! What a GPU can do for us, found out by asking the driver (NVDEC capabilities), by opening
//! NVENC sessions and by loading the scale kernel, not by looking at the CUDA device: H100,
//! H200 and A100 have NVDEC but no NVENC, consumer cards cap concurrent NVENC sessions, and a
//! device that no embedded kernel image fits (and without NVRTC) cannot scale at all. Probed
//! once per device and process, then cached.

use super::nvdec::{self, sys as dsys};
use super::nvenc::{self, safe as enc};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// NVENC sessions tried when looking for the driver's limit; reaching it means "no limit
/// below this", as on datacenter and professional cards.
pub const NVENC_PROBE_SESSIONS: u32 = 32;

/// The NVDEC codecs probed, by name.
const DECODE_CODECS: &[(dsys::cudaVideoCodec, &str)] = &[
    (dsys::cudaVideoCodec_H264, "h264"),
    (dsys::cudaVideoCodec_HEVC, "hevc"),
    (dsys::cudaVideoCodec_VP9, "vp9"),
    (dsys::cudaVideoCodec_AV1, "av1"),
];

#[derive(Debug, Clone, Serialize)]
pub struct DecodeCodec {
    pub codec: &'static str,
    pub max_width: u32,
    pub max_height: u32,
    pub engines: u32,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Engines {
    /// Codecs NVDEC decodes (8-bit 4:2:0).
    pub nvdec: Vec<DecodeCodec>,
    /// Why NVDEC cannot be used, if it cannot.
    pub nvdec_reason: Option<String>,
    /// Codecs NVENC encodes; empty when the GPU has no NVENC.
    pub nvenc: Vec<&'static str>,
    pub nvenc_reason: Option<String>,
    /// Concurrent NVENC sessions the driver allowed when probed (None: at least
    /// [`NVENC_PROBE_SESSIONS`], i.e. no practical limit).
    pub nvenc_session_limit: Option<u32>,
    /// The image of the scale kernel this device loads (see [`super::module`]).
    pub kernel: Option<String>,
    /// Why no image loads: the device then takes no sessions.
    pub kernel_reason: Option<String>,
}

impl Engines {
    pub fn nvdec_h264(&self) -> bool {
        self.nvdec.iter().any(|c| c.codec == "h264")
    }

    /// Whether NVDEC decodes `codec` (8-bit 4:2:0).
    pub fn decodes(&self, codec: dsys::cudaVideoCodec) -> bool {
        let name = DECODE_CODECS
            .iter()
            .find(|(c, _)| *c == codec)
            .map(|(_, n)| *n);
        self.nvdec.iter().any(|c| Some(c.codec) == name)
    }

    pub fn nvenc_h264(&self) -> bool {
        self.nvenc.contains(&"h264")
    }

    /// Whether NVENC encodes `codec`.
    pub fn nvenc_encodes(&self, codec: crate::profile::OutputCodec) -> bool {
        self.nvenc.contains(&match codec {
            crate::profile::OutputCodec::H264 => "h264",
            crate::profile::OutputCodec::Hevc => "hevc",
        })
    }
}

/// The engines of CUDA device `ordinal` (probed on first call).
pub fn engines(ordinal: usize) -> Engines {
    static CACHE: OnceLock<Mutex<HashMap<usize, Engines>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(ordinal).or_insert_with(|| probe(ordinal)).clone()
}

fn probe(ordinal: usize) -> Engines {
    let mut e = Engines::default();
    if !super::scale::driver_present() {
        let why = "libcuda.so.1 not found (no NVIDIA driver on this machine)".to_string();
        e.nvdec_reason = Some(why.clone());
        e.nvenc_reason = Some(why);
        return e;
    }
    let ctx = match super::context::context(ordinal) {
        Ok(c) => c,
        Err(err) => {
            let why = format!("cannot open CUDA device {ordinal}: {err}");
            e.nvdec_reason = Some(why.clone());
            e.nvenc_reason = Some(why);
            return e;
        }
    };
    if let Err(err) = ctx.bind_to_thread() {
        e.nvdec_reason = Some(err.to_string());
        e.nvenc_reason = Some(err.to_string());
        return e;
    }
    match super::module::load(&ctx, "scale_nv12", super::kernels::SCALE_NV12_CU) {
        Ok((_, image)) => e.kernel = Some(image.to_string()),
        Err(err) => e.kernel_reason = Some(err.to_string()),
    }
    for &(codec, name) in DECODE_CODECS {
        match nvdec::safe::caps(codec) {
            Ok(c) if c.supported => e.nvdec.push(DecodeCodec {
                codec: name,
                max_width: c.max_width,
                max_height: c.max_height,
                engines: c.engines,
            }),
            Ok(_) => {}
            Err(err) => {
                e.nvdec_reason = Some(err.to_string());
                break;
            }
        }
    }
    if e.nvdec.is_empty() && e.nvdec_reason.is_none() {
        e.nvdec_reason = Some("the GPU decodes none of h264, hevc, vp9, av1".into());
    }
    let cu = ctx.cu_ctx() as *mut std::ffi::c_void;
    let mut open = Vec::new();
    let mut limit = None;
    while open.len() < NVENC_PROBE_SESSIONS as usize {
        match nvenc::Session::open(cu) {
            Ok(s) => open.push(s),
            Err(err) if !open.is_empty() && err.is_session_limit() => {
                limit = Some(open.len() as u32);
                break;
            }
            Err(err) => {
                e.nvenc_reason = Some(err.to_string());
                break;
            }
        }
    }
    if let Some(first) = open.first() {
        e.nvenc_reason = None;
        e.nvenc_session_limit = limit;
        match first.codecs() {
            Ok(g) => {
                e.nvenc = g
                    .iter()
                    .map(enc::codec_name)
                    .filter(|n| *n != "other")
                    .collect()
            }
            Err(err) => e.nvenc_reason = Some(err.to_string()),
        }
    }
    e
}

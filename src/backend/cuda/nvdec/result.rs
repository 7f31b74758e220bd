//! The thin layer over NVDEC's C API (libnvcuvid): loads the library at run time, looks up
//! the entry points the decoder uses, and turns `CUresult` codes into errors.

use super::sys;
use std::sync::OnceLock;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum NvdecError {
    #[error("not available: {0}")]
    NotAvailable(String),
    #[error("{call} failed: CUDA error {code}{}", code_name(*.code))]
    Status { call: &'static str, code: u32 },
    #[error("unsupported by NVDEC here: {0}")]
    Unsupported(String),
    #[error("NVDEC could not decode the picture at pts {0} (corrupt video data)")]
    Corrupt(i64),
}

pub type Result<T> = std::result::Result<T, NvdecError>;

fn code_name(code: u32) -> &'static str {
    match code {
        1 => " (invalid value)",
        2 => " (out of memory)",
        3 => " (not initialised)",
        101 => " (invalid device)",
        201 => " (invalid context)",
        700 => " (illegal address)",
        801 => " (not supported)",
        999 => " (unknown: device lost?)",
        _ => "",
    }
}

pub fn check(call: &'static str, r: sys::CUresult) -> Result<()> {
    if r == sys::CUDA_SUCCESS {
        Ok(())
    } else {
        Err(NvdecError::Status { call, code: r })
    }
}

/// The entry points, looked up once per process.
pub struct Api {
    _lib: libloading::Library,
    pub get_decoder_caps: unsafe extern "C" fn(*mut sys::CUVIDDECODECAPS) -> sys::CUresult,
    pub create_decoder: unsafe extern "C" fn(
        *mut sys::CUvideodecoder,
        *mut sys::CUVIDDECODECREATEINFO,
    ) -> sys::CUresult,
    pub destroy_decoder: unsafe extern "C" fn(sys::CUvideodecoder) -> sys::CUresult,
    pub decode_picture:
        unsafe extern "C" fn(sys::CUvideodecoder, *mut sys::CUVIDPICPARAMS) -> sys::CUresult,
    pub map_frame: unsafe extern "C" fn(
        sys::CUvideodecoder,
        i32,
        *mut u64,
        *mut u32,
        *mut sys::CUVIDPROCPARAMS,
    ) -> sys::CUresult,
    pub unmap_frame: unsafe extern "C" fn(sys::CUvideodecoder, u64) -> sys::CUresult,
    pub decode_status: unsafe extern "C" fn(
        sys::CUvideodecoder,
        i32,
        *mut sys::_CUVIDGETDECODESTATUS,
    ) -> sys::CUresult,
    pub create_parser:
        unsafe extern "C" fn(*mut sys::CUvideoparser, *mut sys::CUVIDPARSERPARAMS) -> sys::CUresult,
    pub parse:
        unsafe extern "C" fn(sys::CUvideoparser, *mut sys::CUVIDSOURCEDATAPACKET) -> sys::CUresult,
    pub destroy_parser: unsafe extern "C" fn(sys::CUvideoparser) -> sys::CUresult,
}

fn load() -> Result<Api> {
    let na = |e: String| NvdecError::NotAvailable(e);
    // SAFETY: loading libnvcuvid runs only its own initialisers. Each symbol is looked up with
    // the signature of its `tcuvid*` typedef in the SDK headers (sys.rs), and the pointers are
    // stored next to the library that keeps them valid.
    unsafe {
        let lib = libloading::Library::new("libnvcuvid.so.1").map_err(|_| {
            na("libnvcuvid.so.1 not found (no NVIDIA driver with NVDEC here)".into())
        })?;
        macro_rules! sym {
            ($name:literal) => {
                *lib.get($name)
                    .map_err(|e| na(format!("libnvcuvid.so.1: {e}")))?
            };
        }
        Ok(Api {
            get_decoder_caps: sym!(b"cuvidGetDecoderCaps"),
            create_decoder: sym!(b"cuvidCreateDecoder"),
            destroy_decoder: sym!(b"cuvidDestroyDecoder"),
            decode_picture: sym!(b"cuvidDecodePicture"),
            map_frame: sym!(b"cuvidMapVideoFrame64"),
            unmap_frame: sym!(b"cuvidUnmapVideoFrame64"),
            decode_status: sym!(b"cuvidGetDecodeStatus"),
            create_parser: sym!(b"cuvidCreateVideoParser"),
            parse: sym!(b"cuvidParseVideoData"),
            destroy_parser: sym!(b"cuvidDestroyVideoParser"),
            _lib: lib,
        })
    }
}

/// The process-wide NVDEC API (loaded on first use).
pub fn api() -> Result<&'static Api> {
    static API: OnceLock<Result<Api>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

//! The thin layer over NVENC's C API: loads `libnvidia-encode.so.1` at run time, fills the
//! API's function table once per process, and turns `NVENCSTATUS` codes into errors. Like
//! cudarc's `result` module: every function is a direct call, nothing is owned here.

use super::sys;
use std::ffi::c_void;
use std::sync::OnceLock;

/// The NVENC API version these bindings speak (nv-codec-headers 11.1): drivers 470 and later.
pub const API_VERSION: u32 = sys::NVENCAPI_MAJOR_VERSION | (sys::NVENCAPI_MINOR_VERSION << 24);

/// A struct version as the `NV_ENC_*_VER` macros build it.
pub const fn struct_version(v: u32) -> u32 {
    API_VERSION | (v << 16) | (0x7 << 28)
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum NvencError {
    #[error("not available: {0}")]
    NotAvailable(String),
    /// `detail` is the driver's own words (`nvEncGetLastErrorString`), when it had any.
    #[error("{call} failed: {} ({code}){}", status_name(*.code), detail_suffix(.detail))]
    Status {
        call: &'static str,
        code: i32,
        detail: String,
    },
}

impl NvencError {
    /// The driver refused another session (consumer cards' concurrent session limit; the
    /// driver reports it as out of memory or an incompatible client key).
    pub fn is_session_limit(&self) -> bool {
        matches!(self, NvencError::Status { call: "nvEncOpenEncodeSessionEx", code, .. }
            if *code as u32 == sys::NV_ENC_ERR_OUT_OF_MEMORY
                || *code as u32 == sys::NV_ENC_ERR_INCOMPATIBLE_CLIENT_KEY)
    }
}

pub type Result<T> = std::result::Result<T, NvencError>;

pub fn status_name(code: i32) -> &'static str {
    match code as u32 {
        sys::NV_ENC_ERR_NO_ENCODE_DEVICE => "no encode device",
        sys::NV_ENC_ERR_UNSUPPORTED_DEVICE => "unsupported device",
        sys::NV_ENC_ERR_INVALID_DEVICE => "invalid device",
        sys::NV_ENC_ERR_DEVICE_NOT_EXIST => "device does not exist (lost)",
        sys::NV_ENC_ERR_INVALID_PTR => "invalid pointer",
        sys::NV_ENC_ERR_INVALID_PARAM => "invalid parameter",
        sys::NV_ENC_ERR_INVALID_CALL => "invalid call",
        sys::NV_ENC_ERR_OUT_OF_MEMORY => "out of memory or session limit reached",
        sys::NV_ENC_ERR_ENCODER_NOT_INITIALIZED => "encoder not initialised",
        sys::NV_ENC_ERR_UNSUPPORTED_PARAM => "unsupported parameter",
        sys::NV_ENC_ERR_INVALID_VERSION => "invalid struct version",
        sys::NV_ENC_ERR_MAP_FAILED => "map failed",
        sys::NV_ENC_ERR_NEED_MORE_INPUT => "needs more input",
        sys::NV_ENC_ERR_ENCODER_BUSY => "encoder busy",
        sys::NV_ENC_ERR_GENERIC => "generic error",
        sys::NV_ENC_ERR_INCOMPATIBLE_CLIENT_KEY => "incompatible client key (session limit)",
        sys::NV_ENC_ERR_UNIMPLEMENTED => "unimplemented",
        sys::NV_ENC_ERR_RESOURCE_REGISTER_FAILED => "resource register failed",
        sys::NV_ENC_ERR_RESOURCE_NOT_REGISTERED => "resource not registered",
        sys::NV_ENC_ERR_RESOURCE_NOT_MAPPED => "resource not mapped",
        _ => "unknown NVENC status",
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// Turns a status into a result.
pub fn check(call: &'static str, status: sys::NVENCSTATUS) -> Result<()> {
    if status == sys::NV_ENC_SUCCESS {
        Ok(())
    } else {
        Err(NvencError::Status {
            call,
            code: status as i32,
            detail: String::new(),
        })
    }
}

/// The loaded library and its function table.
pub struct Api {
    _lib: libloading::Library,
    pub fns: sys::NV_ENCODE_API_FUNCTION_LIST,
    /// The driver's newest API version, as `major << 4 | minor`.
    pub driver_version: u32,
}

// SAFETY: the function table holds plain function pointers into the loaded library, which
// NVENC documents as callable from any thread (per-session calls are serialised by callers).
unsafe impl Send for Api {}
// SAFETY: as above; the table is never written after loading.
unsafe impl Sync for Api {}

type GetMaxVersion = unsafe extern "C" fn(*mut u32) -> sys::NVENCSTATUS;
type CreateInstance =
    unsafe extern "C" fn(*mut sys::NV_ENCODE_API_FUNCTION_LIST) -> sys::NVENCSTATUS;

fn load() -> Result<Api> {
    let na = |e: String| NvencError::NotAvailable(e);
    // SAFETY: loading the NVENC library runs only its own initialisers; the two symbols are
    // looked up with their nvEncodeAPI.h signatures and called while `lib` is alive.
    unsafe {
        let lib = libloading::Library::new("libnvidia-encode.so.1").map_err(|_| {
            na("libnvidia-encode.so.1 not found (no NVIDIA driver with NVENC here)".into())
        })?;
        let max: GetMaxVersion = *lib
            .get(b"NvEncodeAPIGetMaxSupportedVersion")
            .map_err(|e| na(format!("libnvidia-encode.so.1: {e}")))?;
        let create: CreateInstance = *lib
            .get(b"NvEncodeAPICreateInstance")
            .map_err(|e| na(format!("libnvidia-encode.so.1: {e}")))?;
        let mut driver_version = 0u32;
        check(
            "NvEncodeAPIGetMaxSupportedVersion",
            max(&mut driver_version),
        )?;
        let ours = (sys::NVENCAPI_MAJOR_VERSION << 4) | sys::NVENCAPI_MINOR_VERSION;
        if driver_version < ours {
            return Err(na(format!(
                "the driver supports NVENC API {}.{}, gpuworker needs {}.{} (driver 470 or later)",
                driver_version >> 4,
                driver_version & 15,
                ours >> 4,
                ours & 15
            )));
        }
        let mut fns = sys::NV_ENCODE_API_FUNCTION_LIST {
            version: struct_version(2),
            ..Default::default()
        };
        check("NvEncodeAPICreateInstance", create(&mut fns))?;
        Ok(Api {
            _lib: lib,
            fns,
            driver_version,
        })
    }
}

/// The process-wide NVENC API (loaded on first use).
pub fn api() -> Result<&'static Api> {
    static API: OnceLock<Result<Api>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// Calls an entry of the function table, failing cleanly if the driver left it empty.
macro_rules! call {
    ($api:expr, $name:ident ( $($arg:expr),* )) => {{
        match $api.fns.$name {
            // SAFETY: the caller's own SAFETY comment covers the arguments; the pointer comes
            // from the driver's function table for this API version.
            Some(f) => $crate::backend::cuda::nvenc::result::check(stringify!($name), unsafe { f($($arg),*) }),
            None => Err($crate::backend::cuda::nvenc::result::NvencError::NotAvailable(
                concat!("the driver has no ", stringify!($name)).into(),
            )),
        }
    }};
}
pub(crate) use call;

/// An opaque NVENC handle (encoder, registered resource, mapped input, bitstream buffer).
pub type Handle = *mut c_void;

//! The CUDA backend. NVIDIA libraries are loaded at run time, never linked, so one binary runs
//! on CPU-only and GPU machines. This module currently answers whether the driver and the video
//! engines are present; the decode/scale/encode stages build on it.

pub mod kernels;
pub mod nvrtc;
pub mod scale;
pub mod twin;

use serde::Serialize;

/// Libraries the CUDA backend loads, in the order it needs them.
pub const LIBRARIES: &[(&str, &str)] = &[
    ("libcuda.so.1", "CUDA driver"),
    ("libnvcuvid.so.1", "NVDEC"),
    ("libnvidia-encode.so.1", "NVENC"),
];

#[derive(Debug, Clone, Serialize)]
pub struct CudaInfo {
    pub available: bool,
    /// Why it is not available (or what is missing), in words.
    pub reason: Option<String>,
    pub libraries: Vec<LibraryStatus>,
    /// Architectures with a cubin of the scaling kernel built into this binary (empty: the
    /// build had no NVRTC, and a GPU machine then compiles the embedded source with libnvrtc).
    pub kernel_cubins: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LibraryStatus {
    pub name: &'static str,
    pub role: &'static str,
    pub found: bool,
}

/// Looks for the NVIDIA user-space libraries without initialising anything.
pub fn probe() -> CudaInfo {
    let libraries: Vec<LibraryStatus> = LIBRARIES
        .iter()
        .map(|&(name, role)| LibraryStatus {
            name,
            role,
            // SAFETY: loading a system library by name runs its initialisers; the NVIDIA
            // libraries have no initialisers with side effects beyond their own state.
            found: unsafe { libloading::Library::new(name) }.is_ok(),
        })
        .collect();
    let driver = libraries[0].found;
    CudaInfo {
        available: false,
        reason: Some(if driver {
            "not available: the CUDA backend's stages are not built yet (driver found)".into()
        } else {
            "not available: libcuda.so.1 not found (no NVIDIA driver on this machine)".into()
        }),
        libraries,
        kernel_cubins: kernels::embedded_architectures("scale_nv12"),
    }
}

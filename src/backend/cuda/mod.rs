//! The CUDA backend. NVIDIA libraries are loaded at run time, never linked, so one binary runs
//! on CPU-only and GPU machines. The driver probe (devices, and the video `engines` each
//! has), the kernels (`kernels`, compiled by `nvrtc` or embedded; the `module` image each
//! device loads) and their CPU twins (`twin`), one primary `context` per device and device
//! `memory` that owns it, and the stages: `decode` (NVDEC), `scale` (cudarc) and `encode`
//! (NVENC), passing device `frame`s. `nvdec` and `nvenc` are the bindings, layered
//! sys → result → safe.

pub mod context;
pub mod decode;
#[cfg(feature = "cuda")]
pub mod diffuse;
pub mod encode;
pub mod engines;
pub mod frame;
pub mod kernels;
pub mod memory;
pub mod module;
pub mod nvdec;
pub mod nvenc;
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
    /// The CUDA version the driver supports, e.g. "12.9" (cuDriverGetVersion).
    pub driver_cuda: Option<String>,
    /// The CUDA devices the driver reports.
    pub devices: Vec<GpuDevice>,
    /// Why the video engines are missing where the CUDA driver is not (a container without
    /// the `video` driver capability).
    pub video_libraries: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GpuDevice {
    pub index: usize,
    pub name: String,
    /// Compute capability, e.g. "9.0".
    pub compute_capability: String,
    pub memory_mib: u64,
    /// NVDEC and NVENC on this device, and the path sessions take there.
    pub engines: engines::Engines,
    /// "nvdec → cuda → nvenc", or with "cpu" for the stages the GPU cannot take.
    pub path: String,
}

/// The devices the driver reports (empty with no driver; an error in words otherwise).
fn devices() -> Result<Vec<GpuDevice>, String> {
    use cudarc::driver::{result, sys::CUdevice_attribute as A};
    if !scale::driver_present() {
        return Ok(Vec::new());
    }
    result::init().map_err(|e| format!("cuInit failed: {e}"))?;
    let n = result::device::get_count().map_err(|e| format!("cuDeviceGetCount: {e}"))?;
    (0..n)
        .map(|i| {
            let dev = result::device::get(i).map_err(|e| e.to_string())?;
            let name = result::device::get_name(dev).map_err(|e| e.to_string())?;
            // SAFETY: `dev` is a valid device handle from cuDeviceGet after cuInit.
            let (mem, major, minor) = unsafe {
                (
                    result::device::total_mem(dev).map_err(|e| e.to_string())?,
                    result::device::get_attribute(
                        dev,
                        A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                    )
                    .map_err(|e| e.to_string())?,
                    result::device::get_attribute(
                        dev,
                        A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                    )
                    .map_err(|e| e.to_string())?,
                )
            };
            let engines = engines::engines(i as usize);
            let path = match &engines.kernel_reason {
                Some(_) => "on the CPU (no image of the scale kernel loads: see kernel)".into(),
                None => format!(
                    "{} → cuda scale → {}",
                    if engines.nvdec_h264() {
                        "nvdec"
                    } else {
                        "cpu decode"
                    },
                    if engines.nvenc_h264() {
                        "nvenc"
                    } else {
                        "cpu encode (libx264)"
                    }
                ),
            };
            Ok(GpuDevice {
                index: i as usize,
                name,
                compute_capability: format!("{major}.{minor}"),
                memory_mib: mem as u64 >> 20,
                engines,
                path,
            })
        })
        .collect()
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
    let (devices, reason) = match devices() {
        _ if !driver => (
            Vec::new(),
            Some("not available: libcuda.so.1 not found (no NVIDIA driver on this machine)".into()),
        ),
        Ok(d) if d.is_empty() => (
            Vec::new(),
            Some("not available: the driver reports no CUDA device".into()),
        ),
        Ok(d) => (d, None),
        Err(e) => (Vec::new(), Some(format!("not available: {e}"))),
    };
    let driver_cuda = devices.first().and_then(|_| {
        let mut v = 0i32;
        // SAFETY: the driver is loaded and initialised (devices were listed); `v` is a local.
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) }
            .result()
            .ok()?;
        Some(format!("{}.{}", v / 1000, (v % 1000) / 10))
    });
    let video_libraries = (driver && !(libraries[1].found && libraries[2].found))
        .then(|| video_capability_hint(std::env::var("NVIDIA_DRIVER_CAPABILITIES").ok()));
    CudaInfo {
        available: reason.is_none(),
        reason,
        libraries,
        kernel_cubins: kernels::embedded_architectures("scale_nv12"),
        driver_cuda,
        devices,
        video_libraries,
    }
}

/// Real-gpu-rules.md R13: inside a container the NVIDIA runtime mounts libnvcuvid and
/// libnvidia-encode only when NVIDIA_DRIVER_CAPABILITIES includes `video` (or `all`);
/// without them sessions quietly decode and encode on the CPU.
pub fn video_capability_hint(capabilities: Option<String>) -> String {
    let now = match capabilities {
        Some(c) => format!("it is '{c}'"),
        None => "it is not set, which means 'utility,compute'".into(),
    };
    format!(
        "the CUDA driver is here but NVDEC/NVENC libraries are not: in a container they are \
         mounted only when NVIDIA_DRIVER_CAPABILITIES includes 'video' ({now}); set it to \
         'compute,video,utility' or 'all' (go-livepeer's image uses 'all'). Until then sessions \
         decode and encode on the CPU"
    )
}

/// Free memory of CUDA device `index` in bytes (its primary context is made current).
pub fn free_memory(index: usize) -> Option<u64> {
    let ctx = context::context(index).ok()?;
    ctx.bind_to_thread().ok()?;
    cudarc::driver::result::mem_get_info()
        .ok()
        .map(|(free, _)| free as u64)
}

//! Which image of a kernel a device loads. The rules of the real driver
//! (real-gpu-rules.md R2; CUDA C Programming Guide, "Binary Compatibility" and "PTX
//! Compatibility"):
//! - a cubin for `sm_XY` loads only on a device of the same major version X whose minor
//!   version is at least Y (`CUDA_ERROR_NO_BINARY_FOR_GPU` otherwise);
//! - PTX for `compute_XY` is compiled by the driver for any device of compute capability at
//!   least X.Y, if the driver knows the PTX ISA version (`.version` 8.8 from NVRTC 12.9 needs
//!   a CUDA 12.9 driver; older ones answer `CUDA_ERROR_UNSUPPORTED_PTX_VERSION`);
//! - NVRTC is not part of the driver, so compiling at run time works only where libnvrtc is
//!   installed.
//!
//! So every candidate is tried in that order, and a failure moves on to the next one: the
//! newest fitting cubin, the other fitting cubins, the embedded PTX, NVRTC. A device that
//! none of them fits is "not available" for CUDA, with every candidate's reason.

use super::kernels;
use crate::error::{Error, Result};
use cudarc::driver::{sys, sys::CUdevice_attribute as A, CudaContext, CudaModule};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// One way to get a kernel onto a device.
#[derive(Debug, Clone, PartialEq)]
pub enum Image {
    /// An embedded cubin, by architecture (`sm_89`).
    Cubin(&'static str),
    /// The embedded PTX, by architecture (`compute_120`).
    Ptx(&'static str),
    /// The source, compiled by NVRTC for the device's architecture.
    Nvrtc(String),
}

impl std::fmt::Display for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Image::Cubin(a) => write!(f, "cubin {a}"),
            Image::Ptx(a) => write!(f, "PTX {a} (compiled by the driver)"),
            Image::Nvrtc(a) => write!(f, "NVRTC for {a}"),
        }
    }
}

fn arch_number(arch: &str) -> Option<i32> {
    arch.strip_prefix("sm_")
        .or_else(|| arch.strip_prefix("compute_"))?
        .parse()
        .ok()
}

/// The images of `kernel` that may load on a device of compute capability `major.minor`, in
/// the order to try them.
pub fn candidates(kernel: &str, major: i32, minor: i32) -> Vec<Image> {
    let device = major * 10 + minor;
    let mut cubins: Vec<(i32, &'static str)> = kernels::embedded_architectures(kernel)
        .into_iter()
        .filter_map(|a| arch_number(a).map(|n| (n, a)))
        .filter(|&(n, _)| n / 10 == major && n <= device)
        .collect();
    cubins.sort_by(|a, b| b.cmp(a));
    let mut v: Vec<Image> = cubins.into_iter().map(|(_, a)| Image::Cubin(a)).collect();
    if kernels::embedded(kernel, kernels::PTX_ARCH).is_some()
        && arch_number(kernels::PTX_ARCH).is_some_and(|n| n <= device)
    {
        v.push(Image::Ptx(kernels::PTX_ARCH));
    }
    v.push(Image::Nvrtc(format!("sm_{device}")));
    v
}

fn cuda_err(detail: String) -> Error {
    Error::Codec {
        stage: "cuda",
        detail,
    }
}

/// Loads `kernel` (whose source is `source`) into `ctx`: the first candidate image that the
/// driver takes, and which one it was. A device's module is loaded once per process (the
/// probe's load serves every session after it): the primary context it lives in is kept for
/// the process too (`super::context`), and a PTX JIT or NVRTC compile costs seconds.
pub fn load(
    ctx: &Arc<CudaContext>,
    kernel: &str,
    source: &str,
) -> Result<(Arc<CudaModule>, Image)> {
    type Table = HashMap<(usize, String), (Arc<CudaModule>, Image)>;
    static LOADED: OnceLock<Mutex<Table>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let key = (ctx.ordinal(), kernel.to_string());
    if let Some(m) = loaded.get(&key) {
        return Ok(m.clone());
    }
    let m = load_first_image(ctx, kernel, source)?;
    loaded.insert(key, m.clone());
    Ok(m)
}

fn load_first_image(
    ctx: &Arc<CudaContext>,
    kernel: &str,
    source: &str,
) -> Result<(Arc<CudaModule>, Image)> {
    let attr = |a| {
        ctx.attribute(a)
            .map_err(|e| cuda_err(format!("device attribute: {e}")))
    };
    let major = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    let mut failures = Vec::new();
    for image in candidates(kernel, major, minor) {
        let bytes = match &image {
            Image::Cubin(a) => kernels::embedded(kernel, a).expect("listed").to_vec(),
            Image::Ptx(a) => {
                let mut v = kernels::embedded(kernel, a).expect("listed").to_vec();
                v.push(0);
                v
            }
            Image::Nvrtc(a) => match super::nvrtc::compile(source, &format!("{kernel}.cu"), a) {
                Ok(c) => c.cubin,
                Err(e) => {
                    failures.push(format!("{image}: {}", first_line(&e.to_string())));
                    continue;
                }
            },
        };
        match ctx.load_module(cudarc::nvrtc::Ptx::from_binary(bytes)) {
            Ok(m) => return Ok((m, image)),
            Err(e) => {
                let hint = match e.0 {
                    sys::cudaError_enum::CUDA_ERROR_UNSUPPORTED_PTX_VERSION => {
                        " (the driver is older than the PTX: it needs CUDA 12.9, R575 or later)"
                    }
                    sys::cudaError_enum::CUDA_ERROR_NO_BINARY_FOR_GPU => " (not for this GPU)",
                    _ => "",
                };
                failures.push(format!("{image}: {e}{hint}"))
            }
        }
    }
    Err(cuda_err(format!(
        "not available: no image of the {kernel} kernel loads on this sm_{major}{minor} device \
         ({}); sessions there run on the CPU",
        failures.join("; ")
    )))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubins_of_the_same_major_not_above_the_device_then_ptx_then_nvrtc() {
        let built = !kernels::embedded_architectures("scale_nv12").is_empty();
        let c = candidates("scale_nv12", 8, 9);
        if built {
            assert_eq!(
                &c[..3],
                [
                    Image::Cubin("sm_89"),
                    Image::Cubin("sm_86"),
                    Image::Cubin("sm_80")
                ]
            );
            // compute_120 PTX is not for an sm_89 device.
            assert_eq!(c[3], Image::Nvrtc("sm_89".into()));
            // A newer minor of a known major takes the major's cubins.
            assert_eq!(candidates("scale_nv12", 10, 3)[0], Image::Cubin("sm_100"));
            // A later GPU has no cubin of its major: the PTX, then NVRTC.
            assert_eq!(
                candidates("scale_nv12", 13, 0),
                [Image::Ptx("compute_120"), Image::Nvrtc("sm_130".into())]
            );
            // Nothing of a newer minor (sm_61 does not load on 6.0).
            assert_eq!(
                candidates("scale_nv12", 6, 0),
                [Image::Nvrtc("sm_60".into())]
            );
        } else {
            assert_eq!(c, [Image::Nvrtc("sm_89".into())]);
        }
    }
}

//! Compiling the CUDA kernels with NVRTC (loaded at run time through cudarc; no GPU needed).
//! The test suite compiles every kernel for every target architecture with it and fails on
//! a compile error or a register spill; on a GPU machine without prebuilt cubins it compiles
//! for the device found.

use cudarc::nvrtc::{result, sys};
use std::ffi::CString;

/// Architectures the kernels are built for (one list, in build.rs): Pascal to Blackwell.
pub use super::kernels::ARCHITECTURES;

#[derive(Debug, thiserror::Error)]
pub enum NvrtcError {
    #[error("not available: libnvrtc not found (install nvidia-cuda-nvrtc-cu12; scripts/setup puts it in .venv and scripts/nvrtc-env prints its LD_LIBRARY_PATH)")]
    Missing,
    #[error("{name} for {arch}: {detail}\n{log}")]
    Compile {
        name: String,
        arch: String,
        detail: String,
        log: String,
    },
}

/// A kernel compiled for one architecture.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub arch: String,
    pub cubin: Vec<u8>,
    /// NVRTC's log, ptxas' resource usage included.
    pub log: String,
    /// Bytes of register spill stores + loads that ptxas reported.
    pub spill_bytes: u64,
    /// Registers per thread of the most demanding kernel.
    pub registers: u32,
}

/// Whether libnvrtc can be loaded.
#[cfg(feature = "runtime-loading")]
pub fn available() -> bool {
    // SAFETY: only tries to dlopen libnvrtc under its usual names; no NVRTC call is made.
    unsafe { sys::is_culib_present() }
}

/// Whether libnvrtc can be loaded: a build that links it only starts where it is.
#[cfg(not(feature = "runtime-loading"))]
pub fn available() -> bool {
    true
}

/// NVRTC's version, e.g. (12, 9).
pub fn version() -> Result<(i32, i32), NvrtcError> {
    if !available() {
        return Err(NvrtcError::Missing);
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (checked); both pointers are valid for writes.
    let r = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(NvrtcError::Missing);
    }
    Ok((major, minor))
}

/// Compiles `source` to a cubin for `arch` (`sm_XX`), with ptxas' verbose resource report.
pub fn compile(source: &str, name: &str, arch: &str) -> Result<Compiled, NvrtcError> {
    if !available() {
        return Err(NvrtcError::Missing);
    }
    let err = |detail: String, log: String| NvrtcError::Compile {
        name: name.into(),
        arch: arch.into(),
        detail,
        log,
    };
    let src = CString::new(source).map_err(|e| err(e.to_string(), String::new()))?;
    let cname = CString::new(name).map_err(|e| err(e.to_string(), String::new()))?;
    let prog = result::create_program(&src, Some(&cname))
        .map_err(|e| err(e.to_string(), String::new()))?;
    let opts = [
        format!("--gpu-architecture={arch}"),
        "--ptxas-options=-v".to_string(),
        "--std=c++17".to_string(),
    ];
    // SAFETY: `prog` was just created and is destroyed below, once; `src` and `cname`
    // outlive it.
    let compiled = unsafe { result::compile_program(prog, &opts) };
    // SAFETY: as above.
    let log = unsafe { result::get_program_log(prog) }
        .map(|l| {
            let bytes: Vec<u8> = l
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .unwrap_or_default();
    let out = match compiled {
        Ok(()) => cubin(prog).map_err(|e| err(e, log.clone())),
        Err(e) => Err(err(e.to_string(), log.clone())),
    };
    // SAFETY: `prog` is live and not used after this.
    let _ = unsafe { result::destroy_program(prog) };
    let cubin = out?;
    let (spill_bytes, registers) = resources(&log);
    Ok(Compiled {
        arch: arch.into(),
        cubin,
        log,
        spill_bytes,
        registers,
    })
}

fn cubin(prog: sys::nvrtcProgram) -> Result<Vec<u8>, String> {
    let mut size = 0usize;
    // SAFETY: `prog` is a live, compiled program; `size` is valid for writes.
    let r = unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) };
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(format!("nvrtcGetCUBINSize: {r:?}"));
    }
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` holds the `size` bytes NVRTC reported.
    let r = unsafe { sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut std::ffi::c_char) };
    if r != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(format!("nvrtcGetCUBIN: {r:?}"));
    }
    Ok(buf)
}

/// Spill bytes (stores + loads, summed over kernels) and the most registers any kernel uses,
/// from ptxas' `-v` lines: `Used 40 registers, …` and `N bytes spill stores, M bytes spill loads`.
pub fn resources(log: &str) -> (u64, u32) {
    let mut spill = 0u64;
    let mut regs = 0u32;
    for line in log.lines() {
        let words: Vec<&str> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        for (i, w) in words.iter().enumerate() {
            let num = || i.checked_sub(1).and_then(|j| words[j].parse::<u64>().ok());
            if *w == "registers" && i >= 2 && words[i - 2] == "Used" {
                regs = regs.max(num().unwrap_or(0) as u32);
            }
            if *w == "spill" {
                // "N bytes spill stores": the number is two words back.
                if let Some(n) = i.checked_sub(2).and_then(|j| words[j].parse::<u64>().ok()) {
                    spill += n;
                }
            }
        }
    }
    (spill, regs)
}

#[cfg(test)]
mod tests {
    use super::resources;

    #[test]
    fn reads_ptxas_resource_lines() {
        let log = "ptxas info    : Compiling entry function 'scale_nv12' for 'sm_90'\n\
                   ptxas info    : Function properties for scale_nv12\n\
                   \t8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
                   ptxas info    : Used 38 registers, used 0 barriers, 400 bytes cmem[0]\n";
        assert_eq!(resources(log), (16, 38));
        assert_eq!(
            resources("ptxas info: Used 12 registers\n0 bytes spill stores, 0 bytes spill loads"),
            (0, 12)
        );
    }
}

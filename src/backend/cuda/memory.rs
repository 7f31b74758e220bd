//! Device memory that owns its context, as cudarc's safe types do: every method and `Drop`
//! bind the context first, on whichever pool thread runs them.
//!
//! Two rules of the real driver decide how this memory is made (../shared/reference/
//! real-gpu-rules.md):
//! - R1: NVENC registers only memory from `cuMemAlloc`/`cuMemAllocPitch` (nvEncodeAPI.h,
//!   `NV_ENC_REGISTER_RESOURCE`; NVIDIA's NvEncoderCuda.cpp `AllocateInputBuffers`); it refuses
//!   stream-ordered pool memory (`cuMemAllocAsync`), which cudarc's `CudaStream::alloc` returns
//!   on every GPU with memory pools (T4, A10, L4, RTX 40xx, H100). So nothing here comes from a
//!   pool: [`DeviceMemory::alloc`] calls `cuMemAlloc`.
//! - R5: a free needs its context current. cudarc's `CudaSlice` frees without binding, and its
//!   `bind_to_thread` returns early (without binding) once an error was recorded; [`bind`] sets
//!   the context unconditionally.

use crate::error::{Error, Result};
use cudarc::driver::{result, sys, CudaContext, CudaStream};
use std::sync::Arc;

fn cuda_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Codec {
        stage: "cuda",
        detail: format!("{what}: {e}"),
    }
}

/// Makes `ctx` current on this thread, whatever errors cudarc recorded on it before.
pub fn bind(ctx: &CudaContext) -> Result<()> {
    // SAFETY: `ctx` holds a retained context for as long as it lives, so the handle is valid.
    unsafe { result::ctx::set_current(ctx.cu_ctx()) }.map_err(|e| cuda_err("bind context", e))
}

/// `len` bytes of device memory from `cuMemAlloc`, freed with its context current.
pub struct DeviceMemory {
    ctx: Arc<CudaContext>,
    ptr: sys::CUdeviceptr,
    len: usize,
}

impl std::fmt::Debug for DeviceMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceMemory({:#x}, {} bytes)", self.ptr, self.len)
    }
}

impl DeviceMemory {
    /// Allocates `len` bytes (at least one) on `ctx`'s device; the contents are undefined.
    pub fn alloc(ctx: &Arc<CudaContext>, len: usize) -> Result<Self> {
        bind(ctx)?;
        // SAFETY: the context is current; the pointer is owned by the value returned and freed
        // once, in Drop.
        let ptr = unsafe { result::malloc_sync(len.max(1)) }
            .map_err(|e| cuda_err(&format!("out of device memory ({len} bytes)"), e))?;
        Ok(DeviceMemory {
            ctx: ctx.clone(),
            ptr,
            len,
        })
    }

    /// Allocates `data.len()` bytes and copies `data` there on `stream` (finished when this
    /// returns).
    pub fn from_host(ctx: &Arc<CudaContext>, data: &[u8], stream: &CudaStream) -> Result<Self> {
        let mut m = DeviceMemory::alloc(ctx, data.len())?;
        m.upload(data, stream)?;
        stream
            .synchronize()
            .map_err(|e| cuda_err("synchronize", e))?;
        Ok(m)
    }

    /// The device address.
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Queues a copy of `data` to the start of this memory on `stream`. `data` must stay
    /// untouched until the stream is synchronised.
    pub fn upload(&mut self, data: &[u8], stream: &CudaStream) -> Result<()> {
        if data.len() > self.len {
            return Err(cuda_err(
                "upload",
                format!("{} bytes into {}", data.len(), self.len),
            ));
        }
        bind(&self.ctx)?;
        // SAFETY: the destination holds at least `data.len()` bytes (checked above); the caller
        // keeps `data` alive and unchanged until it synchronises `stream`.
        unsafe { result::memcpy_htod_async(self.ptr, data, stream.cu_stream()) }
            .map_err(|e| cuda_err("upload", e))
    }

    /// Queues a copy of the first `out.len()` bytes into `out` on `stream`. `out` must not be
    /// read until the stream is synchronised.
    pub fn download(&self, out: &mut [u8], stream: &CudaStream) -> Result<()> {
        if out.len() > self.len {
            return Err(cuda_err(
                "download",
                format!("{} bytes from {}", out.len(), self.len),
            ));
        }
        bind(&self.ctx)?;
        // SAFETY: the source holds at least `out.len()` bytes (checked above); the caller does
        // not read `out` before it synchronises `stream`.
        unsafe { result::memcpy_dtoh_async(out, self.ptr, stream.cu_stream()) }
            .map_err(|e| cuda_err("download", e))
    }
}

impl Drop for DeviceMemory {
    fn drop(&mut self) {
        // A failure here leaks the memory; the context is bound so that it cannot be for
        // want of one.
        if bind(&self.ctx).is_ok() {
            // SAFETY: `ptr` came from cuMemAlloc in this context and is freed once.
            if let Err(e) = unsafe { result::free_sync(self.ptr) } {
                tracing::warn!("cuMemFree of {:#x}: {e}", self.ptr);
            }
        }
    }
}

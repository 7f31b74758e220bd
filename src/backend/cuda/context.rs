//! One primary context per device for the worker's life.
//! - real-gpu-rules.md R8: cudarc releases the primary context when its last `CudaContext`
//!   goes, and the driver then resets it; the next session would pay context creation, module
//!   loads and NVDEC/NVENC set-up again. Every stage takes its context from here, and this
//!   table keeps one reference for as long as the process runs.
//! - R6: each stage makes its own non-blocking stream from it (`new_stream`); nothing runs on
//!   the legacy NULL stream, which would serialise every session on the GPU.
//! - R7: the context schedules with `CU_CTX_SCHED_BLOCKING_SYNC`, set before the first retain,
//!   so a thread that waits for the GPU (a stream synchronisation, an NVENC lock) sleeps instead
//!   of spinning a core that the CPU encoders need (the default, SCHED_AUTO, spins when there
//!   are fewer contexts than cores).

use cudarc::driver::{result, sys, CudaContext, DriverError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The primary context of CUDA device `ordinal`, retained for the life of the process, and
/// made current on this thread (as `CudaContext::new` makes it).
pub fn context(ordinal: usize) -> Result<Arc<CudaContext>, DriverError> {
    static TABLE: OnceLock<Mutex<HashMap<usize, Arc<CudaContext>>>> = OnceLock::new();
    let mut table = TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(c) = table.get(&ordinal) {
        // SAFETY: the table holds a retained context, so the handle is valid.
        unsafe { result::ctx::set_current(c.cu_ctx()) }?;
        return Ok(c.clone());
    }
    result::init()?;
    let device = result::device::get(ordinal as i32)?;
    let blocking = sys::CUctx_flags::CU_CTX_SCHED_BLOCKING_SYNC as u32;
    // SAFETY: `device` came from cuDeviceGet after cuInit; setting the flags of a primary
    // context has no other effect.
    if let Err(e) = unsafe { sys::cuDevicePrimaryCtxSetFlags_v2(device, blocking) }.result() {
        tracing::debug!("device {ordinal}: blocking synchronisation not set: {e}");
    }
    let ctx = CudaContext::new(ordinal)?;
    // SAFETY: nothing here uses cudarc's tracked `CudaSlice`s across streams: device memory is
    // `DeviceMemory`, ordered by the one stream each stage uses and its synchronisation. (With
    // tracking on, cudarc would also synchronise the whole context when the first stream is
    // made.)
    unsafe { ctx.disable_event_tracking() };
    table.insert(ordinal, ctx.clone());
    Ok(ctx)
}

//! Keeping the allocator's freed memory for the next tensor. candle allocates a fresh buffer
//! for every intermediate tensor, and with glibc's defaults freed memory at the top of an arena
//! is handed back to the kernel (trimmed, or `MADV_DONTNEED` for threads' arenas) as soon as
//! more than 128 KiB is free, so the next step's buffers fault in and zero the same pages again.
//! A 256 MiB top pad keeps that much free memory mapped in every arena, as PyTorch's caching
//! allocator keeps its blocks: the tiny model's 256×256 image takes 3.0 s instead of 4.5 s here
//! (BENCHMARKS.md, "Diffusion on the CPU"). A smaller pad (64 MiB), a larger mmap threshold or
//! no trimming alone did not help. Only the diffusion paths (`ai`, `--diffuse`) call this.

use std::sync::Once;

/// Free memory each arena keeps mapped.
const TOP_PAD: i32 = 256 << 20;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::os::raw::c_int;

    /// malloc.h's `M_TOP_PAD`.
    pub const M_TOP_PAD: c_int = -2;

    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }

    /// `mallopt(param, value)`; false when glibc refuses the value.
    pub fn set(param: c_int, value: c_int) -> bool {
        // SAFETY: mallopt only reads its two integer arguments and updates glibc's malloc
        // parameters under its own lock; it is safe to call from any thread at any time.
        unsafe { mallopt(param, value) == 1 }
    }
}

/// Tunes the process's allocator for tensor workloads (once; later calls do nothing).
pub fn keep_freed_memory() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if !glibc::set(glibc::M_TOP_PAD, TOP_PAD) {
            tracing::warn!("mallopt refused M_TOP_PAD; tensors are allocated as by default");
        }
    });
}

//! The CUDA kernels' sources and job tables. A [`ScalePlan`] (the same integer filter tables
//! the CPU scaler uses) becomes one job per output plane; each of the two passes of the scale
//! kernel (or its CPU twin), vertical then horizontal, runs every job of a frame in one
//! launch.

use crate::scale::{filter::FilterBank, ScalePlan};

/// `kernels/scale_nv12.cu` with its header inlined, for NVRTC.
pub const SCALE_NV12_CU: &str = include_str!(concat!(env!("OUT_DIR"), "/scale_nv12.combined.cu"));

include!(concat!(env!("OUT_DIR"), "/kernels_embedded.rs"));

/// The embedded binary of `kernel` for `arch` (`sm_XX` cubin or `compute_XX` PTX), if the
/// build had NVRTC.
pub fn embedded(kernel: &str, arch: &str) -> Option<&'static [u8]> {
    EMBEDDED
        .iter()
        .find(|(k, a, _)| *k == kernel && *a == arch)
        .map(|(_, _, b)| *b)
}

/// Architectures with an embedded cubin for `kernel`.
pub fn embedded_architectures(kernel: &str) -> Vec<&'static str> {
    EMBEDDED
        .iter()
        .filter(|(k, a, _)| *k == kernel && a.starts_with("sm_"))
        .map(|(_, a, _)| *a)
        .collect()
}

/// `kernels/color.cu` (NV12 ↔ planar RGB float) with its header inlined, for NVRTC.
pub const COLOR_CU: &str = include_str!(concat!(env!("OUT_DIR"), "/color.combined.cu"));

/// Every kernel source, by file name (for compile checks).
pub const SOURCES: &[(&str, &str)] = &[("scale_nv12.cu", SCALE_NV12_CU), ("color.cu", COLOR_CU)];

/// The argument of the color kernels, as `struct ColorFrame` in kernels/color.h.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ColorFrame {
    pub y: *mut u8,
    pub uv: *mut u8,
    pub rgb: *mut f32,
    pub pitch_y: i32,
    pub pitch_uv: i32,
    pub width: i32,
    pub height: i32,
}

// SAFETY: `ColorFrame` is #[repr(C)], made of pointers and i32s only (no references, no
// drop glue), laid out as `struct ColorFrame` in kernels/color.h: passing its bytes as a kernel
// parameter is what the kernel expects.
unsafe impl cudarc::driver::DeviceRepr for ColorFrame {}

/// Threads per block of the color kernels (x, y).
pub const COLOR_BLOCK: (u32, u32) = (16, 16);

/// Threads per block of both scale passes (x, y).
pub const SCALE_BLOCK: (u32, u32) = (32, 8);

/// One output plane, as `struct ScalePlaneJob` in kernels/scale_nv12.h. Pointers are device
/// pointers on a GPU and host pointers for the twin.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ScalePlaneJob {
    pub dst: *mut u8,
    pub hcoef: *const i16,
    pub hstart: *const i32,
    pub vcoef: *const i16,
    pub vstart: *const i32,
    pub inter: *mut i16,
    pub dst_pitch: i32,
    pub dst_w: i32,
    pub dst_h: i32,
    pub channels: i32,
    pub htaps: i32,
    pub vtaps: i32,
    pub inter_pitch: i32,
}

impl ScalePlaneJob {
    /// The job for one output plane: the banks give its size and taps, `tables` the addresses
    /// (host or device) of their arrays as `[hcoef, hstart, vcoef, vstart]`, `inter` the
    /// vertical pass's output as (address, source samples per row: the source plane's width
    /// times `channels`; `v.dst_len` rows), and `dst` the plane written as (address, pitch).
    pub fn new(
        h: &FilterBank,
        v: &FilterBank,
        tables: [u64; 4],
        inter: (u64, usize),
        dst: (*mut u8, usize),
        channels: i32,
    ) -> Self {
        let ((inter, src_samples), (dst, pitch)) = (inter, dst);
        ScalePlaneJob {
            dst,
            hcoef: tables[0] as *const i16,
            hstart: tables[1] as *const i32,
            vcoef: tables[2] as *const i16,
            vstart: tables[3] as *const i32,
            inter: inter as *mut i16,
            dst_pitch: pitch as i32,
            dst_w: h.dst_len as i32,
            dst_h: v.dst_len as i32,
            channels,
            htaps: h.taps as i32,
            vtaps: v.taps as i32,
            inter_pitch: src_samples as i32,
        }
    }
}

/// Source samples per row of each plane job (luma: the width; interleaved chroma: twice the
/// chroma width), in job order, and the intermediate rows (output height) of each.
pub fn intermediate_shapes(plan: &ScalePlan) -> Vec<(usize, usize)> {
    let (cw, _) = crate::scale::chroma_size(plan.src_width, plan.src_height);
    plan.outputs
        .iter()
        .flat_map(|o| {
            [
                (plan.src_width, o.luma_v.dst_len),
                (2 * cw, o.chroma_v.dst_len),
            ]
        })
        .collect()
}

/// Sizes of one output plane: (width in samples per channel, height, channels).
pub fn plane_shapes(plan: &ScalePlan) -> Vec<(usize, usize, usize)> {
    plan.outputs
        .iter()
        .flat_map(|o| {
            [
                (o.luma_h.dst_len, o.luma_v.dst_len, 1),
                (o.chroma_h.dst_len, o.chroma_v.dst_len, 2),
            ]
        })
        .collect()
}

/// The vertical pass's grid: the widest source plane by the tallest output, one z layer per
/// plane job.
pub fn vertical_grid(plan: &ScalePlan) -> (u32, u32, u32) {
    grid_over(&intermediate_shapes(plan))
}

/// The horizontal pass's grid: the largest output plane, one z layer per plane job.
pub fn horizontal_grid(plan: &ScalePlan) -> (u32, u32, u32) {
    let shapes: Vec<(usize, usize)> = plane_shapes(plan).iter().map(|s| (s.0, s.1)).collect();
    grid_over(&shapes)
}

/// Blocks covering the widest and the tallest of `shapes` (width, height), one z layer each.
fn grid_over(shapes: &[(usize, usize)]) -> (u32, u32, u32) {
    let w = shapes.iter().map(|s| s.0).max().unwrap_or(1) as u32;
    let h = shapes.iter().map(|s| s.1).max().unwrap_or(1) as u32;
    (
        w.div_ceil(SCALE_BLOCK.0),
        h.div_ceil(SCALE_BLOCK.1),
        shapes.len() as u32,
    )
}

/// The scale kernel's work for one frame of `plan`, in samples read and multiply-adds, for
/// the separable two passes and for the single pass they replaced (which recomputed the
/// vertical sum for every horizontal tap). Coefficient and start-table reads are left out (they
/// are per output row or column, and cached); zero taps are counted as the worst case.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CostModel {
    /// Single pass: source bytes read (htaps × vtaps per output sample).
    pub single_pass_reads: u64,
    pub single_pass_macs: u64,
    /// Vertical pass: source bytes read (vtaps per intermediate sample).
    pub vertical_reads: u64,
    /// Intermediate int16 samples written by the vertical pass and read by the horizontal
    /// (htaps per output sample).
    pub intermediate_writes: u64,
    pub horizontal_reads: u64,
    pub separable_macs: u64,
}

impl CostModel {
    pub fn of(plan: &ScalePlan) -> Self {
        let mut c = CostModel {
            single_pass_reads: 0,
            single_pass_macs: 0,
            vertical_reads: 0,
            intermediate_writes: 0,
            horizontal_reads: 0,
            separable_macs: 0,
        };
        let (cw, _) = crate::scale::chroma_size(plan.src_width, plan.src_height);
        for o in &plan.outputs {
            for (h, v, channels, samples) in [
                (&o.luma_h, &o.luma_v, 1, plan.src_width),
                (&o.chroma_h, &o.chroma_v, 2, 2 * cw),
            ] {
                let out = (h.dst_len * v.dst_len * channels) as u64;
                let (ht, vt) = (h.taps as u64, v.taps as u64);
                c.single_pass_reads += out * ht * vt;
                c.single_pass_macs += out * (ht * vt + ht);
                let inter = (samples * v.dst_len) as u64;
                c.vertical_reads += inter * vt;
                c.intermediate_writes += inter;
                c.horizontal_reads += out * ht;
                c.separable_macs += inter * vt + out * ht;
            }
        }
        c
    }

    /// Everything read and written by the two passes, against the single pass's reads.
    pub fn separable_traffic(&self) -> u64 {
        self.vertical_reads + self.intermediate_writes + self.horizontal_reads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scale::filter::DEFAULT_KERNEL;

    #[test]
    fn the_separable_passes_do_a_fraction_of_the_single_pass_work() {
        // The bench ladder from 1080p.
        let ladder = [(426, 240), (640, 360), (854, 480), (1280, 720)];
        let plan = ScalePlan::new(DEFAULT_KERNEL, (1920, 1080), &ladder);
        let c = CostModel::of(&plan);
        eprintln!("{c:?}");
        assert!(c.separable_traffic() * 3 < c.single_pass_reads, "{c:?}");
        assert!(c.separable_macs * 3 < c.single_pass_macs, "{c:?}");
    }
}

//! CPU twins of the CUDA kernels: the same `.cu` sources compiled as C++ (kernels/twin/),
//! run here to check the kernels' arithmetic against the Rust CPU scaler, and by the
//! simulated driver in place of a GPU launch.

use super::kernels::{plane_shapes, scale_grid, ScalePlaneJob, SCALE_BLOCK};
use crate::scale::ScalePlan;

extern "C" {
    fn gpuworker_twin_scale_nv12(
        grid_x: u32,
        grid_y: u32,
        grid_z: u32,
        block_x: u32,
        block_y: u32,
        src_y: *const u8,
        pitch_y: i32,
        src_uv: *const u8,
        pitch_uv: i32,
        src_w: i32,
        src_h: i32,
        jobs: *const ScalePlaneJob,
    );
}

/// An NV12 frame in host memory: a Y plane and an interleaved UV plane, each with a pitch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nv12 {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub pitch_y: usize,
    pub uv: Vec<u8>,
    pub pitch_uv: usize,
}

impl Nv12 {
    /// A zeroed frame; pitches are at least the row length.
    pub fn new(width: usize, height: usize, pitch_y: usize, pitch_uv: usize) -> Self {
        let (cw, ch) = crate::scale::chroma_size(width, height);
        assert!(pitch_y >= width && pitch_uv >= 2 * cw);
        Nv12 {
            width,
            height,
            y: vec![0; pitch_y * height],
            pitch_y,
            uv: vec![0; pitch_uv * ch],
            pitch_uv,
        }
    }
}

/// Scales `src` into every rendition of `plan` with the CPU twin of `scale_nv12`, one launch
/// for the whole ladder. Outputs are NV12 with pitches rounded up to 64 bytes.
pub fn scale_nv12(plan: &ScalePlan, src: &Nv12) -> Vec<Nv12> {
    assert_eq!((src.width, src.height), (plan.src_width, plan.src_height));
    let (cw, ch) = crate::scale::chroma_size(src.width, src.height);
    assert!(src.y.len() >= src.pitch_y * src.height && src.uv.len() >= src.pitch_uv * ch);
    assert!(src.pitch_y >= src.width && src.pitch_uv >= 2 * cw);
    let mut outs: Vec<Nv12> = plan
        .outputs
        .iter()
        .map(|o| {
            let (w, h) = (o.luma_h.dst_len, o.luma_v.dst_len);
            let (dcw, _) = crate::scale::chroma_size(w, h);
            Nv12::new(w, h, w.next_multiple_of(64), (2 * dcw).next_multiple_of(64))
        })
        .collect();
    let shapes = plane_shapes(plan);
    let mut jobs = Vec::with_capacity(shapes.len());
    for (o, out) in plan.outputs.iter().zip(outs.iter_mut()) {
        for (h, v, dst, pitch, channels) in [
            (&o.luma_h, &o.luma_v, out.y.as_mut_ptr(), out.pitch_y, 1),
            (
                &o.chroma_h,
                &o.chroma_v,
                out.uv.as_mut_ptr(),
                out.pitch_uv,
                2,
            ),
        ] {
            jobs.push(ScalePlaneJob {
                dst,
                hcoef: h.coef.as_ptr(),
                hstart: h.start.as_ptr(),
                vcoef: v.coef.as_ptr(),
                vstart: v.start.as_ptr(),
                dst_pitch: pitch as i32,
                dst_w: h.dst_len as i32,
                dst_h: v.dst_len as i32,
                channels,
                htaps: h.taps as i32,
                vtaps: v.taps as i32,
            });
        }
    }
    // Every window of the tables stays inside the source rows (checked, since the twin reads
    // raw pointers).
    for o in &plan.outputs {
        assert!(o.luma_v.end <= src.height && o.chroma_v.end <= ch);
    }
    let (gx, gy, gz) = scale_grid(plan);
    // SAFETY: every job points into a live output buffer of its plane's size (pitch × rows),
    // and at filter tables of `dst_w * htaps` / `dst_h * vtaps` entries owned by `plan`; the
    // kernel reads source rows `vstart..vstart + vtaps` (inside the source, checked above)
    // and columns below the plane width; `jobs` outlives the call.
    unsafe {
        gpuworker_twin_scale_nv12(
            gx,
            gy,
            gz,
            SCALE_BLOCK.0,
            SCALE_BLOCK.1,
            src.y.as_ptr(),
            src.pitch_y as i32,
            src.uv.as_ptr(),
            src.pitch_uv as i32,
            src.width as i32,
            src.height as i32,
            jobs.as_ptr(),
        )
    };
    outs
}

//! CPU twins of the CUDA kernels: the same `.cu` sources compiled as C++ (kernels/twin/),
//! run here to check the kernels' arithmetic against the Rust CPU scaler, and by the
//! simulated driver in place of a GPU launch.

use super::kernels::{
    horizontal_grid, intermediate_shapes, vertical_grid, ColorFrame, ScalePlaneJob, COLOR_BLOCK,
    SCALE_BLOCK,
};
use crate::scale::ScalePlan;

extern "C" {
    fn gpuworker_twin_scale_nv12(
        vgrid: *const u32,
        hgrid: *const u32,
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
    fn gpuworker_twin_nv12_to_rgb(
        grid_x: u32,
        grid_y: u32,
        block_x: u32,
        block_y: u32,
        f: ColorFrame,
    );
    fn gpuworker_twin_rgb_to_nv12(
        grid_x: u32,
        grid_y: u32,
        block_x: u32,
        block_y: u32,
        f: ColorFrame,
    );
}

/// Planar RGB floats from `src` with the CPU twin of `nv12_to_rgb`.
pub fn nv12_to_rgb(src: &Nv12) -> Vec<f32> {
    let (cw, ch) = crate::scale::chroma_size(src.width, src.height);
    assert!(src.y.len() >= src.pitch_y * src.height && src.uv.len() >= src.pitch_uv * ch);
    assert!(src.pitch_y >= src.width && src.pitch_uv >= 2 * cw);
    let mut rgb = vec![0f32; 3 * src.width * src.height];
    let f = ColorFrame {
        y: src.y.as_ptr() as *mut u8,
        uv: src.uv.as_ptr() as *mut u8,
        rgb: rgb.as_mut_ptr(),
        pitch_y: src.pitch_y as i32,
        pitch_uv: src.pitch_uv as i32,
        width: src.width as i32,
        height: src.height as i32,
    };
    let grid = (
        (src.width as u32).div_ceil(COLOR_BLOCK.0),
        (src.height as u32).div_ceil(COLOR_BLOCK.1),
    );
    // SAFETY: the kernel reads `width` bytes of each of `height` Y rows and `2 * cw` of each
    // of `ch` UV rows (sizes checked above; it never writes them) and writes the three planes
    // of `rgb`, which holds exactly 3 * width * height floats.
    unsafe { gpuworker_twin_nv12_to_rgb(grid.0, grid.1, COLOR_BLOCK.0, COLOR_BLOCK.1, f) };
    rgb
}

/// An NV12 frame (packed pitches) from planar RGB floats with the CPU twin of `rgb_to_nv12`.
pub fn rgb_to_nv12(rgb: &[f32], width: usize, height: usize) -> Nv12 {
    assert!(width > 0 && height > 0 && rgb.len() == 3 * width * height);
    let (cw, ch) = crate::scale::chroma_size(width, height);
    let mut out = Nv12::new(width, height, width, 2 * cw);
    let f = ColorFrame {
        y: out.y.as_mut_ptr(),
        uv: out.uv.as_mut_ptr(),
        rgb: rgb.as_ptr() as *mut f32,
        pitch_y: width as i32,
        pitch_uv: 2 * cw as i32,
        width: width as i32,
        height: height as i32,
    };
    // SAFETY: the kernel reads the three RGB planes (length checked) and writes the Y plane
    // (width × height) and the UV plane (2·cw × ch) of `out`, allocated with those pitches.
    unsafe {
        gpuworker_twin_rgb_to_nv12(
            cw.div_ceil(COLOR_BLOCK.0 as usize) as u32,
            ch.div_ceil(COLOR_BLOCK.1 as usize) as u32,
            COLOR_BLOCK.0,
            COLOR_BLOCK.1,
            f,
        )
    };
    out
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

/// Scales `src` into every rendition of `plan` with the CPU twin of the scale kernel's two
/// passes, one launch each for the whole ladder. Outputs are NV12 with pitches rounded up to
/// 64 bytes.
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
    let shapes = intermediate_shapes(plan);
    let mut inter: Vec<Vec<i16>> = shapes.iter().map(|&(w, h)| vec![0; w * h]).collect();
    let mut inter_ptrs = inter.iter_mut().zip(&shapes);
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
            let tables = [
                h.coef.as_ptr() as u64,
                h.start.as_ptr() as u64,
                v.coef.as_ptr() as u64,
                v.start.as_ptr() as u64,
            ];
            let (buf, &(samples, _)) = inter_ptrs.next().expect("a shape per job");
            let at = buf.as_mut_ptr() as u64;
            jobs.push(ScalePlaneJob::new(
                h,
                v,
                tables,
                (at, samples),
                (dst, pitch),
                channels,
            ));
        }
    }
    // Every window of the tables stays inside the source rows (checked, since the twin reads
    // raw pointers).
    for o in &plan.outputs {
        assert!(o.luma_v.end <= src.height && o.chroma_v.end <= ch);
    }
    let (v, h) = (vertical_grid(plan), horizontal_grid(plan));
    // SAFETY: every job points into a live output buffer of its plane's size (pitch × rows),
    // a live intermediate of `dst_h * inter_pitch` int16s (`inter`), and filter tables of
    // `dst_w * htaps` / `dst_h * vtaps` entries owned by `plan`; the vertical pass reads
    // source rows `vstart..vstart + vtaps` (inside the source, checked above) and samples
    // below the plane's width; `jobs` and `inter` outlive the call.
    unsafe {
        gpuworker_twin_scale_nv12(
            [v.0, v.1, v.2].as_ptr(),
            [h.0, h.1, h.2].as_ptr(),
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

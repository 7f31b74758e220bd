//! NV12 ↔ planar RGB float conversions for the diffusion stage: the Rust reference of
//! `kernels/color.cu`, with the same integer arithmetic (BT.709, limited range; see
//! kernels/color.h), so the kernels and their CPU twins must match it bit for bit.

fn clamp_u8(v: i32) -> i32 {
    v.clamp(0, 255)
}

/// Planar RGB (`[R plane, G plane, B plane]`, each `width * height`, values in [0, 1]) from an
/// NV12 frame.
pub fn nv12_to_rgb(
    y: &[u8],
    pitch_y: usize,
    uv: &[u8],
    pitch_uv: usize,
    width: usize,
    height: usize,
) -> Vec<f32> {
    let plane = width * height;
    let mut rgb = vec![0f32; 3 * plane];
    for row in 0..height {
        for x in 0..width {
            let c = y[row * pitch_y + x] as i32 - 16;
            let at = (row / 2) * pitch_uv + (x / 2) * 2;
            let (d, e) = (uv[at] as i32 - 128, uv[at + 1] as i32 - 128);
            let r = clamp_u8((298 * c + 459 * e + 128) >> 8);
            let g = clamp_u8((298 * c - 55 * d - 136 * e + 128) >> 8);
            let b = clamp_u8((298 * c + 541 * d + 128) >> 8);
            let i = row * width + x;
            rgb[i] = r as f32 / 255.0;
            rgb[plane + i] = g as f32 / 255.0;
            rgb[2 * plane + i] = b as f32 / 255.0;
        }
    }
    rgb
}

fn quantize(v: f32) -> i32 {
    // `as i32` truncates toward zero like C's (int) cast (and saturates; C's is undefined
    // outside the range, which clamp_u8's inputs never reach for finite model outputs).
    clamp_u8((v * 255.0 + 0.5) as i32)
}

/// An NV12 frame (Y with pitch `width`, UV with pitch `2 * ceil(width / 2)`) from planar RGB.
pub fn rgb_to_nv12(rgb: &[f32], width: usize, height: usize) -> (Vec<u8>, Vec<u8>) {
    let plane = width * height;
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let (mut y, mut uv) = (vec![0u8; plane], vec![0u8; 2 * cw * ch]);
    for by in 0..ch {
        for bx in 0..cw {
            let (mut sr, mut sg, mut sb) = (0, 0, 0);
            for dy in 0..2 {
                for dx in 0..2 {
                    let x = (2 * bx + dx).min(width - 1);
                    let row = (2 * by + dy).min(height - 1);
                    let i = row * width + x;
                    let (r, g, b) = (
                        quantize(rgb[i]),
                        quantize(rgb[plane + i]),
                        quantize(rgb[2 * plane + i]),
                    );
                    if 2 * bx + dx < width && 2 * by + dy < height {
                        y[row * width + x] = (((47 * r + 157 * g + 16 * b + 128) >> 8) + 16) as u8;
                    }
                    (sr, sg, sb) = (sr + r, sg + g, sb + b);
                }
            }
            let (r, g, b) = ((sr + 2) >> 2, (sg + 2) >> 2, (sb + 2) >> 2);
            let at = by * 2 * cw + 2 * bx;
            uv[at] = (((-26 * r - 87 * g + 112 * b + 128) >> 8) + 128) as u8;
            uv[at + 1] = (((112 * r - 102 * g - 10 * b + 128) >> 8) + 128) as u8;
        }
    }
    (y, uv)
}

//! Float64 reference resampler: the same geometry (pixel centres, clamp-to-edge) evaluated in
//! double precision with no intermediate rounding. Quality tests and `gpuworker psnr` measure
//! every scaler (ours, swscale) against it.

use super::filter::{float_weights, Kernel};
use super::Plane;

/// Downscales (or upscales) one plane; returns a tightly packed `dst_w * dst_h` plane.
pub fn scale_plane(src: Plane<'_>, dst_w: usize, dst_h: usize, kernel: Kernel) -> Vec<u8> {
    let hw: Vec<(usize, Vec<f64>)> = (0..dst_w)
        .map(|x| float_weights(kernel, src.width, dst_w, x))
        .collect();
    let vw: Vec<(usize, Vec<f64>)> = (0..dst_h)
        .map(|y| float_weights(kernel, src.height, dst_h, y))
        .collect();
    let mut tmp = vec![0f64; dst_w * src.height];
    for y in 0..src.height {
        let row = &src.data[y * src.stride..y * src.stride + src.width];
        for (x, (first, w)) in hw.iter().enumerate() {
            tmp[y * dst_w + x] = w
                .iter()
                .enumerate()
                .map(|(k, c)| row[first + k] as f64 * c)
                .sum();
        }
    }
    let mut out = vec![0u8; dst_w * dst_h];
    for y in 0..dst_h {
        let (first, w) = &vw[y];
        for x in 0..dst_w {
            let v: f64 = w
                .iter()
                .enumerate()
                .map(|(k, c)| tmp[(first + k) * dst_w + x] * c)
                .sum();
            out[y * dst_w + x] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Peak signal-to-noise ratio of two equally sized 8-bit planes, in dB (capped at 100).
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "psnr of planes of different sizes");
    let sse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum();
    psnr_from_mse(sse / a.len().max(1) as f64)
}

/// PSNR in dB for a mean squared error over 8-bit samples (capped at 100).
pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse <= 1e-10 {
        100.0
    } else {
        (10.0 * (255.0f64 * 255.0 / mse).log10()).min(100.0)
    }
}

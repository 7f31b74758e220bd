//! Fixed-point separable resampling filters, shared by every scaler backend.
//!
//! A [`FilterBank`] maps `dst_len` output samples to windows of the source: output `i` reads
//! `taps` source samples from `start[i]` with weights `coef[i * taps ..]` that sum to exactly
//! `1 << COEF_BITS`. The tables are computed once on the host in `f64` and then used as integers
//! everywhere (Rust portable path, SIMD paths, CUDA kernel), which is what makes all backends
//! agree bit for bit.
//!
//! The arithmetic contract, identical in every implementation (vertical pass first, so the
//! wide pass over full source rows is the one that vectorises best):
//! * vertical pass: `inter = clamp_i16((Σ_k src[start + k][x] * coef[k] + (1 << (V_SHIFT - 1))) >> V_SHIFT)`
//!   (`i32` accumulator, arithmetic shift);
//! * horizontal pass: `out = clamp((Σ_k inter[start + k] * coef[k] + (1 << (H_SHIFT - 1))) >> H_SHIFT, 0, 255)`.

/// Fractional bits of a coefficient.
pub const COEF_BITS: u32 = 14;
/// Right shift after the vertical pass: the intermediate keeps `COEF_BITS - V_SHIFT` = 6
/// fractional bits, so it fits `i16` with room for the kernel's overshoot.
pub const V_SHIFT: u32 = 8;
/// Right shift after the horizontal pass.
pub const H_SHIFT: u32 = COEF_BITS + (COEF_BITS - V_SHIFT);

/// The resampling kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    /// Windowed sinc with `a` lobes, widened by the downscale factor (antialiased).
    Lanczos(u32),
    /// Mitchell–Netravali family cubic with parameters B and C (swscale's default is B=0, C=0.6).
    Cubic { b: f64, c: f64 },
}

/// The kernel every backend uses by default (see README: quality against the float64 reference).
pub const DEFAULT_KERNEL: Kernel = Kernel::Lanczos(3);

impl Kernel {
    /// Support radius in units of (widened) source samples.
    pub fn radius(self) -> f64 {
        match self {
            Kernel::Lanczos(a) => a as f64,
            Kernel::Cubic { .. } => 2.0,
        }
    }

    /// Kernel weight at distance `x`.
    pub fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Kernel::Lanczos(a) => {
                let a = a as f64;
                if x < 1e-12 {
                    1.0
                } else if x >= a {
                    0.0
                } else {
                    let px = std::f64::consts::PI * x;
                    a * px.sin() * (px / a).sin() / (px * px)
                }
            }
            Kernel::Cubic { b, c } => {
                if x < 1.0 {
                    ((12.0 - 9.0 * b - 6.0 * c) * x * x * x
                        + (-18.0 + 12.0 * b + 6.0 * c) * x * x
                        + (6.0 - 2.0 * b))
                        / 6.0
                } else if x < 2.0 {
                    ((-b - 6.0 * c) * x * x * x
                        + (6.0 * b + 30.0 * c) * x * x
                        + (-12.0 * b - 48.0 * c) * x
                        + (8.0 * b + 24.0 * c))
                        / 6.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// Real-valued weights of one output sample over the source, edges folded in (clamp-to-edge).
/// Returns `(first source index, weights)`; the weights sum to 1 and lie inside `0..src_len`.
pub fn float_weights(
    kernel: Kernel,
    src_len: usize,
    dst_len: usize,
    i: usize,
) -> (usize, Vec<f64>) {
    let scale = src_len as f64 / dst_len as f64;
    let stretch = scale.max(1.0);
    let center = (i as f64 + 0.5) * scale - 0.5;
    let radius = kernel.radius() * stretch;
    let lo = (center - radius).floor() as i64 + 1;
    let hi = (center + radius).ceil() as i64 - 1;
    let mut w = vec![0.0f64; src_len];
    let mut first = src_len - 1;
    let mut last = 0;
    let mut sum = 0.0;
    for j in lo..=hi {
        let v = kernel.weight((j as f64 - center) / stretch);
        let idx = j.clamp(0, src_len as i64 - 1) as usize;
        w[idx] += v;
        sum += v;
        first = first.min(idx);
        last = last.max(idx);
    }
    if lo > hi || sum.abs() < 1e-12 {
        // Degenerate (cannot happen with the kernels above); fall back to nearest sample.
        let idx = (center.round().max(0.0) as usize).min(src_len - 1);
        return (idx, vec![1.0]);
    }
    (
        first,
        w[first..=last].iter().map(|v| v / sum).collect::<Vec<_>>(),
    )
}

/// Integer filter tables for one dimension of one plane.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterBank {
    pub src_len: usize,
    pub dst_len: usize,
    /// Coefficients per output sample (a multiple of `align`).
    pub taps: usize,
    /// First source sample of each output's window.
    pub start: Vec<i32>,
    /// One past the last sample any window reads: `max(start) + taps`.
    pub end: usize,
    /// `dst_len * taps` coefficients; each row sums to `1 << COEF_BITS`.
    pub coef: Vec<i16>,
}

impl FilterBank {
    /// Builds the table. `align` pads `taps` to a multiple (SIMD-friendly horizontal filters);
    /// with `fit` every window is moved inside `0..src_len` (vertical filters, which must not
    /// read past the last row), otherwise a window may run up to `taps - 1` samples past the
    /// end with zero weights (horizontal filters read from a zero-padded row).
    pub fn new(kernel: Kernel, src_len: usize, dst_len: usize, align: usize, fit: bool) -> Self {
        assert!(src_len > 0 && dst_len > 0, "empty plane");
        let rows: Vec<(usize, Vec<i16>)> = (0..dst_len)
            .map(|i| {
                let (first, w) = float_weights(kernel, src_len, dst_len, i);
                (first, quantize(&w))
            })
            .collect();
        let widest = rows.iter().map(|r| r.1.len()).max().unwrap_or(1);
        let mut taps = widest.div_ceil(align) * align;
        if fit {
            taps = taps.min(src_len);
        }
        let mut start = Vec::with_capacity(dst_len);
        let mut coef = vec![0i16; dst_len * taps];
        for (i, (first, q)) in rows.iter().enumerate() {
            let s = if fit {
                (*first).min(src_len - taps)
            } else {
                *first
            };
            let offset = first - s;
            coef[i * taps + offset..i * taps + offset + q.len()].copy_from_slice(q);
            start.push(s as i32);
        }
        FilterBank {
            src_len,
            dst_len,
            taps,
            end: start.iter().map(|&s| s as usize).max().unwrap_or(0) + taps,
            start,
            coef,
        }
    }

    /// The coefficients of output `i`.
    pub fn row(&self, i: usize) -> &[i16] {
        &self.coef[i * self.taps..(i + 1) * self.taps]
    }
}

/// Rounds weights to `COEF_BITS` fixed point so that they sum exactly to `1 << COEF_BITS`;
/// the rounding error goes to the largest weight.
fn quantize(w: &[f64]) -> Vec<i16> {
    let one = (1i32 << COEF_BITS) as f64;
    let mut q: Vec<i32> = w.iter().map(|v| (v * one).round() as i32).collect();
    let err = (1i32 << COEF_BITS) - q.iter().sum::<i32>();
    let (imax, _) = q
        .iter()
        .enumerate()
        .max_by_key(|(_, v)| **v)
        .expect("non-empty filter");
    q[imax] += err;
    q.iter().map(|&v| v as i16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_to_one_and_fit() {
        for &(s, d) in &[
            (1920, 426),
            (1080, 240),
            (1920, 1280),
            (7, 3),
            (3, 7),
            (5, 5),
            (1, 4),
        ] {
            for fit in [false, true] {
                let b = FilterBank::new(DEFAULT_KERNEL, s, d, 8, fit);
                for i in 0..d {
                    assert_eq!(
                        b.row(i).iter().map(|&c| c as i32).sum::<i32>(),
                        1 << COEF_BITS
                    );
                    if fit {
                        assert!(b.start[i] as usize + b.taps <= s);
                    }
                }
            }
        }
    }

    #[test]
    fn identity_is_a_copy() {
        let b = FilterBank::new(DEFAULT_KERNEL, 17, 17, 1, true);
        for i in 0..17 {
            let row = b.row(i);
            let k = i - b.start[i] as usize;
            assert_eq!(row[k], 1 << COEF_BITS);
        }
    }
}

//! The CPU multi-rendition scaler. One top-to-bottom sweep over the source: as soon as the
//! source rows of an output row's window have been reached, that row is filtered vertically
//! (straight from the source rows, which are still in cache, into one `i16` row) and then
//! horizontally into the rendition. Every rendition is produced in the same sweep, so each
//! source row is fetched from memory once per frame.
//!
//! The arithmetic is the contract in [`crate::scale::filter`]; the portable functions here are
//! the reference, and the x86 SIMD paths in `scale_x86` must match them bit for bit.

use crate::scale::filter::{FilterBank, H_SHIFT, V_SHIFT};
use crate::scale::{Destinations, Layout, Plane, PlaneId, PlaneMut, ScalePlan, SrcFrame};

/// Which implementation of the two inner loops to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Plain Rust, written so LLVM can vectorise it; the reference for all others.
    Portable,
    /// x86-64 AVX2.
    Avx2,
}

impl Kernels {
    /// The fastest implementation this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Kernels::Avx2;
        }
        Kernels::Portable
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernels::Portable => "portable",
            Kernels::Avx2 => "avx2",
        }
    }

    pub fn vfilter(self, src: &[u8], offsets: &[usize], coef: &[i16], out: &mut [i16]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => super::scale_x86::vfilter_avx2(src, offsets, coef, out),
            _ => vfilter_portable(src, offsets, coef, out),
        }
    }

    pub fn hfilter(self, inter: &[i16], bank: &FilterBank, out: &mut [u8]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => super::scale_x86::hfilter_avx2(inter, bank, out),
            _ => hfilter_portable(inter, bank, out),
        }
    }
}

/// Vertical pass: `out[x] = Σ_k src[offsets[k] + x] * coef[k]`, rounded and shifted.
pub fn vfilter_portable(src: &[u8], offsets: &[usize], coef: &[i16], out: &mut [i16]) {
    vfilter_portable_from(src, offsets, coef, out, 0);
}

/// The vertical pass for outputs `from..` (the SIMD paths finish a row's tail with it).
pub fn vfilter_portable_from(
    src: &[u8],
    offsets: &[usize],
    coef: &[i16],
    out: &mut [i16],
    from: usize,
) {
    const CHUNK: usize = 64;
    let width = out.len();
    let mut x0 = from;
    while x0 < width {
        let n = CHUNK.min(width - x0);
        let mut acc = [1i32 << (V_SHIFT - 1); CHUNK];
        for (&off, &c) in offsets.iter().zip(coef) {
            let row = &src[off + x0..off + x0 + n];
            for (a, &v) in acc[..n].iter_mut().zip(row) {
                *a += v as i32 * c as i32;
            }
        }
        for (o, &a) in out[x0..x0 + n].iter_mut().zip(&acc[..n]) {
            *o = (a >> V_SHIFT).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
        }
        x0 += n;
    }
}

/// Horizontal pass over one intermediate row, which must hold at least `start[i] + taps`
/// samples for every output `i` (zero padding past the source width).
pub fn hfilter_portable(inter: &[i16], bank: &FilterBank, out: &mut [u8]) {
    hfilter_portable_from(inter, bank, out, 0);
}

/// The horizontal pass for outputs `from..`.
pub fn hfilter_portable_from(inter: &[i16], bank: &FilterBank, out: &mut [u8], from: usize) {
    let taps = bank.taps;
    for (i, o) in out.iter_mut().enumerate().take(bank.dst_len).skip(from) {
        let s = bank.start[i] as usize;
        let acc: i32 = inter[s..s + taps]
            .iter()
            .zip(bank.row(i))
            .map(|(&p, &c)| p as i32 * c as i32)
            .sum();
        *o = ((acc + (1 << (H_SHIFT - 1))) >> H_SHIFT).clamp(0, 255) as u8;
    }
}

/// The CPU scaler for one source size and one ladder. Allocates only at construction.
#[derive(Debug)]
pub struct CpuScaler {
    plan: ScalePlan,
    kernels: Kernels,
    /// Vertically filtered row (interleaved UV for NV12), then deinterleaved U and V rows;
    /// each zero-padded for the horizontal windows.
    inter: [Vec<i16>; 3],
    offsets: Vec<usize>,
    next_row: Vec<usize>,
}

impl CpuScaler {
    pub fn new(plan: ScalePlan, kernels: Kernels) -> Self {
        let pad = plan
            .outputs
            .iter()
            .map(|o| o.luma_h.taps.max(o.chroma_h.taps))
            .max()
            .unwrap_or(0);
        let len = plan.src_width + 2 + pad;
        CpuScaler {
            inter: [vec![0; len], vec![0; len], vec![0; len]],
            offsets: Vec::new(),
            next_row: vec![0; plan.outputs.len()],
            plan,
            kernels,
        }
    }

    pub fn plan(&self) -> &ScalePlan {
        &self.plan
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Scales `src` into every rendition of the plan; rendition `i` of `dst` must have the
    /// size of output `i`. Allocates nothing.
    pub fn scale<D: Destinations + ?Sized>(&mut self, src: &SrcFrame<'_>, dst: &mut D) {
        assert_eq!(
            (src.width, src.height),
            (self.plan.src_width, self.plan.src_height),
            "source size differs from the scale plan"
        );
        assert_eq!(
            dst.count(),
            self.plan.outputs.len(),
            "one destination per rendition"
        );
        self.sweep(src.planes[0].expect("luma plane"), Target::Y, dst);
        match src.layout {
            Layout::I420 => {
                self.sweep(src.planes[1].expect("U plane"), Target::U, dst);
                self.sweep(src.planes[2].expect("V plane"), Target::V, dst);
            }
            Layout::Nv12 => self.sweep(src.planes[1].expect("UV plane"), Target::Uv, dst),
        }
    }

    /// One sweep over a source plane into the matching plane of each rendition (both chroma
    /// planes when the source interleaves them, as NV12's UV does).
    fn sweep<D: Destinations + ?Sized>(&mut self, src: Plane<'_>, into: Target, dst: &mut D) {
        let kernels = self.kernels;
        let chroma = into != Target::Y;
        let interleaved = src.width; // samples per row, both channels for NV12
        self.next_row.fill(0);
        for y in 0..src.height {
            for r in 0..self.plan.outputs.len() {
                let f = &self.plan.outputs[r];
                let (hb, vb) = if chroma {
                    (&f.chroma_h, &f.chroma_v)
                } else {
                    (&f.luma_h, &f.luma_v)
                };
                while self.next_row[r] < vb.dst_len
                    && vb.start[self.next_row[r]] as usize + vb.taps - 1 <= y
                {
                    let j = self.next_row[r];
                    let start = vb.start[j] as usize;
                    self.offsets.clear();
                    self.offsets
                        .extend((0..vb.taps).map(|k| (start + k) * src.stride));
                    let [inter, u, v] = &mut self.inter;
                    kernels.vfilter(
                        src.data,
                        &self.offsets,
                        vb.row(j),
                        &mut inter[..interleaved],
                    );
                    match into {
                        Target::Y => {
                            kernels.hfilter(inter, hb, row_mut(&mut dst.plane(r, PlaneId::Y), j))
                        }
                        Target::U => {
                            kernels.hfilter(inter, hb, row_mut(&mut dst.plane(r, PlaneId::U), j))
                        }
                        Target::V => {
                            kernels.hfilter(inter, hb, row_mut(&mut dst.plane(r, PlaneId::V), j))
                        }
                        Target::Uv => {
                            let half = interleaved / 2;
                            for (x, pair) in inter[..half * 2].chunks_exact(2).enumerate() {
                                u[x] = pair[0];
                                v[x] = pair[1];
                            }
                            let (mut pu, mut pv) = dst.chroma(r);
                            kernels.hfilter(u, hb, row_mut(&mut pu, j));
                            kernels.hfilter(v, hb, row_mut(&mut pv, j));
                        }
                    }
                    self.next_row[r] += 1;
                }
            }
        }
        debug_assert!(self.next_row.iter().zip(&self.plan.outputs).all(|(&n, o)| n
            == if chroma {
                o.chroma_v.dst_len
            } else {
                o.luma_v.dst_len
            }));
    }
}

/// Which destination plane(s) a sweep writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Y,
    U,
    V,
    /// An interleaved UV source row, split into U and V.
    Uv,
}

/// Row `j` of a destination plane.
fn row_mut<'a>(p: &'a mut PlaneMut<'_>, j: usize) -> &'a mut [u8] {
    let at = j * p.stride;
    &mut p.data[at..at + p.width]
}

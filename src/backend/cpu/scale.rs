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
    /// x86-64 AVX2. (An AVX-512BW vertical pass was tried: no measurable gain on Zen 4,
    /// which runs 512-bit operations as two 256-bit halves.)
    Avx2,
}

impl Kernels {
    /// The fastest implementation this CPU supports.
    pub fn detect() -> Self {
        *Kernels::available()
            .last()
            .expect("portable is always available")
    }

    /// Every implementation this CPU supports, slowest (the portable reference) first.
    pub fn available() -> Vec<Self> {
        let mut v = vec![Kernels::Portable];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            v.push(Kernels::Avx2);
        }
        v
    }

    /// The implementation named `name` (`portable`, `avx2`), if this CPU has it.
    pub fn by_name(name: &str) -> Option<Self> {
        Kernels::available().into_iter().find(|k| k.name() == name)
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

    /// Horizontal pass over `rows` (≤ [`BLOCK_ROWS`]) intermediate rows of `block`, `stride`
    /// apart, into destination rows `j0 ..`.
    #[allow(clippy::too_many_arguments)]
    pub fn hfilter_block(
        self,
        block: &[i16],
        stride: usize,
        rows: usize,
        bank: &HBank,
        scratch: &mut BlockScratch,
        dst: &mut PlaneMut<'_>,
        j0: usize,
    ) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => super::scale_x86::hfilter_block_avx2(
                block,
                stride,
                rows,
                &bank.pairs,
                &mut scratch.t,
                &mut scratch.out_t,
                dst,
                j0,
            ),
            _ => {
                for r in 0..rows {
                    let row = &block[r * stride..(r + 1) * stride];
                    hfilter_portable(row, &bank.bank, row_mut(dst, j0 + r));
                }
            }
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

/// Intermediate rows per horizontal block.
pub const BLOCK_ROWS: usize = 16;

/// A horizontal filter bank with what the block filter of each kernel set needs.
#[derive(Debug, Clone)]
pub struct HBank {
    pub bank: FilterBank,
    #[cfg(target_arch = "x86_64")]
    pairs: super::scale_x86::PairTable,
}

impl HBank {
    fn new(bank: &FilterBank) -> Self {
        HBank {
            #[cfg(target_arch = "x86_64")]
            pairs: super::scale_x86::PairTable::new(bank),
            bank: bank.clone(),
        }
    }
}

/// Scratch space of the block filter (transposed block, transposed output).
#[derive(Debug, Default)]
pub struct BlockScratch {
    t: Vec<i16>,
    out_t: Vec<u8>,
}

/// The CPU scaler for one source size and one ladder. Allocates only at construction.
#[derive(Debug)]
pub struct CpuScaler {
    plan: ScalePlan,
    kernels: Kernels,
    /// Per rendition: luma and chroma horizontal banks.
    hbanks: Vec<[HBank; 2]>,
    /// Per rendition: blocks of vertically filtered rows waiting for the horizontal pass, the
    /// second for V when an NV12 source's UV rows are split. Rows are `stride` long and
    /// zero-padded past the source width for the horizontal windows.
    blocks: Vec<[Vec<i16>; 2]>,
    stride: usize,
    /// One vertically filtered interleaved UV row (NV12).
    inter: Vec<i16>,
    scratch: BlockScratch,
    offsets: Vec<usize>,
    next_row: Vec<usize>,
}

impl CpuScaler {
    pub fn new(plan: ScalePlan, kernels: Kernels) -> Self {
        let hbanks: Vec<[HBank; 2]> = plan
            .outputs
            .iter()
            .map(|o| [HBank::new(&o.luma_h), HBank::new(&o.chroma_h)])
            .collect();
        let mut reach = plan.src_width + 2;
        for [l, c] in &hbanks {
            reach = reach.max(l.bank.end).max(c.bank.end);
            #[cfg(target_arch = "x86_64")]
            {
                reach = reach.max(l.pairs.end).max(c.pairs.end);
            }
        }
        let stride = reach.next_multiple_of(8);
        let widest = plan
            .outputs
            .iter()
            .map(|o| o.luma_h.dst_len)
            .max()
            .unwrap_or(0);
        let n = plan.outputs.len();
        CpuScaler {
            hbanks,
            blocks: (0..n)
                .map(|_| [vec![0; BLOCK_ROWS * stride], vec![0; BLOCK_ROWS * stride]])
                .collect(),
            stride,
            inter: vec![0; stride],
            scratch: BlockScratch {
                t: vec![0; BLOCK_ROWS * stride],
                out_t: vec![0; widest.next_multiple_of(16) * BLOCK_ROWS],
            },
            offsets: Vec::new(),
            next_row: vec![0; n],
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
        let CpuScaler {
            plan,
            kernels,
            hbanks,
            blocks,
            stride,
            inter,
            scratch,
            offsets,
            next_row,
        } = self;
        let (kernels, stride) = (*kernels, *stride);
        let chroma = into != Target::Y;
        let interleaved = src.width; // samples per row, both channels for NV12
        next_row.fill(0);
        let plane = |t: Target| match t {
            Target::Y => PlaneId::Y,
            Target::U | Target::Uv => PlaneId::U,
            Target::V => PlaneId::V,
        };
        for y in 0..src.height {
            for r in 0..plan.outputs.len() {
                let vb = if chroma {
                    &plan.outputs[r].chroma_v
                } else {
                    &plan.outputs[r].luma_v
                };
                while next_row[r] < vb.dst_len && vb.start[next_row[r]] as usize + vb.taps - 1 <= y
                {
                    let j = next_row[r];
                    let slot = j % BLOCK_ROWS;
                    let start = vb.start[j] as usize;
                    offsets.clear();
                    offsets.extend((0..vb.taps).map(|k| (start + k) * src.stride));
                    let [first, second] = &mut blocks[r];
                    let bank = &hbanks[r][usize::from(chroma)];
                    let row = slot * stride..slot * stride + interleaved / 2;
                    if into == Target::Uv {
                        let inter = &mut inter[..interleaved];
                        kernels.vfilter(src.data, offsets, vb.row(j), inter);
                        let (u, v) = (&mut first[row.clone()], &mut second[row]);
                        for ((pair, u), v) in inter.chunks_exact(2).zip(u).zip(v) {
                            *u = pair[0];
                            *v = pair[1];
                        }
                    } else {
                        let out = &mut first[slot * stride..slot * stride + interleaved];
                        kernels.vfilter(src.data, offsets, vb.row(j), out);
                    }
                    next_row[r] += 1;
                    if slot == BLOCK_ROWS - 1 || j + 1 == vb.dst_len {
                        // The block is full (or the plane done): horizontal pass.
                        let (j0, rows) = (j - slot, slot + 1);
                        let mut p = dst.plane(r, plane(into));
                        kernels.hfilter_block(first, stride, rows, bank, scratch, &mut p, j0);
                        if into == Target::Uv {
                            let mut v = dst.plane(r, PlaneId::V);
                            kernels.hfilter_block(second, stride, rows, bank, scratch, &mut v, j0);
                        }
                    }
                }
            }
        }
        debug_assert!(next_row.iter().zip(&plan.outputs).all(|(&n, o)| n
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

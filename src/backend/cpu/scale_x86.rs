//! AVX2 versions of the scaler's two inner loops. They compute exactly what the portable
//! functions in `scale` compute (integer arithmetic, same rounding, same saturation); the
//! `simd_matches_portable` tests compare them on random data.

use super::scale::{hfilter_portable_from, vfilter_portable_from};
use crate::scale::filter::{FilterBank, H_SHIFT, V_SHIFT};
use std::arch::x86_64::*;

/// Longest vertical window the SIMD path takes (a 4096-row source scaled to 50 rows needs 492).
const MAX_VTAPS: usize = 512;

/// Vertical pass, thirty-two outputs at a time, two source rows per multiply-add.
pub fn vfilter_avx2(src: &[u8], offsets: &[usize], coef: &[i16], out: &mut [i16]) {
    assert!(std::arch::is_x86_feature_detected!("avx2"));
    assert_eq!(offsets.len(), coef.len());
    assert!(offsets.iter().all(|&o| o + out.len() <= src.len()));
    if offsets.len() > MAX_VTAPS {
        return vfilter_portable_from(src, offsets, coef, out, 0);
    }
    // SAFETY: AVX2 is present, and every row read `src[off .. off + out.len()]` is in bounds
    // (checked above); stores stay inside `out`.
    unsafe { vfilter_avx2_inner(src, offsets, coef, out) }
}

#[target_feature(enable = "avx2")]
unsafe fn vfilter_avx2_inner(src: &[u8], offsets: &[usize], coef: &[i16], out: &mut [i16]) {
    let width = out.len();
    let taps = offsets.len();
    // Coefficient pairs (c[k], c[k + 1]) as the i32 lanes madd wants, computed once per row.
    let mut pairs = [0i32; MAX_VTAPS / 2];
    for (p, c) in pairs.iter_mut().zip(coef.chunks(2)) {
        *p = ((c.get(1).copied().unwrap_or(0) as u16 as i32) << 16) | c[0] as u16 as i32;
    }
    let round = _mm256_set1_epi32(1 << (V_SHIFT - 1));
    let base = src.as_ptr();
    let widen = |p: *const u8| _mm256_cvtepu8_epi16(_mm_loadu_si128(p as *const __m128i));
    let mut x = 0;
    // 32 outputs per iteration: two independent accumulator sets share each broadcast.
    while x + 32 <= width {
        let (mut lo0, mut hi0, mut lo1, mut hi1) = (round, round, round, round);
        let mut k = 0;
        while k < taps {
            let p0 = base.add(offsets[k] + x);
            let (a0, a1) = (widen(p0), widen(p0.add(16)));
            let (b0, b1) = if k + 1 < taps {
                let p1 = base.add(offsets[k + 1] + x);
                (widen(p1), widen(p1.add(16)))
            } else {
                (_mm256_setzero_si256(), _mm256_setzero_si256())
            };
            let pair = _mm256_set1_epi32(pairs[k / 2]);
            lo0 = _mm256_add_epi32(lo0, _mm256_madd_epi16(_mm256_unpacklo_epi16(a0, b0), pair));
            hi0 = _mm256_add_epi32(hi0, _mm256_madd_epi16(_mm256_unpackhi_epi16(a0, b0), pair));
            lo1 = _mm256_add_epi32(lo1, _mm256_madd_epi16(_mm256_unpacklo_epi16(a1, b1), pair));
            hi1 = _mm256_add_epi32(hi1, _mm256_madd_epi16(_mm256_unpackhi_epi16(a1, b1), pair));
            k += 2;
        }
        // unpacklo/hi split each 128-bit lane, and packs re-joins them in order.
        let pack = |lo: __m256i, hi: __m256i| {
            _mm256_packs_epi32(
                _mm256_srai_epi32::<{ V_SHIFT as i32 }>(lo),
                _mm256_srai_epi32::<{ V_SHIFT as i32 }>(hi),
            )
        };
        _mm256_storeu_si256(out.as_mut_ptr().add(x) as *mut __m256i, pack(lo0, hi0));
        _mm256_storeu_si256(out.as_mut_ptr().add(x + 16) as *mut __m256i, pack(lo1, hi1));
        x += 32;
    }
    vfilter_portable_from(src, offsets, coef, out, x);
}

/// Horizontal pass, four outputs at a time, sixteen (then eight) taps per multiply-add.
pub fn hfilter_avx2(inter: &[i16], bank: &FilterBank, out: &mut [u8]) {
    assert!(std::arch::is_x86_feature_detected!("avx2"));
    assert!(inter.len() >= bank.end && out.len() >= bank.dst_len);
    assert_eq!(bank.taps % 8, 0);
    // SAFETY: AVX2 is present (checked above), and every read is inside `inter` because
    // `start[i] + taps <= inter.len()` for all i (checked above).
    unsafe { hfilter_avx2_inner(inter, bank, out) }
}

#[target_feature(enable = "avx2")]
unsafe fn hfilter_avx2_inner(inter: &[i16], bank: &FilterBank, out: &mut [u8]) {
    let taps = bank.taps;
    let dot = |i: usize| -> __m128i {
        let s = inter.as_ptr().add(bank.start[i] as usize);
        let c = bank.coef.as_ptr().add(i * taps);
        let mut acc = _mm256_setzero_si256();
        let mut k = 0;
        while k + 16 <= taps {
            let px = _mm256_loadu_si256(s.add(k) as *const __m256i);
            let cf = _mm256_loadu_si256(c.add(k) as *const __m256i);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(px, cf));
            k += 16;
        }
        let mut acc = _mm_add_epi32(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256::<1>(acc),
        );
        if k < taps {
            let px = _mm_loadu_si128(s.add(k) as *const __m128i);
            let cf = _mm_loadu_si128(c.add(k) as *const __m128i);
            acc = _mm_add_epi32(acc, _mm_madd_epi16(px, cf));
        }
        acc
    };
    let round = _mm_set1_epi32(1 << (H_SHIFT - 1));
    let n = bank.dst_len;
    let mut i = 0;
    while i + 4 <= n {
        let s01 = _mm_hadd_epi32(dot(i), dot(i + 1));
        let s23 = _mm_hadd_epi32(dot(i + 2), dot(i + 3));
        let sum =
            _mm_srai_epi32::<{ H_SHIFT as i32 }>(_mm_add_epi32(_mm_hadd_epi32(s01, s23), round));
        let words = _mm_packs_epi32(sum, sum);
        let bytes = _mm_packus_epi16(words, words);
        std::ptr::write_unaligned(
            out.as_mut_ptr().add(i) as *mut i32,
            _mm_cvtsi128_si32(bytes),
        );
        i += 4;
    }
    hfilter_portable_from(inter, bank, out, i);
}

/// One round of a perfect-shuffle transpose of 8 registers: register j interleaved with j + 4.
/// Three rounds transpose an 8 x 8 matrix of 16-bit values.
macro_rules! shuffle8 {
    ($v:expr, $lo:ident, $hi:ident) => {{
        let v = $v;
        [
            $lo(v[0], v[4]),
            $hi(v[0], v[4]),
            $lo(v[1], v[5]),
            $hi(v[1], v[5]),
            $lo(v[2], v[6]),
            $hi(v[2], v[6]),
            $lo(v[3], v[7]),
            $hi(v[3], v[7]),
        ]
    }};
}

/// One round for 16 registers of bytes (j with j + 8); four rounds transpose 16 x 16 bytes.
macro_rules! shuffle16 {
    ($v:expr) => {{
        let v = $v;
        [
            _mm_unpacklo_epi8(v[0], v[8]),
            _mm_unpackhi_epi8(v[0], v[8]),
            _mm_unpacklo_epi8(v[1], v[9]),
            _mm_unpackhi_epi8(v[1], v[9]),
            _mm_unpacklo_epi8(v[2], v[10]),
            _mm_unpackhi_epi8(v[2], v[10]),
            _mm_unpacklo_epi8(v[3], v[11]),
            _mm_unpackhi_epi8(v[3], v[11]),
            _mm_unpacklo_epi8(v[4], v[12]),
            _mm_unpackhi_epi8(v[4], v[12]),
            _mm_unpacklo_epi8(v[5], v[13]),
            _mm_unpackhi_epi8(v[5], v[13]),
            _mm_unpacklo_epi8(v[6], v[14]),
            _mm_unpackhi_epi8(v[6], v[14]),
            _mm_unpacklo_epi8(v[7], v[15]),
            _mm_unpackhi_epi8(v[7], v[15]),
        ]
    }};
}

/// Rows per horizontal block.
pub const BLOCK_ROWS: usize = 16;

/// A horizontal filter bank as the block filter reads it: for each output, the pairs of
/// adjacent taps with a nonzero coefficient, as (first sample, `c[k] | c[k + 1] << 16`).
#[derive(Debug, Clone)]
pub struct PairTable {
    index: Vec<u32>,
    pairs: Vec<(u32, i32)>,
    /// One past the last sample any pair reads.
    pub end: usize,
}

impl PairTable {
    pub fn new(bank: &FilterBank) -> Self {
        let mut index = Vec::with_capacity(bank.dst_len + 1);
        let mut pairs = Vec::new();
        let mut end = 0;
        for i in 0..bank.dst_len {
            index.push(pairs.len() as u32);
            let c = bank.row(i);
            let s = bank.start[i] as usize;
            let Some(k0) = c.iter().position(|&v| v != 0) else {
                continue;
            };
            let k1 = c.iter().rposition(|&v| v != 0).expect("a nonzero tap");
            let mut k = k0;
            while k <= k1 {
                let c1 = c.get(k + 1).copied().unwrap_or(0);
                pairs.push((
                    (s + k) as u32,
                    ((c1 as u16 as i32) << 16) | c[k] as u16 as i32,
                ));
                end = end.max(s + k + 2);
                k += 2;
            }
        }
        index.push(pairs.len() as u32);
        PairTable { index, pairs, end }
    }
}

/// Horizontal pass over a block of up to [`BLOCK_ROWS`] intermediate rows (`stride` apart,
/// zero-padded to `stride`), into rows `j0 .. j0 + rows` of `dst`. The block is transposed so
/// that each source column is one vector of 16 rows; every output column is then a weighted
/// sum of columns (the vertical pass's shape: no horizontal reductions, no padded taps), and
/// the result is transposed back. `t` and `out_t` are scratch space.
#[allow(clippy::too_many_arguments)]
pub fn hfilter_block_avx2(
    block: &[i16],
    stride: usize,
    rows: usize,
    table: &PairTable,
    t: &mut [i16],
    out_t: &mut [u8],
    dst: &mut crate::scale::PlaneMut<'_>,
    j0: usize,
) {
    assert!(std::arch::is_x86_feature_detected!("avx2"));
    assert!(stride % 8 == 0 && table.end <= stride);
    assert!(block.len() >= BLOCK_ROWS * stride && t.len() >= BLOCK_ROWS * stride);
    let n = table.index.len() - 1;
    assert!(n == dst.width && out_t.len() >= n.div_ceil(16) * 16 * BLOCK_ROWS);
    assert!((1..=BLOCK_ROWS).contains(&rows) && j0 + rows <= dst.height);
    assert!((j0 + rows - 1) * dst.stride + dst.width <= dst.data.len());
    // SAFETY: AVX2 is present; the block and `t` hold BLOCK_ROWS rows of `stride` samples,
    // every pair reads samples below `table.end <= stride` (checked above), `out_t` holds 16
    // bytes per output rounded up to 16 outputs, and the destination rows are in bounds.
    unsafe { hfilter_block_inner(block, stride, rows, table, t, out_t, dst, j0) }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
unsafe fn hfilter_block_inner(
    block: &[i16],
    stride: usize,
    rows: usize,
    table: &PairTable,
    t: &mut [i16],
    out_t: &mut [u8],
    dst: &mut crate::scale::PlaneMut<'_>,
    j0: usize,
) {
    // 1. Transpose: t[x * 16 + r] = block[r * stride + x], in 8 x 8 tiles. Three rounds of
    // interleaving register j with j + 4 turn rows into columns (a perfect shuffle).
    let (bp, tp) = (block.as_ptr(), t.as_mut_ptr());
    for x0 in (0..stride).step_by(8) {
        for half in 0..2 {
            let row =
                |r: usize| _mm_loadu_si128(bp.add((half * 8 + r) * stride + x0) as *const __m128i);
            let mut v = [
                row(0),
                row(1),
                row(2),
                row(3),
                row(4),
                row(5),
                row(6),
                row(7),
            ];
            v = shuffle8!(v, _mm_unpacklo_epi16, _mm_unpackhi_epi16);
            v = shuffle8!(v, _mm_unpacklo_epi16, _mm_unpackhi_epi16);
            v = shuffle8!(v, _mm_unpacklo_epi16, _mm_unpackhi_epi16);
            for (c, col) in v.iter().enumerate() {
                _mm_storeu_si128(tp.add((x0 + c) * 16 + half * 8) as *mut __m128i, *col);
            }
        }
    }
    // 2. Each output column for all 16 rows at once: Σ pairs (t[x], t[x + 1]) · (c0, c1).
    let round = _mm256_set1_epi32(1 << (H_SHIFT - 1));
    let tp = t.as_ptr();
    let op = out_t.as_mut_ptr();
    let n = table.index.len() - 1;
    for i in 0..n {
        let (mut lo, mut hi) = (round, round);
        let (p0, p1) = (table.index[i] as usize, table.index[i + 1] as usize);
        for &(x, cp) in table.pairs.get_unchecked(p0..p1) {
            let a = _mm256_loadu_si256(tp.add(x as usize * 16) as *const __m256i);
            let b = _mm256_loadu_si256(tp.add(x as usize * 16 + 16) as *const __m256i);
            let c = _mm256_set1_epi32(cp);
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), c));
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), c));
        }
        // lo: rows 0-3 | 8-11, hi: rows 4-7 | 12-15; packs restores row order per lane.
        let w = _mm256_packs_epi32(
            _mm256_srai_epi32::<{ H_SHIFT as i32 }>(lo),
            _mm256_srai_epi32::<{ H_SHIFT as i32 }>(hi),
        );
        let bytes = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi16(w, w));
        _mm_storeu_si128(
            op.add(i * 16) as *mut __m128i,
            _mm256_castsi256_si128(bytes),
        );
    }
    // 3. Transpose back, 16 columns at a time (four rounds of byte interleaving), into rows.
    let full = n / 16 * 16;
    for i0 in (0..full).step_by(16) {
        let col = |k: usize| _mm_loadu_si128(op.add((i0 + k) * 16) as *const __m128i);
        let mut v = [
            col(0),
            col(1),
            col(2),
            col(3),
            col(4),
            col(5),
            col(6),
            col(7),
            col(8),
            col(9),
            col(10),
            col(11),
            col(12),
            col(13),
            col(14),
            col(15),
        ];
        v = shuffle16!(v);
        v = shuffle16!(v);
        v = shuffle16!(v);
        v = shuffle16!(v);
        for (r, row) in v.iter().enumerate().take(rows) {
            let at = (j0 + r) * dst.stride + i0;
            _mm_storeu_si128(dst.data.as_mut_ptr().add(at) as *mut __m128i, *row);
        }
    }
    for i in full..n {
        for r in 0..rows {
            dst.data[(j0 + r) * dst.stride + i] = out_t[i * 16 + r];
        }
    }
}

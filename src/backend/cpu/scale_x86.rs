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
    let max_end = bank.start.iter().map(|&s| s as usize).max().unwrap_or(0) + bank.taps;
    assert!(inter.len() >= max_end && out.len() >= bank.dst_len);
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

// SPDX-License-Identifier: GPL-2.0-or-later
// A port of FFmpeg's libavfilter/signature_lookup.c and of livepeer/FFmpeg's
// `binary_import`/`compare_signbuffer` (libavfilter/vf_signature.c), Copyright (c) 2017
// Gerion Entrup and the FFmpeg and Livepeer authors, GPL-2.0-or-later like them; the rest of
// gpuworker is MIT OR Apache-2.0 (README, "Licensing").

//! What a gateway does with two transcoders' signatures: lpms `CompareSignatureByBuffer`
//! (ffmpeg/ffmpeg.go:373-387) → `lpms_compare_sign_bybuffer` (ffmpeg/extras.c) →
//! `avfilter_compare_sign_bybuff` of livepeer/FFmpeg at d9751c73 (the commit lpms's
//! install_ffmpeg.sh pins): `binary_import` of both buffers (libavfilter/vf_signature.c) and
//! `lookup_signatures` in full mode (libavfilter/signature_lookup.c) with th_d 9000, th_dc
//! 60000, th_xh **150** (Livepeer's change for go-livepeer#2654), th_di 0 and th_it 0 (0.5
//! assigned to an int field). The port keeps the C code's integer arithmetic and its quirks
//! (integer Jaccard distance, unsigned slope division, state that carries over between
//! candidates), because a gateway's verdict is what it is, quirks included.

/// The three outcomes of `lpms_compare_sign_bybuffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 0: no match (the gateway suspends the untrusted orchestrator).
    NoMatch,
    /// 1: part of the videos match.
    Partial,
    /// 2: the whole videos match.
    Whole,
}

/// A buffer that is not a binary MPEG-7 signature (lpms `ErrSignCompare`, "InvalidSignData").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("InvalidSignData")]
pub struct InvalidSignData;

impl Verdict {
    /// What `CompareSignatureByBuffer` returns as its bool: any match.
    pub fn matches(self) -> bool {
        self != Verdict::NoMatch
    }
}

const COARSE_SIZE: usize = 90;
const HOUGH_MAX_OFFSET: i32 = 90;
const MAX_FRAMERATE: usize = 60;
const FINESIG_BITS: i64 = 689;
const TH_WORD_DIST: i32 = 9000;
const TH_COMPOS_DIST: i32 = 60000;
const TH_L1: i32 = 150;
const TH_DI: i32 = 0;
const TH_IT: i32 = 0;

const DIR_PREV: i32 = 0;
const DIR_NEXT: i32 = 1;
const DIR_PREV_END: i32 = 2;
const DIR_NEXT_END: i32 = 3;
const STATUS_END_REACHED: i32 = 1;
const STATUS_BEGIN_REACHED: i32 = 2;

struct Fine {
    pts: u64,
    confidence: u8,
    framesig: [u8; 76],
}

struct Coarse {
    data: [[u8; 31]; 5],
    first: usize,
}

/// One imported signature: fine signatures form a list in file order (`next` = i + 1).
struct Stream {
    fines: Vec<Fine>,
    coarse: Vec<Coarse>,
}

/// FFmpeg's checked GetBitContext: big-endian bits, the index stops 8 bits past the end,
/// bits past the end read as 0.
struct Bits<'a> {
    buf: &'a [u8],
    index: i64,
    total: i64,
}

impl Bits<'_> {
    fn get(&mut self, n: u32) -> u64 {
        let mut v = 0u64;
        for _ in 0..n {
            let i = self.index;
            let bit = if i >= 0 && i < self.total {
                (self.buf[(i / 8) as usize] >> (7 - i % 8)) & 1
            } else {
                0
            };
            v = v << 1 | u64::from(bit);
            self.index = (self.index + 1).min(self.total + 8);
        }
        v
    }

    fn skip(&mut self, n: u32) {
        self.index = (self.index + i64::from(n)).min(self.total + 8);
    }
}

/// livepeer/FFmpeg `binary_import`.
fn import(buf: &[u8]) -> Result<Stream, InvalidSignData> {
    let total = buf.len() as i64 * 8;
    let mut b = Bits {
        buf,
        index: 0,
        total,
    };
    b.skip(32 + 1 + 16 * 2); // regions, location flag, PixelX_1, PixelY_1
    b.skip(16 + 16); // width - 1, height - 1
    b.skip(32); // StartFrameOfSpatialRegion
    b.skip(32); // NumOfFrames (replaced by the count the data holds)
    b.skip(16); // MediaTimeUnit
    b.skip(1 + 32 * 2);
    let segments = b.get(32);
    if segments == 0 {
        return Err(InvalidSignData);
    }
    let mut bounds = Vec::new();
    let mut coarse = Vec::new();
    for _ in 0..segments {
        b.skip(32 + 32); // StartFrameOfSegment, EndFrameOfSegment (indices, not used)
        b.skip(1);
        let first_pts = b.get(32);
        let last_pts = b.get(32);
        let mut data = [[0u8; 31]; 5];
        for word in &mut data {
            for byte in word.iter_mut().take(30) {
                *byte = b.get(8) as u8;
            }
            word[30] = (b.get(3) as u8) << 5;
        }
        if total - b.index <= 0 {
            return Err(InvalidSignData);
        }
        bounds.push((first_pts, last_pts));
        coarse.push(data);
    }
    b.skip(1); // CompressionFlag
    let count = (total - b.index) / FINESIG_BITS;
    if count <= 0 {
        return Err(InvalidSignData);
    }
    let mut fines = Vec::with_capacity(count as usize);
    for _ in 0..count {
        b.skip(1);
        let pts = b.get(32);
        let confidence = b.get(8) as u8;
        b.skip(5 * 8); // words (used for the coarse signatures only)
        let mut framesig = [0u8; 76];
        for x in &mut framesig {
            *x = b.get(8) as u8;
        }
        fines.push(Fine {
            pts,
            confidence,
            framesig,
        });
    }
    // Each coarse signature starts at the first fine signature at or after its start time
    // (there is no upper bound, as in the C code).
    let coarse = coarse
        .into_iter()
        .zip(bounds)
        .map(|(data, (first_pts, last_pts))| {
            let from = first_pts.min(last_pts);
            let first = fines
                .iter()
                .position(|f| f.pts >= from)
                .ok_or(InvalidSignData)?;
            Ok(Coarse { data, first })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Stream { fines, coarse })
}

/// The table, built once.
fn l1_lut() -> &'static [u8] {
    static LUT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    LUT.get_or_init(l1_table)
}

/// Ternary L1 distances between every pair of 5-trit bytes (`fill_l1distlut`).
fn l1_table() -> Vec<u8> {
    let mut lut = Vec::with_capacity(243 * 242 / 2);
    for i in 0..242i32 {
        for j in i + 1..243 {
            let (mut a, mut b, mut d) = (i, j, 0u8);
            loop {
                d += (b % 3 - a % 3).unsigned_abs() as u8;
                b /= 3;
                a /= 3;
                if a == 0 && b == 0 {
                    break;
                }
            }
            lut.push(d);
        }
    }
    lut
}

struct Lookup {
    lut: &'static [u8],
}

#[derive(Clone, Copy)]
struct Candidate {
    framerate_ratio: f64,
    score: usize,
    first: usize,
    second: usize,
}

#[derive(Clone, Copy)]
struct Best {
    meandist: f64,
    score: usize,
    whole: bool,
}

impl Lookup {
    fn l1(&self, a: &[u8; 76], b: &[u8; 76]) -> i32 {
        let mut dist = 0i32;
        for (&f, &s) in a.iter().zip(b) {
            if f == s {
                continue;
            }
            let (hi, lo) = (i32::from(f.max(s)), i32::from(f.min(s)));
            let idx = 243 * 242 / 2 - (243 - lo) * (242 - lo) / 2 + hi - lo - 1;
            // Bytes above 242 are not ternary words; C would read past its table there.
            dist += i32::from(self.lut.get(idx as usize).copied().unwrap_or(0));
        }
        dist
    }

    /// `get_jaccarddist`: the integer division makes each distance 0 or 1.
    fn coarse_pair_good(a: &Coarse, b: &Coarse) -> bool {
        let (mut compos, mut wide) = (0i32, 0);
        for (x, y) in a.data.iter().zip(&b.data) {
            let inter: u32 = x.iter().zip(y).map(|(p, q)| (p & q).count_ones()).sum();
            let mut d = inter as i32;
            if d > 0 {
                let union: u32 = x.iter().zip(y).map(|(p, q)| (p | q).count_ones()).sum();
                d /= union as i32;
            }
            if d >= TH_WORD_DIST {
                wide += 1;
                if wide > 2 {
                    return false;
                }
            }
            compos += d;
            if compos > TH_COMPOS_DIST {
                return false;
            }
        }
        true
    }

    /// `find_next_coarsecandidate` over indices into the two coarse lists.
    fn next_coarse(s1: &Stream, s2: &Stream, c: &mut (usize, usize), start: bool) -> bool {
        let step = |c: &mut (usize, usize)| {
            if c.1 + 1 < s2.coarse.len() {
                c.1 += 1;
                true
            } else if c.0 + 1 < s1.coarse.len() {
                c.1 = 0;
                c.0 += 1;
                true
            } else {
                false
            }
        };
        if !start && !step(c) {
            return false;
        }
        loop {
            if Self::coarse_pair_good(&s1.coarse[c.0], &s2.coarse[c.1]) {
                return true;
            }
            if !step(c) {
                return false;
            }
        }
    }

    /// `get_matching_parameters`: L1-close frame pairs, then a Hough transform over frame
    /// rate ratio and offset.
    fn candidates(&self, s1: &Stream, s2: &Stream, f0: usize, g0: usize) -> Vec<Candidate> {
        #[derive(Clone)]
        struct Pair {
            dist: i32,
            a: usize,
            b: Vec<(u8, usize)>,
        }
        let mut pairs: Vec<Pair> = Vec::with_capacity(COARSE_SIZE);
        let mut f = f0;
        while pairs.len() < COARSE_SIZE && f + 1 < s1.fines.len() {
            let mut p = Pair {
                dist: 99999,
                a: f,
                b: Vec::new(),
            };
            let mut s = g0;
            let mut j = 0u8;
            while usize::from(j) < COARSE_SIZE && s + 1 < s2.fines.len() {
                let d = self.l1(&s1.fines[f].framesig, &s2.fines[s].framesig);
                if d < TH_L1 {
                    if d < p.dist {
                        p.dist = d;
                        p.b.clear();
                        p.b.push((j, s));
                    } else if d == p.dist {
                        p.b.push((j, s));
                    }
                }
                j += 1;
                s += 1;
            }
            pairs.push(p);
            f += 1;
        }
        pairs.resize(
            COARSE_SIZE,
            Pair {
                dist: 99999,
                a: 0,
                b: Vec::new(),
            },
        );
        #[derive(Clone, Copy)]
        struct Cell {
            dist: i32,
            score: usize,
            ab: Option<(usize, usize)>,
        }
        let width = 2 * HOUGH_MAX_OFFSET as usize + 1;
        let mut hough = vec![
            Cell {
                dist: 99999,
                score: 0,
                ab: None
            };
            MAX_FRAMERATE * width
        ];
        let mut hmax = 0usize;
        for i in 0..COARSE_SIZE {
            for &(bpos_i, b_i) in &pairs[i].b {
                for k in i + 1..COARSE_SIZE {
                    for &(bpos_k, b_k) in &pairs[k].b {
                        if b_i == b_k {
                            continue;
                        }
                        let diff = i32::from(bpos_k) - i32::from(bpos_i);
                        // C divides by a size_t: a negative difference becomes a huge
                        // slope, whose conversion to int gives INT_MIN on x86-64: skipped.
                        if diff < 0 {
                            continue;
                        }
                        let m = (diff as usize / (k - i)) as f64;
                        let framerate = (m * 30.0 + 0.5).round_ties_even() as i32;
                        if framerate <= 0 || framerate > MAX_FRAMERATE as i32 {
                            continue;
                        }
                        let offset =
                            i32::from(bpos_i) - (m * i as f64 + 0.5).round_ties_even() as i32;
                        if offset <= -HOUGH_MAX_OFFSET || offset >= HOUGH_MAX_OFFSET {
                            continue;
                        }
                        let cell = &mut hough[(framerate as usize - 1) * width
                            + (offset + HOUGH_MAX_OFFSET) as usize];
                        if pairs[i].dist < pairs[k].dist {
                            if pairs[i].dist < cell.dist {
                                cell.dist = pairs[i].dist;
                                cell.ab = Some((pairs[i].a, b_i));
                            }
                        } else if pairs[k].dist < cell.dist {
                            cell.dist = pairs[k].dist;
                            cell.ab = Some((pairs[k].a, b_k));
                        }
                        cell.score += 1;
                        hmax = hmax.max(cell.score);
                    }
                }
            }
        }
        let mut out = Vec::new();
        if hmax > 0 {
            let hmax = (0.7 * hmax as f64) as usize;
            for i in 0..MAX_FRAMERATE {
                // Only the first HOUGH_MAX_OFFSET offsets are read back, as in the C code.
                for j in 0..HOUGH_MAX_OFFSET as usize {
                    let cell = hough[i * width + j];
                    if hmax < cell.score {
                        if let Some((first, second)) = cell.ab {
                            out.push(Candidate {
                                framerate_ratio: (i as f64 + 1.0) / 30.0,
                                score: cell.score,
                                first,
                                second,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// Where `evaluate_parameters` stands: a frame of each signature and how many frames of the
/// second it has stepped through.
struct Walk {
    a: usize,
    b: usize,
    bcount: i32,
}

/// `iterate_frame`: steps `a` and `b` one (or two) frames forwards or backwards.
fn iterate(frr: f64, s1: &Stream, s2: &Stream, w: &mut Walk, fcount: i32, dir: i32) -> i32 {
    let step = (f64::from(fcount) * frr - f64::from(fcount - 1) * frr) as i32;
    let (na, nb) = (s1.fines.len(), s2.fines.len());
    let fwd = |x: &mut usize, n: usize, by: usize| -> bool {
        if *x + by < n {
            *x += by;
            true
        } else {
            false
        }
    };
    let back = |x: &mut usize, by: usize| -> bool {
        if *x >= by {
            *x -= by;
            true
        } else {
            false
        }
    };
    let by = if step == 1 { 1 } else { 2 };
    let Walk { a, b, bcount } = w;
    if dir == DIR_NEXT {
        let ok = if frr >= 1.0 {
            fwd(a, na, 1) && {
                let moved = fwd(b, nb, by);
                *bcount += i32::from(moved);
                moved
            }
        } else {
            let moved = fwd(b, nb, 1);
            *bcount += i32::from(moved);
            moved && fwd(a, na, by)
        };
        if ok {
            DIR_NEXT
        } else {
            DIR_NEXT_END
        }
    } else {
        let ok = if frr >= 1.0 {
            back(a, 1) && {
                let moved = back(b, by);
                *bcount += i32::from(moved);
                moved
            }
        } else {
            let moved = back(b, 1);
            *bcount += i32::from(moved);
            moved && back(a, by)
        };
        if ok {
            DIR_PREV
        } else {
            DIR_PREV_END
        }
    }
}

/// `evaluate_parameters` in full mode. Its counters start once per call, not per candidate,
/// as in the C code.
fn evaluate(look: &Lookup, s1: &Stream, s2: &Stream, cands: &[Candidate], mut best: Best) -> Best {
    let (mut distsum, mut dir) = (0i32, DIR_NEXT);
    let mut w = Walk {
        a: 0,
        b: 0,
        bcount: 1,
    };
    let (mut fcount, mut goodfcount, mut gooda, mut goodb) = (0i32, 0i32, 0i32, 0i32);
    let mut minmeandist = best.meandist;
    let mut tolerance = 0;
    let mut status = 0;
    for c in cands {
        (w.a, w.b) = (c.first, c.second);
        loop {
            let (fa, fb) = (&s1.fines[w.a], &s2.fines[w.b]);
            let dist = look.l1(&fa.framesig, &fb.framesig);
            if dist > TH_L1 {
                if fa.confidence >= 1 || fb.confidence >= 1 {
                    tolerance += 1;
                }
                if tolerance > 2 {
                    if dir == DIR_NEXT {
                        (w.a, w.b) = (c.first, c.second);
                        dir = DIR_PREV;
                    } else {
                        break;
                    }
                }
            } else {
                distsum += dist;
                goodfcount += 1;
                tolerance = 0;
                if fa.confidence < 1 {
                    gooda += 1;
                }
                if fb.confidence < 1 {
                    goodb += 1;
                }
            }
            fcount += 1;
            dir = iterate(c.framerate_ratio, s1, s2, &mut w, fcount, dir);
            if dir == DIR_NEXT_END {
                status = STATUS_END_REACHED;
                (w.a, w.b) = (c.first, c.second);
                dir = iterate(c.framerate_ratio, s1, s2, &mut w, fcount, DIR_PREV);
            }
            if dir == DIR_PREV_END {
                status |= STATUS_BEGIN_REACHED;
                break;
            }
            if TH_DI != 0 && w.bcount >= TH_DI {
                break;
            }
        }
        if w.bcount < TH_DI {
            continue;
        }
        if f64::from(goodfcount) / f64::from(fcount) < f64::from(TH_IT) {
            continue;
        }
        if f64::from(goodfcount) * 0.5 <= f64::from(gooda.max(goodb)) {
            continue;
        }
        let meandist = f64::from(distsum) / f64::from(goodfcount);
        let whole = status == (STATUS_END_REACHED | STATUS_BEGIN_REACHED);
        if meandist < minmeandist || whole {
            minmeandist = meandist;
            best = Best {
                meandist,
                score: c.score,
                whole: false,
            };
        }
        if whole {
            best.whole = true;
            break;
        }
    }
    best
}

/// lpms `CompareSignatureByBuffer(a, b)`: the gateway's verdict on two binary signatures.
pub fn compare(a: &[u8], b: &[u8]) -> Result<Verdict, InvalidSignData> {
    if a.is_empty() || b.is_empty() {
        return Err(InvalidSignData);
    }
    let (s1, s2) = (import(a)?, import(b)?);
    let look = Lookup { lut: l1_lut() };
    let mut best = Best {
        meandist: 99999.0,
        score: 0,
        whole: false,
    };
    let mut c = (0usize, 0usize);
    if !Lookup::next_coarse(&s1, &s2, &mut c, true) {
        return Ok(Verdict::NoMatch);
    }
    loop {
        let cands = look.candidates(&s1, &s2, s1.coarse[c.0].first, s2.coarse[c.1].first);
        if !cands.is_empty() {
            best = evaluate(&look, &s1, &s2, &cands, best);
        }
        // The C loop's `while (find_next_coarsecandidate(...) && !bestmatch.whole)`.
        if !Lookup::next_coarse(&s1, &s2, &mut c, false) || best.whole {
            break;
        }
    }
    Ok(match (best.score, best.whole) {
        (0, _) => Verdict::NoMatch,
        (_, true) => Verdict::Whole,
        _ => Verdict::Partial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distance_table_is_ternary_l1() {
        let lut = l1_lut();
        assert_eq!(lut.len(), 243 * 242 / 2);
        // 0 = 00000 and 1 = 00001 differ by 1; 0 and 242 = 22222 by 10.
        assert_eq!(lut[0], 1);
        assert_eq!(lut[241], 10);
        let look = Lookup { lut };
        let mut a = [0u8; 76];
        let b = [0u8; 76];
        a[3] = 242;
        assert_eq!(look.l1(&a, &b), 10);
        assert_eq!(look.l1(&b, &a), 10);
    }

    #[test]
    fn garbage_is_invalid_sign_data() {
        assert_eq!(compare(&[], &[1]), Err(InvalidSignData));
        assert_eq!(compare(&[0; 40], &[0; 40]), Err(InvalidSignData));
        assert_eq!(InvalidSignData.to_string(), "InvalidSignData");
    }
}

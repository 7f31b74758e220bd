//! The conversion to 8-bit 4:2:0 that comes before the scaler for every other planar YUV
//! source (lpms converts the same inputs to `yuv420p` in its filter graph): 4:2:2 and 4:4:4
//! chroma is averaged over the samples one 4:2:0 chroma sample covers (two rows; a 2x2
//! block), and 9- to 16-bit samples are rounded to 8 bits, both in one integer step, so the
//! result is exact and every backend scales the same frame (GPU sessions convert on the CPU
//! and upload the result). The float64 reference used by the quality tests is this
//! conversion followed by the float64 resampler.

/// Chroma subsampling of a planar YUV source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// Half width, half height.
    S420,
    /// Half width, full height.
    S422,
    /// Full width, full height.
    S444,
}

/// One plane of a source in its own sample format.
#[derive(Debug, Clone, Copy)]
pub struct SrcPlane<'a> {
    pub data: &'a [u8],
    /// Bytes per row.
    pub stride: usize,
}

/// A planar YUV source: its size, subsampling, bits per sample (8, or 9 to 16 stored as
/// little-endian 16-bit words) and Y, U, V planes.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub width: usize,
    pub height: usize,
    pub chroma: Chroma,
    pub depth: u32,
    pub planes: [SrcPlane<'a>; 3],
}

impl Source<'_> {
    fn sample(&self, plane: usize, x: usize, y: usize) -> u32 {
        let p = self.planes[plane];
        if self.depth == 8 {
            u32::from(p.data[y * p.stride + x])
        } else {
            let i = y * p.stride + 2 * x;
            u32::from(u16::from_le_bytes([p.data[i], p.data[i + 1]]))
        }
    }

    /// Size of the source's chroma planes.
    fn chroma_size(&self) -> (usize, usize) {
        let (w, h) = (self.width, self.height);
        match self.chroma {
            Chroma::S420 => (w.div_ceil(2), h.div_ceil(2)),
            Chroma::S422 => (w.div_ceil(2), h),
            Chroma::S444 => (w, h),
        }
    }
}

/// `sum` of `n` (1, 2 or 4) samples of `depth` bits as one 8-bit sample: divided by `n` and
/// by `2^(depth-8)`, rounded half up, saturated.
fn to_8bit(sum: u32, n: u32, depth: u32) -> u8 {
    let shift = depth - 8 + n.trailing_zeros();
    let v = if shift == 0 {
        sum
    } else {
        (sum + (1 << (shift - 1))) >> shift
    };
    v.min(255) as u8
}

/// Writes `src` as 8-bit 4:2:0 into `y`, `u`, `v` (strides `strides`); the destination
/// planes must hold `width`x`height` and `ceil(width/2)`x`ceil(height/2)` samples.
pub fn to_i420(src: &Source, y: &mut [u8], u: &mut [u8], v: &mut [u8], strides: [usize; 3]) {
    let (w, h) = (src.width, src.height);
    for row in 0..h {
        let out = &mut y[row * strides[0]..row * strides[0] + w];
        for (x, o) in out.iter_mut().enumerate() {
            *o = to_8bit(src.sample(0, x, row), 1, src.depth);
        }
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (sw, sh) = src.chroma_size();
    // Source rows and columns one output chroma sample averages (the last row or column is
    // repeated where an odd size leaves only one).
    let rows = |r: usize| -> (usize, usize) {
        match src.chroma {
            Chroma::S420 => (r, r),
            Chroma::S422 | Chroma::S444 => (2 * r, (2 * r + 1).min(sh - 1)),
        }
    };
    let cols = |c: usize| -> (usize, usize) {
        match src.chroma {
            Chroma::S420 | Chroma::S422 => (c, c),
            Chroma::S444 => (2 * c, (2 * c + 1).min(sw - 1)),
        }
    };
    let n = match src.chroma {
        Chroma::S420 => 1,
        Chroma::S422 => 2,
        Chroma::S444 => 4,
    };
    for (plane, out, stride) in [(1, u, strides[1]), (2, v, strides[2])] {
        for r in 0..ch {
            let (r0, r1) = rows(r);
            let line = &mut out[r * stride..r * stride + cw];
            for (c, o) in line.iter_mut().enumerate() {
                let (c0, c1) = cols(c);
                let sum = match src.chroma {
                    Chroma::S420 => src.sample(plane, c0, r0),
                    Chroma::S422 => src.sample(plane, c0, r0) + src.sample(plane, c0, r1),
                    Chroma::S444 => {
                        src.sample(plane, c0, r0)
                            + src.sample(plane, c1, r0)
                            + src.sample(plane, c0, r1)
                            + src.sample(plane, c1, r1)
                    }
                };
                *o = to_8bit(sum, n, src.depth);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[u16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn ten_bit_420_rounds_to_eight_bits() {
        // 2x2 luma, 1x1 chroma.
        let y = words(&[0, 1, 2, 1023]);
        let u = words(&[514]);
        let v = words(&[3]);
        let src = Source {
            width: 2,
            height: 2,
            chroma: Chroma::S420,
            depth: 10,
            planes: [
                SrcPlane {
                    data: &y,
                    stride: 4,
                },
                SrcPlane {
                    data: &u,
                    stride: 2,
                },
                SrcPlane {
                    data: &v,
                    stride: 2,
                },
            ],
        };
        let (mut oy, mut ou, mut ov) = ([0u8; 4], [0u8; 1], [0u8; 1]);
        to_i420(&src, &mut oy, &mut ou, &mut ov, [2, 1, 1]);
        assert_eq!(oy, [0, 0, 1, 255]); // x/4 rounded half up, saturated
        assert_eq!((ou[0], ov[0]), (129, 1));
    }

    #[test]
    fn chroma_is_averaged_over_what_one_420_sample_covers() {
        // 3x3 luma (odd): 4:4:4 chroma 3x3 -> 2x2; 4:2:2 chroma 2x3 -> 2x2.
        let yplane = [7u8; 9];
        let c444: Vec<u8> = (0..9).map(|i| i as u8 * 10).collect();
        let src = Source {
            width: 3,
            height: 3,
            chroma: Chroma::S444,
            depth: 8,
            planes: [
                SrcPlane {
                    data: &yplane,
                    stride: 3,
                },
                SrcPlane {
                    data: &c444,
                    stride: 3,
                },
                SrcPlane {
                    data: &c444,
                    stride: 3,
                },
            ],
        };
        let (mut oy, mut ou, mut ov) = ([0u8; 9], [0u8; 4], [0u8; 4]);
        to_i420(&src, &mut oy, &mut ou, &mut ov, [3, 2, 2]);
        assert_eq!(oy, [7; 9]);
        // (0+10+30+40)/4 = 20; (20+20+50+50)/4 = 35; (60+70+60+70)/4 = 65; (80*4)/4 = 80.
        assert_eq!(ou, [20, 35, 65, 80]);
        assert_eq!(ov, ou);
        let c422: Vec<u8> = vec![0, 1, 2, 3, 4, 5];
        let src = Source {
            chroma: Chroma::S422,
            planes: [
                SrcPlane {
                    data: &yplane,
                    stride: 3,
                },
                SrcPlane {
                    data: &c422,
                    stride: 2,
                },
                SrcPlane {
                    data: &c422,
                    stride: 2,
                },
            ],
            ..src
        };
        to_i420(&src, &mut oy, &mut ou, &mut ov, [3, 2, 2]);
        // Rows (0,1) and (2,2): (0+2)/2=1, (1+3)/2=2, (4+4)/2=4, (5+5)/2=5.
        assert_eq!(ou, [1, 2, 4, 5]);
    }
}

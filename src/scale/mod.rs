//! Backend-neutral description of a multi-rendition downscale: plane views, the per-rendition
//! filter tables ([`filter::FilterBank`]) and the float64 reference the fixed-point scalers are
//! measured against. The CPU implementation is `backend::cpu::scale`.

pub mod color;
pub mod convert;
pub mod filter;
pub mod reference;

use filter::{FilterBank, Kernel};

/// Memory layout of an 8-bit 4:2:0 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Three planes: Y, U, V.
    I420,
    /// Two planes: Y, interleaved UV (what NVDEC produces).
    Nv12,
}

/// A read-only view of one plane.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

/// A writable view of one plane.
#[derive(Debug)]
pub struct PlaneMut<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

/// A source frame: `planes[0]` is luma; then U and V (I420) or UV (NV12).
#[derive(Debug, Clone, Copy)]
pub struct SrcFrame<'a> {
    pub layout: Layout,
    pub width: usize,
    pub height: usize,
    pub planes: [Option<Plane<'a>>; 3],
}

impl<'a> Plane<'a> {
    /// A plane whose rows follow each other with no padding.
    pub fn packed(data: &'a [u8], width: usize, height: usize) -> Self {
        Plane {
            data,
            stride: width,
            width,
            height,
        }
    }
}

impl<'a> PlaneMut<'a> {
    /// A plane whose rows follow each other with no padding.
    pub fn packed(data: &'a mut [u8], width: usize, height: usize) -> Self {
        PlaneMut {
            data,
            stride: width,
            width,
            height,
        }
    }
}

/// An I420 destination frame.
#[derive(Debug)]
pub struct DstFrame<'a> {
    pub y: PlaneMut<'a>,
    pub u: PlaneMut<'a>,
    pub v: PlaneMut<'a>,
}

/// Which plane of an I420 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaneId {
    Y,
    U,
    V,
}

/// Where a multi-rendition scaler writes: any set of I420 frames that can lend out one
/// rendition's plane (or its two chroma planes) at a time, so callers need not build a list
/// of views per frame.
pub trait Destinations {
    /// Number of renditions.
    fn count(&self) -> usize;
    /// Plane `p` of rendition `i`.
    fn plane(&mut self, i: usize, p: PlaneId) -> PlaneMut<'_>;
    /// The U and V planes of rendition `i`, together.
    fn chroma(&mut self, i: usize) -> (PlaneMut<'_>, PlaneMut<'_>);
}

fn reborrow<'s>(p: &'s mut PlaneMut<'_>) -> PlaneMut<'s> {
    PlaneMut {
        data: &mut *p.data,
        stride: p.stride,
        width: p.width,
        height: p.height,
    }
}

impl Destinations for [DstFrame<'_>] {
    fn count(&self) -> usize {
        self.len()
    }

    fn plane(&mut self, i: usize, p: PlaneId) -> PlaneMut<'_> {
        let d = &mut self[i];
        reborrow(match p {
            PlaneId::Y => &mut d.y,
            PlaneId::U => &mut d.u,
            PlaneId::V => &mut d.v,
        })
    }

    fn chroma(&mut self, i: usize) -> (PlaneMut<'_>, PlaneMut<'_>) {
        let d = &mut self[i];
        (reborrow(&mut d.u), reborrow(&mut d.v))
    }
}

impl Destinations for Vec<DstFrame<'_>> {
    fn count(&self) -> usize {
        self.len()
    }

    fn plane(&mut self, i: usize, p: PlaneId) -> PlaneMut<'_> {
        self.as_mut_slice().plane(i, p)
    }

    fn chroma(&mut self, i: usize) -> (PlaneMut<'_>, PlaneMut<'_>) {
        self.as_mut_slice().chroma(i)
    }
}

/// Size of the chroma planes of a 4:2:0 frame.
pub fn chroma_size(width: usize, height: usize) -> (usize, usize) {
    (width.div_ceil(2), height.div_ceil(2))
}

/// Filters for one rendition: horizontal and vertical, for luma and for chroma.
#[derive(Debug, Clone)]
pub struct RenditionFilters {
    pub width: usize,
    pub height: usize,
    pub luma_h: FilterBank,
    pub luma_v: FilterBank,
    pub chroma_h: FilterBank,
    pub chroma_v: FilterBank,
}

/// Horizontal windows are padded to a multiple of this many taps (one SIMD load of 8 bytes).
pub const H_ALIGN: usize = 8;

/// Everything a scaler needs to turn one source size into every rendition.
#[derive(Debug, Clone)]
pub struct ScalePlan {
    pub src_width: usize,
    pub src_height: usize,
    pub kernel: Kernel,
    pub outputs: Vec<RenditionFilters>,
}

impl ScalePlan {
    pub fn new(kernel: Kernel, src: (usize, usize), outputs: &[(usize, usize)]) -> Self {
        let (sw, sh) = src;
        let (scw, sch) = chroma_size(sw, sh);
        let outputs = outputs
            .iter()
            .map(|&(w, h)| {
                let (cw, ch) = chroma_size(w, h);
                RenditionFilters {
                    width: w,
                    height: h,
                    luma_h: FilterBank::new(kernel, sw, w, H_ALIGN, false),
                    luma_v: FilterBank::new(kernel, sh, h, 1, true),
                    chroma_h: FilterBank::new(kernel, scw, cw, H_ALIGN, false),
                    chroma_v: FilterBank::new(kernel, sch, ch, 1, true),
                }
            })
            .collect();
        ScalePlan {
            src_width: sw,
            src_height: sh,
            kernel,
            outputs,
        }
    }
}

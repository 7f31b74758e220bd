//! Views of decoded and rendition frames as scaler planes. Host frames are FFmpeg `AVFrame`s
//! (refcounted, reused across frames); the CUDA backend adds device frames beside them.

use crate::scale::convert::{to_i420, Chroma, Source, SrcPlane};
use crate::scale::{
    chroma_size, Destinations, DstFrame, Layout, Plane, PlaneId, PlaneMut, SrcFrame,
};
use ff::format::Pixel;
use ffmpeg_next as ff;

/// A read-only scaler view of a decoded 8-bit 4:2:0 frame.
pub fn src_view(frame: &ff::frame::Video) -> SrcFrame<'_> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (cw, ch) = chroma_size(w, h);
    let plane = |i: usize, width: usize, height: usize| {
        Some(Plane {
            data: frame.data(i),
            stride: frame.stride(i),
            width,
            height,
        })
    };
    match frame.format() {
        Pixel::NV12 => SrcFrame {
            layout: Layout::Nv12,
            width: w,
            height: h,
            planes: [plane(0, w, h), plane(1, cw * 2, ch), None],
        },
        _ => SrcFrame {
            layout: Layout::I420,
            width: w,
            height: h,
            planes: [plane(0, w, h), plane(1, cw, ch), plane(2, cw, ch)],
        },
    }
}

/// A writable scaler view of an I420 rendition frame.
pub fn dst_view(frame: &mut ff::frame::Video) -> DstFrame<'_> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (cw, ch) = chroma_size(w, h);
    let strides = [frame.stride(0), frame.stride(1), frame.stride(2)];
    // `data_mut` borrows the whole frame, so split the three planes through raw parts of the
    // one AVFrame; they are distinct buffers.
    let ptr = frame as *mut ff::frame::Video;
    let plane = |i: usize, width: usize, height: usize| {
        // SAFETY: planes 0, 1 and 2 of a YUV420P frame are disjoint allocations, so the three
        // mutable slices never alias; `ptr` is valid for the lifetime of the borrow of `frame`.
        let data = unsafe { (*ptr).data_mut(i) };
        PlaneMut {
            data,
            stride: strides[i],
            width,
            height,
        }
    };
    DstFrame {
        y: plane(0, w, h),
        u: plane(1, cw, ch),
        v: plane(2, cw, ch),
    }
}

/// Rendition frames as scaler destinations, lent one plane at a time (no per-frame views).
impl Destinations for [ff::frame::Video] {
    fn count(&self) -> usize {
        self.len()
    }

    fn plane(&mut self, i: usize, p: PlaneId) -> PlaneMut<'_> {
        let frame = &mut self[i];
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let (cw, ch) = chroma_size(w, h);
        let (k, width, height) = match p {
            PlaneId::Y => (0, w, h),
            PlaneId::U => (1, cw, ch),
            PlaneId::V => (2, cw, ch),
        };
        let stride = frame.stride(k);
        PlaneMut {
            data: frame.data_mut(k),
            stride,
            width,
            height,
        }
    }

    fn chroma(&mut self, i: usize) -> (PlaneMut<'_>, PlaneMut<'_>) {
        let DstFrame { u, v, .. } = dst_view(&mut self[i]);
        (u, v)
    }
}

/// Makes `frame` safe to write: if an encoder still holds a reference to its buffers, FFmpeg
/// gives it fresh ones (no copy of the contents is needed: the scaler overwrites every pixel).
pub fn make_writable(frame: &mut ff::frame::Video) -> Result<(), ff::Error> {
    // SAFETY: `frame` wraps a valid, allocated AVFrame.
    let ret = unsafe { ff::ffi::av_frame_make_writable(frame.as_mut_ptr()) };
    if ret < 0 {
        Err(ff::Error::from(ret))
    } else {
        Ok(())
    }
}

/// Copies a host 4:2:0 frame (NV12, or planar YUV) into packed NV12 buffers: `y` of
/// `width * height`, `uv` of `2 * ceil(width / 2) * ceil(height / 2)` (U and V interleaved).
pub fn pack_nv12(src: &ff::frame::Video, y: &mut [u8], uv: &mut [u8]) {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let (cw, ch) = chroma_size(w, h);
    for r in 0..h {
        y[r * w..(r + 1) * w].copy_from_slice(&src.data(0)[r * src.stride(0)..][..w]);
    }
    for r in 0..ch {
        let row = &mut uv[r * 2 * cw..(r + 1) * 2 * cw];
        if src.format() == Pixel::NV12 {
            row.copy_from_slice(&src.data(1)[r * src.stride(1)..][..2 * cw]);
        } else {
            let u = &src.data(1)[r * src.stride(1)..][..cw];
            let v = &src.data(2)[r * src.stride(2)..][..cw];
            for x in 0..cw {
                row[2 * x] = u[x];
                row[2 * x + 1] = v[x];
            }
        }
    }
}

/// The reverse of [`pack_nv12`]: packed NV12 buffers into a writable host frame (NV12, or
/// planar YUV) of the same size.
pub fn unpack_nv12(y: &[u8], uv: &[u8], dst: &mut ff::frame::Video) {
    let (w, h) = (dst.width() as usize, dst.height() as usize);
    let (cw, ch) = chroma_size(w, h);
    let sy = dst.stride(0);
    for r in 0..h {
        dst.data_mut(0)[r * sy..][..w].copy_from_slice(&y[r * w..(r + 1) * w]);
    }
    let (su, sv) = (dst.stride(1), dst.stride(2));
    let nv12 = dst.format() == Pixel::NV12;
    for r in 0..ch {
        let row = &uv[r * 2 * cw..(r + 1) * 2 * cw];
        if nv12 {
            dst.data_mut(1)[r * su..][..2 * cw].copy_from_slice(row);
        } else {
            for x in 0..cw {
                dst.data_mut(1)[r * su + x] = row[2 * x];
                dst.data_mut(2)[r * sv + x] = row[2 * x + 1];
            }
        }
    }
}

/// How a decoded frame of pixel format `p` reaches the scalers: `None` for 8-bit 4:2:0 (read
/// as is), else its chroma subsampling and bit depth for [`crate::scale::convert`]; formats
/// outside both are not transcoded.
pub fn conversion(p: Pixel) -> Option<Option<(Chroma, u32)>> {
    use Chroma::*;
    Some(Some(match p {
        Pixel::YUV420P | Pixel::YUVJ420P | Pixel::NV12 => return Some(None),
        Pixel::YUV422P | Pixel::YUVJ422P => (S422, 8),
        Pixel::YUV444P | Pixel::YUVJ444P => (S444, 8),
        Pixel::YUV420P9LE => (S420, 9),
        Pixel::YUV420P10LE => (S420, 10),
        Pixel::YUV420P12LE => (S420, 12),
        Pixel::YUV420P14LE => (S420, 14),
        Pixel::YUV420P16LE => (S420, 16),
        Pixel::YUV422P9LE => (S422, 9),
        Pixel::YUV422P10LE => (S422, 10),
        Pixel::YUV422P12LE => (S422, 12),
        Pixel::YUV422P14LE => (S422, 14),
        Pixel::YUV422P16LE => (S422, 16),
        Pixel::YUV444P9LE => (S444, 9),
        Pixel::YUV444P10LE => (S444, 10),
        Pixel::YUV444P12LE => (S444, 12),
        Pixel::YUV444P14LE => (S444, 14),
        Pixel::YUV444P16LE => (S444, 16),
        _ => return None,
    }))
}

/// Converts `src` (a format [`conversion`] names) into `dst`, an 8-bit YUV420P frame of the
/// same size (reallocated if its size differs), keeping the timestamp.
pub fn convert_to_i420(src: &ff::frame::Video, dst: &mut ff::frame::Video) {
    let Some(Some((chroma, depth))) = conversion(src.format()) else {
        panic!(
            "convert_to_i420: {:?} is not a converted format",
            src.format()
        );
    };
    let (w, h) = (src.width(), src.height());
    if (dst.width(), dst.height(), dst.format()) != (w, h, Pixel::YUV420P) {
        *dst = ff::frame::Video::new(Pixel::YUV420P, w, h);
    }
    let plane = |i: usize| SrcPlane {
        data: src.data(i),
        stride: src.stride(i),
    };
    let source = Source {
        width: w as usize,
        height: h as usize,
        chroma,
        depth,
        planes: [plane(0), plane(1), plane(2)],
    };
    let strides = [dst.stride(0), dst.stride(1), dst.stride(2)];
    let d = dst_view(dst);
    to_i420(&source, d.y.data, d.u.data, d.v.data, strides);
    dst.set_pts(src.pts());
}

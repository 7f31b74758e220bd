//! Quality of a rendition against its source: both are decoded, each source frame is scaled to
//! the rendition's size by the float64 reference resampler, and PSNR is computed per plane.
//! Used by `gpuworker psnr`, the tests and `scripts/compare-ffmpeg` (for our outputs and the
//! ffmpeg CLI's alike).

use crate::error::{Error, Result};
use crate::media::demux::Segment;
use crate::media::frame::{conversion, convert_to_i420, src_view};
use crate::scale::filter::Kernel;
use crate::scale::reference::{psnr_from_mse, scale_plane};
use crate::scale::{chroma_size, Plane};
use ffmpeg_next as ff;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct PsnrReport {
    pub frames_compared: usize,
    pub source_frames: usize,
    pub rendition_frames: usize,
    pub width: u32,
    pub height: u32,
    pub y: f64,
    pub u: f64,
    pub v: f64,
    /// All planes, weighted by their sample counts (as ffmpeg's psnr filter's "average").
    pub average: f64,
}

/// A decoded frame: width, height and tightly packed Y, U, V planes.
pub type PackedFrame = (u32, u32, [Vec<u8>; 3]);

/// Decodes every video frame of a file as tightly packed I420 planes; sources in other
/// planar YUV formats go through the conversion the transcoder applies before scaling
/// ([`crate::scale::convert`]), so the reference is that of the 8-bit 4:2:0 conversion.
pub fn decode_planes(path: &Path) -> Result<Vec<PackedFrame>> {
    crate::media::init();
    let mut seg = Segment::open(path)?;
    let ctx = ff::codec::Context::from_parameters(seg.video_params.clone())
        .map_err(|e| Error::codec("decoder", e))?;
    let mut dec = ctx
        .decoder()
        .video()
        .map_err(|e| Error::codec("decoder", e))?;
    let mut frames = Vec::new();
    let mut frame = ff::frame::Video::empty();
    let mut converted = ff::frame::Video::empty();
    let mut take = |dec: &mut ff::decoder::Video, frames: &mut Vec<_>| {
        while dec.receive_frame(&mut frame).is_ok() {
            let view = if matches!(conversion(frame.format()), Some(Some(_))) {
                convert_to_i420(&frame, &mut converted);
                src_view(&converted)
            } else {
                src_view(&frame)
            };
            let (w, h) = (view.width, view.height);
            let (cw, ch) = chroma_size(w, h);
            let pack = |p: Option<Plane<'_>>, pw: usize, ph: usize| -> Vec<u8> {
                let p = p.expect("plane");
                (0..ph)
                    .flat_map(|y| p.data[y * p.stride..y * p.stride + pw].to_vec())
                    .collect()
            };
            frames.push((
                w as u32,
                h as u32,
                [
                    pack(view.planes[0], w, h),
                    pack(view.planes[1], cw, ch),
                    pack(view.planes[2], cw, ch),
                ],
            ));
        }
    };
    let video = seg.video;
    for (stream, packet) in seg.input.packets() {
        if stream.index() == video {
            let _ = dec.send_packet(&packet);
            take(&mut dec, &mut frames);
        }
    }
    let _ = dec.send_eof();
    take(&mut dec, &mut frames);
    Ok(frames)
}

/// PSNR of `rendition` against `source` scaled by the float64 reference; every `every`-th
/// frame is compared (frames are paired by index).
pub fn measure(
    source: &Path,
    rendition: &Path,
    every: usize,
    kernel: Kernel,
) -> Result<PsnrReport> {
    let src = decode_planes(source)?;
    let out = decode_planes(rendition)?;
    let (w, h) = out
        .first()
        .map(|f| (f.0, f.1))
        .ok_or_else(|| Error::NoKeyframe {
            path: rendition.to_path_buf(),
        })?;
    let (cw, ch) = chroma_size(w as usize, h as usize);
    let mut sse = [0f64; 3];
    let mut count = [0usize; 3];
    let mut compared = 0;
    for (s, o) in src.iter().zip(&out).step_by(every.max(1)) {
        let (sw, sh) = (s.0 as usize, s.1 as usize);
        let (scw, sch) = chroma_size(sw, sh);
        let sizes = [
            (sw, sh, w as usize, h as usize),
            (scw, sch, cw, ch),
            (scw, sch, cw, ch),
        ];
        for (p, &(pw, ph, dw, dh)) in sizes.iter().enumerate() {
            let plane = Plane {
                data: &s.2[p],
                stride: pw,
                width: pw,
                height: ph,
            };
            let reference = scale_plane(plane, dw, dh, kernel);
            sse[p] += reference
                .iter()
                .zip(&o.2[p])
                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                .sum::<f64>();
            count[p] += dw * dh;
        }
        compared += 1;
    }
    let plane_psnr = |p: usize| psnr_from_mse(sse[p] / count[p].max(1) as f64);
    let total: usize = count.iter().sum();
    Ok(PsnrReport {
        frames_compared: compared,
        source_frames: src.len(),
        rendition_frames: out.len(),
        width: w,
        height: h,
        y: plane_psnr(0),
        u: plane_psnr(1),
        v: plane_psnr(2),
        average: psnr_from_mse(sse.iter().sum::<f64>() / total.max(1) as f64),
    })
}

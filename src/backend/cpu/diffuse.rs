//! The diffuse stage on host frames: a decoded frame (I420 or NV12) → planar RGB with the
//! Rust reference of `kernels/color.cu` ([`crate::scale::color`], BT.709 limited range) →
//! image-to-image on the model's device → back into the same frame.

use crate::diffusion::model::Conditioning;
use crate::diffusion::video::DiffuseConfig;
use crate::diffusion::DiffusionError;
use crate::error::{Error, Result};
use crate::media::frame::{pack_nv12, unpack_nv12};
use crate::pipeline::stage::FrameFilter;
use crate::scale::color::{nv12_to_rgb, rgb_to_nv12};
use candle_core::Tensor;
use ff::format::Pixel;
use ffmpeg_next as ff;

/// One session's diffusion stage (the prompt is embedded once).
pub struct CpuDiffuser {
    cfg: DiffuseConfig,
    cond: Conditioning,
}

impl CpuDiffuser {
    pub fn new(cfg: DiffuseConfig) -> Result<Self, DiffusionError> {
        let cond = cfg.condition()?;
        Ok(CpuDiffuser { cfg, cond })
    }

    fn diffuse(&mut self, frame: &mut ff::frame::Video) -> Result<(), DiffusionError> {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let (y, uv) = nv12_planes(frame)?;
        let rgb = nv12_to_rgb(&y, w, &uv, 2 * w.div_ceil(2), w, h);
        let x = Tensor::from_vec(rgb, (1, 3, h, w), &candle_core::Device::Cpu)?
            .to_device(self.cfg.model.device())?;
        let out = self.cfg.frame(&self.cond, &x)?;
        let rgb: Vec<f32> = out
            .to_device(&candle_core::Device::Cpu)?
            .flatten_all()?
            .to_vec1()?;
        let (y, uv) = rgb_to_nv12(&rgb, w, h);
        unpack_nv12(&y, &uv, frame);
        Ok(())
    }
}

impl FrameFilter for CpuDiffuser {
    /// Replaces the picture of `frame` (host YUV 4:2:0 or NV12) by its diffused version, same
    /// size and format.
    fn process(&mut self, frame: &mut ff::frame::Video) -> Result<()> {
        crate::media::frame::make_writable(frame).map_err(|e| Error::codec("diffuse", e))?;
        self.diffuse(frame).map_err(|e| Error::codec("diffuse", e))
    }

    fn name(&self) -> &'static str {
        "cpu"
    }
}

/// Luma (pitch = width) and interleaved chroma (pitch = 2 * ceil(width / 2)) of a frame.
fn nv12_planes(
    frame: &ff::frame::Video,
) -> std::result::Result<(Vec<u8>, Vec<u8>), DiffusionError> {
    if !matches!(
        frame.format(),
        Pixel::NV12 | Pixel::YUV420P | Pixel::YUVJ420P
    ) {
        return Err(DiffusionError::Input(format!(
            "diffuse: frames in {:?} are not supported (8-bit 4:2:0 only)",
            frame.format()
        )));
    }
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (mut y, mut uv) = (vec![0; w * h], vec![0; 2 * w.div_ceil(2) * h.div_ceil(2)]);
    pack_nv12(frame, &mut y, &mut uv);
    Ok((y, uv))
}

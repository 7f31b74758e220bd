//! What the `diffuse` stage of the video pipeline runs: image-to-image on every decoded
//! frame (few steps, turbo-style models) before the scaler. The stage itself is a
//! [`crate::pipeline::stage::FrameFilter`] with a CPU implementation
//! (`backend::cpu::diffuse`, host frames) and a CUDA one (`backend::cuda::diffuse`, device
//! frames, in builds with the `cuda` feature), side by side.

use super::model::{Conditioning, Model};
use super::noise::Noise;
use super::DiffusionError;
use crate::error::{Error, Result};
use crate::pipeline::stage::{FrameFilter, FrameFilterFactory};
use candle_core::{DType, Tensor};
use std::sync::Arc;

/// What `transcode --diffuse` asks for.
#[derive(Clone)]
pub struct DiffuseConfig {
    pub model: Arc<Model>,
    pub prompt: String,
    pub negative_prompt: String,
    pub guidance_scale: f64,
    pub strength: f64,
    pub steps: usize,
    /// The same noise seeds every frame, which keeps consecutive frames alike.
    pub seed: u64,
}

impl std::fmt::Debug for DiffuseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiffuseConfig")
            .field("model", &self.model.files.dir)
            .field("prompt", &self.prompt)
            .field("strength", &self.strength)
            .field("steps", &self.steps)
            .field("seed", &self.seed)
            .finish()
    }
}

impl DiffuseConfig {
    /// The prompt's embeddings (once per session).
    pub fn condition(&self) -> Result<Conditioning, DiffusionError> {
        self.model
            .condition(&self.prompt, &self.negative_prompt, self.guidance_scale)
    }

    /// One frame: `rgb` is `(1, 3, h, w)` planar RGB in [0, 1] on the model's device; the
    /// answer is the same shape, contiguous f32. Sizes that are not a multiple of the VAE's
    /// factor are padded by repeating the last row and column, then cropped back.
    pub fn frame(&self, cond: &Conditioning, rgb: &Tensor) -> Result<Tensor, DiffusionError> {
        let m = &self.model;
        let (_, _, h, w) = rgb.dims4()?;
        let x = ((rgb.to_dtype(m.dtype())? * 2.0)? - 1.0)?;
        let f = m.factor();
        let (pw, ph) = (w.next_multiple_of(f), h.next_multiple_of(f));
        let x = x.pad_with_same(3, 0, pw - w)?.pad_with_same(2, 0, ph - h)?;
        let mut noise = Noise::new(self.seed);
        let out = m.image_to_image(cond, &x, self.strength, self.steps, &mut noise)?;
        let out = out.narrow(2, 0, h)?.narrow(3, 0, w)?;
        Ok(((out.to_dtype(DType::F32)? + 1.0)? * 0.5)?.contiguous()?)
    }
}

impl FrameFilterFactory for DiffuseConfig {
    /// With the model on a CUDA device (`cuda` builds), GPU sessions diffuse NVDEC pictures
    /// in device memory.
    fn takes_device_frames(&self) -> bool {
        cfg!(feature = "cuda") && self.model.device().is_cuda()
    }

    fn make(&self, device_frames: bool) -> Result<Box<dyn FrameFilter>> {
        #[cfg(feature = "cuda")]
        if device_frames && self.takes_device_frames() {
            return Ok(Box::new(crate::backend::cuda::diffuse::CudaDiffuser::new(
                self.clone(),
            )?));
        }
        let _ = device_frames;
        crate::backend::cpu::diffuse::CpuDiffuser::new(self.clone())
            .map(|d| Box::new(d) as Box<dyn FrameFilter>)
            .map_err(|e| Error::codec("diffuse", e))
    }
}

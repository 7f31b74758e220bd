//! What the `diffuse` stage of the video pipeline runs: image-to-image on every decoded
//! frame (few steps, turbo-style models) before the scaler. The stage itself is a
//! [`crate::pipeline::stage::FrameFilter`] with a CPU implementation
//! (`backend::cpu::diffuse`, host frames) and a CUDA one (`backend::cuda::diffuse`, device
//! frames, in builds with the `cuda` feature), side by side.

use super::model::Model;
use crate::error::{Error, Result};
use crate::pipeline::stage::{FrameFilter, FrameFilterFactory};
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

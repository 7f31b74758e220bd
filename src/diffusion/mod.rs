//! Diffusion on the worker: Stable Diffusion family models (1.x/2.x, sd-turbo, the x4
//! upscaler) from a local diffusers directory, run with candle on the CPU (or a CUDA device
//! in builds with the `cuda` feature).
//!
//! Follow one request: [`config`] reads the directory, [`model::Model::load`] builds the
//! [`tokenizer`], [`text_encoder`], candle's UNet and VAE (plus our deterministic
//! [`vae_encoder`]); [`model::Model::generate`] conditions on the prompt, draws seeded
//! [`noise`] (or takes the caller's [`latents`]), runs the [`scheduler`] loop and decodes to a
//! [`picture::Rgb`]. [`memory`]
//! refuses what would not fit; [`video`] applies image-to-image to decoded video frames.

pub mod clip_bpe;
pub mod config;
pub mod heap;
pub mod latents;
pub mod memory;
pub mod model;
pub mod noise;
pub mod picture;
pub mod scheduler;
pub mod text_encoder;
pub mod tiny;
pub mod tokenizer;
pub mod vae_encoder;
pub mod video;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    /// The model directory is missing something or holds something this worker cannot run.
    #[error("model {dir}: {problem}")]
    Model { dir: PathBuf, problem: String },
    /// The request is invalid (the API answers 400).
    #[error("{0}")]
    Input(String),
    /// The request would not fit in memory; nothing was allocated.
    #[error("out of memory: this generation needs about {need_mib} MiB and {available_mib} MiB are available")]
    OutOfMemory { need_mib: u64, available_mib: u64 },
    /// A device that is not there (no CUDA support built in, or no driver).
    #[error("not available: {0}")]
    Unavailable(String),
    #[error("inference failed: {0}")]
    Inference(#[from] candle_core::Error),
}

impl DiffusionError {
    /// Out of memory before or during the run (candle's CUDA errors say "out of memory").
    pub fn is_oom(&self) -> bool {
        match self {
            DiffusionError::OutOfMemory { .. } => true,
            DiffusionError::Inference(e) => e.to_string().to_lowercase().contains("out of memory"),
            _ => false,
        }
    }
}

/// The device models run on: the CPU, or CUDA device `n` in builds with the `cuda` feature.
pub fn device(cuda: Option<usize>) -> Result<candle_core::Device, DiffusionError> {
    match cuda {
        None => Ok(candle_core::Device::Cpu),
        Some(n) if cfg!(feature = "cuda") => candle_core::Device::new_cuda(n)
            .map_err(|e| DiffusionError::Unavailable(format!("CUDA device {n}: {e}"))),
        Some(_) => Err(DiffusionError::Unavailable(
            "this build has no CUDA support for diffusion (rebuild with `--features cuda`, which \
             needs nvcc and links libcuda)"
                .into(),
        )),
    }
}

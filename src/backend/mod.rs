//! Backends: implementations of the pipeline's stages. `cpu` (libavcodec decode, our scaler,
//! libx264 encode) runs everywhere; `cuda` (NVDEC, CUDA kernels, NVENC) is loaded at run time
//! and reports why it is not available on machines without an NVIDIA driver.

pub mod cpu;
pub mod cuda;

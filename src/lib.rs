//! gpuworker: turns video segments into adaptive-bitrate ladders, on the CPU or on NVIDIA GPUs.
//!
//! Follow one segment: [`media::demux`] opens it, [`pipeline::session`] runs it through a
//! decoder, the multi-rendition scaler ([`backend::cpu::scale`], tables in [`scale`]) and one
//! encoder per rendition ([`backend::cpu::encode`]), and [`media::mux`] writes each rendition.

pub mod backend;
pub mod bench;
#[cfg(feature = "diffusion")]
pub mod diffusion;
pub mod error;
pub mod media;
pub mod mpeg7;
pub mod net;
pub mod pipeline;
pub mod profile;
pub mod scale;
pub mod sched;
pub mod worker;

pub use error::{Error, Result};

//! NVDEC, layered as cudarc does it: `sys` (bindings generated once from nv-codec-headers and
//! committed), `result` (run-time loading, status codes as errors), `safe` (parser, decoder
//! and mapped frames as RAII types).

pub mod result;
pub mod safe;
#[rustfmt::skip]
pub mod sys;

pub use result::NvdecError;
pub use safe::{Decoder, Display, Mapped, Parser};

//! NVENC, layered as cudarc does it: `sys` (bindings generated once from nv-codec-headers and
//! committed), `result` (run-time loading, status codes as errors), `safe` (RAII session).

pub mod result;
pub mod safe;
#[rustfmt::skip]
pub mod sys;

pub use result::NvencError;
pub use safe::{EncodeConfig, Encoded, Session};

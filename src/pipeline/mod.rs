//! The transcoding pipeline: stage traits that backends implement, frame-rate conversion, and
//! the session that keeps a stream's decoder, scaler and encoders across its segments.

pub mod fps;
pub mod report;
pub mod session;
pub mod stage;

pub use report::{RenditionReport, SegmentReport};
pub use session::{Session, SessionConfig};

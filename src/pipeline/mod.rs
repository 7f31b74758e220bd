//! The transcoding pipeline: stage traits that backends implement, frame-rate conversion, and
//! the session whose stages (source; one per rendition) run on the worker's pool.

pub mod clip;
pub mod fps;
mod rendition;
pub mod report;
pub mod session;
mod source;
pub mod stage;
mod tracker;

pub use clip::Clip;
pub use report::{RenditionReport, SegmentReport};
pub use session::{SegmentOptions, Session, SessionConfig, Ticket};

//! Containers and frames: demuxing segments, muxing renditions (write, then rename), frame
//! views for the scalers, the built-in test clip and PSNR measurement.

pub mod demux;
pub mod frame;
pub mod mux;
pub mod psnr;
pub mod testsrc;

/// Initialises FFmpeg once and quiets its logging (errors are reported through our own).
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        ffmpeg_next::init().expect("FFmpeg initialises");
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}

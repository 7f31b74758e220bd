//! `gpuworker testsrc` and `gpuworker psnr`.

use anyhow::Context;
use gpuworker::media::{psnr, testsrc};
use gpuworker::scale::filter::DEFAULT_KERNEL;
use std::path::{Path, PathBuf};

/// Parses `WIDTHxHEIGHT`.
pub fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("size '{s}' is not WIDTHxHEIGHT"))?;
    let (w, h): (u32, u32) = (
        w.parse().with_context(|| format!("bad width in '{s}'"))?,
        h.parse().with_context(|| format!("bad height in '{s}'"))?,
    );
    anyhow::ensure!(
        (16..=8192).contains(&w) && (16..=8192).contains(&h),
        "size {w}x{h} is out of range (16..8192)"
    );
    Ok((w, h))
}

pub fn testsrc(
    out: PathBuf,
    segments: u32,
    segment_seconds: u32,
    size: &str,
    fps: u32,
    audio: bool,
) -> anyhow::Result<i32> {
    let (width, height) = parse_size(size)?;
    anyhow::ensure!(
        segments > 0 && segment_seconds > 0 && fps > 0,
        "segments, seconds and fps must be positive"
    );
    let spec = testsrc::ClipSpec {
        width,
        height,
        fps,
        segments,
        segment_seconds,
        audio,
    };
    for p in testsrc::write_clip(&out, &spec)? {
        println!("{}", p.display());
    }
    Ok(0)
}

pub fn psnr(source: &Path, rendition: &Path, every: usize, json: bool) -> anyhow::Result<i32> {
    let r = psnr::measure(source, rendition, every, DEFAULT_KERNEL)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{}x{} frames {}/{}: PSNR Y {:.3} U {:.3} V {:.3} average {:.3} dB",
            r.width, r.height, r.frames_compared, r.rendition_frames, r.y, r.u, r.v, r.average
        );
    }
    Ok(0)
}

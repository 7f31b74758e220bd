//! Helpers shared by the integration tests: media generated with the ffmpeg CLI, ffprobe
//! queries, and the gpuworker binary.
#![allow(dead_code)]

pub mod net;
pub mod server;
pub mod sim;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh scratch directory under the target dir (kept for inspection after a failure).
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the ffmpeg CLI quietly; panics with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ffprobe's value of one entry, e.g. `("stream", "width")`, for the first video stream.
pub fn probe_video(path: &Path, section: &str, entry: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg(format!("{section}={entry}"))
        .args(["-of", "default=nw=1:nk=1"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    // MPEG-TS lists each stream twice (under its program and alone): take the first.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Every decoded video frame's (pict_type, key_frame) and the exact frame count.
pub fn frame_types(path: &Path) -> Vec<(String, bool)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pict_type,key_frame",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split(',');
            let key = it.next().unwrap_or("0") == "1";
            (it.next().unwrap_or("").trim().to_string(), key)
        })
        .collect()
}

/// Sum of the video packet sizes in bytes.
pub fn video_bytes(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=size",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<u64>().ok())
        .sum()
}

/// Runs the gpuworker binary.
pub fn gpuworker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpuworker"))
        .args(args)
        .output()
        .expect("gpuworker runs")
}

/// An H.264 MPEG-TS clip from one of ffmpeg's test sources, with a tone.
pub fn make_clip(path: &Path, size: &str, fps: u32, seconds: f64, gop: u32, extra: &[&str]) {
    let src = format!("testsrc2=size={size}:rate={fps}");
    let t = seconds.to_string();
    let g = gop.to_string();
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        &src,
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &t,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        &g,
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
    ];
    args.extend_from_slice(extra);
    let p = path.to_str().unwrap();
    args.push(p);
    ffmpeg(&args);
}

/// Writes the built-in clip (small) into `dir` with the gpuworker binary; returns the segments.
pub fn small_clip(dir: &Path, segments: u32, segment_seconds: u32) -> Vec<PathBuf> {
    let out = gpuworker(&[
        "testsrc",
        "--out",
        dir.to_str().unwrap(),
        "--segments",
        &segments.to_string(),
        "--segment-seconds",
        &segment_seconds.to_string(),
        "--size",
        "256x144",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (0..segments)
        .map(|i| dir.join(format!("seg{i}.ts")))
        .collect()
}

/// A two-rendition ladder small enough for quick concurrent tests.
pub const SMALL_LADDER: &str = r#"[{"name":"144p","width":256,"height":144,"bitrate":200000},{"name":"72p","width":128,"height":72,"bitrate":100000}]"#;

/// Copies the directory tree `from` to `to` (created).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

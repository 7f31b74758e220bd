//! MPEG-7 video signatures and segment slicing through `gpuworker transcode`, held against the
//! ffmpeg CLI: at the source's own size our frames are the decoder's, so our signature must
//! equal ffmpeg's `signature` filter byte for byte; scaled, it must match ffmpeg's
//! `scale=W:H,signature` in a gateway's comparison (lpms CompareSignatureByBuffer, our
//! `signature-compare`), and not match other content. A clip keeps the frames lpms keeps,
//! starts with a keyframe at time 0, and counts only the frames it encodes.

mod common;

use common::{ffmpeg, frame_types, gpuworker, make_clip, probe_video, scratch};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn transcode(args: &[&str]) -> (i32, Value, String) {
    let mut a = vec!["transcode", "--json", "-q"];
    a.extend_from_slice(args);
    let o = gpuworker(&a);
    (
        o.status.code().unwrap_or(-1),
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ffmpeg_signature(input: &Path, filter: &str, out: &Path) {
    ffmpeg(&[
        "-copyts",
        "-i",
        s(input),
        "-vf",
        &format!("{filter}signature=filename={}", s(out)),
        "-f",
        "null",
        "-",
    ]);
}

fn compare(a: &Path, b: &Path) -> (i32, String) {
    let o = gpuworker(&["signature-compare", s(a), s(b)]);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
    )
}

#[test]
fn signatures_are_lpms_signatures() {
    let dir = scratch("mpeg7");
    let input = dir.join("seg.ts");
    make_clip(&input, "640x360", 30, 2.0, 30, &[]);
    let ladder = r#"[{"name":"full","width":640,"height":360,"bitrate":900000},
                     {"name":"small","width":320,"height":180,"bitrate":300000}]"#;
    let out = dir.join("out");
    let (code, _, err) = transcode(&[
        s(&input),
        "--profiles",
        ladder,
        "--out",
        s(&out),
        "--signatures",
    ]);
    assert_eq!(code, 0, "{err}");
    let ours_full = out.join("full/seg.ts.bin");
    let ours_small = out.join("small/seg.ts.bin");

    // The same frames (our 1:1 scale is exact) give the same bytes.
    let ref_full = dir.join("ref_full.bin");
    ffmpeg_signature(&input, "", &ref_full);
    assert_eq!(
        std::fs::read(&ours_full).unwrap(),
        std::fs::read(&ref_full).unwrap(),
        "signature of the unscaled frames differs from ffmpeg's"
    );
    // Scaled by another scaler: a gateway's comparison matches them.
    let ref_small = dir.join("ref_small.bin");
    ffmpeg_signature(&input, "scale=320:180,", &ref_small);
    assert_eq!(compare(&ref_small, &ours_small), (0, "whole match".into()));
    // Other content does not match; a truncated signature is not one.
    let other = dir.join("other.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "mandelbrot=size=640x360:rate=30",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        s(&other),
    ]);
    let ref_other = dir.join("ref_other.bin");
    ffmpeg_signature(&other, "scale=320:180,", &ref_other);
    assert_eq!(compare(&ref_other, &ours_small), (1, "no match".into()));
    let bytes = std::fs::read(&ours_small).unwrap();
    let cut = dir.join("cut.bin");
    std::fs::write(&cut, &bytes[..60]).unwrap();
    assert_eq!(compare(&ref_small, &cut), (1, "InvalidSignData".into()));
}

#[test]
fn a_clip_keeps_lpms_frames_from_a_keyframe_at_zero() {
    let dir = scratch("slicing");
    let input = dir.join("seg.ts");
    make_clip(&input, "320x180", 30, 2.0, 60, &[]);
    let ladder = r#"[{"name":"a","width":256,"height":144,"bitrate":300000,"gop":"1"},
                     {"name":"b","width":160,"height":90,"bitrate":150000,"fps":15}]"#;
    // From 500 to 1500 ms after the first frame. At 30 fps (timestamps passed through):
    // frames 15..=45 = 31; at 15 fps: slots 8 (533 ms, the first at or after 500 ms after
    // slot 0)... lpms counts in the output time base: 500 ms = 7.5 -> 8 slots, 1500 ms =
    // 22.5 -> 23 slots, so slots 8..=23 = 16 frames.
    let out = dir.join("out");
    let (code, json, err) = transcode(&[
        s(&input),
        "--profiles",
        ladder,
        "--out",
        s(&out),
        "--clip",
        "500:1500",
    ]);
    assert_eq!(code, 0, "{err}");
    let r = &json["segments"][0]["renditions"];
    for (i, frames, (w, h)) in [(0, 31u64, (256u64, 144u64)), (1, 16, (160, 90))] {
        let path = PathBuf::from(r[i]["path"].as_str().unwrap());
        let types = frame_types(&path);
        assert_eq!(types.len() as u64, frames, "rendition {i}");
        assert!(types[0].1, "rendition {i} starts with a keyframe");
        assert_eq!(r[i]["frames"].as_u64(), Some(frames));
        assert_eq!(r[i]["pixels"].as_u64(), Some(frames * w * h));
        let start: f64 = probe_video(&path, "stream", "start_time")
            .parse()
            .unwrap_or(9.0);
        // Shifted to start at 0 (plus the muxer's offset for MPEG-TS, 1.4 s).
        assert!(start < 1.5, "rendition {i} starts at {start}");
    }
    // Only `to`: the first second, timestamps as they were.
    let (code, json, err) = transcode(&[
        s(&input),
        "--profiles",
        ladder,
        "--out",
        s(&dir.join("out2")),
        "--clip",
        "0:1000",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json["segments"][0]["renditions"][0]["frames"].as_u64(),
        Some(31)
    );
    // `to` before `from` is lpms's configuration error.
    let (code, _, err) = transcode(&[
        s(&input),
        "--profiles",
        ladder,
        "--out",
        s(&dir.join("out3")),
        "--clip",
        "1500:500",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("TranscoderInvalidClipConfig"), "{err}");
}

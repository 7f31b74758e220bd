//! go-livepeer's codec matrix through `gpuworker transcode`: every input a go-livepeer
//! transcoder takes (H.264 and HEVC in 8 and 10 bits, 4:2:0, 4:2:2 and 4:4:4; VP8 and VP9)
//! becomes 8-bit 4:2:0 H.264 renditions, checked with ffprobe (codec, format, size, frames,
//! pixels, keyframe first) and PSNR against the float64 reference of the 8-bit 4:2:0
//! conversion; the conversion itself is checked against ffmpeg's decode; HEVC renditions come
//! from libx265 when a profile asks for them (VideoProfile `encoder`).

mod common;

use common::{ffmpeg, frame_types, gpuworker, probe_video, scratch};
use serde_json::Value;
use std::path::{Path, PathBuf};

const LADDER: &str = r#"[{"name":"144p","width":256,"height":144,"bitrate":300000,"gop":"1"},
                        {"name":"90p","width":160,"height":90,"bitrate":150000}]"#;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn transcode(input: &Path, out: &Path, profiles: &str) -> Value {
    let o = gpuworker(&[
        "transcode",
        s(input),
        "--profiles",
        profiles,
        "--out",
        s(out),
        "--json",
        "-q",
    ]);
    assert!(
        o.status.success(),
        "{}: {}",
        input.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn psnr_y(source: &Path, rendition: &Path) -> f64 {
    let o = gpuworker(&["psnr", s(source), s(rendition), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["y"].as_f64().unwrap()
}

#[test]
fn every_input_go_livepeer_takes_becomes_h264_renditions() {
    let dir = scratch("codec_matrix");
    let src = "testsrc2=size=320x180:rate=30";
    let inputs: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "h264_420p10",
            vec!["-c:v", "libx264", "-pix_fmt", "yuv420p10le"],
            "ts",
        ),
        (
            "h264_422p",
            vec!["-c:v", "libx264", "-pix_fmt", "yuv422p"],
            "ts",
        ),
        (
            "h264_422p10",
            vec!["-c:v", "libx264", "-pix_fmt", "yuv422p10le"],
            "ts",
        ),
        (
            "h264_444p",
            vec!["-c:v", "libx264", "-pix_fmt", "yuv444p"],
            "ts",
        ),
        (
            "h264_444p10",
            vec!["-c:v", "libx264", "-pix_fmt", "yuv444p10le"],
            "ts",
        ),
        (
            "hevc_420p10",
            vec![
                "-c:v",
                "libx265",
                "-x265-params",
                "log-level=error",
                "-pix_fmt",
                "yuv420p10le",
            ],
            "ts",
        ),
        ("vp8", vec!["-c:v", "libvpx", "-b:v", "1M"], "webm"),
        ("vp9", vec!["-c:v", "libvpx-vp9", "-b:v", "1M"], "webm"),
    ];
    for (name, codec, ext) in &inputs {
        let input = dir.join(format!("{name}.{ext}"));
        let mut args = vec!["-f", "lavfi", "-i", src, "-t", "1", "-g", "30"];
        args.extend(codec.iter().copied());
        args.push(s(&input));
        ffmpeg(&args);
        let out = dir.join(format!("out_{name}"));
        let json = transcode(&input, &out, LADDER);
        let seg = &json["segments"][0];
        assert_eq!(seg["decoded_frames"].as_u64(), Some(30), "{name}");
        assert_eq!(
            seg["decoded_pixels"].as_u64(),
            Some(30 * 320 * 180),
            "{name}"
        );
        for (i, (w, h)) in [(256u64, 144u64), (160, 90)].into_iter().enumerate() {
            let r = &seg["renditions"][i];
            let path = PathBuf::from(r["path"].as_str().unwrap());
            assert_eq!(probe_video(&path, "stream", "codec_name"), "h264", "{name}");
            assert_eq!(probe_video(&path, "stream", "pix_fmt"), "yuv420p", "{name}");
            assert_eq!(
                probe_video(&path, "stream", "width")
                    .parse::<u64>()
                    .unwrap(),
                w
            );
            let frames = frame_types(&path);
            assert_eq!(frames.len(), 30, "{name}");
            assert!(frames[0].1, "{name}: first frame not a keyframe");
            assert_eq!(r["pixels"].as_u64(), Some(30 * w * h), "{name}");
            let y = psnr_y(&input, &path);
            assert!(y > 35.0, "{name} {w}x{h}: PSNR Y {y:.2} dB");
        }
    }
}

#[test]
fn the_conversion_to_8bit_420_is_exact_against_ffmpegs_decode() {
    let dir = scratch("codec_conversion");
    let input = dir.join("ten.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=30",
        "-t",
        "0.2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv444p10le",
        s(&input),
    ]);
    let ours = gpuworker::media::psnr::decode_planes(&input).unwrap();
    // ffmpeg's decode of the first frame, as raw 10-bit 4:4:4.
    ffmpeg(&[
        "-i",
        s(&input),
        "-frames:v",
        "1",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv444p10le",
        s(&dir.join("f.raw")),
    ]);
    let raw = std::fs::read(dir.join("f.raw")).unwrap();
    let sample = |plane: usize, x: usize, y: usize| -> u32 {
        let i = (plane * 320 * 180 + y * 320 + x) * 2;
        u16::from_le_bytes([raw[i], raw[i + 1]]) as u32
    };
    // Luma: each sample rounded to 8 bits, (v + 2) >> 2.
    let y: Vec<u8> = (0..180)
        .flat_map(|y| (0..320).map(move |x| (x, y)))
        .map(|(x, y)| ((sample(0, x, y) + 2) >> 2).min(255) as u8)
        .collect();
    assert_eq!(ours[0].2[0], y);
    // Chroma: 2x2 averages of the 4:4:4 chroma, rounded, in 8 bits.
    let u: Vec<u8> = (0..90)
        .flat_map(|y| (0..160).map(move |x| (x, y)))
        .map(|(x, y)| {
            let sum = sample(1, 2 * x, 2 * y)
                + sample(1, 2 * x + 1, 2 * y)
                + sample(1, 2 * x, 2 * y + 1)
                + sample(1, 2 * x + 1, 2 * y + 1);
            ((sum + 8) >> 4).min(255) as u8
        })
        .collect();
    assert_eq!(ours[0].2[1], u);
}

#[test]
fn hevc_renditions_come_from_libx265() {
    let dir = scratch("codec_hevc_out");
    let input = dir.join("in.ts");
    common::make_clip(&input, "320x180", 30, 1.0, 30, &[]);
    let ladder = r#"[{"name":"hevc","width":256,"height":144,"bitrate":300000,"encoder":"HEVC","gop":"1"},
                     {"name":"avc","width":256,"height":144,"bitrate":300000,"gop":"1"}]"#;
    let json = transcode(&input, &dir.join("out"), ladder);
    let r = &json["segments"][0]["renditions"];
    assert_eq!(r[0]["encoder"], "libx265");
    let hevc = PathBuf::from(r[0]["path"].as_str().unwrap());
    assert_eq!(probe_video(&hevc, "stream", "codec_name"), "hevc");
    let frames = frame_types(&hevc);
    assert_eq!(frames.len(), 30);
    assert!(frames[0].1);
    let (yh, ya) = (
        psnr_y(&input, &hevc),
        psnr_y(&input, Path::new(r[1]["path"].as_str().unwrap())),
    );
    assert!(yh > 35.0, "HEVC PSNR Y {yh:.2} dB (H.264 {ya:.2})");
}

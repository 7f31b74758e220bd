//! `gpuworker testsrc` and `gpuworker psnr`.

use anyhow::Context;
use gpuworker::backend::cpu::encode::EncoderSettings;
use gpuworker::media::demux::Segment;
use gpuworker::media::{psnr, testsrc};
use gpuworker::profile::{self, Gop};
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

pub fn ffmpeg_cmd(input: &Path, prefix: &str, spec: &str, preset: &str) -> anyhow::Result<i32> {
    gpuworker::media::init();
    let profiles = profile::parse_spec(spec)?;
    let seg = Segment::open(input)?;
    let mut args: Vec<String> = ["-hide_banner", "-loglevel", "error", "-y", "-i"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(input.display().to_string());
    let n = profiles.len();
    let split: String = (0..n).map(|i| format!("[s{i}]")).collect();
    let mut graph = format!("[0:v]split={n}{split}");
    let mut encoders = Vec::new();
    for (i, p) in profiles.iter().enumerate() {
        let (w, h) = p.output_size(seg.width, seg.height);
        let fps = p
            .frame_rate()
            .map(|(n, d)| format!(",fps={n}/{d}"))
            .unwrap_or_default();
        graph.push_str(&format!(";[s{i}]scale={w}:{h}{fps}[o{i}]"));
        let settings =
            EncoderSettings::for_profile(p, (w, h), seg.time_base, seg.frame_rate, preset, 0);
        let mut e = vec![
            "-map".to_string(),
            format!("[o{i}]"),
            "-map".into(),
            "0:a?".into(),
            "-c:a".into(),
            "copy".into(),
            "-c:v".into(),
            settings.encoder_name().into(),
        ];
        if p.frame_rate().is_none() {
            e.extend(["-fps_mode".into(), "passthrough".into()]);
        }
        for (k, v) in settings.options() {
            e.push(format!("-{k}:v"));
            e.push(v);
        }
        if let Gop::Seconds(g) = p.gop {
            e.extend([
                "-force_key_frames".into(),
                format!("expr:gte(t,n_forced*{g})"),
            ]);
        }
        e.extend([
            "-f".into(),
            p.container.muxer().into(),
            format!("{prefix}{}.{}", p.name, p.container.extension()),
        ]);
        encoders.push(e);
    }
    args.push("-filter_complex".into());
    args.push(graph);
    for e in encoders {
        args.extend(e);
    }
    println!("{}", serde_json::to_string(&args)?);
    Ok(0)
}

/// `gpuworker signature-compare A B`: a gateway's verdict on two signatures.
pub fn signature_compare(a: &Path, b: &Path) -> anyhow::Result<i32> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let (x, y) = (read(a)?, read(b)?);
    match gpuworker::mpeg7::compare(&x, &y) {
        Ok(v) => {
            println!(
                "{}",
                match v {
                    gpuworker::mpeg7::Verdict::Whole => "whole match",
                    gpuworker::mpeg7::Verdict::Partial => "partial match",
                    gpuworker::mpeg7::Verdict::NoMatch => "no match",
                }
            );
            Ok(if v.matches() { 0 } else { 1 })
        }
        Err(e) => {
            println!("{e}");
            Ok(1)
        }
    }
}

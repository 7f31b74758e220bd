//! The built-in test clip: a synthetic live stream (a textured scene panning under a moving
//! object, plus a stereo tone), encoded with libx264 + AAC and cut into MPEG-TS segments that
//! each start with an IDR frame and continue the previous segment's timestamps, as an RTMP
//! ingest segmenter produces them. No files or downloads are needed.

use crate::error::{Error, Result};
use ffmpeg_next as ff;
use std::path::{Path, PathBuf};

/// Media time of the clip's first frame.
const START_SECONDS: f64 = 10.0;

#[derive(Debug, Clone)]
pub struct ClipSpec {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub segments: u32,
    pub segment_seconds: u32,
    pub audio: bool,
}

impl Default for ClipSpec {
    fn default() -> Self {
        ClipSpec {
            width: 1920,
            height: 1080,
            fps: 30,
            segments: 2,
            segment_seconds: 2,
            audio: true,
        }
    }
}

/// A deterministic xorshift generator (the clip must be identical on every machine).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32
    }
}

/// Multi-octave value noise: a natural-looking texture that costs an encoder real bits.
fn texture(w: usize, h: usize, seed: u64, base: i32, amp: i32) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut acc = vec![0i32; w * h];
    let mut weight = amp;
    let mut cell = 64usize;
    while cell >= 2 && weight > 0 {
        let gw = w / cell + 2;
        let gh = h / cell + 2;
        let grid: Vec<i32> = (0..gw * gh)
            .map(|_| (rng.next() % 512) as i32 - 256)
            .collect();
        for y in 0..h {
            let gy = y / cell;
            let fy = (y % cell) as i32 * 256 / cell as i32;
            for x in 0..w {
                let gx = x / cell;
                let fx = (x % cell) as i32 * 256 / cell as i32;
                let g = |i: usize, j: usize| grid[j * gw + i];
                let top = g(gx, gy) * (256 - fx) + g(gx + 1, gy) * fx;
                let bot = g(gx, gy + 1) * (256 - fx) + g(gx + 1, gy + 1) * fx;
                let v = (top * (256 - fy) + bot * fy) >> 16;
                acc[y * w + x] += v * weight / 256;
            }
        }
        cell /= 2;
        weight /= 2;
    }
    acc.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ramp = ((i % w) * 64 / w) as i32;
            (base + ramp + v).clamp(16, 235) as u8
        })
        .collect()
}

/// Writes the clip's segments into `dir` as `seg0.ts`, `seg1.ts`, ...; returns their paths.
pub fn write_clip(dir: &Path, spec: &ClipSpec) -> Result<Vec<PathBuf>> {
    crate::media::init();
    let out_err = |detail: String| Error::Output {
        path: dir.to_path_buf(),
        detail,
    };
    std::fs::create_dir_all(dir).map_err(|e| out_err(e.to_string()))?;
    let (w, h) = (spec.width as usize & !1, spec.height as usize & !1);
    let (cw, ch) = (w / 2, h / 2);
    let pan = (spec.fps * spec.segments * spec.segment_seconds) as usize * 2 + 2;
    let tex_y = texture(w + pan, h, 0x9e37_79b9, 40, 150);
    let tex_u = texture(cw + pan / 2, ch, 0x85eb_ca6b, 100, 60);
    let tex_v = texture(cw + pan / 2, ch, 0xc2b2_ae35, 140, 60);

    let x264 =
        ff::encoder::find_by_name("libx264").ok_or_else(|| out_err("libx264 missing".into()))?;
    let mut venc = ff::codec::Context::new_with_codec(x264)
        .encoder()
        .video()
        .map_err(|e| out_err(e.to_string()))?;
    venc.set_width(w as u32);
    venc.set_height(h as u32);
    venc.set_format(ff::format::Pixel::YUV420P);
    let vtb = ff::Rational::new(1, spec.fps as i32);
    venc.set_time_base(vtb);
    venc.set_frame_rate(Some(ff::Rational::new(spec.fps as i32, 1)));
    let mut opts = ff::Dictionary::new();
    for (k, v) in [
        ("preset", "ultrafast"),
        ("crf", "20"),
        ("bf", "0"),
        ("forced-idr", "1"),
        ("sc_threshold", "0"),
    ] {
        opts.set(k, v);
    }
    let gop = (spec.fps * spec.segment_seconds).to_string();
    opts.set("g", &gop);
    let mut venc = venc
        .open_as_with(x264, opts)
        .map_err(|e| out_err(format!("libx264: {e}")))?;

    let mut aenc = if spec.audio {
        let aac =
            ff::encoder::find(ff::codec::Id::AAC).ok_or_else(|| out_err("aac missing".into()))?;
        let mut a = ff::codec::Context::new_with_codec(aac)
            .encoder()
            .audio()
            .map_err(|e| out_err(e.to_string()))?;
        a.set_rate(48000);
        a.set_channel_layout(ff::ChannelLayout::STEREO);
        a.set_format(ff::format::Sample::F32(ff::format::sample::Type::Planar));
        a.set_bit_rate(128_000);
        a.set_time_base(ff::Rational::new(1, 48000));
        Some(a.open_as(aac).map_err(|e| out_err(format!("aac: {e}")))?)
    } else {
        None
    };

    let frames_per_seg = (spec.fps * spec.segment_seconds) as i64;
    let total = frames_per_seg * spec.segments as i64;
    let mut paths = Vec::new();
    let mut muxers: Vec<(ff::format::context::Output, PathBuf)> = Vec::new();
    for s in 0..spec.segments {
        let path = dir.join(format!("seg{s}.ts"));
        let mut part = path.clone().into_os_string();
        part.push(".part");
        let mut ctx = ff::format::output_as(&PathBuf::from(&part), "mpegts")
            .map_err(|e| out_err(e.to_string()))?;
        ctx.add_stream_with(&venc)
            .map_err(|e| out_err(e.to_string()))?;
        if let Some(a) = &aenc {
            ctx.add_stream_with(a).map_err(|e| out_err(e.to_string()))?;
        }
        ctx.write_header().map_err(|e| out_err(e.to_string()))?;
        muxers.push((ctx, path.clone()));
        paths.push(path);
    }
    // Segment of a timestamp (seconds), clamped to the last one.
    let last_seg = muxers.len() - 1;
    // Timestamps start at START_SECONDS, so no packet (AAC priming included) is negative and
    // no muxer shifts one segment's timeline against the next.
    let seg_of = |t: f64| {
        (((t - START_SECONDS) / spec.segment_seconds as f64).max(0.0) as usize).min(last_seg)
    };

    let mut frame = ff::frame::Video::new(ff::format::Pixel::YUV420P, w as u32, h as u32);
    let mut packet = ff::Packet::empty();
    let samples_per_frame = 1024usize;
    let mut audio_pts: i64 = 0;
    let write = |muxers: &mut Vec<(ff::format::context::Output, PathBuf)>,
                 packet: &mut ff::Packet,
                 stream: usize,
                 tb: ff::Rational|
     -> Result<()> {
        let t = packet.pts().unwrap_or(0) as f64 * f64::from(tb);
        let (ctx, _) = &mut muxers[seg_of(t)];
        let st_tb = ctx.stream(stream).expect("stream").time_base();
        packet.rescale_ts(tb, st_tb);
        packet.set_stream(stream);
        packet
            .write_interleaved(ctx)
            .map_err(|e| out_err(e.to_string()))
    };
    for i in 0..total {
        let shift = i as usize * 2;
        let (sy, su, sv) = (frame.stride(0), frame.stride(1), frame.stride(2));
        for y in 0..h {
            frame.data_mut(0)[y * sy..y * sy + w]
                .copy_from_slice(&tex_y[y * (w + pan) + shift..y * (w + pan) + shift + w]);
        }
        for y in 0..ch {
            let off = y * (cw + pan / 2) + shift / 2;
            frame.data_mut(1)[y * su..y * su + cw].copy_from_slice(&tex_u[off..off + cw]);
            frame.data_mut(2)[y * sv..y * sv + cw].copy_from_slice(&tex_v[off..off + cw]);
        }
        // A bright box crossing the scene.
        let bw = w / 8;
        let bx = (i as usize * 7) % (w - bw);
        let by = h / 3 + ((i as f64 * 0.1).sin() * (h / 6) as f64) as usize;
        for y in by..(by + bw / 2).min(h) {
            let row = &mut frame.data_mut(0)[y * sy + bx..y * sy + bx + bw];
            for (k, p) in row.iter_mut().enumerate() {
                *p = 200u8.saturating_add((k % 32) as u8);
            }
        }
        let idr = i % frames_per_seg == 0;
        frame.set_pts(Some(i + START_SECONDS as i64 * spec.fps as i64));
        frame.set_kind(if idr {
            ff::picture::Type::I
        } else {
            ff::picture::Type::None
        });
        venc.send_frame(&frame)
            .map_err(|e| out_err(e.to_string()))?;
        while venc.receive_packet(&mut packet).is_ok() {
            write(&mut muxers, &mut packet, 0, vtb)?;
        }
        if let Some(a) = aenc.as_mut() {
            let until = (i + 1) * 48000 / spec.fps as i64;
            while audio_pts + samples_per_frame as i64 <= until {
                let mut af = ff::frame::Audio::new(
                    ff::format::Sample::F32(ff::format::sample::Type::Planar),
                    samples_per_frame,
                    ff::ChannelLayout::STEREO,
                );
                af.set_rate(48000);
                for c in 0..2 {
                    let freq = if c == 0 { 440.0 } else { 660.0 };
                    let data = af.plane_mut::<f32>(c);
                    for (k, s) in data.iter_mut().enumerate() {
                        let t = (audio_pts + k as i64) as f64 / 48000.0;
                        *s = (0.2 * (2.0 * std::f64::consts::PI * freq * t).sin()) as f32;
                    }
                }
                af.set_pts(Some(audio_pts + START_SECONDS as i64 * 48000));
                audio_pts += samples_per_frame as i64;
                a.send_frame(&af).map_err(|e| out_err(e.to_string()))?;
                while a.receive_packet(&mut packet).is_ok() {
                    write(&mut muxers, &mut packet, 1, ff::Rational::new(1, 48000))?;
                }
            }
        }
    }
    venc.send_eof().map_err(|e| out_err(e.to_string()))?;
    while venc.receive_packet(&mut packet).is_ok() {
        write(&mut muxers, &mut packet, 0, vtb)?;
    }
    if let Some(a) = aenc.as_mut() {
        a.send_eof().map_err(|e| out_err(e.to_string()))?;
        while a.receive_packet(&mut packet).is_ok() {
            write(&mut muxers, &mut packet, 1, ff::Rational::new(1, 48000))?;
        }
    }
    for (mut ctx, path) in muxers {
        ctx.write_trailer().map_err(|e| out_err(e.to_string()))?;
        let mut part = path.clone().into_os_string();
        part.push(".part");
        std::fs::rename(PathBuf::from(part), &path).map_err(|e| out_err(e.to_string()))?;
    }
    Ok(paths)
}

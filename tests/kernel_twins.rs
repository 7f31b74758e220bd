//! CPU twins of the CUDA kernels (the `.cu` sources compiled as C++) against the Rust CPU
//! scaler, bit for bit: the GPU and CPU backends share one fixed-point filter, so the scaled
//! frames before encoding must be identical. Random NV12 frames, odd sizes and padded pitches.

use gpuworker::backend::cpu::scale::{CpuScaler, Kernels};
use gpuworker::backend::cuda::twin::{scale_nv12, Nv12};
use gpuworker::scale::filter::DEFAULT_KERNEL;
use gpuworker::scale::{chroma_size, DstFrame, Layout, Plane, PlaneMut, ScalePlan, SrcFrame};
use rand::{Rng, SeedableRng};

/// The Rust scaler's I420 output for an NV12 source.
fn rust_scaler(k: Kernels, plan: &ScalePlan, src: &Nv12) -> Vec<[Vec<u8>; 3]> {
    let (cw, ch) = chroma_size(src.width, src.height);
    let frame = SrcFrame {
        layout: Layout::Nv12,
        width: src.width,
        height: src.height,
        planes: [
            Some(Plane {
                data: &src.y,
                stride: src.pitch_y,
                width: src.width,
                height: src.height,
            }),
            Some(Plane {
                data: &src.uv,
                stride: src.pitch_uv,
                width: 2 * cw,
                height: ch,
            }),
            None,
        ],
    };
    let mut bufs: Vec<[Vec<u8>; 3]> = plan
        .outputs
        .iter()
        .map(|o| {
            let (a, b) = chroma_size(o.width, o.height);
            [vec![0; o.width * o.height], vec![0; a * b], vec![0; a * b]]
        })
        .collect();
    let mut scaler = CpuScaler::new(plan.clone(), k);
    let mut dst: Vec<DstFrame<'_>> = bufs
        .iter_mut()
        .zip(&plan.outputs)
        .map(|([y, u, v], o)| {
            let (a, b) = chroma_size(o.width, o.height);
            DstFrame {
                y: PlaneMut::packed(y, o.width, o.height),
                u: PlaneMut::packed(u, a, b),
                v: PlaneMut::packed(v, a, b),
            }
        })
        .collect();
    scaler.scale(&frame, &mut dst);
    drop(dst);
    bufs
}

/// The twin's NV12 output as packed I420 planes.
fn to_i420(f: &Nv12) -> [Vec<u8>; 3] {
    let (cw, ch) = chroma_size(f.width, f.height);
    let y = (0..f.height)
        .flat_map(|r| f.y[r * f.pitch_y..r * f.pitch_y + f.width].to_vec())
        .collect();
    let chroma = |c: usize| {
        (0..ch)
            .flat_map(|r| (0..cw).map(move |x| (r, x)))
            .map(|(r, x)| f.uv[r * f.pitch_uv + 2 * x + c])
            .collect()
    };
    [y, chroma(0), chroma(1)]
}

#[test]
fn scale_kernel_twin_equals_the_rust_scaler_bit_for_bit() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    type Size = (usize, usize);
    let cases: &[(Size, &[Size])] = &[
        (
            (1920, 1080),
            &[(426, 240), (640, 360), (854, 480), (1280, 720)],
        ),
        ((641, 359), &[(213, 119), (641, 359), (1283, 361)]),
        ((33, 17), &[(7, 5), (33, 17), (66, 34)]),
        ((7, 5), &[(3, 3), (15, 11)]),
    ];
    for &((w, h), outs) in cases {
        let (cw, _) = chroma_size(w, h);
        // Pitches padded as decoders and NVDEC surfaces pad them.
        let mut src = Nv12::new(w, h, w + 64 + w % 3, 2 * cw + 32);
        src.y.iter_mut().for_each(|b| *b = rng.random());
        src.uv.iter_mut().for_each(|b| *b = rng.random());
        let plan = ScalePlan::new(DEFAULT_KERNEL, (w, h), outs);
        let twin: Vec<[Vec<u8>; 3]> = scale_nv12(&plan, &src).iter().map(to_i420).collect();
        for k in Kernels::available() {
            let rust = rust_scaler(k, &plan, &src);
            for (i, (a, b)) in twin.iter().zip(&rust).enumerate() {
                for (p, name) in ["Y", "U", "V"].iter().enumerate() {
                    let diff = a[p].iter().zip(&b[p]).filter(|(x, y)| x != y).count();
                    assert!(
                        diff == 0,
                        "{w}x{h} -> {:?} {name}: {diff} samples differ from the {} scaler",
                        outs[i],
                        k.name()
                    );
                }
            }
        }
    }
}

#[test]
fn scale_kernel_twin_saturates_like_the_rust_scaler() {
    // Stripes of 0/255 ring past both ends of the range with Lanczos-3.
    let (w, h) = (203, 67);
    let mut src = Nv12::new(w, h, 256, 256);
    for (i, b) in src.y.iter_mut().enumerate() {
        *b = if (i % 256) % 3 == 0 { 255 } else { 0 };
    }
    for (i, b) in src.uv.iter_mut().enumerate() {
        *b = if (i % 256) % 4 < 2 { 255 } else { 0 };
    }
    let outs = [(67, 22), (150, 50), (203, 67)];
    let plan = ScalePlan::new(DEFAULT_KERNEL, (w, h), &outs);
    let twin: Vec<[Vec<u8>; 3]> = scale_nv12(&plan, &src).iter().map(to_i420).collect();
    let rust = rust_scaler(Kernels::Portable, &plan, &src);
    assert!(twin == rust);
}

#[test]
fn color_kernel_twins_equal_the_rust_reference_bit_for_bit() {
    use gpuworker::backend::cuda::twin::{nv12_to_rgb, rgb_to_nv12};
    use gpuworker::scale::color;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for (w, h) in [(64, 36), (33, 17), (7, 5), (1, 1), (640, 359)] {
        let (cw, _) = chroma_size(w, h);
        let mut src = Nv12::new(w, h, w + 13, 2 * cw + 6);
        src.y.iter_mut().for_each(|b| *b = rng.random());
        src.uv.iter_mut().for_each(|b| *b = rng.random());
        let want = color::nv12_to_rgb(&src.y, src.pitch_y, &src.uv, src.pitch_uv, w, h);
        let got = nv12_to_rgb(&src);
        assert!(
            want.iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{w}x{h}: nv12_to_rgb differs"
        );
        // Model outputs stray outside [0, 1]; the .5 boundaries test the rounding.
        let mut rgb: Vec<f32> = (0..3 * w * h)
            .map(|_| rng.random_range(-0.2f32..1.2))
            .collect();
        for (i, v) in rgb.iter_mut().enumerate().step_by(7) {
            *v = ((i % 256) as f32 + 0.5) / 255.0;
        }
        let (y, uv) = color::rgb_to_nv12(&rgb, w, h);
        let twin = rgb_to_nv12(&rgb, w, h);
        assert!(twin.y == y && twin.uv == uv, "{w}x{h}: rgb_to_nv12 differs");
    }
}

#[test]
fn nv12_rgb_round_trip_keeps_the_picture() {
    use gpuworker::scale::color;
    // A smooth picture whose colours stay inside the RGB gamut (no clamping): luma survives
    // NV12 -> RGB -> NV12 within 2, chroma within 3.
    let (w, h) = (64, 48);
    let (cw, ch) = chroma_size(w, h);
    let y: Vec<u8> = (0..w * h)
        .map(|i| (40 + (i % w) * 2 + (i / w)) as u8)
        .collect();
    let uv: Vec<u8> = (0..2 * cw * ch)
        .map(|i| if i % 2 == 0 { 120 } else { 134 })
        .collect();
    let rgb = color::nv12_to_rgb(&y, w, &uv, 2 * cw, w, h);
    let (y2, uv2) = color::rgb_to_nv12(&rgb, w, h);
    let worst = y
        .iter()
        .zip(&y2)
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .max()
        .unwrap();
    assert!(worst <= 2, "luma moved by {worst}");
    let worst = uv
        .iter()
        .zip(&uv2)
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .max()
        .unwrap();
    assert!(worst <= 3, "chroma moved by {worst}");
}

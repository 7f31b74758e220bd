//! Scaler throughput: the bench ladder (426x240, 640x360, 854x480, 1280x720) from one 1080p
//! frame in one pass, for each implementation. `cargo bench --bench scaler`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gpuworker::backend::cpu::scale::{CpuScaler, Kernels};
use gpuworker::scale::filter::DEFAULT_KERNEL;
use gpuworker::scale::{chroma_size, DstFrame, Layout, Plane, PlaneMut, ScalePlan, SrcFrame};

const LADDER: [(usize, usize); 4] = [(426, 240), (640, 360), (854, 480), (1280, 720)];

fn bench(c: &mut Criterion) {
    let (w, h) = (1920usize, 1080usize);
    let (cw, ch) = chroma_size(w, h);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 56) as u8
            })
            .collect()
    };
    let (y, u, v) = (noise(w * h), noise(cw * ch), noise(cw * ch));
    let plane = |d: &'static [u8], pw, ph| Some(Plane::packed(d, pw, ph));
    let (y, u, v): (&'static [u8], &'static [u8], &'static [u8]) = (y.leak(), u.leak(), v.leak());
    let src = SrcFrame {
        layout: Layout::I420,
        width: w,
        height: h,
        planes: [plane(y, w, h), plane(u, cw, ch), plane(v, cw, ch)],
    };
    let mut bufs: Vec<[Vec<u8>; 3]> = LADDER
        .iter()
        .map(|&(dw, dh)| {
            let (dcw, dch) = chroma_size(dw, dh);
            [vec![0; dw * dh], vec![0; dcw * dch], vec![0; dcw * dch]]
        })
        .collect();
    let mut group = c.benchmark_group("ladder_1080p");
    group.throughput(Throughput::Elements(1));
    let impls = Kernels::available();
    for k in impls {
        let mut scaler = CpuScaler::new(ScalePlan::new(DEFAULT_KERNEL, (w, h), &LADDER), k);
        group.bench_function(k.name(), |b| {
            b.iter(|| {
                let mut dst: Vec<DstFrame<'_>> = bufs
                    .iter_mut()
                    .zip(LADDER)
                    .map(|([py, pu, pv], (dw, dh))| {
                        let (dcw, dch) = chroma_size(dw, dh);
                        DstFrame {
                            y: PlaneMut::packed(py, dw, dh),
                            u: PlaneMut::packed(pu, dcw, dch),
                            v: PlaneMut::packed(pv, dcw, dch),
                        }
                    })
                    .collect();
                scaler.scale(&src, &mut dst);
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);

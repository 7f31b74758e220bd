//! Steady state allocates nothing per frame: a counting global allocator sees the same number
//! of Rust heap allocations for a segment of 30 frames as for one of 90 (what remains is per
//! segment: the job, the report, output paths). Frames come from the session's pools;
//! messages travel through preallocated lock-free queues.

mod common;

use common::{gpuworker, scratch, SMALL_LADDER};
use gpuworker::pipeline::SessionConfig;
use gpuworker::profile::parse_spec;
use gpuworker::worker::{Worker, WorkerConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: delegates every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn clip(dir: &Path, seconds: u32) -> Vec<PathBuf> {
    let out = gpuworker(&[
        "testsrc",
        "--out",
        dir.to_str().unwrap(),
        "--segments",
        "2",
        "--segment-seconds",
        &seconds.to_string(),
        "--size",
        "256x144",
    ]);
    assert!(out.status.success());
    vec![dir.join("seg0.ts"), dir.join("seg1.ts")]
}

#[test]
fn no_rust_allocation_per_frame_in_steady_state() {
    let dir = scratch("alloc");
    let short = clip(&dir.join("short"), 1);
    let long = clip(&dir.join("long"), 3);
    let worker = Worker::new(WorkerConfig {
        threads: 2,
        capacity: 1,
        ..Default::default()
    });
    let session = worker
        .open_session(SessionConfig::new(parse_spec(SMALL_LADDER).unwrap()))
        .unwrap();
    let outs = |tag: &str| {
        vec![
            dir.join(format!("{tag}_a.ts")),
            dir.join(format!("{tag}_b.ts")),
        ]
    };
    // Warm up: codecs opened, pools filled.
    session.transcode(&short[0], &outs("w1")).unwrap();
    session.transcode(&long[0], &outs("w2")).unwrap();
    let count = |input: &Path, tag: &str| {
        let o = outs(tag);
        let before = ALLOCS.load(SeqCst);
        let r = session.transcode(input, &o).unwrap();
        (ALLOCS.load(SeqCst) - before, r.decoded_frames)
    };
    let (a_short, f_short) = count(&short[1], "s");
    let (a_long, f_long) = count(&long[1], "l");
    eprintln!("{f_short} frames: {a_short} allocations; {f_long} frames: {a_long} allocations");
    assert_eq!((f_short, f_long), (30, 90));
    // 60 more frames through 2 renditions = 120 more frame messages; allow a handful of
    // allocations that depend on packet timing (never one per frame).
    assert!(
        a_long.abs_diff(a_short) <= 8,
        "per-frame allocations: {a_short} for 30 frames, {a_long} for 90"
    );
}

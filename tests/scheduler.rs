//! The worker under load: admission control refuses at once, per-session queues stay bounded,
//! memory stays flat under sustained overload, and a failing session does not disturb others.

mod common;

use common::{scratch, small_clip, SMALL_LADDER};
use gpuworker::bench::stats::memory_mib;
use gpuworker::pipeline::{SessionConfig, Ticket};
use gpuworker::profile::parse_spec;
use gpuworker::worker::{Worker, WorkerConfig};
use std::path::{Path, PathBuf};

fn config() -> SessionConfig {
    SessionConfig::new(parse_spec(SMALL_LADDER).unwrap())
}

fn outputs(dir: &Path, tag: &str) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    vec![
        dir.join(format!("{tag}_144p.ts")),
        dir.join(format!("{tag}_72p.ts")),
    ]
}

#[test]
fn sessions_beyond_capacity_are_refused_at_once() {
    let worker = Worker::new(WorkerConfig {
        threads: 2,
        capacity: 2,
        ..Default::default()
    });
    let a = worker.open_session(config()).unwrap();
    let b = worker.open_session(config()).unwrap();
    let t = std::time::Instant::now();
    let err = worker
        .open_session(config())
        .err()
        .expect("third session refused");
    assert!(err.is_busy(), "{err}");
    assert!(err.to_string().contains("busy"), "{err}");
    assert!(t.elapsed().as_millis() < 100, "refusal must not wait");
    assert_eq!(worker.admission().refused(), 1);
    drop(a);
    // The place is free once the session's stages are gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let c = loop {
        match worker.open_session(config()) {
            Ok(c) => break c,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("place not freed: {e}"),
        }
    };
    drop((b, c));
}

#[test]
fn a_flooded_session_holds_at_most_depth_segments_and_finishes_them() {
    let dir = scratch("sched_depth");
    let segs = small_clip(&dir.join("src"), 2, 1);
    let worker = Worker::new(WorkerConfig::default());
    let mut cfg = config();
    cfg.depth = 2;
    let session = worker.open_session(cfg).unwrap();
    let (mut accepted, mut busy) = (Vec::<(Ticket, Vec<PathBuf>)>::new(), 0);
    for i in 0..40 {
        let outs = outputs(&dir.join("out"), &format!("s{i}"));
        match session.submit(&segs[i % 2], &outs) {
            Ok(t) => accepted.push((t, outs)),
            Err(e) => {
                assert!(e.is_busy(), "{e}");
                busy += 1;
            }
        }
        assert!(session.in_flight() <= 2);
    }
    assert!(busy >= 30, "only {busy} of 40 refused");
    for (t, outs) in accepted {
        let r = t.wait().expect("accepted segments complete");
        assert_eq!(r.decoded_frames, 30);
        for o in outs {
            assert!(o.exists(), "{} missing", o.display());
        }
    }
    assert_eq!(session.in_flight(), 0);
}

#[test]
fn a_failing_session_does_not_disturb_the_others() {
    let dir = scratch("sched_isolation");
    let segs = small_clip(&dir.join("src"), 3, 1);
    let bad = dir.join("bad.ts");
    std::fs::write(&bad, vec![0x47u8; 188 * 20]).unwrap();
    let worker = Worker::new(WorkerConfig::default());
    let sessions: Vec<_> = (0..3)
        .map(|_| worker.open_session(config()).unwrap())
        .collect();
    std::thread::scope(|s| {
        for (k, session) in sessions.iter().enumerate() {
            let (segs, bad, dir) = (&segs, &bad, &dir);
            s.spawn(move || {
                for (j, seg) in segs.iter().enumerate() {
                    // Session 0 gets a corrupt segment in the middle of its stream.
                    let input = if k == 0 && j == 1 { bad } else { seg };
                    let outs = outputs(&dir.join(format!("k{k}")), &format!("j{j}"));
                    let r = session.transcode(input, &outs);
                    if k == 0 && j == 1 {
                        let e = r.expect_err("corrupt segment fails");
                        assert!(!e.is_busy());
                        assert!(
                            outs.iter().all(|o| !o.exists()),
                            "no output for a failed segment"
                        );
                    } else {
                        let r = r.unwrap_or_else(|e| panic!("session {k} segment {j}: {e}"));
                        assert_eq!(r.decoded_frames, 30);
                        assert_eq!(r.renditions[0].frames, 30);
                    }
                }
            });
        }
    });
    for k in 0..3 {
        let d = dir.join(format!("k{k}"));
        let leftovers: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
            .collect();
        assert!(leftovers.is_empty(), "part files left in {}", d.display());
    }
}

#[test]
fn memory_stays_bounded_under_sustained_overload() {
    let dir = scratch("sched_overload");
    let segs = small_clip(&dir.join("src"), 2, 1);
    let worker = Worker::new(WorkerConfig {
        threads: 0,
        capacity: 3,
        ..Default::default()
    });
    let sessions: Vec<_> = (0..3)
        .map(|_| worker.open_session(config()).unwrap())
        .collect();
    // Warm up, then measure while every session is flooded far beyond what it can do.
    for (k, s) in sessions.iter().enumerate() {
        s.transcode(&segs[0], &outputs(&dir.join("warm"), &format!("{k}")))
            .unwrap();
    }
    let baseline = memory_mib().0;
    let (mut accepted, mut busy, mut peak) = (0usize, 0usize, baseline);
    let mut tickets = Vec::new();
    let start = std::time::Instant::now();
    let mut i = 0;
    while start.elapsed().as_secs_f64() < 4.0 {
        for (k, s) in sessions.iter().enumerate() {
            let outs = outputs(&dir.join(format!("o{k}")), &format!("{}", i % 8));
            match s.submit(&segs[i % 2], &outs) {
                Ok(t) => {
                    accepted += 1;
                    tickets.push(t);
                }
                Err(e) => {
                    assert!(e.is_busy(), "{e}");
                    busy += 1;
                }
            }
            assert!(s.in_flight() <= 3, "per-session queue is bounded");
        }
        i += 1;
        // Settle finished tickets as a server would.
        tickets.retain(|t| t.wait_timeout(std::time::Duration::ZERO).is_none());
        peak = peak.max(memory_mib().0);
        std::thread::yield_now();
    }
    for t in tickets {
        let _ = t.wait();
    }
    eprintln!(
        "{accepted} accepted, {busy} refused busy; RSS {baseline:.0} MiB -> peak {peak:.0} MiB"
    );
    assert!(
        busy > accepted,
        "the load must exceed what the worker takes"
    );
    assert!(
        peak - baseline < 150.0,
        "RSS grew by {:.0} MiB under overload",
        peak - baseline
    );
}

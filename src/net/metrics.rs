//! Counters for `/metrics` in the Prometheus text format: sessions, segments in flight,
//! segment latency (histogram), the real-time ratio, errors by kind and per-device use.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Upper bounds of the latency histogram, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0];

#[derive(Default)]
pub struct Metrics {
    in_flight: AtomicU64,
    segments_ok: AtomicU64,
    /// Microseconds, to keep sums in integers.
    media_us: AtomicU64,
    wall_us: AtomicU64,
    buckets: Mutex<Vec<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

/// What the worker reports at scrape time.
pub struct Snapshot {
    pub sessions: usize,
    pub capacity: usize,
    /// Sessions per CUDA device (`cuda:N`), empty on CPU.
    pub devices: Vec<(String, usize)>,
}

impl Metrics {
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// A segment finished: `media` seconds of video took `wall` seconds.
    pub fn ok(&self, media: f64, wall: f64) {
        self.in_flight.fetch_sub(1, Relaxed);
        self.segments_ok.fetch_add(1, Relaxed);
        self.media_us.fetch_add((media * 1e6) as u64, Relaxed);
        self.wall_us.fetch_add((wall * 1e6) as u64, Relaxed);
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        b.resize(LATENCY_BUCKETS.len(), 0);
        for (i, &le) in LATENCY_BUCKETS.iter().enumerate() {
            if wall <= le {
                b[i] += 1;
            }
        }
    }

    /// A segment (or request) failed with an error of `kind` (busy, download, input, ...).
    pub fn error(&self, kind: &str, was_in_flight: bool) {
        if was_in_flight {
            self.in_flight.fetch_sub(1, Relaxed);
        }
        *self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind.to_string())
            .or_default() += 1;
    }

    pub fn render(&self, s: &Snapshot) -> String {
        let mut o = String::new();
        let metric = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        metric(
            &mut o,
            "gpuworker_sessions",
            "gauge",
            "Open transcoding sessions.",
        );
        let _ = writeln!(o, "gpuworker_sessions {}", s.sessions);
        metric(
            &mut o,
            "gpuworker_session_capacity",
            "gauge",
            "Sessions admitted at once.",
        );
        let _ = writeln!(o, "gpuworker_session_capacity {}", s.capacity);
        metric(
            &mut o,
            "gpuworker_segments_in_flight",
            "gauge",
            "Segments accepted and not finished (the queue depth).",
        );
        let _ = writeln!(
            o,
            "gpuworker_segments_in_flight {}",
            self.in_flight.load(Relaxed)
        );
        metric(
            &mut o,
            "gpuworker_segments_total",
            "counter",
            "Segments transcoded.",
        );
        let ok = self.segments_ok.load(Relaxed);
        let _ = writeln!(o, "gpuworker_segments_total {ok}");
        let (media, wall) = (
            self.media_us.load(Relaxed) as f64 / 1e6,
            self.wall_us.load(Relaxed) as f64 / 1e6,
        );
        metric(
            &mut o,
            "gpuworker_segment_latency_seconds",
            "histogram",
            "Time from a segment's arrival to its last rendition.",
        );
        let b = self
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            let n = b.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "gpuworker_segment_latency_seconds_bucket{{le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            o,
            "gpuworker_segment_latency_seconds_bucket{{le=\"+Inf\"}} {ok}"
        );
        let _ = writeln!(o, "gpuworker_segment_latency_seconds_sum {wall}");
        let _ = writeln!(o, "gpuworker_segment_latency_seconds_count {ok}");
        metric(
            &mut o,
            "gpuworker_realtime_ratio",
            "gauge",
            "Media seconds transcoded per second of segment latency (above 1: faster than real time).",
        );
        let ratio = if wall > 0.0 { media / wall } else { 0.0 };
        let _ = writeln!(o, "gpuworker_realtime_ratio {ratio:.4}");
        metric(
            &mut o,
            "gpuworker_errors_total",
            "counter",
            "Failed segments and requests by kind.",
        );
        for (kind, n) in self.errors.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(o, "gpuworker_errors_total{{kind=\"{kind}\"}} {n}");
        }
        metric(
            &mut o,
            "gpuworker_device_sessions",
            "gauge",
            "Sessions placed on each device.",
        );
        if s.devices.is_empty() {
            let _ = writeln!(
                o,
                "gpuworker_device_sessions{{device=\"cpu\"}} {}",
                s.sessions
            );
        }
        for (d, n) in &s.devices {
            let _ = writeln!(o, "gpuworker_device_sessions{{device=\"{d}\"}} {n}");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.begin();
        m.ok(2.0, 0.5);
        m.begin();
        m.ok(2.0, 3.0);
        m.error("download", false);
        let t = m.render(&Snapshot {
            sessions: 1,
            capacity: 4,
            devices: vec![],
        });
        assert!(t.contains("gpuworker_segments_total 2\n"), "{t}");
        assert!(t.contains("gpuworker_segment_latency_seconds_bucket{le=\"0.5\"} 1\n"));
        assert!(t.contains("gpuworker_segment_latency_seconds_bucket{le=\"4\"} 2\n"));
        assert!(t.contains("gpuworker_segment_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(t.contains("gpuworker_realtime_ratio 1.1429\n"), "{t}");
        assert!(t.contains("gpuworker_errors_total{kind=\"download\"} 1\n"));
        assert!(t.contains("gpuworker_segments_in_flight 0\n"));
    }
}

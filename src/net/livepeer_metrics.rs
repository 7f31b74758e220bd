//! go-livepeer's Prometheus series for a transcoder node, so dashboards built for
//! `livepeer -transcoder -monitor` keep working: the names, label keys and bucket bounds of
//! go-livepeer monitor/census.go (namespace `livepeer`, base labels `node_id` and
//! `node_type="trcr"`), rendered as OpenCensus's Prometheus exporter renders views: Count →
//! counter, Distribution → cumulative histogram, LastValue → gauge. A go-livepeer transcoder
//! records upload time and count, sessions and versions; the transcode series it leaves to
//! the orchestrator are recorded here too, with the orchestrator's labels, because operators
//! of remote transcoders asked for them. Served beside gpuworker's own series on `-cliAddr`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// `transcode_time_seconds` bounds (census.go:648).
const TRANSCODE_BOUNDS: &[f64] = &[
    0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 10.0,
];
/// `transcode_overall_latency_seconds` bounds (census.go:655).
const LATENCY_BOUNDS: &[f64] = &[
    0.0, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 10.0,
];
/// `upload_time_seconds` and `download_time_seconds` bounds (census.go:690,697), whose
/// literals (`.10, .20, .50, .100, ...`) are not in order; here they are, without repeats.
const TRANSFER_BOUNDS: &[f64] = &[0.0, 0.1, 0.15, 0.2, 0.5, 10.0];

/// go-livepeer's `SegmentTranscodeError` codes a transcoder's failures fall under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailCode {
    Download,
    NonRetryable,
    Transcode,
}

impl FailCode {
    fn label(self) -> &'static str {
        match self {
            FailCode::Download => "Download",
            FailCode::NonRetryable => "NonRetryable",
            FailCode::Transcode => "Transcode",
        }
    }
}

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (c, &le) in self.counts.iter_mut().zip(self.bounds) {
            if v <= le {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, o: &mut String, name: &str, labels: &str) {
        for (c, le) in self.counts.iter().zip(self.bounds) {
            let _ = writeln!(o, "{name}_bucket{{{labels},le=\"{le}\"}} {c}");
        }
        let _ = writeln!(o, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(o, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(o, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct State {
    transcoded: BTreeMap<String, u64>,
    transcode_time: BTreeMap<String, Histogram>,
    latency: BTreeMap<String, Histogram>,
    failed: BTreeMap<FailCode, u64>,
    download: Option<Histogram>,
    upload: Option<Histogram>,
    uploaded: u64,
}

/// The go-livepeer series of one transcoder process.
pub struct LivepeerMetrics {
    node_id: String,
    version: String,
    orchestrator: String,
    max_sessions: usize,
    state: Mutex<State>,
}

/// A Prometheus label value, escaped.
fn esc(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl LivepeerMetrics {
    /// `node_id` is go-livepeer's (`-ethAcctAddr-` prefix, then the host name).
    pub fn new(node_id: &str, version: &str, orchestrator: &str, max_sessions: usize) -> Self {
        LivepeerMetrics {
            node_id: esc(node_id),
            version: esc(version),
            orchestrator: esc(orchestrator),
            max_sessions,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A segment was downloaded in `secs`.
    pub fn downloaded(&self, secs: f64) {
        self.lock()
            .download
            .get_or_insert_with(|| Histogram::new(TRANSFER_BOUNDS))
            .observe(secs);
    }

    /// A segment of `profiles` (comma-joined names) transcoded in `transcode` seconds, `total`
    /// from notification to result.
    pub fn transcoded(&self, profiles: &str, transcode: f64, total: f64) {
        let mut s = self.lock();
        let key = esc(profiles);
        *s.transcoded.entry(key.clone()).or_default() += 1;
        s.transcode_time
            .entry(key.clone())
            .or_insert_with(|| Histogram::new(TRANSCODE_BOUNDS))
            .observe(transcode);
        s.latency
            .entry(key)
            .or_insert_with(|| Histogram::new(LATENCY_BOUNDS))
            .observe(total);
    }

    pub fn failed(&self, code: FailCode) {
        *self.lock().failed.entry(code).or_default() += 1;
    }

    /// A result was posted to the orchestrator in `secs`.
    pub fn uploaded(&self, secs: f64) {
        let mut s = self.lock();
        s.uploaded += 1;
        s.upload
            .get_or_insert_with(|| Histogram::new(TRANSFER_BOUNDS))
            .observe(secs);
    }

    /// The series in Prometheus text, with `current_sessions` open streams.
    pub fn render(&self, current_sessions: usize) -> String {
        let s = self.lock();
        let base = format!("node_id=\"{}\",node_type=\"trcr\"", self.node_id);
        let mut o = String::new();
        let head = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(
                o,
                "# HELP livepeer_{name} {help}\n# TYPE livepeer_{name} {kind}"
            );
        };
        head(
            &mut o,
            "versions",
            "gauge",
            "Versions used by LivePeer node.",
        );
        let _ = writeln!(
            o,
            "livepeer_versions{{compiler=\"rustc\",goos=\"{}\",goversion=\"\",livepeerversion=\"{}\",node_type=\"trcr\"}} 1",
            std::env::consts::OS,
            self.version
        );
        head(&mut o, "max_sessions_total", "gauge", "Max Sessions");
        let _ = writeln!(
            o,
            "livepeer_max_sessions_total{{{base}}} {}",
            self.max_sessions
        );
        head(
            &mut o,
            "current_sessions_total",
            "gauge",
            "Number of streams currently transcoding",
        );
        let _ = writeln!(
            o,
            "livepeer_current_sessions_total{{{base}}} {current_sessions}"
        );
        head(
            &mut o,
            "segment_transcoded_total",
            "counter",
            "SegmentTranscoded",
        );
        for (p, n) in &s.transcoded {
            let _ = writeln!(
                o,
                "livepeer_segment_transcoded_total{{{base},profiles=\"{p}\",trusted=\"true\",verified=\"true\"}} {n}"
            );
        }
        head(
            &mut o,
            "segment_transcode_failed_total",
            "counter",
            "SegmentTranscodeFailed",
        );
        for (code, n) in &s.failed {
            let _ = writeln!(
                o,
                "livepeer_segment_transcode_failed_total{{error_code=\"{}\",{base}}} {n}",
                code.label()
            );
        }
        head(
            &mut o,
            "transcode_time_seconds",
            "histogram",
            "TranscodeTime, seconds",
        );
        for (p, h) in &s.transcode_time {
            let labels = format!("{base},profiles=\"{p}\",trusted=\"true\",verified=\"true\"");
            h.render(&mut o, "livepeer_transcode_time_seconds", &labels);
        }
        head(
            &mut o,
            "transcode_overall_latency_seconds",
            "histogram",
            "Transcoding latency, from source segment emerged from segmenter till all transcoded segment apeeared in manifest",
        );
        for (p, h) in &s.latency {
            let labels = format!(
                "{base},orchestrator_address=\"\",orchestrator_uri=\"{}\",orchestrator_version=\"\",profiles=\"{p}\"",
                self.orchestrator
            );
            h.render(
                &mut o,
                "livepeer_transcode_overall_latency_seconds",
                &labels,
            );
        }
        head(
            &mut o,
            "download_time_seconds",
            "histogram",
            "Download time",
        );
        if let Some(h) = &s.download {
            h.render(&mut o, "livepeer_download_time_seconds", &base);
        }
        head(
            &mut o,
            "segment_source_uploaded_total",
            "counter",
            "SegmentUploaded",
        );
        let _ = writeln!(
            o,
            "livepeer_segment_source_uploaded_total{{{base},orchestrator_uri=\"\"}} {}",
            s.uploaded
        );
        head(
            &mut o,
            "upload_time_seconds",
            "histogram",
            "UploadTime, seconds",
        );
        if let Some(h) = &s.upload {
            h.render(
                &mut o,
                "livepeer_upload_time_seconds",
                &format!("{base},orchestrator_uri=\"\""),
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_go_livepeers_names_and_labels() {
        let m = LivepeerMetrics::new("host1", "0.9.1", "o:8935", 4);
        m.downloaded(0.12);
        m.transcoded("P240p30fps16x9,P360p30fps16x9", 0.6, 0.9);
        m.transcoded("P240p30fps16x9,P360p30fps16x9", 2.2, 2.5);
        m.failed(FailCode::NonRetryable);
        m.uploaded(0.05);
        let t = m.render(2);
        let base = "node_id=\"host1\",node_type=\"trcr\"";
        for line in [
            format!("livepeer_max_sessions_total{{{base}}} 4"),
            format!("livepeer_current_sessions_total{{{base}}} 2"),
            format!("livepeer_segment_transcoded_total{{{base},profiles=\"P240p30fps16x9,P360p30fps16x9\",trusted=\"true\",verified=\"true\"}} 2"),
            format!("livepeer_segment_transcode_failed_total{{error_code=\"NonRetryable\",{base}}} 1"),
            format!("livepeer_transcode_time_seconds_bucket{{{base},profiles=\"P240p30fps16x9,P360p30fps16x9\",trusted=\"true\",verified=\"true\",le=\"0.75\"}} 1"),
            format!("livepeer_transcode_time_seconds_count{{{base},profiles=\"P240p30fps16x9,P360p30fps16x9\",trusted=\"true\",verified=\"true\"}} 2"),
            format!("livepeer_download_time_seconds_bucket{{{base},le=\"0.15\"}} 1"),
            format!("livepeer_segment_source_uploaded_total{{{base},orchestrator_uri=\"\"}} 1"),
            "# TYPE livepeer_transcode_time_seconds histogram".to_string(),
        ] {
            assert!(t.lines().any(|l| l == line), "{line}\nnot in:\n{t}");
        }
    }
}

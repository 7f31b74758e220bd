//! `--plot`: an SVG of latency percentiles and throughput against the number of sessions,
//! hand-written (no plotting dependency). Left: p50/p95/p99 latency as a fraction of the
//! segment duration, with the real-time limit; right: media seconds per wall second.

use super::{Trial, REALTIME_MARGIN};
use std::fmt::Write;

const W: f64 = 900.0;
const H: f64 = 380.0;
const PANEL_W: f64 = 360.0;
const PANEL_H: f64 = 260.0;
const TOP: f64 = 60.0;

struct Panel {
    x0: f64,
    xmax: f64,
    ymax: f64,
}

impl Panel {
    fn x(&self, v: f64) -> f64 {
        self.x0 + v / self.xmax * PANEL_W
    }
    fn y(&self, v: f64) -> f64 {
        TOP + PANEL_H - v / self.ymax * PANEL_H
    }
}

/// A tick step giving about five ticks up to `max`.
fn step(max: f64) -> f64 {
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(mag * 10.0)
}

fn axes(svg: &mut String, p: &Panel, title: &str, ylabel: &str) {
    let (x1, y0) = (p.x0 + PANEL_W, TOP + PANEL_H);
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="15" text-anchor="middle" font-weight="bold">{title}</text>"##,
        p.x0 + PANEL_W / 2.0,
        TOP - 20.0
    );
    let _ = writeln!(
        svg,
        r##"<path d="M{:.1},{TOP:.1} V{y0:.1} H{x1:.1}" fill="none" stroke="#333"/>"##,
        p.x0
    );
    let ys = step(p.ymax);
    let mut v = 0.0;
    while v <= p.ymax + 1e-9 {
        let y = p.y(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            p.x0,
            p.x0 - 6.0,
            y + 4.0,
            fmt_num(v)
        );
        v += ys;
    }
    let xs = step(p.xmax).max(1.0).round();
    let mut n = 0.0;
    while n <= p.xmax + 1e-9 {
        let x = p.x(n);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{n}</text>"##,
            y0 + 5.0,
            y0 + 18.0
        );
        n += xs;
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">concurrent sessions</text>"##,
        p.x0 + PANEL_W / 2.0,
        y0 + 36.0
    );
    let _ = writeln!(
        svg,
        r##"<text transform="translate({:.1},{:.1}) rotate(-90)" font-size="12" text-anchor="middle">{ylabel}</text>"##,
        p.x0 - 42.0,
        TOP + PANEL_H / 2.0
    );
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v:.2}")
    }
}

fn series(svg: &mut String, p: &Panel, pts: &[(f64, f64)], color: &str, name: &str, legend: usize) {
    let path: Vec<String> = pts
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", p.x(x), p.y(y)))
        .collect();
    let _ = writeln!(
        svg,
        r##"<polyline class="series" data-name="{name}" points="{}" fill="none" stroke="{color}" stroke-width="2"/>"##,
        path.join(" ")
    );
    for &(x, y) in pts {
        let _ = writeln!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"><title>{name}: {x} sessions, {y:.3}</title></circle>"##,
            p.x(x),
            p.y(y)
        );
    }
    let (lx, ly) = (p.x0 + 12.0, TOP + 14.0 + 16.0 * legend as f64);
    let _ = writeln!(
        svg,
        r##"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}" font-size="11">{name}</text>"##,
        lx + 18.0,
        lx + 24.0,
        ly + 4.0
    );
}

/// Renders the trials (in any order) as an SVG document.
pub fn svg(trials: &[Trial], title: &str) -> String {
    let mut t: Vec<&Trial> = trials.iter().collect();
    t.sort_by_key(|t| t.sessions);
    let xmax = t.iter().map(|t| t.sessions).max().unwrap_or(1).max(1) as f64 + 0.5;
    let lat = |f: fn(&Trial) -> f64| -> Vec<(f64, f64)> {
        t.iter().map(|t| (t.sessions as f64, f(t))).collect()
    };
    let (p50, p95, p99) = (
        lat(|t| t.latency_ratio.p50),
        lat(|t| t.latency_ratio.p95),
        lat(|t| t.latency_ratio.p99),
    );
    let thr = lat(|t| t.throughput.media_seconds_per_second);
    let ymax_l = p99
        .iter()
        .map(|p| p.1)
        .fold(REALTIME_MARGIN, f64::max)
        .max(1.0)
        * 1.1;
    let ymax_t = thr.iter().map(|p| p.1).fold(0.0, f64::max).max(0.1) * 1.15;
    let left = Panel {
        x0: 70.0,
        xmax,
        ymax: ymax_l,
    };
    let right = Panel {
        x0: 70.0 + PANEL_W + 90.0,
        xmax,
        ymax: ymax_t,
    };
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif">"##
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="white"/><text x="{:.1}" y="18" font-size="13" text-anchor="middle">{}</text>"##,
        W / 2.0,
        escape(title)
    );
    axes(
        &mut svg,
        &left,
        "Segment latency",
        "latency / segment duration",
    );
    let ylim = left.y(REALTIME_MARGIN);
    let _ = writeln!(
        svg,
        r##"<line class="limit" x1="{:.1}" y1="{ylim:.1}" x2="{:.1}" y2="{ylim:.1}" stroke="#c00" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#c00" text-anchor="end">real-time limit {REALTIME_MARGIN}</text>"##,
        left.x0,
        left.x0 + PANEL_W,
        left.x0 + PANEL_W - 4.0,
        ylim - 5.0
    );
    series(&mut svg, &left, &p50, "#1f77b4", "p50", 0);
    series(&mut svg, &left, &p95, "#ff7f0e", "p95", 1);
    series(&mut svg, &left, &p99, "#2ca02c", "p99", 2);
    axes(
        &mut svg,
        &right,
        "Throughput",
        "media seconds per wall second",
    );
    series(&mut svg, &right, &thr, "#9467bd", "throughput", 0);
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

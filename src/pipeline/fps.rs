//! Output timestamps of one rendition: passthrough of the source timestamps (fps 0), or
//! conversion to a fixed frame rate by dropping and repeating frames, each frame covering the
//! output slots from its own timestamp to the next frame's.

use ffmpeg_next::Rational;

/// Repeats of one frame are capped at this many seconds of output (a timestamp jump in the
/// source must not turn into an unbounded burst of encoded frames).
const MAX_REPEAT_SECONDS: i64 = 2;

#[derive(Debug, Clone)]
pub enum Timing {
    /// Source timestamps, made strictly increasing.
    Passthrough { last: Option<i64> },
    /// Fixed rate: output timestamp = slot index at `fps`.
    Convert {
        src_tb: Rational,
        fps: (u32, u32),
        /// Next slot to fill, once a frame has been seen.
        next: Option<i64>,
    },
}

impl Timing {
    pub fn new(src_tb: Rational, fps: Option<(u32, u32)>) -> Self {
        match fps {
            None => Timing::Passthrough { last: None },
            Some(fps) => Timing::Convert {
                src_tb,
                fps,
                next: None,
            },
        }
    }

    /// Time base of the timestamps this produces.
    pub fn out_time_base(&self, src_tb: Rational) -> Rational {
        match self {
            Timing::Passthrough { .. } => src_tb,
            Timing::Convert { fps, .. } => Rational::new(fps.1 as i32, fps.0 as i32),
        }
    }

    fn slot(src_tb: Rational, fps: (u32, u32), pts: i64) -> i64 {
        let num = pts as i128 * src_tb.numerator() as i128 * fps.0 as i128;
        let den = src_tb.denominator() as i128 * fps.1 as i128;
        // Nearest slot, ties to the earlier one: a frame exactly between two slots (60 -> 30
        // fps) never lands in the slot that starts the next segment.
        ((2 * num + den - 1).div_euclid(2 * den)) as i64
    }

    fn max_repeat(fps: (u32, u32)) -> i64 {
        (MAX_REPEAT_SECONDS * fps.0 as i64 / fps.1.max(1) as i64).max(1)
    }

    /// Slots the *previous* frame must still fill before a frame at `pts` arrives.
    pub fn repeats_before(&self, pts: i64) -> std::ops::Range<i64> {
        match self {
            Timing::Convert {
                src_tb,
                fps,
                next: Some(next),
            } => {
                let end = Self::slot(*src_tb, *fps, pts).min(next + Self::max_repeat(*fps));
                *next..end.max(*next)
            }
            _ => 0..0,
        }
    }

    /// Output timestamp for a frame at `pts`, or `None` when the frame is dropped. Call after
    /// the repeats of the previous frame have been emitted.
    pub fn place(&mut self, pts: i64) -> Option<i64> {
        match self {
            Timing::Passthrough { last } => {
                let out = match *last {
                    Some(l) if pts <= l => l + 1,
                    _ => pts,
                };
                *last = Some(out);
                Some(out)
            }
            Timing::Convert { src_tb, fps, next } => {
                let slot = Self::slot(*src_tb, *fps, pts);
                match *next {
                    Some(n) if slot < n => None,
                    Some(n) => {
                        let out = slot.min(n + Self::max_repeat(*fps));
                        *next = Some(out + 1);
                        Some(out)
                    }
                    None => {
                        *next = Some(slot + 1);
                        Some(slot)
                    }
                }
            }
        }
    }

    /// Slots the last frame must fill at the end of a segment whose last frame ends at
    /// `end_pts` (its timestamp plus its duration).
    pub fn repeats_at_end(&self, end_pts: i64) -> std::ops::Range<i64> {
        self.repeats_before(end_pts)
    }

    /// Marks the repeats up to `end` (exclusive) as emitted.
    pub fn advance_to(&mut self, end: i64) {
        if let Timing::Convert { next: Some(n), .. } = self {
            *n = (*n).max(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src_fps: i64, out_fps: u32, frames: i64) -> Vec<i64> {
        let tb = Rational::new(1, 90000);
        let mut t = Timing::new(tb, Some((out_fps, 1)));
        let mut out = Vec::new();
        let step = 90000 / src_fps;
        for i in 0..frames {
            let pts = i * step;
            let r = t.repeats_before(pts);
            out.extend(r.clone());
            t.advance_to(r.end);
            if let Some(p) = t.place(pts) {
                out.push(p);
            }
        }
        let r = t.repeats_at_end(frames * step);
        out.extend(r.clone());
        out
    }

    #[test]
    fn conversion_covers_every_slot_once() {
        assert_eq!(run(30, 60, 60), (0..120).collect::<Vec<_>>());
        assert_eq!(run(60, 30, 120), (0..60).collect::<Vec<_>>());
        assert_eq!(run(30, 30, 60), (0..60).collect::<Vec<_>>());
        assert_eq!(run(25, 30, 50).len(), 60);
    }

    #[test]
    fn passthrough_is_strictly_increasing() {
        let mut t = Timing::new(Rational::new(1, 90000), None);
        assert_eq!(t.place(3000), Some(3000));
        assert_eq!(t.place(3000), Some(3001));
        assert_eq!(t.place(6000), Some(6000));
    }
}

//! Segment slicing (go-livepeer capability 26): a gateway's `Content-Slice-From`/`-To` arrive as
//! `SegData.segment_parameters {from, to}` in milliseconds and clip every rendition of the
//! segment. The rules are lpms's (ffmpeg/encoder.c `process_out` and transcoder.c's stream
//! copy, at the commit in ../shared/reference/go-livepeer-dropin.md §5):
//! - the milliseconds are rescaled to the rendition's output time base (1/fps with an fps,
//!   else the source's), rounding to nearest (`av_rescale_q`);
//! - they count from the first video frame of the segment that reaches the encoder;
//! - a frame after `to` is dropped, and, when `from` is set, a frame before `from`; the first
//!   kept frame starts a new GOP (an IDR here) and, with `from`, every kept frame is shifted
//!   back by `from + start` so the output starts at 0;
//! - copied audio is clipped the same way against its own first packet, and with `from` no
//!   audio goes out before the first kept video frame.

use ffmpeg_next::Rational;

/// The requested clip, in milliseconds; 0 means "not set" (the wire's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clip {
    pub from_ms: u64,
    pub to_ms: u64,
}

/// Why a clip is refused (lpms `ErrTranscoderClipConfig`, ffmpeg.go:929-937).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TranscoderInvalidClipConfig")]
pub struct InvalidClip;

impl Clip {
    /// The clip of a segment, if one is set; `to < from` (both set) is refused as lpms does.
    pub fn new(from_ms: u64, to_ms: u64) -> Result<Option<Clip>, InvalidClip> {
        if from_ms == 0 && to_ms == 0 {
            return Ok(None);
        }
        if to_ms > 0 && from_ms > 0 && to_ms < from_ms {
            return Err(InvalidClip);
        }
        Ok(Some(Clip { from_ms, to_ms }))
    }
}

/// `FROM:TO` in milliseconds, as the command lines take a clip (not yet checked).
pub fn parse_range(spec: &str) -> Option<(u64, u64)> {
    let (a, b) = spec.split_once(':')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// `av_rescale_q(ms, 1/1000, tb)` with its default rounding (to nearest, halves away from 0).
fn ms_to(tb: Rational, ms: u64) -> i64 {
    let num = ms as i128 * tb.denominator() as i128;
    let den = 1000i128 * tb.numerator().max(1) as i128;
    ((2 * num + den) / (2 * den)) as i64
}

/// One rendition's clip state for one segment.
#[derive(Debug, Clone)]
pub struct ClipState {
    from: i64,
    to: i64,
    from_set: bool,
    to_set: bool,
    start: Option<i64>,
    started: bool,
    audio_from: i64,
    audio_to: i64,
    audio_start: Option<i64>,
}

/// What to do with one video frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Drop,
    /// Encode at this timestamp; `first` is the first kept frame (a new GOP starts there).
    At {
        pts: i64,
        first: bool,
    },
}

impl ClipState {
    /// `video_tb` is the rendition's output time base, `audio_tb` the copied audio's.
    pub fn new(clip: Clip, video_tb: Rational, audio_tb: Option<Rational>) -> Self {
        let atb = audio_tb.unwrap_or(video_tb);
        ClipState {
            from: ms_to(video_tb, clip.from_ms),
            to: ms_to(video_tb, clip.to_ms),
            from_set: clip.from_ms > 0,
            to_set: clip.to_ms > 0,
            start: None,
            started: false,
            audio_from: ms_to(atb, clip.from_ms),
            audio_to: ms_to(atb, clip.to_ms),
            audio_start: None,
        }
    }

    /// The fate of a video frame at output timestamp `pts` (frames come in order).
    pub fn video(&mut self, pts: i64) -> Keep {
        let start = *self.start.get_or_insert(pts);
        if self.to_set && pts > self.to + start {
            return Keep::Drop;
        }
        if self.from_set {
            if pts < self.from + start {
                return Keep::Drop;
            }
            let first = !self.started;
            self.started = true;
            return Keep::At {
                pts: pts - (self.from + start),
                first,
            };
        }
        let first = !self.started;
        self.started = true;
        Keep::At { pts, first }
    }

    /// How far to shift a copied audio packet at `pts` (in the audio time base) back, or
    /// `None` to drop it.
    pub fn audio(&mut self, pts: i64) -> Option<i64> {
        let start = *self.audio_start.get_or_insert(pts);
        if self.to_set && pts > self.audio_to + start {
            return None;
        }
        if self.from_set {
            if !self.started || pts < self.audio_from + start {
                return None;
            }
            return Some(self.audio_from + start);
        }
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(clip: Clip, tb: Rational, pts: &[i64]) -> Vec<Keep> {
        let mut s = ClipState::new(clip, tb, None);
        pts.iter().map(|&p| s.video(p)).collect()
    }

    #[test]
    fn the_wire_values_are_checked_as_lpms_does() {
        assert_eq!(Clip::new(0, 0), Ok(None));
        assert_eq!(Clip::new(1000, 500), Err(InvalidClip));
        assert_eq!(InvalidClip.to_string(), "TranscoderInvalidClipConfig");
        assert!(Clip::new(0, 500).unwrap().is_some());
        assert!(Clip::new(500, 0).unwrap().is_some());
        assert!(Clip::new(500, 500).unwrap().is_some());
    }

    #[test]
    fn frames_are_kept_between_from_and_to_relative_to_the_first_frame() {
        // 30 fps output, timestamps are slot numbers starting at 100.
        let tb = Rational::new(1, 30);
        let pts: Vec<i64> = (100..160).collect();
        let got = frames(Clip::new(500, 1000).unwrap().unwrap(), tb, &pts);
        let kept: Vec<(usize, i64, bool)> = got
            .iter()
            .enumerate()
            .filter_map(|(i, k)| match *k {
                Keep::At { pts, first } => Some((i, pts, first)),
                Keep::Drop => None,
            })
            .collect();
        // 500 ms = 15 slots, 1000 ms = 30 slots: frames 15..=30, shifted to start at 0.
        assert_eq!(kept.first(), Some(&(15, 0, true)));
        assert_eq!(kept.last(), Some(&(30, 15, false)));
        assert_eq!(kept.len(), 16);
    }

    #[test]
    fn only_to_keeps_the_timestamps() {
        let tb = Rational::new(1, 90000);
        let pts: Vec<i64> = (0..60).map(|i| 9000 + i * 3000).collect();
        let got = frames(Clip::new(0, 1000).unwrap().unwrap(), tb, &pts);
        assert_eq!(
            got[0],
            Keep::At {
                pts: 9000,
                first: true
            }
        );
        // 1000 ms = 90000 ticks: the frame at +90000 is kept, the next one is not.
        assert_eq!(
            got[30],
            Keep::At {
                pts: 99000,
                first: false
            }
        );
        assert_eq!(got[31], Keep::Drop);
    }

    #[test]
    fn audio_waits_for_the_first_kept_video_frame() {
        let tb = Rational::new(1, 90000);
        let mut s = ClipState::new(
            Clip::new(1000, 0).unwrap().unwrap(),
            tb,
            Some(Rational::new(1, 48000)),
        );
        assert_eq!(s.audio(1000), None); // before any video: dropped
        assert_eq!(s.video(0), Keep::Drop);
        assert_eq!(
            s.video(90000),
            Keep::At {
                pts: 0,
                first: true
            }
        );
        assert_eq!(s.audio(1000 + 48000), Some(1000 + 48000));
        assert_eq!(s.audio(1000 + 47999), None);
        assert_eq!(ms_to(Rational::new(1, 30), 50), 2); // 1.5 rounds away from zero
    }
}

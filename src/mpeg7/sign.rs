//! Computing a rendition's MPEG-7 video signature as lpms does: libavfilter's `signature`
//! filter with only `filename` set (so the binary format), in a graph of its own per output
//! (lpms ffmpeg/filter.c `init_signature_filters`): `buffer` (the output's size, the muxer
//! stream's time base) → `signature` → `buffersink`. Every frame that goes to the encoder is
//! fed first, with the timestamp it is encoded at (lpms ffmpeg/encoder.c:643-646); the end of
//! the segment closes the source, which makes the filter write its file; the bytes are read
//! back and the file removed (go-livepeer core/transcoder.go:418-429).
//!
//! Debian's libavfilter 5.1 computes it with the same code as livepeer/FFmpeg at lpms's pin
//! (d9751c73): the fork changed only the lookup, import, allocation and option plumbing of
//! vf_signature.c since 5.1, not `calc_signature` or `binary_export`. The filter reads only
//! the luma plane, so device frames are signed from their downloaded luma (GRAY8).

use crate::error::{Error, Result};
use ffmpeg_next as ff;
use std::path::{Path, PathBuf};

/// One output's signature in progress.
pub struct Signer {
    graph: ff::filter::Graph,
    file: PathBuf,
    scratch: ff::frame::Video,
    frames: u64,
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Codec {
        stage: "signature",
        detail: e.to_string(),
    }
}

/// `s` as one token of a filter's option string: single-quoted, with `'` written as `'\''`.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Signer {
    /// A signature of `w`x`h` frames in `format` (YUV 4:2:0 or GRAY8), timestamps in
    /// `time_base`, written to `file` at the end.
    pub fn new(
        file: &Path,
        w: u32,
        h: u32,
        format: ff::format::Pixel,
        time_base: ff::Rational,
    ) -> Result<Self> {
        crate::media::init();
        let mut graph = ff::filter::Graph::new();
        let buffer = ff::filter::find("buffer").ok_or_else(|| err("no buffer filter"))?;
        let sink = ff::filter::find("buffersink").ok_or_else(|| err("no buffersink filter"))?;
        let args = format!(
            "video_size={w}x{h}:pix_fmt={}:time_base={}/{}:pixel_aspect=1/1",
            ff::ffi::AVPixelFormat::from(format) as i32,
            time_base.numerator(),
            time_base.denominator().max(1),
        );
        let signature = ff::filter::find("signature").ok_or_else(|| err("no signature filter"))?;
        let path = file
            .to_str()
            .ok_or_else(|| err(format!("{} is not UTF-8", file.display())))?;
        let mut src = graph.add(&buffer, "in", &args).map_err(err)?;
        // Created with its options directly (one level of quoting), not through the graph
        // parser, so any path works.
        let mut sig = graph
            .add(&signature, "sig", &format!("filename={}", quoted(path)))
            .map_err(|e| err(format!("cannot set up the signature filter: {e}")))?;
        let mut out = graph.add(&sink, "out", "").map_err(err)?;
        src.link(0, &mut sig, 0);
        sig.link(0, &mut out, 0);
        graph.validate().map_err(err)?;
        Ok(Signer {
            graph,
            file: file.to_path_buf(),
            scratch: ff::frame::Video::empty(),
            frames: 0,
        })
    }

    /// Signs `frame`, encoded at `pts`. The frame is not copied (the graph takes a reference
    /// and gives it back before this returns).
    pub fn push(&mut self, frame: &mut ff::frame::Video, pts: i64) -> Result<()> {
        frame.set_pts(Some(pts));
        let mut src = self.graph.get("in").ok_or_else(|| err("no source"))?;
        // SAFETY: `src` is the graph's buffer source and `frame` a valid, refcounted frame;
        // KEEP_REF makes the graph take its own reference and leave `frame` untouched.
        let r = unsafe {
            ff::ffi::av_buffersrc_add_frame_flags(
                src.as_mut_ptr(),
                frame.as_mut_ptr(),
                ff::ffi::AV_BUFFERSRC_FLAG_KEEP_REF as i32,
            )
        };
        if r < 0 {
            return Err(err(ff::Error::from(r)));
        }
        self.frames += 1;
        self.drain()
    }

    /// Takes the frames the filter passed on out of the sink and releases their references,
    /// so the rendition's buffer is the pool's alone again (else the next write into it
    /// would copy it).
    fn drain(&mut self) -> Result<()> {
        let mut out = self.graph.get("out").ok_or_else(|| err("no sink"))?;
        let r = loop {
            match out.sink().frame(&mut self.scratch) {
                Ok(()) => continue,
                Err(ff::Error::Eof) => break Ok(()),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => break Ok(()),
                Err(e) => break Err(err(e)),
            }
        };
        // SAFETY: unreferencing a valid frame leaves it empty and valid.
        unsafe { ff::ffi::av_frame_unref(self.scratch.as_mut_ptr()) };
        r
    }

    /// Ends the signature: the filter writes its file, whose bytes are returned. With no
    /// frame signed (a clip past the segment's end) there is no signature: FFmpeg 5.1's
    /// filter would crash exporting one, so nothing is exported and the result is empty.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        if self.frames == 0 {
            return Ok(Vec::new());
        }
        let mut src = self.graph.get("in").ok_or_else(|| err("no source"))?;
        src.source().flush().map_err(err)?;
        self.drain()?;
        std::fs::read(&self.file).map_err(|e| err(format!("{}: {e}", self.file.display())))
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_values_are_quoted_for_the_filter_parser() {
        assert_eq!(quoted("/tmp/a:b"), "'/tmp/a:b'");
        assert_eq!(quoted("it's"), r"'it'\''s'");
    }
}

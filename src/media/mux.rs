//! Writing one rendition of one segment. Output goes to `NAME.part` beside the final path and
//! is renamed into place only after the trailer is written, so a file under its final name is
//! always complete. A segment's renditions are committed together: [`RenditionWriter::finish`]
//! writes the trailer, [`Finished::commit`] renames; anything dropped before that removes its
//! part file.

use crate::error::{Error, Result};
use crate::profile::Container;
use ffmpeg_next as ff;
use std::path::{Path, PathBuf};

/// Muxer for one output file: a video stream from our encoder, and optionally the source's
/// audio stream copied as is.
pub struct RenditionWriter {
    ctx: ff::format::context::Output,
    part: PathBuf,
    path: PathBuf,
    video_tb: ff::Rational,
    audio: Option<(ff::Rational, ff::Rational)>,
    video_bytes: u64,
    done: bool,
}

/// Sizes of a finished rendition file.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// The whole file.
    pub bytes: u64,
    /// The video elementary stream alone (what the encoder's rate control aims at).
    pub video_bytes: u64,
}

impl RenditionWriter {
    /// Creates the part file and writes the header. `encoder` supplies the video stream's
    /// parameters and time base; `audio` is the input's audio stream (parameters and time base),
    /// if it is to be copied.
    pub fn create(
        path: &Path,
        container: Container,
        encoder: &ff::codec::Context,
        encoder_tb: ff::Rational,
        audio: Option<(&ff::codec::Parameters, ff::Rational)>,
        service: &str,
    ) -> Result<Self> {
        let out_err = |detail: String| Error::Output {
            path: path.to_path_buf(),
            detail,
        };
        let mut part = path.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        let mut ctx = ff::format::output_as(&part, container.muxer())
            .map_err(|e| out_err(format!("cannot create: {e}")))?;
        {
            let mut st = ctx
                .add_stream_with(encoder)
                .map_err(|e| out_err(format!("cannot add video stream: {e}")))?;
            st.set_time_base(encoder_tb);
        }
        let audio_in_tb = if let Some((params, tb)) = audio {
            let mut st = ctx
                .add_stream(ff::encoder::find(ff::codec::Id::None))
                .map_err(|e| out_err(format!("cannot add audio stream: {e}")))?;
            st.set_parameters(params.clone());
            // SAFETY: `st` is a stream of `ctx` with freshly copied parameters; codec_tag 0
            // lets the muxer choose its own tag for the copied codec.
            unsafe { (*(*st.as_mut_ptr()).codecpar).codec_tag = 0 };
            Some(tb)
        } else {
            None
        };
        let mut meta = ff::Dictionary::new();
        meta.set("service_provider", service);
        meta.set("comment", &format!("Processed by {service}"));
        ctx.set_metadata(meta);
        let mut opts = ff::Dictionary::new();
        if container == Container::Mp4 {
            opts.set("movflags", "faststart");
        }
        ctx.write_header_with(opts)
            .map_err(|e| out_err(format!("cannot write header: {e}")))?;
        let video_tb = ctx.stream(0).expect("video stream").time_base();
        let audio = audio_in_tb.map(|tb| (tb, ctx.stream(1).expect("audio stream").time_base()));
        Ok(RenditionWriter {
            ctx,
            part,
            path: path.to_path_buf(),
            video_tb,
            audio,
            video_bytes: 0,
            done: false,
        })
    }

    /// The time base of the video stream in the file (what the muxer chose).
    pub fn video_time_base(&self) -> ff::Rational {
        self.video_tb
    }

    /// Writes an encoded video packet whose timestamps are in `encoder_tb`.
    pub fn write_video(&mut self, packet: &mut ff::Packet, encoder_tb: ff::Rational) -> Result<()> {
        self.video_bytes += packet.size() as u64;
        packet.rescale_ts(encoder_tb, self.video_tb);
        packet.set_stream(0);
        packet.set_position(-1);
        packet
            .write_interleaved(&mut self.ctx)
            .map_err(|e| self.err(format!("cannot write video: {e}")))
    }

    /// Copies an input audio packet (timestamps in the input stream's time base).
    pub fn write_audio(&mut self, mut p: ff::Packet) -> Result<()> {
        let Some((in_tb, out_tb)) = self.audio else {
            return Ok(());
        };
        p.rescale_ts(in_tb, out_tb);
        p.set_stream(1);
        p.set_position(-1);
        p.write_interleaved(&mut self.ctx)
            .map_err(|e| self.err(format!("cannot write audio: {e}")))
    }

    /// Writes the trailer. The file keeps its part name until [`Finished::commit`].
    pub fn finish(mut self) -> Result<Finished> {
        self.ctx
            .write_trailer()
            .map_err(|e| self.err(format!("cannot write trailer: {e}")))?;
        self.done = true;
        Ok(Finished {
            part: std::mem::take(&mut self.part),
            path: std::mem::take(&mut self.path),
            video_bytes: self.video_bytes,
            committed: false,
        })
    }

    fn err(&self, detail: String) -> Error {
        Error::Output {
            path: self.path.clone(),
            detail,
        }
    }
}

/// A complete rendition file still under its part name.
#[derive(Debug)]
pub struct Finished {
    part: PathBuf,
    path: PathBuf,
    video_bytes: u64,
    committed: bool,
}

impl Finished {
    /// Renames the file to its final name.
    pub fn commit(mut self) -> Result<Written> {
        std::fs::rename(&self.part, &self.path).map_err(|e| Error::Output {
            path: self.path.clone(),
            detail: format!("cannot rename into place: {e}"),
        })?;
        self.committed = true;
        Ok(Written {
            bytes: std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
            video_bytes: self.video_bytes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Finished {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

impl Drop for RenditionWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

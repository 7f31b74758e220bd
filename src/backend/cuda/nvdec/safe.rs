//! Safe NVDEC: the bitstream parser and the hardware decoder as RAII types. The parser calls
//! back (synchronously, inside [`Parser::parse`]) when a sequence starts, a picture is ready
//! to decode and a picture is ready to display; a [`Decoder`] is created for the sequence,
//! and displayed pictures are [`Mapped`] as NV12 device memory, unmapped on drop.
//! The caller makes the CUDA context current before each call.

use super::result::{api, check, Api, NvdecError, Result};
use super::sys;
use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::Arc;

/// Pictures the parser holds back before display (`ulMaxDisplayDelay`).
const DISPLAY_DELAY: u32 = 4;

/// Decode surfaces beyond the stream's minimum: room for the pictures waiting for display.
const EXTRA_SURFACES: u32 = DISPLAY_DELAY;

/// What the hardware decodes for one codec (`cuvidGetDecoderCaps`, 8-bit 4:2:0).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Caps {
    pub supported: bool,
    pub engines: u32,
    pub max_width: u32,
    pub max_height: u32,
}

pub fn caps(codec: sys::cudaVideoCodec) -> Result<Caps> {
    let api = api()?;
    let mut c = sys::CUVIDDECODECAPS {
        eCodecType: codec,
        eChromaFormat: sys::cudaVideoChromaFormat_420,
        nBitDepthMinus8: 0,
        ..Default::default()
    };
    // SAFETY: `c` is a valid, initialised caps struct for the duration of the call.
    check("cuvidGetDecoderCaps", unsafe {
        (api.get_decoder_caps)(&mut c)
    })?;
    Ok(Caps {
        supported: c.bIsSupported != 0,
        engines: c.nNumNVDECs as u32,
        max_width: c.nMaxWidth,
        max_height: c.nMaxHeight,
    })
}

/// A hardware decoder for one sequence format.
pub struct Decoder {
    api: &'static Api,
    handle: sys::CUvideodecoder,
    /// Display size (the NV12 output's luma width and height).
    pub width: u32,
    pub height: u32,
    key: (u32, u32, u32, [i32; 4]),
    /// `ulNumDecodeSurfaces` it was created with: the parser may use no more.
    surfaces: u32,
}

// SAFETY: NVDEC handles may be used from any thread with the context current; `Decoder` has
// no interior mutability and the driver serialises calls on one decoder.
unsafe impl Send for Decoder {}
// SAFETY: as above.
unsafe impl Sync for Decoder {}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: the handle came from cuvidCreateDecoder and is destroyed once, after every
        // `Mapped` (which holds an Arc to this decoder) is gone.
        let _ = unsafe { (self.api.destroy_decoder)(self.handle) };
    }
}

/// A decoded picture mapped as NV12 device memory: luma at `ptr`, chroma `pitch * height`
/// bytes after it, both `pitch` bytes per row. Unmapped when dropped.
pub struct Mapped {
    decoder: Arc<Decoder>,
    pub ptr: u64,
    pub pitch: u32,
}

impl Mapped {
    pub fn size(&self) -> (u32, u32) {
        (self.decoder.width, self.decoder.height)
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by cuvidMapVideoFrame64 on this decoder and is unmapped
        // exactly once.
        let _ = unsafe { (self.decoder.api.unmap_frame)(self.decoder.handle, self.ptr) };
    }
}

/// A picture ready for display: its decode surface and timestamp.
#[derive(Debug, Clone, Copy)]
pub struct Display {
    pub index: i32,
    pub timestamp: i64,
}

/// State the parser's callbacks work on; boxed so its address is stable.
struct State {
    api: &'static Api,
    decoder: Option<Arc<Decoder>>,
    display: VecDeque<Display>,
    error: Option<NvdecError>,
}

pub struct Parser {
    handle: sys::CUvideoparser,
    state: Box<State>,
}

// SAFETY: the parser is only used through `&mut self`; its callbacks run inside `parse` on
// the calling thread.
unsafe impl Send for Parser {}

impl Parser {
    /// A parser for `codec` whose timestamps count `clock_rate` ticks a second (0: 10 MHz);
    /// a decoder left by an earlier parser is reused if it fits the new sequence.
    pub fn new(
        codec: sys::cudaVideoCodec,
        clock_rate: u32,
        reuse: Option<Arc<Decoder>>,
    ) -> Result<Parser> {
        let api = api()?;
        let mut state = Box::new(State {
            api,
            decoder: reuse,
            display: VecDeque::new(),
            error: None,
        });
        let mut p = sys::CUVIDPARSERPARAMS {
            CodecType: codec,
            ulMaxNumDecodeSurfaces: 1,
            ulClockRate: clock_rate,
            ulErrorThreshold: 0,
            // Pictures wait this long for display so that decoding overlaps the stages after
            // it (dynlink_nvcuvid.h advises 2-4; FFmpeg cuviddec uses 4). Safe here: every
            // packet's displayed pictures are drained before the next, and the end of a
            // segment flushes the rest. Decode surfaces cover it (EXTRA_SURFACES).
            ulMaxDisplayDelay: DISPLAY_DELAY,
            pUserData: &mut *state as *mut State as *mut c_void,
            pfnSequenceCallback: Some(on_sequence),
            pfnDecodePicture: Some(on_decode),
            pfnDisplayPicture: Some(on_display),
            ..Default::default()
        };
        let mut handle: sys::CUvideoparser = null_mut();
        // SAFETY: `p` is fully initialised; `state` outlives the parser (it is dropped after
        // the parser is destroyed, see Drop), so the callbacks' user pointer stays valid.
        check("cuvidCreateVideoParser", unsafe {
            (api.create_parser)(&mut handle, &mut p)
        })?;
        Ok(Parser { handle, state })
    }

    /// Feeds one packet of Annex-B data with its timestamp, if it has one (FFmpeg cuviddec
    /// sets CUVID_PKT_TIMESTAMP only then, rather than inventing 0); `end` flushes the parser,
    /// which then displays every picture it still holds. Returns the first error a callback
    /// met.
    pub fn parse(&mut self, data: &[u8], timestamp: Option<i64>, end: bool) -> Result<()> {
        let mut flags = 0;
        if timestamp.is_some() {
            flags |= sys::CUVID_PKT_TIMESTAMP;
        }
        if end {
            flags |= sys::CUVID_PKT_ENDOFSTREAM;
        }
        let mut pkt = sys::CUVIDSOURCEDATAPACKET {
            flags: flags as _,
            payload_size: data.len() as _,
            payload: if data.is_empty() {
                std::ptr::null()
            } else {
                data.as_ptr()
            },
            timestamp: timestamp.unwrap_or(0),
        };
        // SAFETY: `pkt` points at `data`, which lives for the call; callbacks only touch
        // `self.state`, which is not otherwise borrowed during the call.
        let r = unsafe { (self.state.api.parse)(self.handle, &mut pkt) };
        if let Some(e) = self.state.error.take() {
            return Err(e);
        }
        check("cuvidParseVideoData", r)
    }

    /// The next picture ready for display, in display order.
    pub fn next_display(&mut self) -> Option<Display> {
        self.state.display.pop_front()
    }

    /// The decoder of the current sequence.
    pub fn decoder(&self) -> Option<&Arc<Decoder>> {
        self.state.decoder.as_ref()
    }

    /// Maps displayed picture `d` as device memory, once NVDEC says it decoded without error
    /// (`cuvidGetDecodeStatus`, as NVIDIA's NvDecoder.cpp checks before mapping; real-gpu-rules
    /// R12). A concealed error is passed on with a warning, a plain error fails.
    ///
    /// NVDEC's post-processing into the mapped surface runs on `stream` (`output_stream`),
    /// not the legacy stream, which would serialise every session (real-gpu-rules.md R6): the
    /// picture is there once `stream` is synchronised.
    pub fn map(&self, d: Display, stream: sys::CUstream) -> Result<Mapped> {
        let decoder = self
            .state
            .decoder
            .clone()
            .ok_or_else(|| NvdecError::Unsupported("a picture before any sequence".into()))?;
        let mut status = sys::_CUVIDGETDECODESTATUS::default();
        // SAFETY: the decoder handle is live (held by the Arc); `status` is a local.
        check("cuvidGetDecodeStatus", unsafe {
            (decoder.api.decode_status)(decoder.handle, d.index, &mut status)
        })?;
        match status.decodeStatus {
            sys::cuvidDecodeStatus_Error => {
                return Err(NvdecError::Corrupt(d.timestamp));
            }
            sys::cuvidDecodeStatus_Error_Concealed => {
                tracing::warn!(pts = d.timestamp, "NVDEC concealed a decode error");
            }
            _ => {}
        }
        let mut proc_params = sys::CUVIDPROCPARAMS {
            progressive_frame: 1,
            output_stream: stream,
            ..Default::default()
        };
        let (mut ptr, mut pitch) = (0u64, 0u32);
        // SAFETY: the decoder handle is live (held by the Arc); the out-pointers are locals.
        check("cuvidMapVideoFrame64", unsafe {
            (decoder.api.map_frame)(
                decoder.handle,
                d.index,
                &mut ptr,
                &mut pitch,
                &mut proc_params,
            )
        })?;
        Ok(Mapped {
            decoder,
            ptr,
            pitch,
        })
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        // SAFETY: the handle came from cuvidCreateVideoParser; after this no callback runs,
        // so `state` may be dropped next.
        let _ = unsafe { (self.state.api.destroy_parser)(self.handle) };
    }
}

/// Recovers the state from the callbacks' user pointer.
///
/// # Safety
/// `user` must be the `State` pointer given to `cuvidCreateVideoParser`.
unsafe fn state<'a>(user: *mut c_void) -> &'a mut State {
    // SAFETY: guaranteed by the caller; the parser never runs callbacks concurrently.
    unsafe { &mut *(user as *mut State) }
}

unsafe extern "C" fn on_sequence(user: *mut c_void, f: *mut sys::CUVIDEOFORMAT) -> c_int {
    // SAFETY: NVDEC passes back our user pointer and a valid format for this call.
    let (s, f) = unsafe { (state(user), &*f) };
    match s.sequence(f) {
        Ok(n) => n as c_int,
        Err(e) => {
            s.error.get_or_insert(e);
            0
        }
    }
}

unsafe extern "C" fn on_decode(user: *mut c_void, pic: *mut sys::CUVIDPICPARAMS) -> c_int {
    // SAFETY: NVDEC passes back our user pointer.
    let s = unsafe { state(user) };
    let Some(d) = s.decoder.as_ref() else {
        s.error.get_or_insert(NvdecError::Unsupported(
            "a picture before any sequence".into(),
        ));
        return 0;
    };
    // SAFETY: `pic` is the parser's picture description, valid for this call.
    match check("cuvidDecodePicture", unsafe {
        (s.api.decode_picture)(d.handle, pic)
    }) {
        Ok(()) => 1,
        Err(e) => {
            s.error.get_or_insert(e);
            0
        }
    }
}

unsafe extern "C" fn on_display(user: *mut c_void, d: *mut sys::CUVIDPARSERDISPINFO) -> c_int {
    // SAFETY: NVDEC passes back our user pointer; a null `d` marks the end of the stream.
    let s = unsafe { state(user) };
    if let Some(d) = unsafe { d.as_ref() } {
        s.display.push_back(Display {
            index: d.picture_index,
            timestamp: d.timestamp,
        });
    }
    1
}

impl State {
    /// A new sequence: checks what NVDEC can output for us and (re)creates the decoder.
    /// Returns the number of decode surfaces for the parser.
    fn sequence(&mut self, f: &sys::CUVIDEOFORMAT) -> Result<u32> {
        if f.chroma_format != sys::cudaVideoChromaFormat_420 || f.bit_depth_luma_minus8 != 0 {
            return Err(NvdecError::Unsupported(format!(
                "chroma format {} at {} bits (8-bit 4:2:0 only)",
                f.chroma_format,
                f.bit_depth_luma_minus8 + 8
            )));
        }
        let surfaces = u32::from(f.min_num_decode_surfaces).max(1) + EXTRA_SURFACES;
        let a = f.display_area;
        let key = (
            f.codec,
            f.coded_width,
            f.coded_height,
            [a.left, a.top, a.right, a.bottom],
        );
        // Reused only if it has the surfaces this sequence needs: the callback's return value
        // sets how many the parser cycles through, and a picture index past the decoder's
        // count fails cuvidDecodePicture (dynlink_nvcuvid.h; NVIDIA NvDecoder.cpp reconfigures
        // for the same reason). Real-gpu-rules.md R3.
        if let Some(d) = self
            .decoder
            .as_ref()
            .filter(|d| d.key == key && d.surfaces >= surfaces)
        {
            return Ok(d.surfaces);
        }
        let (w, h) = ((a.right - a.left) as u32, (a.bottom - a.top) as u32);
        let mut ci = sys::CUVIDDECODECREATEINFO {
            ulWidth: f.coded_width as _,
            ulHeight: f.coded_height as _,
            ulNumDecodeSurfaces: surfaces as _,
            CodecType: f.codec,
            ChromaFormat: f.chroma_format,
            ulCreationFlags: sys::cudaVideoCreate_PreferCUVID as _,
            bitDepthMinus8: 0,
            ulMaxWidth: f.coded_width as _,
            ulMaxHeight: f.coded_height as _,
            OutputFormat: sys::cudaVideoSurfaceFormat_NV12,
            DeinterlaceMode: sys::cudaVideoDeinterlaceMode_Weave,
            ulTargetWidth: w as _,
            ulTargetHeight: h as _,
            ulNumOutputSurfaces: 2,
            ..Default::default()
        };
        ci.display_area.left = a.left as i16;
        ci.display_area.top = a.top as i16;
        ci.display_area.right = a.right as i16;
        ci.display_area.bottom = a.bottom as i16;
        let mut handle: sys::CUvideodecoder = null_mut();
        // Drop the old decoder first (unless a mapped picture still holds it).
        self.decoder = None;
        // SAFETY: `ci` is fully initialised; the context is current (the caller's duty).
        check("cuvidCreateDecoder", unsafe {
            (self.api.create_decoder)(&mut handle, &mut ci)
        })?;
        self.decoder = Some(Arc::new(Decoder {
            api: self.api,
            handle,
            width: w,
            height: h,
            key,
            surfaces,
        }));
        Ok(surfaces)
    }
}

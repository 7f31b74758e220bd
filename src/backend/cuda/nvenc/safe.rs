//! Safe NVENC: an encode session as an RAII type. A [`Session`] is opened on a CUDA context,
//! initialised once for a rendition, encodes NV12 frames that live in CUDA device memory
//! (each buffer registered once, mapped per frame) and releases every registration, its
//! bitstream buffer and the encoder when dropped. Synchronous mode, no B-frames: one frame
//! in, one access unit out.

use super::result::{api, call, struct_version, Api, Handle, NvencError, Result};
use super::sys;
use std::ffi::c_void;
use std::ptr::null_mut;

const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> sys::GUID {
    sys::GUID {
        Data1: d1,
        Data2: d2,
        Data3: d3,
        Data4: d4,
    }
}

pub const CODEC_H264: sys::GUID = guid(
    0x6bc82762,
    0x4e63,
    0x4ca4,
    [0xaa, 0x85, 0x1e, 0x50, 0xf3, 0x21, 0xf6, 0xbf],
);
pub const CODEC_HEVC: sys::GUID = guid(
    0x790cdc88,
    0x4522,
    0x4d7b,
    [0x94, 0x25, 0xbd, 0xa9, 0x97, 0x5f, 0x76, 0x03],
);
pub const PRESET_P4: sys::GUID = guid(
    0x90a7b826,
    0xdf06,
    0x4862,
    [0xb9, 0xd2, 0xcd, 0x6d, 0x73, 0xa0, 0x86, 0x81],
);
pub const H264_BASELINE: sys::GUID = guid(
    0x0727bcaa,
    0x78c4,
    0x4c83,
    [0x8c, 0x2f, 0xef, 0x3d, 0xff, 0x26, 0x7c, 0x6a],
);
pub const H264_MAIN: sys::GUID = guid(
    0x60b5c1d4,
    0x67fe,
    0x4790,
    [0x94, 0xd5, 0xc4, 0x72, 0x6d, 0x7b, 0x6e, 0x6d],
);
pub const H264_HIGH: sys::GUID = guid(
    0xe7cbc309,
    0x4f7a,
    0x4b89,
    [0xaf, 0x2a, 0xd5, 0x37, 0xc9, 0x2b, 0xe3, 0x10],
);

/// NV_ENC_H264_PROFILE_CONSTRAINED_HIGH_GUID (nvEncodeAPI.h): High without B-frames, as
/// Livepeer's H264ConstrainedHigh asks.
pub const H264_CONSTRAINED_HIGH: sys::GUID = guid(
    0xaec1bd87,
    0xe85b,
    0x48f2,
    [0x84, 0xc3, 0x98, 0xbc, 0xa6, 0x28, 0x50, 0x72],
);

pub const HEVC_MAIN: sys::GUID = guid(
    0xb514c39a,
    0xb55b,
    0x40fa,
    [0x87, 0x8f, 0xf1, 0x25, 0x3b, 0x4d, 0xfd, 0xec],
);

fn same(a: &sys::GUID, b: &sys::GUID) -> bool {
    (a.Data1, a.Data2, a.Data3, a.Data4) == (b.Data1, b.Data2, b.Data3, b.Data4)
}

/// Codec names for GUIDs this build knows.
pub fn codec_name(g: &sys::GUID) -> &'static str {
    if same(g, &CODEC_H264) {
        "h264"
    } else if same(g, &CODEC_HEVC) {
        "hevc"
    } else {
        "other"
    }
}

/// What one rendition's encoder is set up with.
#[derive(Debug, Clone)]
pub struct EncodeConfig {
    /// [`CODEC_H264`] or [`CODEC_HEVC`].
    pub codec: sys::GUID,
    pub width: u32,
    pub height: u32,
    pub frame_rate: (u32, u32),
    /// Bits per second; with `quality` it is the cap.
    pub bitrate: u32,
    /// Constant-quality target (0 = constant bitrate).
    pub quality: u8,
    /// IDR interval in frames (None = only the forced IDR at each segment start).
    pub gop: Option<u32>,
    /// Profile GUID of the codec (None = the encoder's choice).
    pub profile: Option<sys::GUID>,
}

/// One encoded access unit.
#[derive(Debug, Clone, Copy)]
pub struct Encoded {
    pub pts: i64,
    pub keyframe: bool,
}

pub struct Session {
    api: &'static Api,
    encoder: Handle,
    bitstream: Handle,
    /// Registered device buffers: (device pointer, registration).
    registered: Vec<(u64, Handle)>,
    size: (u32, u32),
    initialised: bool,
    /// No picture was sent since the last end of stream.
    flushed: bool,
}

// SAFETY: an NVENC session may be used from any thread as long as calls are not concurrent;
// `Session` methods take `&mut self` (or `&self` for read-only queries that NVENC allows
// concurrently).
unsafe impl Send for Session {}

impl Session {
    /// Opens a session on `cu_context` (a `CUcontext`). Fails with the driver's status when the
    /// GPU has no NVENC or its concurrent-session limit is reached.
    pub fn open(cu_context: *mut c_void) -> Result<Session> {
        let api = api()?;
        let mut p = sys::NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS {
            version: struct_version(1),
            deviceType: sys::NV_ENC_DEVICE_TYPE_CUDA,
            device: cu_context,
            apiVersion: super::result::API_VERSION,
            ..Default::default()
        };
        let mut encoder: Handle = null_mut();
        if let Err(e) = call!(api, nvEncOpenEncodeSessionEx(&mut p, &mut encoder)) {
            // "If the creation of encoder session fails, the client must call
            // NvEncDestroyEncoder API before exiting" (nvEncodeAPI.h): the driver may have
            // handed back a handle even so.
            if !encoder.is_null() {
                let _ = call!(api, nvEncDestroyEncoder(encoder));
            }
            return Err(e);
        }
        Ok(Session {
            api,
            encoder,
            bitstream: null_mut(),
            registered: Vec::new(),
            size: (0, 0),
            initialised: false,
            flushed: true,
        })
    }

    /// The codecs this GPU encodes.
    pub fn codecs(&self) -> Result<Vec<sys::GUID>> {
        let mut n = 0u32;
        call!(self.api, nvEncGetEncodeGUIDCount(self.encoder, &mut n))?;
        let mut v = vec![sys::GUID::default(); n as usize];
        let mut got = 0u32;
        call!(
            self.api,
            nvEncGetEncodeGUIDs(self.encoder, v.as_mut_ptr(), n, &mut got)
        )?;
        v.truncate(got as usize);
        Ok(v)
    }

    /// One capability value (`NV_ENC_CAPS_*`) of `codec`.
    pub fn cap(&self, codec: sys::GUID, cap: sys::NV_ENC_CAPS) -> Result<i32> {
        let mut q = sys::NV_ENC_CAPS_PARAM {
            version: struct_version(1),
            capsToQuery: cap,
            ..Default::default()
        };
        let mut v = 0i32;
        call!(
            self.api,
            nvEncGetEncodeCaps(self.encoder, codec, &mut q, &mut v)
        )?;
        Ok(v)
    }

    /// Initialises the session for `c.codec` (H.264 or HEVC) at `c` (preset P4, high-quality
    /// tuning, no B-frames, parameter sets repeated at every IDR) and creates its bitstream
    /// buffer.
    pub fn initialize(&mut self, c: &EncodeConfig) -> Result<()> {
        let mut preset = sys::NV_ENC_PRESET_CONFIG {
            version: struct_version(4) | (1 << 31),
            presetCfg: sys::NV_ENC_CONFIG {
                version: struct_version(7) | (1 << 31),
                ..Default::default()
            },
            ..Default::default()
        };
        call!(
            self.api,
            nvEncGetEncodePresetConfigEx(
                self.encoder,
                c.codec,
                PRESET_P4,
                sys::NV_ENC_TUNING_INFO_HIGH_QUALITY,
                &mut preset
            )
        )?;
        let mut cfg = preset.presetCfg;
        cfg.version = struct_version(7) | (1 << 31);
        if let Some(p) = c.profile {
            cfg.profileGUID = p;
        }
        let gop = c.gop.unwrap_or(0xffff_ffff); // NVENC_INFINITE_GOPLENGTH
        cfg.gopLength = gop;
        cfg.frameIntervalP = 1;
        let rc = &mut cfg.rcParams;
        rc.version = struct_version(1);
        if c.quality > 0 {
            rc.rateControlMode = sys::NV_ENC_PARAMS_RC_VBR;
            rc.averageBitRate = 0;
            rc.targetQuality = c.quality;
        } else {
            rc.rateControlMode = sys::NV_ENC_PARAMS_RC_CBR;
            rc.averageBitRate = c.bitrate;
        }
        rc.maxBitRate = c.bitrate;
        rc.vbvBufferSize = c.bitrate;
        rc.vbvInitialDelay = c.bitrate;
        // No lookahead: the P6/P7 presets may enable it, and then synchronous encoding answers
        // NV_ENC_ERR_NEED_MORE_INPUT (FFmpeg nvenc.c) where we expect a picture.
        rc.lookaheadDepth = 0;
        rc.set_enableLookahead(0);
        if same(&c.codec, &CODEC_HEVC) {
            // SAFETY: the preset was requested for HEVC, so the union holds `hevcConfig`.
            let hevc = unsafe { &mut cfg.encodeCodecConfig.hevcConfig };
            hevc.idrPeriod = gop;
            hevc.set_repeatSPSPPS(1);
        } else {
            // SAFETY: the preset was requested for H.264, so the union holds `h264Config`.
            let h264 = unsafe { &mut cfg.encodeCodecConfig.h264Config };
            h264.idrPeriod = gop;
            h264.set_repeatSPSPPS(1);
        }
        let mut init = sys::NV_ENC_INITIALIZE_PARAMS {
            version: struct_version(5) | (1 << 31),
            encodeGUID: c.codec,
            presetGUID: PRESET_P4,
            encodeWidth: c.width,
            encodeHeight: c.height,
            darWidth: c.width,
            darHeight: c.height,
            frameRateNum: c.frame_rate.0,
            frameRateDen: c.frame_rate.1.max(1),
            enableEncodeAsync: 0,
            enablePTD: 1,
            encodeConfig: &mut cfg,
            maxEncodeWidth: c.width,
            maxEncodeHeight: c.height,
            tuningInfo: sys::NV_ENC_TUNING_INFO_HIGH_QUALITY,
            bufferFormat: sys::NV_ENC_BUFFER_FORMAT_NV12,
            ..Default::default()
        };
        call!(self.api, nvEncInitializeEncoder(self.encoder, &mut init))
            .map_err(|e| self.detail(e))?;
        let mut b = sys::NV_ENC_CREATE_BITSTREAM_BUFFER {
            version: struct_version(1),
            ..Default::default()
        };
        call!(self.api, nvEncCreateBitstreamBuffer(self.encoder, &mut b))?;
        self.bitstream = b.bitstreamBuffer;
        self.size = (c.width, c.height);
        self.initialised = true;
        Ok(())
    }

    /// The parameter sets (SPS and PPS; VPS too for HEVC) in Annex B, for containers that
    /// carry them out of band.
    pub fn sequence_params(&self) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; 1024];
        let mut n = 0u32;
        let mut p = sys::NV_ENC_SEQUENCE_PARAM_PAYLOAD {
            version: struct_version(1),
            inBufferSize: buf.len() as u32,
            spsppsBuffer: buf.as_mut_ptr() as *mut c_void,
            outSPSPPSPayloadSize: &mut n,
            ..Default::default()
        };
        call!(self.api, nvEncGetSequenceParams(self.encoder, &mut p))?;
        buf.truncate(n as usize);
        Ok(buf)
    }

    /// The registration of the NV12 buffer at `ptr` (luma `pitch` bytes per row, chroma right
    /// after the luma rows), made on first use. The caller keeps the memory alive until the
    /// session is dropped.
    fn registration(&mut self, ptr: u64, pitch: u32) -> Result<Handle> {
        if let Some(&(_, h)) = self.registered.iter().find(|(p, _)| *p == ptr) {
            return Ok(h);
        }
        let mut r = sys::NV_ENC_REGISTER_RESOURCE {
            version: struct_version(3),
            resourceType: sys::NV_ENC_INPUT_RESOURCE_TYPE_CUDADEVICEPTR,
            width: self.size.0,
            height: self.size.1,
            pitch,
            resourceToRegister: ptr as *mut c_void,
            bufferFormat: sys::NV_ENC_BUFFER_FORMAT_NV12,
            bufferUsage: sys::NV_ENC_INPUT_IMAGE,
            ..Default::default()
        };
        call!(self.api, nvEncRegisterResource(self.encoder, &mut r)).map_err(|e| self.detail(e))?;
        self.registered.push((ptr, r.registeredResource));
        Ok(r.registeredResource)
    }

    /// Whether the buffer at `ptr` is registered (its memory must outlive the session).
    pub fn is_registered(&self, ptr: u64) -> bool {
        self.registered.iter().any(|(p, _)| *p == ptr)
    }

    /// Encodes the NV12 device frame at `ptr` and appends its access unit to `out`.
    pub fn encode(
        &mut self,
        ptr: u64,
        pitch: u32,
        pts: i64,
        idr: bool,
        out: &mut Vec<u8>,
    ) -> Result<Encoded> {
        let reg = self.registration(ptr, pitch)?;
        let mut map = sys::NV_ENC_MAP_INPUT_RESOURCE {
            version: struct_version(4),
            registeredResource: reg,
            ..Default::default()
        };
        call!(self.api, nvEncMapInputResource(self.encoder, &mut map))?;
        let result = self.encode_mapped(map.mappedResource, pitch, pts, idr, out);
        let unmap = call!(
            self.api,
            nvEncUnmapInputResource(self.encoder, map.mappedResource)
        );
        let encoded = result?;
        unmap?;
        Ok(encoded)
    }

    fn encode_mapped(
        &mut self,
        input: Handle,
        pitch: u32,
        pts: i64,
        idr: bool,
        out: &mut Vec<u8>,
    ) -> Result<Encoded> {
        let mut pic = sys::NV_ENC_PIC_PARAMS {
            version: struct_version(4) | (1 << 31),
            inputWidth: self.size.0,
            inputHeight: self.size.1,
            inputPitch: pitch,
            encodePicFlags: if idr {
                sys::NV_ENC_PIC_FLAG_FORCEIDR | sys::NV_ENC_PIC_FLAG_OUTPUT_SPSPPS
            } else {
                0
            },
            inputTimeStamp: pts as u64,
            inputBuffer: input,
            outputBitstream: self.bitstream,
            bufferFmt: sys::NV_ENC_BUFFER_FORMAT_NV12,
            pictureStruct: sys::NV_ENC_PIC_STRUCT_FRAME,
            ..Default::default()
        };
        self.flushed = false;
        call!(self.api, nvEncEncodePicture(self.encoder, &mut pic)).map_err(|e| self.detail(e))?;
        let mut lock = sys::NV_ENC_LOCK_BITSTREAM {
            version: struct_version(1),
            outputBitstream: self.bitstream,
            ..Default::default()
        };
        call!(self.api, nvEncLockBitstream(self.encoder, &mut lock))?;
        // SAFETY: while locked, the driver guarantees `bitstreamSizeInBytes` readable bytes at
        // `bitstreamBufferPtr`; they are copied out before unlocking.
        out.extend_from_slice(unsafe {
            std::slice::from_raw_parts(
                lock.bitstreamBufferPtr as *const u8,
                lock.bitstreamSizeInBytes as usize,
            )
        });
        call!(self.api, nvEncUnlockBitstream(self.encoder, self.bitstream))?;
        Ok(Encoded {
            pts: lock.outputTimeStamp as i64,
            // Only an IDR starts a decodable stream; FFmpeg's nvenc.c flags only IDR as a key
            // frame too (process_output_surface).
            keyframe: lock.pictureType == sys::NV_ENC_PIC_TYPE_IDR,
        })
    }

    /// Tells the encoder the stream ends (synchronous mode holds nothing back).
    pub fn end_of_stream(&mut self) -> Result<()> {
        let mut pic = sys::NV_ENC_PIC_PARAMS {
            version: struct_version(4) | (1 << 31),
            encodePicFlags: sys::NV_ENC_PIC_FLAG_EOS,
            ..Default::default()
        };
        call!(self.api, nvEncEncodePicture(self.encoder, &mut pic)).map_err(|e| self.detail(e))?;
        self.flushed = true;
        Ok(())
    }

    /// `e` with the driver's last error text for this session (`nvEncGetLastErrorString`),
    /// which says what a status code does not (an unsupported parameter, by name).
    fn detail(&self, e: NvencError) -> NvencError {
        let (NvencError::Status { call, code, .. }, Some(f)) =
            (&e, self.api.fns.nvEncGetLastErrorString)
        else {
            return e;
        };
        // SAFETY: the encoder handle is live; the driver returns a NUL-terminated string it
        // owns (or null), valid until the next call on this session, copied at once.
        let text = unsafe {
            let p = f(self.encoder);
            (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        NvencError::Status {
            call,
            code: *code,
            detail: text.unwrap_or_default().trim().to_string(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Errors on teardown cannot be acted on; the driver frees what it still holds with
        // the encoder. "The encoder has to be flushed before it can be closed" (FFmpeg
        // nvenc.c, ff_nvenc_encode_close), so an initialised session gets its end of stream.
        if self.initialised && !self.flushed {
            let _ = self.end_of_stream();
        }
        for (_, h) in self.registered.drain(..) {
            let _ = call!(self.api, nvEncUnregisterResource(self.encoder, h));
        }
        if !self.bitstream.is_null() {
            let _ = call!(
                self.api,
                nvEncDestroyBitstreamBuffer(self.encoder, self.bitstream)
            );
        }
        let _ = call!(self.api, nvEncDestroyEncoder(self.encoder));
    }
}

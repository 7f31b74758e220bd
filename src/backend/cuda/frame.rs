//! Device frames travel through the pipeline as AVFrames in `AV_PIX_FMT_CUDA`, the convention
//! of FFmpeg's hwcontext_cuda: `data[0]` and `data[1]` are the CUdeviceptrs of the NV12 luma
//! and interleaved chroma planes, `linesize` their pitches, and `buf[0]` owns the device
//! memory (a pool buffer, or an NVDEC mapping that is unmapped when the frame is released).
//! The queues, pools and timing code handle them exactly like host frames.

use super::memory::{bind, DeviceMemory};
use crate::error::{Error, Result};
use cudarc::driver::CudaContext;
use ffmpeg_next as ff;
use std::ffi::c_void;
use std::sync::Arc;

/// Row alignment of device frames (NVENC and coalesced kernel access).
pub const PITCH_ALIGN: usize = 256;

/// The NV12 planes of a device frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DevicePlanes {
    pub y: u64,
    pub pitch_y: usize,
    pub uv: u64,
    pub pitch_uv: usize,
}

/// The planes of `f` if it is a device frame.
pub fn device_planes(f: &ff::frame::Video) -> Option<DevicePlanes> {
    if f.format() != ff::format::Pixel::CUDA {
        return None;
    }
    // SAFETY: `f` is a valid frame; reading its data pointers and line sizes has no effect.
    let raw = unsafe { &*f.as_ptr() };
    Some(DevicePlanes {
        y: raw.data[0] as u64,
        pitch_y: raw.linesize[0] as usize,
        uv: raw.data[1] as u64,
        pitch_uv: raw.linesize[1] as usize,
    })
}

unsafe extern "C" fn release_owner(opaque: *mut c_void, _data: *mut u8) {
    // SAFETY: `opaque` is the Box made in `wrap` and FFmpeg calls this once, when the last
    // reference to the buffer goes.
    drop(unsafe { Box::from_raw(opaque as *mut Box<dyn Send>) });
}

/// Makes `f` a `w`x`h` device frame over NV12 planes owned by `owner` (dropped when the
/// frame's last reference is released).
fn wrap(f: &mut ff::frame::Video, w: u32, h: u32, p: DevicePlanes, owner: Box<dyn Send>) {
    let opaque = Box::into_raw(Box::new(owner)) as *mut c_void;
    // SAFETY: the frame is unreferenced first, so no old buffer leaks; av_buffer_create only
    // stores the (device) address and calls `release_owner` with `opaque` when the buffer's
    // refcount drops to zero. FFmpeg never dereferences `data` of an AV_PIX_FMT_CUDA frame.
    unsafe {
        let raw = f.as_mut_ptr();
        ff::ffi::av_frame_unref(raw);
        let buf = ff::ffi::av_buffer_create(p.y as *mut u8, 1, Some(release_owner), opaque, 0);
        assert!(!buf.is_null(), "av_buffer_create: out of memory");
        (*raw).buf[0] = buf;
        (*raw).format = ff::ffi::AVPixelFormat::AV_PIX_FMT_CUDA as i32;
        (*raw).width = w as i32;
        (*raw).height = h as i32;
        (*raw).data[0] = p.y as *mut u8;
        (*raw).data[1] = p.uv as *mut u8;
        (*raw).linesize[0] = p.pitch_y as i32;
        (*raw).linesize[1] = p.pitch_uv as i32;
    }
}

/// A new `w`x`h` NV12 frame in device memory (pitch aligned to [`PITCH_ALIGN`], chroma right
/// after the luma rows, as NVENC reads it). The memory comes from `cuMemAlloc`, never a
/// stream-ordered pool, because NVENC registers only that (see [`DeviceMemory`]), and it is
/// freed with its context bound on whichever thread releases the frame last.
pub fn alloc_nv12(ctx: &Arc<CudaContext>, w: u32, h: u32) -> Result<ff::frame::Video> {
    let pitch = (w as usize).div_ceil(PITCH_ALIGN) * PITCH_ALIGN;
    let rows = h as usize + (h as usize).div_ceil(2);
    // The scaler writes every visible byte before the frame is read.
    let mem = DeviceMemory::alloc(ctx, pitch * rows).map_err(|e| Error::Codec {
        stage: "cuda",
        detail: format!("a {w}x{h} frame: {e}"),
    })?;
    let y = mem.ptr();
    let planes = DevicePlanes {
        y,
        pitch_y: pitch,
        uv: y + (pitch * h as usize) as u64,
        pitch_uv: pitch,
    };
    let mut f = ff::frame::Video::empty();
    wrap(&mut f, w, h, planes, Box::new(mem));
    Ok(f)
}

/// An NVDEC mapping released with its CUDA context current, whichever thread drops it.
struct MappedOwner {
    ctx: Arc<CudaContext>,
    mapped: Option<super::nvdec::Mapped>,
}

impl Drop for MappedOwner {
    fn drop(&mut self) {
        let _ = bind(&self.ctx);
        self.mapped = None;
    }
}

/// Turns `f` into a view of an NVDEC picture; the mapping is released with the frame.
pub fn wrap_mapped(
    f: &mut ff::frame::Video,
    ctx: &Arc<CudaContext>,
    m: super::nvdec::Mapped,
    pts: i64,
) {
    let (w, h) = m.size();
    let planes = DevicePlanes {
        y: m.ptr,
        pitch_y: m.pitch as usize,
        uv: m.ptr + m.pitch as u64 * h as u64,
        pitch_uv: m.pitch as usize,
    };
    let owner = MappedOwner {
        ctx: ctx.clone(),
        mapped: Some(m),
    };
    wrap(f, w, h, planes, Box::new(owner));
    f.set_pts(Some(pts));
}

/// Releases what `f` holds (for a device frame: its mapping or its reference to the buffer).
pub fn release(f: &mut ff::frame::Video) {
    // SAFETY: unreferencing a valid frame leaves it empty and valid.
    unsafe { ff::ffi::av_frame_unref(f.as_mut_ptr()) };
}

/// A counted reference to a frame's first buffer: keeps device memory alive while NVENC has
/// it registered.
pub struct BufferRef(*mut ff::ffi::AVBufferRef);

// SAFETY: AVBufferRef reference counting is atomic; the referenced memory is device memory
// that is never touched through this handle.
unsafe impl Send for BufferRef {}

impl BufferRef {
    pub fn of(f: &ff::frame::Video) -> Option<BufferRef> {
        // SAFETY: `buf[0]` is null or a valid buffer reference of `f`; av_buffer_ref adds one.
        unsafe {
            let b = (*f.as_ptr()).buf[0];
            (!b.is_null()).then(|| BufferRef(ff::ffi::av_buffer_ref(b)))
        }
    }
}

impl Drop for BufferRef {
    fn drop(&mut self) {
        // SAFETY: the reference was made by av_buffer_ref and is released once.
        unsafe { ff::ffi::av_buffer_unref(&mut self.0) };
    }
}

/// Reads device frames back to the host, for what must see pixels on the CPU: a rendition's
/// MPEG-7 signature (luma only), and a rendition that encodes on the CPU although the scaler
/// wrote device frames for NVENC (the driver refused it a session). Staging buffers and the
/// host frames are reused from frame to frame.
pub struct DeviceReader {
    ctx: Arc<CudaContext>,
    stream: Arc<cudarc::driver::CudaStream>,
    staging: Vec<u8>,
    /// Packed NV12 planes of the last download.
    packed: (Vec<u8>, Vec<u8>),
    luma: ff::frame::Video,
    picture: ff::frame::Video,
}

impl DeviceReader {
    pub fn new(ordinal: usize) -> Result<Self> {
        let ctx = super::context::context(ordinal).map_err(|e| Error::Codec {
            stage: "cuda",
            detail: format!("device {ordinal}: {e}"),
        })?;
        let stream = ctx.new_stream().map_err(|e| Error::Codec {
            stage: "cuda",
            detail: format!("device {ordinal}: cannot create a stream: {e}"),
        })?;
        Ok(DeviceReader {
            ctx,
            stream,
            staging: Vec::new(),
            packed: Default::default(),
            luma: ff::frame::Video::empty(),
            picture: ff::frame::Video::empty(),
        })
    }

    /// Queues a copy of `rows` rows of `pitch` bytes from device address `from` into
    /// `staging[at..]` (sized by the caller); [`DeviceReader::wait`] before reading it.
    fn fetch(&mut self, at: usize, from: u64, pitch: usize, rows: usize) -> Result<()> {
        let fail = |e: cudarc::driver::DriverError| Error::Codec {
            stage: "cuda",
            detail: format!("download: {e}"),
        };
        bind(&self.ctx)?;
        let stream = &self.stream;
        // SAFETY: `from` addresses `pitch * rows` bytes of live device memory (the caller's
        // frame holds its buffer), the staging slice is that long, and callers `wait` before
        // the host reads it or the staging buffer is touched again.
        unsafe {
            cudarc::driver::result::memcpy_dtoh_async(
                &mut self.staging[at..at + pitch * rows],
                from,
                stream.cu_stream(),
            )
        }
        .map_err(fail)
    }

    /// Waits for the queued copies.
    fn wait(&self) -> Result<()> {
        self.stream.synchronize().map_err(|e| Error::Codec {
            stage: "cuda",
            detail: format!("download: {e}"),
        })
    }

    /// The luma of device frame `f` as a host GRAY8 frame (with `f`'s timestamp).
    pub fn luma(&mut self, f: &ff::frame::Video) -> Result<&mut ff::frame::Video> {
        let p = planes_of(f)?;
        let (w, h) = (f.width(), f.height());
        if (self.luma.width(), self.luma.height()) != (w, h) {
            self.luma = ff::frame::Video::new(ff::format::Pixel::GRAY8, w, h);
        }
        self.staging.resize(p.pitch_y * h as usize, 0);
        self.fetch(0, p.y, p.pitch_y, h as usize)?;
        self.wait()?;
        let stride = self.luma.stride(0);
        let dst = self.luma.data_mut(0);
        for (row, src) in self.staging.chunks(p.pitch_y).enumerate() {
            dst[row * stride..row * stride + w as usize].copy_from_slice(&src[..w as usize]);
        }
        self.luma.set_pts(f.pts());
        Ok(&mut self.luma)
    }

    /// Device frame `f` downloaded whole into a host YUV420P frame (with `f`'s timestamp),
    /// kept until the next call: see [`DeviceReader::picture`].
    pub fn download(&mut self, f: &ff::frame::Video) -> Result<()> {
        let p = planes_of(f)?;
        let (w, h) = (f.width() as usize, f.height() as usize);
        if (self.picture.width(), self.picture.height()) != (w as u32, h as u32) {
            self.picture = ff::frame::Video::new(ff::format::Pixel::YUV420P, w as u32, h as u32);
        }
        let (cw, ch) = crate::scale::chroma_size(w, h);
        // Both planes' copies are queued, then waited for once.
        let luma = p.pitch_y * h;
        self.staging.resize(luma + p.pitch_uv * ch, 0);
        self.fetch(0, p.y, p.pitch_y, h)?;
        self.fetch(luma, p.uv, p.pitch_uv, ch)?;
        self.wait()?;
        let (luma, chroma) = self.staging.split_at(p.pitch_y * h);
        // Pitched rows to packed planes, the layout unpack_nv12 reads.
        let pack = |plane: &[u8], pitch: usize, width: usize, out: &mut Vec<u8>| {
            out.clear();
            for row in plane.chunks(pitch) {
                out.extend_from_slice(&row[..width]);
            }
        };
        pack(luma, p.pitch_y, w, &mut self.packed.0);
        pack(chroma, p.pitch_uv, 2 * cw, &mut self.packed.1);
        crate::media::frame::unpack_nv12(&self.packed.0, &self.packed.1, &mut self.picture);
        self.picture.set_pts(f.pts());
        Ok(())
    }

    /// The frame of the last [`DeviceReader::download`].
    pub fn picture(&mut self) -> &mut ff::frame::Video {
        &mut self.picture
    }
}

fn planes_of(f: &ff::frame::Video) -> Result<DevicePlanes> {
    device_planes(f).ok_or_else(|| Error::Codec {
        stage: "cuda",
        detail: "not a device frame".into(),
    })
}

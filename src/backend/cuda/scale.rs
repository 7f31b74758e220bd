//! The CUDA scale stage: `kernels/scale_nv12.cu` through cudarc, two launches per frame (the
//! vertical then the horizontal pass) for the whole ladder. The source is an NVDEC picture (a device frame, read in place) or a host
//! frame from the CPU decoder (uploaded). The outputs are device frames for NVENC (written in
//! place, never leaving the GPU) or host frames for the CPU encoder (downloaded).
//! Its output equals the CPU scaler's bit for bit (same tables, same arithmetic).

use super::frame::{alloc_nv12, device_planes, DevicePlanes};
use super::kernels::{self, ScalePlaneJob, SCALE_BLOCK};
use super::memory::DeviceMemory;
use crate::error::{Error, Result};
use crate::media::frame::{pack_nv12, unpack_nv12};
use crate::pipeline::stage::MultiScaler;
use crate::scale::{chroma_size, ScalePlan};
use cudarc::driver::{sys, CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use ffmpeg_next as ff;
use std::sync::Arc;

fn cuda_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Codec {
        stage: "cuda",
        detail: format!("{what}: {e}"),
    }
}

/// Whether the CUDA driver library can be loaded at all.
#[cfg(feature = "runtime-loading")]
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen libcuda under its usual names; no driver call is made.
    unsafe { sys::is_culib_present() }
}

/// Whether the CUDA driver library can be loaded at all: a build that links libcuda (the
/// `cuda` feature without `runtime-loading`) only starts where it is.
#[cfg(not(feature = "runtime-loading"))]
pub fn driver_present() -> bool {
    true
}

/// One rendition's device planes and host staging.
struct Out {
    y: DeviceMemory,
    uv: DeviceMemory,
    host_y: Vec<u8>,
    host_uv: Vec<u8>,
}

pub struct CudaScaler {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// The two passes, in launch order, with their grids.
    vertical: (CudaFunction, (u32, u32, u32)),
    horizontal: (CudaFunction, (u32, u32, u32)),
    plan: ScalePlan,
    /// Source NV12, packed (pitch = width).
    src_y: DeviceMemory,
    src_uv: DeviceMemory,
    host_y: Vec<u8>,
    host_uv: Vec<u8>,
    outs: Vec<Out>,
    /// Filter tables and the vertical pass's intermediates; kept alive for the jobs' pointers.
    _tables: Vec<DeviceMemory>,
    jobs: DeviceMemory,
    /// The job table on the host, patched with each frame's destinations for device output.
    host_jobs: Jobs,
    /// Write device frames (for NVENC) instead of host frames.
    device_output: bool,
    device: String,
}

/// The job table; its pointers are device addresses, never dereferenced on the host.
struct Jobs(Vec<ScalePlaneJob>);
// SAFETY: the raw pointers inside are device addresses used only as kernel arguments.
unsafe impl Send for Jobs {}

fn bytes_of<T: Copy>(v: &[T]) -> &[u8] {
    // SAFETY: `T` is a plain integer or #[repr(C)] struct of integers and pointers (no
    // padding is read as anything but bytes); the byte view covers exactly `v`.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

impl CudaScaler {
    /// Opens CUDA device `ordinal`, loads the kernel (the first image the device takes: see
    /// [`super::module`]) and allocates every buffer for `plan`. With `device_output` the scaler
    /// writes device frames (see [`MultiScaler::alloc_output`]).
    pub fn new(plan: ScalePlan, ordinal: usize, device_output: bool) -> Result<Self> {
        if !driver_present() {
            return Err(cuda_err(
                "not available",
                "libcuda.so.1 not found (no NVIDIA driver on this machine)",
            ));
        }
        let ctx = super::context::context(ordinal)
            .map_err(|e| cuda_err(&format!("cannot open device {ordinal}"), e))?;
        let (module, image) = super::module::load(&ctx, "scale_nv12", kernels::SCALE_NV12_CU)?;
        let device = format!("device {ordinal} ({image})");
        let func = |name: &str| {
            module
                .load_function(name)
                .map_err(|e| cuda_err(&format!("no {name} in the module"), e))
        };
        let vertical = (func("scale_nv12_vertical")?, kernels::vertical_grid(&plan));
        let horizontal = (
            func("scale_nv12_horizontal")?,
            kernels::horizontal_grid(&plan),
        );
        // The session's own stream (real-gpu-rules.md R6): sessions on one GPU overlap.
        let stream = ctx
            .new_stream()
            .map_err(|e| cuda_err("cannot create a stream", e))?;

        let (w, h) = (plan.src_width, plan.src_height);
        let (cw, ch) = chroma_size(w, h);
        // Every byte is written (upload or kernel) before it is read back.
        let alloc = |n: usize| DeviceMemory::alloc(&ctx, n);
        let src_y = alloc(w * h)?;
        let src_uv = alloc(2 * cw * ch)?;
        let mut outs = Vec::with_capacity(plan.outputs.len());
        let mut tables = Vec::new();
        let mut jobs = Vec::new();
        let mut inter = kernels::intermediate_shapes(&plan).into_iter();
        for o in &plan.outputs {
            let (dw, dh) = (o.luma_h.dst_len, o.luma_v.dst_len);
            let (dcw, dch) = chroma_size(dw, dh);
            // Device output writes into each frame's own buffers (the job table is pointed at
            // them per frame); host output goes through these, then downloads.
            let out = if device_output {
                None
            } else {
                Some(Out {
                    y: alloc(dw * dh)?,
                    uv: alloc(2 * dcw * dch)?,
                    host_y: vec![0; dw * dh],
                    host_uv: vec![0; 2 * dcw * dch],
                })
            };
            let (y, uv) = out.as_ref().map_or((0, 0), |o| (o.y.ptr(), o.uv.ptr()));
            for (hb, vb, dst, pitch, channels) in [
                (&o.luma_h, &o.luma_v, y, dw, 1),
                (&o.chroma_h, &o.chroma_v, uv, 2 * dcw, 2),
            ] {
                let mut upload = |data: &[u8]| -> Result<u64> {
                    let t = DeviceMemory::from_host(&ctx, data, &stream)?;
                    let p = t.ptr();
                    tables.push(t);
                    Ok(p)
                };
                let hcoef = upload(bytes_of(&hb.coef))?;
                let hstart = upload(bytes_of(&hb.start))?;
                let vcoef = upload(bytes_of(&vb.coef))?;
                let vstart = upload(bytes_of(&vb.start))?;
                let (samples, rows) = inter.next().expect("a shape per job");
                // Written by the vertical pass before the horizontal one reads it.
                let buf = alloc(2 * samples * rows)?;
                let at = buf.ptr();
                tables.push(buf);
                jobs.push(ScalePlaneJob::new(
                    hb,
                    vb,
                    [hcoef, hstart, vcoef, vstart],
                    (at, samples),
                    (dst as *mut u8, pitch),
                    channels,
                ));
            }
            outs.extend(out);
        }
        let host_jobs = Jobs(jobs);
        let jobs = DeviceMemory::from_host(&ctx, bytes_of(&host_jobs.0), &stream)?;
        Ok(CudaScaler {
            ctx,
            host_jobs,
            device_output,
            stream,
            vertical,
            horizontal,
            src_y,
            src_uv,
            host_y: vec![0; w * h],
            host_uv: vec![0; 2 * cw * ch],
            outs,
            _tables: tables,
            jobs,
            plan,
            device,
        })
    }
}

impl CudaScaler {
    /// Copies a host frame into the NV12 source buffers (U and V interleaved).
    fn upload_source(&mut self, src: &ff::frame::Video) -> Result<DevicePlanes> {
        let (w, h) = (self.plan.src_width, self.plan.src_height);
        let (cw, _) = chroma_size(w, h);
        pack_nv12(src, &mut self.host_y, &mut self.host_uv);
        // The host buffers are not touched again before the stream is synchronised after
        // the launch.
        self.src_y.upload(&self.host_y, &self.stream)?;
        self.src_uv.upload(&self.host_uv, &self.stream)?;
        Ok(DevicePlanes {
            y: self.src_y.ptr(),
            pitch_y: w,
            uv: self.src_uv.ptr(),
            pitch_uv: 2 * cw,
        })
    }

    /// Points the job table at the device frames `dst` (two planes each) and uploads it.
    fn target(&mut self, dst: &[ff::frame::Video]) -> Result<()> {
        for (pair, f) in self.host_jobs.0.chunks_mut(2).zip(dst) {
            let p = device_planes(f).ok_or_else(|| cuda_err("scale", "a host output frame"))?;
            pair[0].dst = p.y as *mut u8;
            pair[0].dst_pitch = p.pitch_y as i32;
            pair[1].dst = p.uv as *mut u8;
            pair[1].dst_pitch = p.pitch_uv as i32;
        }
        // `host_jobs` is not changed again before the stream is synchronised after the launch.
        self.jobs.upload(bytes_of(&self.host_jobs.0), &self.stream)
    }

    /// Copies the scaled planes into host frames `dst` (U and V de-interleaved).
    fn download(&mut self, dst: &mut [ff::frame::Video]) -> Result<()> {
        let s = &self.stream;
        for (o, f) in self.outs.iter_mut().zip(dst.iter_mut()) {
            o.y.download(&mut o.host_y, s)?;
            o.uv.download(&mut o.host_uv, s)?;
            s.synchronize().map_err(|e| cuda_err("synchronize", e))?;
            unpack_nv12(&o.host_y, &o.host_uv, f);
        }
        Ok(())
    }
}

impl MultiScaler for CudaScaler {
    fn scale(&mut self, src: &ff::frame::Video, dst: &mut [ff::frame::Video]) -> Result<()> {
        super::memory::bind(&self.ctx)?;
        let from = match device_planes(src) {
            Some(p) => p,
            None => self.upload_source(src)?,
        };
        if self.device_output {
            self.target(dst)?;
        }
        let (sw, sh) = (self.plan.src_width as i32, self.plan.src_height as i32);
        let (pitch_y, pitch_uv) = (from.pitch_y as i32, from.pitch_uv as i32);
        let jobs = self.jobs.ptr();
        let s = &self.stream;
        let config = |grid| LaunchConfig {
            grid_dim: grid,
            block_dim: (SCALE_BLOCK.0, SCALE_BLOCK.1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = s.launch_builder(&self.vertical.0);
        launch
            .arg(&from.y)
            .arg(&pitch_y)
            .arg(&from.uv)
            .arg(&pitch_uv)
            .arg(&sw)
            .arg(&sh)
            .arg(&jobs);
        // SAFETY: the arguments match scale_nv12_vertical's signature in order and type
        // (device addresses as 64-bit values); the source planes cover `plan`'s source size
        // and every job points at tables and an intermediate of exactly its plane's size.
        unsafe { launch.launch(config(self.vertical.1)) }.map_err(|e| cuda_err("launch", e))?;
        let mut launch = s.launch_builder(&self.horizontal.0);
        launch.arg(&sw).arg(&jobs);
        // SAFETY: as above for scale_nv12_horizontal(int, jobs); it runs after the vertical
        // pass on the same stream, so the intermediates are written.
        unsafe { launch.launch(config(self.horizontal.1)) }.map_err(|e| cuda_err("launch", e))?;
        if self.device_output {
            // The frames go to encoders on other threads: finish before handing them on.
            s.synchronize().map_err(|e| cuda_err("synchronize", e))
        } else {
            self.download(dst)
        }
    }

    fn name(&self) -> String {
        format!("cuda {}", self.device)
    }

    fn alloc_output(&self, w: u32, h: u32) -> Result<ff::frame::Video> {
        if self.device_output {
            alloc_nv12(&self.ctx, w, h)
        } else {
            Ok(ff::frame::Video::new(ff::format::Pixel::YUV420P, w, h))
        }
    }
}

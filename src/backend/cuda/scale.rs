//! The CUDA scale stage: `kernels/scale_nv12.cu` through cudarc, one launch per frame for the
//! whole ladder. The source is an NVDEC picture (a device frame, read in place) or a host
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
    func: CudaFunction,
    plan: ScalePlan,
    /// Source NV12, packed (pitch = width).
    src_y: DeviceMemory,
    src_uv: DeviceMemory,
    host_y: Vec<u8>,
    host_uv: Vec<u8>,
    outs: Vec<Out>,
    /// Filter tables and the job table; kept alive for the jobs' pointers.
    _tables: Vec<DeviceMemory>,
    jobs: DeviceMemory,
    /// The job table on the host, patched with each frame's destinations for device output.
    host_jobs: Jobs,
    /// Write device frames (for NVENC) instead of host frames.
    device_output: bool,
    grid: (u32, u32, u32),
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
    /// Opens CUDA device `ordinal`, loads the kernel (embedded cubin for the device, else PTX,
    /// else NVRTC) and allocates every buffer for `plan`. With `device_output` the scaler
    /// writes device frames (see [`MultiScaler::alloc_output`]).
    pub fn new(plan: ScalePlan, ordinal: usize, device_output: bool) -> Result<Self> {
        if !driver_present() {
            return Err(cuda_err(
                "not available",
                "libcuda.so.1 not found (no NVIDIA driver on this machine)",
            ));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| cuda_err(&format!("cannot open device {ordinal}"), e))?;
        // SAFETY: this scaler uses one stream only, so cross-stream event tracking is moot.
        unsafe { ctx.disable_event_tracking() };
        let attr = |a| {
            ctx.attribute(a)
                .map_err(|e| cuda_err("device attribute", e))
        };
        let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let device = format!("device {ordinal} (sm_{major}{minor})");
        let image = module_image("scale_nv12", kernels::SCALE_NV12_CU, major, minor)?;
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(image))
            .map_err(|e| cuda_err("cannot load the scale kernel", e))?;
        let func = module
            .load_function("scale_nv12")
            .map_err(|e| cuda_err("no scale_nv12 in the module", e))?;
        let stream = ctx.default_stream();

        let (w, h) = (plan.src_width, plan.src_height);
        let (cw, ch) = chroma_size(w, h);
        // Every byte is written (upload or kernel) before it is read back.
        let alloc = |n: usize| DeviceMemory::alloc(&ctx, n);
        let src_y = alloc(w * h)?;
        let src_uv = alloc(2 * cw * ch)?;
        let mut outs = Vec::with_capacity(plan.outputs.len());
        let mut tables = Vec::new();
        let mut jobs = Vec::new();
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
                    let t = DeviceMemory::from_host(&ctx, data)?;
                    let p = t.ptr();
                    tables.push(t);
                    Ok(p)
                };
                let hcoef = upload(bytes_of(&hb.coef))?;
                let hstart = upload(bytes_of(&hb.start))?;
                let vcoef = upload(bytes_of(&vb.coef))?;
                let vstart = upload(bytes_of(&vb.start))?;
                let tables = [hcoef, hstart, vcoef, vstart];
                jobs.push(ScalePlaneJob::new(
                    hb,
                    vb,
                    tables,
                    dst as *mut u8,
                    pitch,
                    channels,
                ));
            }
            outs.extend(out);
        }
        let host_jobs = Jobs(jobs);
        let jobs = DeviceMemory::from_host(&ctx, bytes_of(&host_jobs.0))?;
        Ok(CudaScaler {
            ctx,
            host_jobs,
            device_output,
            grid: kernels::scale_grid(&plan),
            stream,
            func,
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

/// The best module image of `kernel` (whose source is `source`) for a device of compute
/// capability `major.minor`: an embedded cubin of the same major version (the newest not above
/// the device), else the embedded PTX (JIT by the driver), else the source compiled now by
/// NVRTC.
pub(crate) fn module_image(kernel: &str, source: &str, major: i32, minor: i32) -> Result<Vec<u8>> {
    let want = major * 10 + minor;
    let best = kernels::embedded_architectures(kernel)
        .into_iter()
        .filter_map(|a| a.strip_prefix("sm_")?.parse::<i32>().ok().map(|n| (n, a)))
        .filter(|(n, _)| n / 10 == major && *n <= want)
        .max();
    if let Some((_, arch)) = best {
        return Ok(kernels::embedded(kernel, arch).expect("listed").to_vec());
    }
    if want >= 90 {
        if let Some(ptx) = kernels::embedded(kernel, "compute_90") {
            let mut v = ptx.to_vec();
            v.push(0);
            return Ok(v);
        }
    }
    super::nvrtc::compile(source, &format!("{kernel}.cu"), &format!("sm_{want}"))
        .map(|c| c.cubin)
        .map_err(|e| cuda_err("no kernel for this GPU", e))
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
        let mut launch = s.launch_builder(&self.func);
        launch
            .arg(&from.y)
            .arg(&pitch_y)
            .arg(&from.uv)
            .arg(&pitch_uv)
            .arg(&sw)
            .arg(&sh)
            .arg(&jobs);
        let cfg = LaunchConfig {
            grid_dim: self.grid,
            block_dim: (SCALE_BLOCK.0, SCALE_BLOCK.1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match scale_nv12's signature in order and type (device
        // addresses as 64-bit values); the source planes cover `plan`'s source size and every
        // job points at buffers of exactly its plane's size.
        unsafe { launch.launch(cfg) }.map_err(|e| cuda_err("launch", e))?;
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

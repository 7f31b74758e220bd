//! The diffuse stage on device frames (builds with the `cuda` feature): an NVDEC picture
//! (NV12 in device memory) → planar RGB floats by `kernels/color.cu` straight into a candle
//! CUDA tensor → image-to-image on the GPU → NV12 by the same kernels into a new device frame
//! for the scaler. No host copy; the arithmetic is `src/scale/color.rs`, as on the CPU.

use super::frame::{alloc_nv12, device_planes};
use super::kernels::{ColorFrame, COLOR_BLOCK, COLOR_CU};
use crate::diffusion::model::Conditioning;
use crate::diffusion::video::DiffuseConfig;
use crate::error::{Error, Result};
use crate::pipeline::stage::FrameFilter;
use candle_core::{op::BackpropOp, Device, Storage, Tensor};
use cudarc::driver::{CudaFunction, CudaStream, DevicePtr, LaunchConfig, PushKernelArg};
use ffmpeg_next as ff;
use std::sync::Arc;

fn err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Codec {
        stage: "diffuse",
        detail: format!("{what}: {e}"),
    }
}

pub struct CudaDiffuser {
    cfg: DiffuseConfig,
    cond: Conditioning,
    device: candle_core::CudaDevice,
    stream: Arc<CudaStream>,
    to_rgb: CudaFunction,
    to_nv12: CudaFunction,
}

impl CudaDiffuser {
    /// The model must be on a CUDA device; the kernels load into its (primary) context, the
    /// one NVDEC and the scaler use.
    pub fn new(cfg: DiffuseConfig) -> Result<Self> {
        let Device::Cuda(device) = cfg.model.device().clone() else {
            return Err(err(
                "diffuse on device frames",
                "the model is not on a CUDA device",
            ));
        };
        let cond = cfg.condition().map_err(|e| err("prompt", e))?;
        let stream = device.cuda_stream();
        let ctx = stream.context();
        let (module, _) = super::module::load(ctx, "color", COLOR_CU)?;
        let f = |name| module.load_function(name).map_err(|e| err(name, e));
        Ok(CudaDiffuser {
            to_rgb: f("nv12_to_rgb")?,
            to_nv12: f("rgb_to_nv12")?,
            cfg,
            cond,
            device,
            stream,
        })
    }

    fn launch(&self, func: &CudaFunction, f: ColorFrame, grid: (u32, u32)) -> Result<()> {
        let cfg = LaunchConfig {
            grid_dim: (grid.0, grid.1, 1),
            block_dim: (COLOR_BLOCK.0, COLOR_BLOCK.1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = self.stream.launch_builder(func);
        launch.arg(&f);
        // SAFETY: `f` matches `struct ColorFrame` (kernels/color.h); its planes are live device
        // allocations of the sizes its width, height and pitches describe, and the grid covers
        // exactly the pixels (to RGB) or 2x2 blocks (to NV12) the kernel bounds-checks.
        unsafe { launch.launch(cfg) }.map_err(|e| err("launch", e))?;
        Ok(())
    }
}

impl FrameFilter for CudaDiffuser {
    fn process(&mut self, frame: &mut ff::frame::Video) -> Result<()> {
        let Some(src) = device_planes(frame) else {
            return Err(err(
                "diffuse",
                "a host frame reached the CUDA diffuse stage",
            ));
        };
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let rgb = self
            .stream
            .alloc_zeros::<f32>(3 * w * h)
            .map_err(|e| err("out of device memory", e))?;
        let (rgb_ptr, _) = rgb.device_ptr(&self.stream);
        let color = |y: u64, pitch_y: usize, uv: u64, pitch_uv: usize, rgb: u64| ColorFrame {
            y: y as *mut u8,
            uv: uv as *mut u8,
            rgb: rgb as *mut f32,
            pitch_y: pitch_y as i32,
            pitch_uv: pitch_uv as i32,
            width: w as i32,
            height: h as i32,
        };
        let f = color(src.y, src.pitch_y, src.uv, src.pitch_uv, rgb_ptr);
        let pixels = (
            (w as u32).div_ceil(COLOR_BLOCK.0),
            (h as u32).div_ceil(COLOR_BLOCK.1),
        );
        self.launch(&self.to_rgb, f, pixels)?;
        let storage = candle_core::CudaStorage::wrap_cuda_slice(rgb, self.device.clone());
        let x = Tensor::from_storage(
            Storage::Cuda(storage),
            (1, 3, h, w),
            BackpropOp::none(),
            false,
        );
        let out = self
            .cfg
            .frame(&self.cond, &x)
            .map_err(|e| err("image-to-image", e))?;
        let mut next = alloc_nv12(self.stream.context(), w as u32, h as u32)?;
        let dst = device_planes(&next).expect("a device frame");
        {
            let (storage, layout) = out.storage_and_layout();
            let Storage::Cuda(s) = &*storage else {
                return Err(err("image-to-image", "the output left the GPU"));
            };
            let slice = s.as_cuda_slice::<f32>().map_err(|e| err("output", e))?;
            let (ptr, _) = slice.device_ptr(&self.stream);
            let ptr = ptr + (layout.start_offset() * std::mem::size_of::<f32>()) as u64;
            let f = color(dst.y, dst.pitch_y, dst.uv, dst.pitch_uv, ptr);
            let blocks = (
                (w.div_ceil(2) as u32).div_ceil(COLOR_BLOCK.0),
                (h.div_ceil(2) as u32).div_ceil(COLOR_BLOCK.1),
            );
            self.launch(&self.to_nv12, f, blocks)?;
        }
        self.stream
            .synchronize()
            .map_err(|e| err("synchronize", e))?;
        next.set_pts(frame.pts());
        // The decoded picture (an NVDEC mapping) is released here; the scaler reads `next`.
        *frame = next;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "cuda"
    }
}

//! A loaded model and the three generations the runner offers: text-to-image,
//! image-to-image and upscale. One image per call; the API calls it once per image with
//! seed + i, as the runner does (sequentially, to bound memory).

use super::config::ModelFiles;
use super::noise::Noise;
use super::picture::Rgb;
use super::scheduler::Scheduler;
use super::text_encoder::TextEncoder;
use super::tokenizer::PromptTokenizer;
use super::vae_encoder::VaeEncoder;
use super::{memory, DiffusionError};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::stable_diffusion::{unet_2d::UNet2DConditionModel, vae};
use std::path::Path;

/// What to make.
#[derive(Debug, Clone)]
pub enum Task {
    Text {
        width: usize,
        height: usize,
    },
    /// `strength` in [0, 1]: how much of the schedule is re-run over the image.
    Image {
        image: Rgb,
        strength: f64,
    },
    /// The output is the input scaled by the VAE's factor (×4 for the x4 upscaler).
    Upscale {
        image: Rgb,
    },
}

#[derive(Debug, Clone)]
pub struct Request {
    pub prompt: String,
    pub negative_prompt: String,
    pub guidance_scale: f64,
    pub steps: usize,
    pub seed: u64,
    pub task: Task,
    /// Text-to-image: start from these latents (`[1, channels, height / f, width / f]`, as
    /// diffusers' `latents=`) instead of the seed's noise; the seed still drives any later
    /// noise (ancestral schedulers).
    pub latents: Option<super::latents::Latents>,
}

/// Prompt embeddings, computed once per prompt (the video stage reuses them every frame).
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// `(1, tokens, dim)`, or `(2, ...)` = [negative, prompt] with classifier-free guidance.
    embeddings: Tensor,
    guidance: Option<f64>,
}

impl Conditioning {
    /// `(1, tokens, dim)`, or `(2, ...)` = [negative, prompt] with classifier-free guidance.
    pub fn embeddings(&self) -> &Tensor {
        &self.embeddings
    }
}

pub struct Model {
    pub files: ModelFiles,
    device: Device,
    dtype: DType,
    tokenizer: PromptTokenizer,
    text: TextEncoder,
    unet: UNet2DConditionModel,
    vae: vae::AutoEncoderKL,
    vae_encoder: VaeEncoder,
    /// Memory this process may use for one generation (None: whatever the machine has).
    pub memory_limit: Option<u64>,
}

fn weights(
    files: &ModelFiles,
    component: &str,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>, DiffusionError> {
    let mut tensors = std::collections::HashMap::new();
    for path in files.weights(component)? {
        let shard =
            candle_core::safetensors::load(&path, device).map_err(|e| DiffusionError::Model {
                dir: files.dir.clone(),
                problem: format!("{}: {e}", path.display()),
            })?;
        tensors.extend(shard);
    }
    if component == "text_encoder" {
        tensors = clip_keys(tensors);
    }
    Ok(VarBuilder::from_tensors(tensors, dtype, device))
}

/// CLIP text encoders come in two key layouts: `text_model.encoder.layers.0…` (transformers 4,
/// and every checkpoint on the hub from before it) and `encoder.layers.0…` (transformers 5
/// saves `CLIPTextModel` without the `text_model.` prefix). Both are read as the first.
fn clip_keys(
    tensors: std::collections::HashMap<String, candle_core::Tensor>,
) -> std::collections::HashMap<String, candle_core::Tensor> {
    if tensors.keys().any(|k| k.starts_with("text_model.")) {
        return tensors;
    }
    tensors
        .into_iter()
        .map(|(k, t)| (format!("text_model.{k}"), t))
        .collect()
}

/// The UNet `files` describe, its weights from `vb` (a model's files, or the fresh variables
/// of a tiny model being written: both go through here, so they name the same tensors).
pub(crate) fn build_unet(
    files: &ModelFiles,
    vb: VarBuilder,
) -> candle_core::Result<UNet2DConditionModel> {
    UNet2DConditionModel::new(
        vb,
        files.unet.in_channels,
        files.unet.out_channels,
        false,
        files.unet_config(),
    )
}

/// The VAE `files` describe (candle's, for decoding) and our encoder over the same weights.
pub(crate) fn build_vae(
    files: &ModelFiles,
    vb: VarBuilder,
) -> candle_core::Result<(vae::AutoEncoderKL, VaeEncoder)> {
    let decoder = vae::AutoEncoderKL::new(
        vb.clone(),
        files.vae.in_channels,
        files.vae.out_channels,
        files.vae_config(),
    )?;
    Ok((decoder, VaeEncoder::new(vb, &files.vae)?))
}

/// Sizes the VAE can encode and decode: multiples of its `factor`.
pub fn check_multiple(width: usize, height: usize, factor: usize) -> Result<(), DiffusionError> {
    if width == 0 || height == 0 || width % factor != 0 || height % factor != 0 {
        return Err(DiffusionError::Input(format!(
            "`height` and `width` have to be divisible by {factor} but are {height} and {width}."
        )));
    }
    Ok(())
}

impl Model {
    /// Loads every component of the diffusers directory `dir` onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Self, DiffusionError> {
        let files = ModelFiles::read(dir)?;
        let dtype = if device.is_cpu() {
            DType::F32
        } else {
            DType::F16
        };
        let bad = |what: &str, e: candle_core::Error| DiffusionError::Model {
            dir: dir.to_path_buf(),
            problem: format!("{what}: {e}"),
        };
        let tokenizer = PromptTokenizer::load(&dir.join("tokenizer"))?;
        let text = TextEncoder::new(
            weights(&files, "text_encoder", dtype, &device)?,
            &files.text_encoder,
        )
        .map_err(|e| bad("text_encoder", e))?;
        let unet = build_unet(&files, weights(&files, "unet", dtype, &device)?)
            .map_err(|e| bad("unet", e))?;
        let (vae, vae_encoder) = build_vae(&files, weights(&files, "vae", dtype, &device)?)
            .map_err(|e| bad("vae", e))?;
        Ok(Model {
            files,
            device,
            dtype,
            tokenizer,
            text,
            unet,
            vae,
            vae_encoder,
            memory_limit: None,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Pixels per latent along each side; sizes must be multiples of it.
    pub fn factor(&self) -> usize {
        self.files.vae_factor()
    }

    /// Embeds `prompt` (and `negative` when `guidance_scale` > 1, as diffusers does).
    pub fn condition(
        &self,
        prompt: &str,
        negative: &str,
        guidance_scale: f64,
    ) -> Result<Conditioning, DiffusionError> {
        let len = self.text.max_len;
        let embed = |p: &str| -> Result<Tensor, DiffusionError> {
            let ids = self.tokenizer.ids(p, len)?;
            Ok(self.text.encode(&ids, &self.device)?)
        };
        let cond = embed(prompt)?;
        if guidance_scale > 1.0 {
            let uncond = embed(negative)?;
            Ok(Conditioning {
                embeddings: Tensor::cat(&[uncond, cond], 0)?,
                guidance: Some(guidance_scale),
            })
        } else {
            Ok(Conditioning {
                embeddings: cond,
                guidance: None,
            })
        }
    }

    /// Generates one image.
    pub fn generate(&self, req: &Request) -> Result<Rgb, DiffusionError> {
        let cond = self.condition(&req.prompt, &req.negative_prompt, req.guidance_scale)?;
        self.generate_with(&cond, req)
    }

    /// Generates one image of `req` with its prompt already embedded as `cond` (the images
    /// of one request share it).
    pub fn generate_with(&self, cond: &Conditioning, req: &Request) -> Result<Rgb, DiffusionError> {
        let latents = self.final_latents(cond, req)?;
        Ok(Rgb::from_tensor(&self.decode(&latents)?)?)
    }

    /// The denoised latents of `req`, before the VAE decodes them (what diffusers returns
    /// with `output_type="latent"`).
    pub fn final_latents(
        &self,
        cond: &Conditioning,
        req: &Request,
    ) -> Result<Tensor, DiffusionError> {
        let f = self.factor();
        let (w, h) = match &req.task {
            Task::Text { width, height } => (*width, *height),
            Task::Image { image, .. } | Task::Upscale { image } => (image.width, image.height),
        };
        let upscale = matches!(req.task, Task::Upscale { .. });
        // The upscaler's latents are the input's size: any size goes.
        check_multiple(w, h, if upscale { 1 } else { f })?;
        let latent = if upscale { (h, w) } else { (h / f, w / f) };
        let pixels = (latent.0 * f, latent.1 * f);
        self.admit(cond, latent, pixels, matches!(req.task, Task::Image { .. }))?;
        let mut noise = Noise::new(req.seed);
        if req.latents.is_some() && !matches!(req.task, Task::Text { .. }) {
            return Err(DiffusionError::Input(
                "latents are taken for text-to-image only".into(),
            ));
        }
        match &req.task {
            Task::Text { .. } => {
                let start = req
                    .latents
                    .as_ref()
                    .map(|l| self.given_latents(l, latent))
                    .transpose()?;
                self.sample_from_noise(cond, latent, req.steps, None, start, &mut noise)
            }
            Task::Image { image, strength } => {
                let x = image.to_tensor(&self.device, self.dtype)?;
                self.image_to_image_latents(cond, &x, *strength, req.steps, &mut noise)
            }
            Task::Upscale { image } => {
                let x = image.to_tensor(&self.device, self.dtype)?;
                self.sample_from_noise(cond, latent, req.steps, Some(&x), None, &mut noise)
            }
        }
    }

    /// Refuses a generation whose working memory would not fit (nothing allocated yet).
    fn admit(
        &self,
        cond: &Conditioning,
        latent: (usize, usize),
        pixels: (usize, usize),
        encode_too: bool,
    ) -> Result<(), DiffusionError> {
        let batch = cond.embeddings.dim(0)?;
        let elem = self.dtype.size_in_bytes() as u64;
        let need = memory::estimate(&self.files, batch, latent, pixels, encode_too, elem);
        let avail = memory::available(self.memory_limit);
        if need > avail {
            return Err(DiffusionError::OutOfMemory {
                need_mib: need >> 20,
                available_mib: avail >> 20,
            });
        }
        Ok(())
    }

    /// The caller's latents as a tensor on the model's device, if their shape is the one a
    /// `latent`-sized generation starts from.
    fn given_latents(
        &self,
        l: &super::latents::Latents,
        (lh, lw): (usize, usize),
    ) -> Result<Tensor, DiffusionError> {
        let want = [1, self.files.vae.latent_channels, lh, lw];
        if l.shape != want {
            return Err(DiffusionError::Input(format!(
                "latents of shape {:?} do not fit this size: expected {want:?}",
                l.shape
            )));
        }
        Ok(
            Tensor::from_vec(l.data.clone(), &want, &candle_core::Device::Cpu)?
                .to_device(&self.device)?,
        )
    }

    /// Text-to-image, or upscaling when `image` (the low-resolution input beside the latents)
    /// is given: the whole schedule from pure noise of `latent` size, or from `start`.
    fn sample_from_noise(
        &self,
        cond: &Conditioning,
        (lh, lw): (usize, usize),
        steps: usize,
        image: Option<&Tensor>,
        start: Option<Tensor>,
        noise: &mut Noise,
    ) -> Result<Tensor, DiffusionError> {
        let mut sched = Scheduler::new(&self.files.scheduler, steps);
        let shape = [1, self.files.vae.latent_channels, lh, lw];
        // diffusers' prepare_latents scales given latents by init_noise_sigma too.
        let start = match start {
            Some(t) => t,
            None => noise.tensor(&shape, &self.device)?,
        };
        let x = (start.to_dtype(self.dtype)? * sched.init_noise_sigma())?;
        self.denoise(cond, &mut sched, 0, x, image, noise)
    }

    /// Image-to-image on `image` (`(1, 3, h, w)` in [-1, 1]); returns the same shape.
    pub fn image_to_image(
        &self,
        cond: &Conditioning,
        image: &Tensor,
        strength: f64,
        steps: usize,
        noise: &mut Noise,
    ) -> Result<Tensor, DiffusionError> {
        // The video stage calls this directly for every frame: the same guard as requests.
        let (_, _, h, w) = image.dims4()?;
        let f = self.factor();
        self.admit(cond, (h / f, w / f), (h, w), true)?;
        let latents = self.image_to_image_latents(cond, image, strength, steps, noise)?;
        self.decode(&latents)
    }

    fn image_to_image_latents(
        &self,
        cond: &Conditioning,
        image: &Tensor,
        strength: f64,
        steps: usize,
        noise: &mut Noise,
    ) -> Result<Tensor, DiffusionError> {
        let mut sched = Scheduler::new(&self.files.scheduler, steps);
        // diffusers: the last int(steps × strength) steps; none left is an error there too.
        let start = sched
            .start_for_strength(strength.clamp(0.0, 1.0))
            .ok_or_else(|| {
                DiffusionError::Input(format!(
                    "strength {strength} × {steps} steps leaves no denoising step: raise \
                 num_inference_steps or strength"
                ))
            })?;
        let latents = (self.vae_encoder.encode(image, noise)? * self.files.vae.scaling_factor)?;
        let eps = noise
            .tensor(latents.dims(), &self.device)?
            .to_dtype(self.dtype)?;
        let x = sched.add_noise(&latents, &eps, start)?;
        self.denoise(cond, &mut sched, start, x, None, noise)
    }

    /// The sampling loop from step `start`; `extra` is concatenated to the UNet's input
    /// channels (the low-resolution image of the upscaler).
    fn denoise(
        &self,
        cond: &Conditioning,
        sched: &mut Scheduler,
        start: usize,
        mut x: Tensor,
        extra: Option<&Tensor>,
        noise: &mut Noise,
    ) -> Result<Tensor, DiffusionError> {
        let batch = cond.embeddings.dim(0)?;
        let extra = match extra {
            Some(e) if self.files.image_channels() != e.dim(1)? => {
                return Err(DiffusionError::Input(format!(
                    "this model's UNet takes {} input channels; it is not an x4-upscaler model",
                    self.files.unet.in_channels
                )))
            }
            Some(e) => Some(e.repeat((batch, 1, 1, 1))?),
            None if self.files.image_channels() != 0 => {
                return Err(DiffusionError::Input(format!(
                    "this model's UNet takes {} input channels (an upscaler): use the upscale \
                     pipeline",
                    self.files.unet.in_channels
                )))
            }
            None => None,
        };
        for i in start..sched.timesteps().len() {
            let t = sched.timesteps()[i];
            let input = if batch == 2 {
                Tensor::cat(&[&x, &x], 0)?
            } else {
                x.clone()
            };
            let mut input = sched.scale_model_input(&input, i)?;
            if let Some(e) = &extra {
                input = Tensor::cat(&[&input, e], 1)?;
            }
            let out = self.unet.forward(&input, t, &cond.embeddings)?;
            let out = match cond.guidance {
                Some(g) => {
                    let parts = out.chunk(2, 0)?;
                    (&parts[0] + ((&parts[1] - &parts[0])? * g)?)?
                }
                None => out,
            };
            x = sched.step(&out, i, &x, noise)?;
        }
        Ok(x)
    }

    /// Latents to an image `(1, 3, h, w)` in [-1, 1].
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor, DiffusionError> {
        Ok(self
            .vae
            .decode(&(latents / self.files.vae.scaling_factor)?)?
            .clamp(-1.0, 1.0)?)
    }

    /// The dtype tensors of this model use.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

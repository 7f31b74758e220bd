//! `gpuworker ai` (the AI runner-compatible server, or one generation to a PNG file),
//! `gpuworker ai-testmodel`, and the `--diffuse` options of `transcode` and `bench`.

use anyhow::Context;
use gpuworker::diffusion::latents::Latents;
use gpuworker::diffusion::model::{Model, Request, Task};
use gpuworker::diffusion::picture::Rgb;
use gpuworker::diffusion::tiny::{self, TinyKind};
use gpuworker::diffusion::video::DiffuseConfig;
use gpuworker::net::ai_params::{Limits, Pipeline};
use gpuworker::net::ai_runner::{self, AiConfig};
use gpuworker::pipeline::stage::FrameFilterFactory;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Serves the Livepeer AI runner's API for one pipeline and one model \
    (point an orchestrator's aiModels.json at it with \"url\"), or with --prompt generates once \
    and writes PNG files.\n\n\
    Examples:\n  gpuworker ai-testmodel /tmp/tiny-sd            # a tiny random model to try with\n  \
    gpuworker ai --pipeline text-to-image --model /tmp/tiny-sd --listen 127.0.0.1:8000\n  \
    curl -s localhost:8000/text-to-image -H 'Content-Type: application/json' \\\n    \
    -d '{\"prompt\":\"a cat\",\"width\":256,\"height\":256,\"num_inference_steps\":4}'\n  \
    gpuworker ai --pipeline image-to-image --model sd-turbo/ --prompt 'oil painting' --image in.png"
)]
pub struct AiArgs {
    /// The pipeline to serve (env PIPELINE).
    #[arg(long, env = "PIPELINE", value_enum)]
    pub pipeline: Pipeline,
    /// A diffusers model directory (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
    /// scheduler/) with safetensors weights. Stable Diffusion 1.x/2.x family and sd-turbo;
    /// options candle's UNet cannot compute (the real x4 upscaler's, SDXL's) are refused.
    #[arg(long)]
    pub model: PathBuf,
    /// The model ID requests may name (env MODEL_ID; default: the directory's name).
    #[arg(long, env = "MODEL_ID")]
    pub model_id: Option<String>,
    /// Address to serve on (the runner's port is 8000).
    #[arg(long, default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,
    /// Require `Authorization: Bearer TOKEN` on the generate routes (env AUTH_TOKEN).
    #[arg(long, env = "AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Run the model on this CUDA device (needs a build with `--features cuda`).
    #[arg(long)]
    pub cuda: Option<usize>,
    /// Largest width or height of any input or output image, in pixels.
    #[arg(long, default_value_t = 2048)]
    pub max_size: usize,
    /// Largest num_inference_steps accepted.
    #[arg(long, default_value_t = 500)]
    pub max_steps: usize,
    /// Largest num_images_per_prompt accepted.
    #[arg(long, default_value_t = 12)]
    pub max_images: usize,
    /// Largest request body in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_body_mib: usize,
    /// Requests that may wait while one generates; more are answered 503.
    #[arg(long, default_value_t = 16)]
    pub max_queue: usize,
    /// Memory one generation may use, in MiB (default: what the machine has free). Requests
    /// estimated above it get the runner's 500 out-of-memory answer.
    #[arg(long)]
    pub memory_limit_mib: Option<u64>,
    /// The version /version reports (default: this build's). Gateways compare it with their
    /// -aiMinRunnerVersion.
    #[arg(long)]
    pub report_version: Option<String>,
    /// Generate once instead of serving: the prompt.
    #[arg(long)]
    pub prompt: Option<String>,
    /// With --prompt: the input image (image-to-image, upscale).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// With --prompt: output PNG.
    #[arg(long, default_value = "out.png")]
    pub out: PathBuf,
    /// With --prompt: output size for text-to-image.
    #[arg(long, default_value_t = 512)]
    pub width: usize,
    #[arg(long, default_value_t = 512)]
    pub height: usize,
    /// With --prompt: denoising steps.
    #[arg(long, default_value_t = 25)]
    pub steps: usize,
    /// With --prompt: seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// With --prompt: classifier-free guidance scale (≤ 1 turns it off).
    #[arg(long, default_value_t = 7.5)]
    pub guidance_scale: f64,
    /// With --prompt: image-to-image strength.
    #[arg(long, default_value_t = 0.8)]
    pub strength: f64,
    /// With --prompt (text-to-image): start from these latents instead of the seed's noise, a
    /// NumPy float32 array [1, 4, height/8, width/8] (`numpy.save`), as diffusers' `latents=`:
    /// for comparing our output with another implementation's from the same start.
    #[arg(long)]
    pub latents: Option<PathBuf>,
}

fn load(dir: &Path, cuda: Option<usize>) -> anyhow::Result<Model> {
    gpuworker::diffusion::heap::keep_freed_memory();
    let device = gpuworker::diffusion::device(cuda)?;
    let t = std::time::Instant::now();
    let model = Model::load(dir, device)?;
    eprintln!(
        "loaded {} ({}) in {:.1} s",
        dir.display(),
        model.files.pipeline_class,
        t.elapsed().as_secs_f64()
    );
    Ok(model)
}

pub fn ai(args: AiArgs) -> anyhow::Result<i32> {
    let mut model = load(&args.model, args.cuda)?;
    model.memory_limit = args.memory_limit_mib.map(|m| m << 20);
    if let Some(prompt) = &args.prompt {
        return once(&args, &model, prompt);
    }
    let model_id = args.model_id.clone().unwrap_or_else(|| {
        let dir = args.model.canonicalize().unwrap_or(args.model.clone());
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    });
    let cfg = AiConfig {
        listen: args.listen,
        pipeline: args.pipeline,
        model_id,
        token: args.auth_token.clone().filter(|t| !t.is_empty()),
        max_body: args.max_body_mib << 20,
        limits: Limits {
            max_side: args.max_size,
            max_steps: args.max_steps,
            max_images: args.max_images,
        },
        max_queue: args.max_queue,
        version: args
            .report_version
            .clone()
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
        cuda_device: args.cuda,
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(ai_runner::run(cfg, Arc::new(model), async {
        let _ = tokio::signal::ctrl_c().await;
    }))?;
    Ok(0)
}

fn once(args: &AiArgs, model: &Model, prompt: &str) -> anyhow::Result<i32> {
    let input = || -> anyhow::Result<Rgb> {
        let path = args
            .image
            .as_ref()
            .context("--image is required for this pipeline")?;
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        Rgb::decode(&bytes).with_context(|| format!("{}", path.display()))
    };
    let f = model.factor();
    let task = match args.pipeline {
        Pipeline::TextToImage => Task::Text {
            width: args.width,
            height: args.height,
        },
        Pipeline::ImageToImage => {
            let img = input()?;
            let (w, h) = (img.width / f * f, img.height / f * f);
            Task::Image {
                image: img.resized(w.max(f), h.max(f)),
                strength: args.strength,
            }
        }
        Pipeline::Upscale => {
            // Rounded down to a multiple of 4, as diffusers' upscale image processor does.
            let img = input()?;
            let (w, h) = ((img.width / 4 * 4).max(4), (img.height / 4 * 4).max(4));
            Task::Upscale {
                image: img.resized(w, h),
            }
        }
    };
    let req = Request {
        prompt: prompt.into(),
        negative_prompt: String::new(),
        guidance_scale: args.guidance_scale,
        steps: args.steps,
        seed: args.seed,
        task,
        latents: match &args.latents {
            Some(path) => {
                let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
                Some(Latents::from_npy(&bytes).with_context(|| format!("{}", path.display()))?)
            }
            None => None,
        },
    };
    let t = std::time::Instant::now();
    let img = model.generate(&req)?;
    let tmp = args.out.with_extension("png.partial");
    std::fs::write(&tmp, img.png())?;
    std::fs::rename(&tmp, &args.out)?;
    eprintln!(
        "wrote {} ({}x{}) in {:.2} s",
        args.out.display(),
        img.width,
        img.height,
        t.elapsed().as_secs_f64()
    );
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct TestModelArgs {
    /// Directory to write (replaced if it exists).
    pub dir: PathBuf,
    /// Model shape: sd (SD 1.5: PNDM), turbo (Euler, trailing timesteps) or upscaler (x4).
    #[arg(long, value_enum, default_value = "turbo")]
    pub kind: TinyKind,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn test_model(args: TestModelArgs) -> anyhow::Result<i32> {
    tiny::write(&args.dir, args.kind, args.seed)?;
    eprintln!(
        "wrote a tiny random-weight {:?} model to {} (its images are noise: it exercises the \
         whole path, not image quality)",
        args.kind,
        args.dir.display()
    );
    Ok(0)
}

/// `--diffuse` for `transcode` and `bench`: image-to-image on every decoded frame.
#[derive(clap::Args, Debug, Clone)]
pub struct DiffuseArgs {
    /// Run every decoded frame through image-to-image with this diffusers model directory
    /// (turbo-style models: one or two steps) before scaling.
    #[arg(long, value_name = "MODEL")]
    pub diffuse: Option<PathBuf>,
    /// With --diffuse: the prompt.
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// With --diffuse: what to steer away from (used when --guidance-scale > 1).
    #[arg(long, default_value = "")]
    pub negative_prompt: String,
    /// With --diffuse: how much of each frame is redrawn (0..1).
    #[arg(long, default_value_t = 0.5)]
    pub strength: f64,
    /// With --diffuse: scheduler steps; int(steps × strength) of them run, as in diffusers'
    /// image-to-image, and that must be at least one.
    #[arg(long, default_value_t = 2)]
    pub diffuse_steps: usize,
    /// With --diffuse: classifier-free guidance (≤ 1: off, one UNet pass per step).
    #[arg(long, default_value_t = 0.0)]
    pub guidance_scale: f64,
    /// With --diffuse: the noise seed (the same for every frame, for temporal stability).
    #[arg(long, default_value_t = 42)]
    pub diffuse_seed: u64,
    /// With --diffuse: run the model on this CUDA device (a `cuda` build); GPU sessions then
    /// diffuse NVDEC pictures in device memory. Default: the CPU.
    #[arg(long, value_name = "N")]
    pub diffuse_gpu: Option<usize>,
}

impl DiffuseArgs {
    /// The stage for the sessions' configuration, with the model loaded, or None.
    pub fn factory(&self) -> anyhow::Result<Option<Arc<dyn FrameFilterFactory>>> {
        let Some(dir) = &self.diffuse else {
            return Ok(None);
        };
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.strength),
            "--strength must be between 0 and 1"
        );
        anyhow::ensure!(
            self.diffuse_steps >= 1,
            "--diffuse-steps must be at least 1"
        );
        anyhow::ensure!(
            (self.diffuse_steps as f64 * self.strength) as usize >= 1,
            "--strength {} × --diffuse-steps {} leaves no denoising step (diffusers runs \
             int(steps × strength) of them): raise either",
            self.strength,
            self.diffuse_steps
        );
        let model = load(dir, self.diffuse_gpu)?;
        Ok(Some(Arc::new(DiffuseConfig {
            model: Arc::new(model),
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            guidance_scale: self.guidance_scale,
            strength: self.strength,
            steps: self.diffuse_steps,
            seed: self.diffuse_seed,
        })))
    }
}

//! A diffusers model directory: `model_index.json`, and per component a `config.json` (or
//! `scheduler_config.json`) beside its safetensors. These are read into candle's configs.

use super::scheduler::SchedulerConfig;
use super::DiffusionError;
use candle_transformers::models::stable_diffusion::{unet_2d, vae};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// An int or a per-block list, as diffusers writes `attention_head_dim` and friends.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    One(usize),
    Each(Vec<usize>),
}

impl PerBlock {
    fn at(&self, i: usize) -> usize {
        match self {
            PerBlock::One(v) => *v,
            PerBlock::Each(v) => v.get(i).or(v.last()).copied().unwrap_or(1),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct UnetJson {
    #[serde(default = "four")]
    pub in_channels: usize,
    #[serde(default = "four")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub down_block_types: Vec<String>,
    #[serde(default = "two")]
    pub layers_per_block: usize,
    #[serde(default = "eight")]
    pub attention_head_dim: PerBlock,
    #[serde(default)]
    pub transformer_layers_per_block: Option<PerBlock>,
    pub cross_attention_dim: PerBlock,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    #[serde(default = "eps5")]
    pub norm_eps: f64,
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
    #[serde(default = "one")]
    pub downsample_padding: usize,
    #[serde(default = "one_f")]
    pub mid_block_scale_factor: f64,
    #[serde(default)]
    pub use_linear_projection: bool,
    #[serde(default)]
    pub center_input_sample: bool,
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    #[serde(default)]
    pub num_class_embeds: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VaeJson {
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    #[serde(default = "one")]
    pub layers_per_block: usize,
    #[serde(default = "four")]
    pub latent_channels: usize,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    #[serde(default = "sd_scaling")]
    pub scaling_factor: f64,
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
}

/// `text_encoder/config.json` of a `CLIPTextModel`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClipJson {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default = "seventy_seven")]
    pub max_position_embeddings: usize,
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
    #[serde(default = "eps5")]
    pub layer_norm_eps: f64,
}

fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn eight() -> PerBlock {
    PerBlock::One(8)
}
fn thirty_two() -> usize {
    32
}
fn seventy_seven() -> usize {
    77
}
fn one_f() -> f64 {
    1.0
}
fn eps5() -> f64 {
    1e-5
}
fn sd_scaling() -> f64 {
    0.18215
}
fn yes() -> bool {
    true
}
fn quick_gelu() -> String {
    "quick_gelu".into()
}

/// Everything read from the directory before any weight is loaded.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    /// `_class_name` of model_index.json (e.g. StableDiffusionPipeline).
    pub pipeline_class: String,
    pub unet: UnetJson,
    pub vae: VaeJson,
    pub text_encoder: ClipJson,
    pub scheduler: SchedulerConfig,
}

impl ModelFiles {
    pub fn read(dir: &Path) -> Result<Self, DiffusionError> {
        let bad = |problem: String| DiffusionError::Model {
            dir: dir.to_path_buf(),
            problem,
        };
        let json = |rel: &str| -> Result<Value, DiffusionError> {
            let p = dir.join(rel);
            let text = std::fs::read_to_string(&p)
                .map_err(|e| bad(format!("{rel}: {e} (expected a diffusers model directory)")))?;
            serde_json::from_str(&text).map_err(|e| bad(format!("{rel}: {e}")))
        };
        fn typed<T: serde::de::DeserializeOwned>(
            v: Value,
            rel: &str,
            bad: &dyn Fn(String) -> DiffusionError,
        ) -> Result<T, DiffusionError> {
            serde_json::from_value(v).map_err(|e| bad(format!("{rel}: {e}")))
        }
        let index = json("model_index.json")?;
        let pipeline_class = index
            .get("_class_name")
            .and_then(Value::as_str)
            .unwrap_or("StableDiffusionPipeline")
            .to_string();
        if index.get("text_encoder_2").is_some_and(|v| !v.is_null()) {
            return Err(bad(format!(
                "{pipeline_class} has a second text encoder (SDXL family); this worker runs the \
                 Stable Diffusion 1.x/2.x family (sd-turbo, SD 1.5, SD 2.1, the x4 upscaler)"
            )));
        }
        let unet: UnetJson = typed(json("unet/config.json")?, "unet/config.json", &bad)?;
        if let Some(t) = &unet.addition_embed_type {
            return Err(bad(format!(
                "unet/config.json: addition_embed_type '{t}' (SDXL-style conditioning) is not \
                 supported"
            )));
        }
        if unet.block_out_channels.len() != unet.down_block_types.len()
            || unet.block_out_channels.is_empty()
        {
            return Err(bad(
                "unet/config.json: block_out_channels and down_block_types differ in length".into(),
            ));
        }
        // candle's DownBlock2D and UpBlock2D build their resnets with the default 32 groups
        // whatever the configuration says (candle-transformers 0.11 unet_2d_blocks.rs), which
        // would silently compute another network; every Stable Diffusion UNet has 32.
        if unet.norm_num_groups != 32 {
            return Err(bad(format!(
                "unet/config.json: norm_num_groups {} is not supported (candle's UNet blocks \
                 normalise in 32 groups, as every Stable Diffusion checkpoint does)",
                unet.norm_num_groups
            )));
        }
        let vae: VaeJson = typed(json("vae/config.json")?, "vae/config.json", &bad)?;
        if vae.block_out_channels.is_empty() {
            return Err(bad("vae/config.json: no block_out_channels".into()));
        }
        let text_encoder: ClipJson = typed(
            json("text_encoder/config.json")?,
            "text_encoder/config.json",
            &bad,
        )?;
        let scheduler: SchedulerConfig = typed(
            json("scheduler/scheduler_config.json")?,
            "scheduler/scheduler_config.json",
            &bad,
        )?;
        scheduler
            .check()
            .map_err(|e| bad(format!("scheduler/scheduler_config.json: {e}")))?;
        Ok(ModelFiles {
            dir: dir.to_path_buf(),
            pipeline_class,
            unet,
            vae,
            text_encoder,
            scheduler,
        })
    }

    /// The safetensors files holding a component's weights, in the layouts diffusers and
    /// transformers save: one file, fp32 or the `fp16` variant, or shards listed by an
    /// `*.safetensors.index[.fp16].json` (`weight_map`). Pickle-only (`.bin`) weights are refused with
    /// what to do: loading them would run arbitrary code, and candle does not.
    pub fn weights(&self, component: &str) -> Result<Vec<PathBuf>, DiffusionError> {
        let (stem, pickle) = if component == "text_encoder" {
            ("model", "pytorch_model")
        } else {
            ("diffusion_pytorch_model", "diffusion_pytorch_model")
        };
        let dir = self.dir.join(component);
        let bad = |problem: String| DiffusionError::Model {
            dir: self.dir.clone(),
            problem,
        };
        for variant in ["", ".fp16"] {
            let single = dir.join(format!("{stem}{variant}.safetensors"));
            if single.is_file() {
                return Ok(vec![single]);
            }
            // transformers' and diffusers' `_add_variant` put the variant before `.json`
            // (`model.safetensors.index.fp16.json`); accept the other order too.
            let index = [
                format!("{stem}.safetensors.index{variant}.json"),
                format!("{stem}{variant}.safetensors.index.json"),
            ]
            .into_iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file());
            if let Some(index) = index {
                let rel = format!("{component}/{}", file_name(&index));
                let text =
                    std::fs::read_to_string(&index).map_err(|e| bad(format!("{rel}: {e}")))?;
                let v: Value =
                    serde_json::from_str(&text).map_err(|e| bad(format!("{rel}: {e}")))?;
                let map = v["weight_map"]
                    .as_object()
                    .ok_or_else(|| bad(format!("{rel}: no weight_map")))?;
                let mut shards: Vec<PathBuf> = Vec::new();
                for file in map.values() {
                    let f = file
                        .as_str()
                        .filter(|f| !f.contains('/') && f.ends_with(".safetensors"))
                        .ok_or_else(|| bad(format!("{rel}: bad shard name {file}")))?;
                    let p = dir.join(f);
                    if !shards.contains(&p) {
                        if !p.is_file() {
                            return Err(bad(format!(
                                "{component}/{f} (listed in {rel}) is missing"
                            )));
                        }
                        shards.push(p);
                    }
                }
                return Ok(shards);
            }
        }
        for variant in ["", ".fp16"] {
            let bin = dir.join(format!("{pickle}{variant}.bin"));
            if bin.is_file() {
                return Err(bad(format!(
                    "{component}/{} holds pickle weights, which this worker does not load \
                     (they can run code): convert the model to safetensors, e.g. in Python \
                     `DiffusionPipeline.from_pretrained(dir).save_pretrained(dir, \
                     safe_serialization=True)`",
                    file_name(&bin)
                )));
            }
        }
        Err(bad(format!(
            "{component}/{stem}.safetensors is missing (nor an fp16 variant or a sharded index)"
        )))
    }

    pub fn unet_config(&self) -> unet_2d::UNet2DConditionModelConfig {
        let u = &self.unet;
        let blocks = u
            .block_out_channels
            .iter()
            .zip(&u.down_block_types)
            .enumerate()
            .map(|(i, (&out_channels, kind))| unet_2d::BlockConfig {
                out_channels,
                use_cross_attn: kind.starts_with("CrossAttn").then(|| {
                    u.transformer_layers_per_block
                        .as_ref()
                        .map_or(1, |t| t.at(i))
                }),
                attention_head_dim: u.attention_head_dim.at(i),
            })
            .collect();
        unet_2d::UNet2DConditionModelConfig {
            center_input_sample: u.center_input_sample,
            flip_sin_to_cos: u.flip_sin_to_cos,
            freq_shift: u.freq_shift,
            blocks,
            layers_per_block: u.layers_per_block,
            downsample_padding: u.downsample_padding,
            mid_block_scale_factor: u.mid_block_scale_factor,
            norm_num_groups: u.norm_num_groups,
            norm_eps: u.norm_eps,
            cross_attention_dim: u.cross_attention_dim.at(0),
            sliced_attention_size: None,
            use_linear_projection: u.use_linear_projection,
        }
    }

    pub fn vae_config(&self) -> vae::AutoEncoderKLConfig {
        vae::AutoEncoderKLConfig {
            block_out_channels: self.vae.block_out_channels.clone(),
            layers_per_block: self.vae.layers_per_block,
            latent_channels: self.vae.latent_channels,
            norm_num_groups: self.vae.norm_num_groups,
            use_quant_conv: self.vae.use_quant_conv,
            use_post_quant_conv: self.vae.use_post_quant_conv,
        }
    }

    /// Pixels per latent along each side.
    pub fn vae_factor(&self) -> usize {
        1 << (self.vae.block_out_channels.len() - 1)
    }

    /// Channels of the image the UNet takes beside the latents (3 for the x4 upscaler).
    pub fn image_channels(&self) -> usize {
        self.unet
            .in_channels
            .saturating_sub(self.vae.latent_channels)
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

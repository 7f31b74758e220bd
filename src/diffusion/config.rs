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
}

/// The first UNet option set to something candle's `UNet2DConditionModel` does not compute
/// (it would otherwise be ignored and another network run), with why; None when it runs as
/// diffusers builds it. Absent keys take diffusers' defaults, which are all supported.
fn unsupported_unet_option(v: &Value) -> Option<String> {
    let get = |k: &str| v.get(k).filter(|x| !x.is_null());
    let truthy = |x: &Value| match x {
        Value::Bool(b) => *b,
        Value::Array(a) => a.iter().any(|e| e.as_bool() == Some(true)),
        _ => false,
    };
    for (key, what) in [
        (
            "only_cross_attention",
            "cross-attention-only blocks (the x4 upscaler's)",
        ),
        ("dual_cross_attention", "dual cross-attention"),
        ("class_embeddings_concat", "concatenated class embeddings"),
        ("resnet_skip_time_act", "resnet_skip_time_act"),
        (
            "mid_block_only_cross_attention",
            "a cross-attention-only mid block",
        ),
    ] {
        if get(key).is_some_and(truthy) {
            return Some(format!("{key}: {what} is not supported by candle's UNet"));
        }
    }
    for (key, what) in [
        (
            "num_class_embeds",
            "a class embedding (the x4 upscaler's noise-level labels)",
        ),
        ("class_embed_type", "a class embedding"),
        ("time_cond_proj_dim", "guidance-conditioned timesteps (LCM)"),
        ("encoder_hid_dim_type", "an encoder projection"),
        ("time_embedding_act_fn", "a time-embedding activation"),
        ("timestep_post_act", "a post-timestep activation"),
        ("cross_attention_norm", "a cross-attention norm"),
        (
            "reverse_transformer_layers_per_block",
            "per-up-block transformer depths",
        ),
    ] {
        if let Some(x) = get(key) {
            return Some(format!(
                "{key} {x}: {what} is not supported by candle's UNet"
            ));
        }
    }
    for (key, want) in [
        ("act_fn", "silu"),
        ("time_embedding_type", "positional"),
        ("resnet_time_scale_shift", "default"),
        ("attention_type", "default"),
        ("mid_block_type", "UNetMidBlock2DCrossAttn"),
    ] {
        if let Some(x) = get(key).and_then(Value::as_str).filter(|x| *x != want) {
            return Some(format!("{key} {x:?} is not supported (only {want:?})"));
        }
    }
    for key in ["conv_in_kernel", "conv_out_kernel"] {
        if let Some(k) = get(key).and_then(Value::as_u64).filter(|&k| k != 3) {
            return Some(format!("{key} {k} is not supported (only 3)"));
        }
    }
    if let Some(f) = get("resnet_out_scale_factor")
        .and_then(Value::as_f64)
        .filter(|&f| f != 1.0)
    {
        return Some(format!(
            "resnet_out_scale_factor {f} is not supported (only 1)"
        ));
    }
    // candle builds the up blocks as the down blocks reversed.
    let names = |k: &str| -> Vec<String> {
        get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let down = names("down_block_types");
    if let Some(d) = down
        .iter()
        .find(|d| !matches!(d.as_str(), "CrossAttnDownBlock2D" | "DownBlock2D"))
    {
        return Some(format!("down block type {d} is not supported"));
    }
    let up = names("up_block_types");
    let mirrored: Vec<String> = down.iter().rev().map(|d| d.replace("Down", "Up")).collect();
    if !up.is_empty() && up != mirrored {
        return Some(format!(
            "up_block_types {up:?} are not the down blocks mirrored ({mirrored:?}), which is all \
             candle's UNet builds"
        ));
    }
    None
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
                 Stable Diffusion 1.x/2.x family (sd-turbo, SD 1.5, SD 2.1)"
            )));
        }
        let unet_raw = json("unet/config.json")?;
        if let Some(problem) = unsupported_unet_option(&unet_raw) {
            return Err(bad(format!("unet/config.json: {problem}")));
        }
        let unet: UnetJson = typed(unet_raw, "unet/config.json", &bad)?;
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

#[cfg(test)]
mod tests {
    use super::unsupported_unet_option;
    use serde_json::json;

    #[test]
    fn unet_options_candle_cannot_compute_are_named() {
        // stabilityai/stable-diffusion-x4-upscaler's unet/config.json (the relevant keys).
        let x4 = json!({
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "only_cross_attention": [true, true, true, false],
            "num_class_embeds": 1000,
        });
        assert!(unsupported_unet_option(&x4)
            .unwrap()
            .starts_with("only_cross_attention"));
        let lcm = json!({"time_cond_proj_dim": 256});
        assert!(unsupported_unet_option(&lcm).unwrap().contains("LCM"));
        let odd = json!({
            "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        });
        assert!(unsupported_unet_option(&odd).unwrap().contains("mirrored"));
        // SD 1.5's layout, every key at diffusers' defaults as save_pretrained writes them.
        let sd15: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/tiny-sd15/unet/config.json"))
                .unwrap();
        assert_eq!(unsupported_unet_option(&sd15), None);
    }
}

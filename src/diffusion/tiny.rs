//! Tiny random-weight models in the diffusers layout, with a tiny CLIP tokenizer: what the
//! tests run, and what `gpuworker ai make-model` writes so the whole path can be tried on a
//! machine without real weights (no hub downloads here). The weights are seeded, so the same
//! seed writes the same model everywhere; the images are noise, the plumbing is real.

use super::config::ModelFiles;
use super::model::{build_unet, build_vae};
use super::text_encoder::TextEncoder;
use super::tokenizer::{BOS, EOS};
use super::DiffusionError;
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use serde_json::json;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TinyKind {
    /// Stable Diffusion 1.x shape and scheduler (PNDM/PLMS, as SD 1.5 ships).
    Sd,
    /// sd-turbo shape: Euler with trailing timesteps (one-step image-to-image).
    Turbo,
    /// The x4 upscaler shape: 7-channel UNet, ×4 VAE.
    Upscaler,
}

const TEXT_LEN: usize = 16;
const DIM: usize = 32;

/// Writes a tiny model of `kind` into `dir` (created; written beside and renamed into place).
pub fn write(dir: &Path, kind: TinyKind, seed: u64) -> Result<(), DiffusionError> {
    let io = |e: std::io::Error| DiffusionError::Model {
        dir: dir.to_path_buf(),
        problem: e.to_string(),
    };
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    for sub in ["unet", "vae", "text_encoder", "tokenizer", "scheduler"] {
        std::fs::create_dir_all(tmp.join(sub)).map_err(io)?;
    }
    let put = |rel: &str, v: serde_json::Value| {
        std::fs::write(
            tmp.join(rel),
            serde_json::to_string_pretty(&v).expect("json"),
        )
        .map_err(io)
    };
    let upscaler = kind == TinyKind::Upscaler;
    put(
        "model_index.json",
        json!({
            "_class_name": if upscaler { "StableDiffusionUpscalePipeline" } else { "StableDiffusionPipeline" },
            "_diffusers_version": "0.31.0",
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "scheduler": ["diffusers", match kind {
                TinyKind::Sd => "PNDMScheduler",
                TinyKind::Turbo => "EulerDiscreteScheduler",
                TinyKind::Upscaler => "DDIMScheduler",
            }],
        }),
    )?;
    put(
        "unet/config.json",
        json!({
            "_class_name": "UNet2DConditionModel",
            "in_channels": if upscaler { 7 } else { 4 },
            "out_channels": 4,
            "block_out_channels": [32, 64],
            "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
            "layers_per_block": 1,
            "attention_head_dim": 8,
            "cross_attention_dim": DIM,
            // 32, as every Stable Diffusion UNet (candle's blocks assume it).
            "norm_num_groups": 32,
        }),
    )?;
    put(
        "vae/config.json",
        json!({
            "_class_name": "AutoencoderKL",
            "in_channels": 3,
            "out_channels": 3,
            "block_out_channels": if upscaler { json!([16, 32, 32]) } else { json!([16, 32, 32, 32]) },
            "layers_per_block": 1,
            "latent_channels": 4,
            "norm_num_groups": 8,
            "scaling_factor": if upscaler { 0.08333 } else { 0.18215 },
        }),
    )?;
    let (vocab, merges) = vocabulary();
    put(
        "text_encoder/config.json",
        json!({
            "architectures": ["CLIPTextModel"],
            "vocab_size": vocab.len(),
            "hidden_size": DIM,
            "intermediate_size": 2 * DIM,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": TEXT_LEN,
            "hidden_act": "quick_gelu",
        }),
    )?;
    put("tokenizer/vocab.json", json!(vocab))?;
    std::fs::write(tmp.join("tokenizer/merges.txt"), merges).map_err(io)?;
    put(
        "tokenizer/tokenizer_config.json",
        json!({"model_max_length": TEXT_LEN, "pad_token": EOS}),
    )?;
    put(
        "scheduler/scheduler_config.json",
        match kind {
            TinyKind::Turbo => json!({
                "_class_name": "EulerDiscreteScheduler",
                "beta_schedule": "scaled_linear",
                "beta_start": 0.00085, "beta_end": 0.012,
                "num_train_timesteps": 1000,
                "prediction_type": "epsilon",
                "timestep_spacing": "trailing",
            }),
            // stable-diffusion-v1-5's scheduler_config.json.
            TinyKind::Sd => json!({
                "_class_name": "PNDMScheduler",
                "beta_schedule": "scaled_linear",
                "beta_start": 0.00085, "beta_end": 0.012,
                "num_train_timesteps": 1000,
                "set_alpha_to_one": false,
                "skip_prk_steps": true,
                "steps_offset": 1,
                "clip_sample": false,
            }),
            // stable-diffusion-x4-upscaler's (ε here: the tiny UNet is random).
            TinyKind::Upscaler => json!({
                "_class_name": "DDIMScheduler",
                "beta_schedule": "scaled_linear",
                "beta_start": 0.0001, "beta_end": 0.02,
                "num_train_timesteps": 1000,
                "prediction_type": "epsilon",
                "steps_offset": 1,
                "set_alpha_to_one": false,
                "clip_sample": false,
            }),
        },
    )?;
    let files = ModelFiles::read(&tmp)?;
    let mut seed = seed;
    let mut save = |rel: &str, build: &dyn Fn(VarBuilder) -> candle_core::Result<()>| {
        let map = VarMap::new();
        build(VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu))?;
        reseed(&map, seed)?;
        seed = seed.wrapping_add(1);
        map.save(tmp.join(rel))
    };
    let model_err = |e: candle_core::Error| DiffusionError::Model {
        dir: dir.to_path_buf(),
        problem: e.to_string(),
    };
    save("text_encoder/model.safetensors", &|vb| {
        TextEncoder::new(vb, &files.text_encoder).map(drop)
    })
    .map_err(model_err)?;
    save("unet/diffusion_pytorch_model.safetensors", &|vb| {
        build_unet(&files, vb).map(drop)
    })
    .map_err(model_err)?;
    save("vae/diffusion_pytorch_model.safetensors", &|vb| {
        build_vae(&files, vb).map(drop)
    })
    .map_err(model_err)?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).map_err(io)
}

/// Replaces every weight by seeded noise with the mean and spread candle's initialiser gave
/// it (norm scales stay 1, biases 0), so a seed fixes the model.
fn reseed(map: &VarMap, seed: u64) -> candle_core::Result<()> {
    let data = map.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut noise = super::noise::Noise::new(seed);
    for name in names {
        let var = &data[name];
        let t = var.as_tensor().flatten_all()?;
        let mean = t.mean_all()?.to_scalar::<f32>()? as f64;
        let std = t
            .broadcast_sub(&t.mean_all()?)?
            .sqr()?
            .mean_all()?
            .sqrt()?
            .to_scalar::<f32>()? as f64;
        let fresh = ((noise.tensor(var.dims(), &Device::Cpu)? * std)? + mean)?;
        var.set(&fresh)?;
    }
    Ok(())
}

/// A character-level CLIP vocabulary (each symbol plain and word-final) with a few merges.
/// A vocabulary built as CLIP's is (`bytes_to_unicode` characters, the same with `</w>`, one
/// token per merge, then the start and end tokens) with a few dozen English merges: small, but
/// every byte is a token, so any prompt tokenizes as with the real 49408-token vocabulary.
fn vocabulary() -> (serde_json::Map<String, serde_json::Value>, String) {
    let bytes = super::clip_bpe::byte_chars();
    // GPT-2's order: the printable bytes first, then the others.
    let printable =
        |b: usize| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let order: Vec<char> = (0..256)
        .filter(|&b| printable(b))
        .chain((0..256).filter(|&b| !printable(b)))
        .map(|b| bytes[b])
        .collect();
    let mut tokens: Vec<String> = order.iter().map(|c| c.to_string()).collect();
    tokens.extend(order.iter().map(|c| format!("{c}</w>")));
    let merges = [
        ("t", "h"),
        ("i", "n"),
        ("a", "n"),
        ("e", "r"),
        ("o", "n</w>"),
        ("th", "e</w>"),
        ("an", "d</w>"),
        ("e", "n"),
        ("o", "r"),
        ("a", "t</w>"),
        ("i", "n</w>"),
        ("t", "o</w>"),
        ("in", "g</w>"),
        ("r", "e"),
        ("o", "f</w>"),
        ("c", "a"),
        ("ca", "t</w>"),
        ("d", "o"),
        ("do", "g</w>"),
        ("s", "t"),
        ("l", "i"),
        ("g", "h"),
        ("li", "gh"),
        ("ligh", "t</w>"),
        ("p", "h"),
        ("o", "t"),
        ("ph", "ot"),
        ("phot", "o</w>"),
        ("'", "s</w>"),
    ];
    for (a, b) in merges {
        tokens.push(format!("{a}{b}"));
    }
    tokens.push(BOS.into());
    tokens.push(EOS.into());
    let vocab = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, json!(i)))
        .collect();
    let mut text = String::from("#version: 0.2\n");
    for (a, b) in merges {
        text.push_str(&format!("{a} {b}\n"));
    }
    (vocab, text)
}

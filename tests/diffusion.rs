//! The diffusion models on the CPU: tiny random-weight models written in the diffusers
//! layout, loaded back through the same code as real ones.

use gpuworker::diffusion::model::{Model, Request, Task};
use gpuworker::diffusion::picture::Rgb;
use gpuworker::diffusion::tiny::{self, TinyKind};
use std::path::PathBuf;

mod common;

fn model(kind: TinyKind, name: &str) -> (tempdir::Dir, Model) {
    let dir = tempdir::Dir::new(name);
    let path = dir.0.join("model");
    tiny::write(&path, kind, 7).unwrap();
    let m = Model::load(&path, gpuworker::diffusion::device(None).unwrap()).unwrap();
    (dir, m)
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Self {
            let p = std::env::temp_dir()
                .join(format!("gpuworker-diffusion-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn t2i(seed: u64, prompt: &str) -> Request {
    Request {
        prompt: prompt.into(),
        negative_prompt: String::new(),
        guidance_scale: 7.5,
        steps: 3,
        seed,
        task: Task::Text {
            width: 64,
            height: 48,
        },
        latents: None,
    }
}

#[test]
fn text_to_image_is_deterministic_by_seed_and_prompt() {
    let (_d, m) = model(TinyKind::Sd, "t2i");
    let a = m.generate(&t2i(5, "a cat and the dog")).unwrap();
    assert_eq!((a.width, a.height), (64, 48));
    assert_eq!(a, m.generate(&t2i(5, "a cat and the dog")).unwrap());
    assert_ne!(a, m.generate(&t2i(6, "a cat and the dog")).unwrap());
    assert_ne!(a, m.generate(&t2i(5, "a red fox")).unwrap());
    let _: PathBuf = m.files.dir.clone();
}

#[test]
fn image_to_image_upscale_and_model_errors() {
    let (_d, m) = model(TinyKind::Turbo, "i2i");
    let img = Rgb {
        width: 40,
        height: 24,
        data: (0..40 * 24 * 3).map(|i| (i % 251) as u8).collect(),
    };
    let req = |strength: f64| Request {
        prompt: "oil painting".into(),
        negative_prompt: String::new(),
        guidance_scale: 0.0,
        steps: 2,
        seed: 1,
        task: Task::Image {
            image: img.clone(),
            strength,
        },
        latents: None,
    };
    let a = m.generate(&req(0.5)).unwrap();
    assert_eq!((a.width, a.height), (40, 24));
    assert_eq!(a, m.generate(&req(0.5)).unwrap());
    assert_ne!(a, m.generate(&req(1.0)).unwrap());

    let (_u, up) = model(TinyKind::Upscaler, "up");
    let out = up
        .generate(&Request {
            task: Task::Upscale { image: img.clone() },
            ..req(0.0)
        })
        .unwrap();
    assert_eq!((out.width, out.height), (160, 96));
    // An upscaler refuses the other tasks and vice versa, naming the problem.
    let e = up.generate(&req(0.5)).unwrap_err().to_string();
    assert!(e.contains("upscale"), "{e}");

    let dir = tempdir::Dir::new("bad");
    let e = Model::load(&dir.0, gpuworker::diffusion::device(None).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("model_index.json"), "{e}");
    let e = gpuworker::diffusion::device(Some(0))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("not available"), "{e}");
}

/// Live video-to-video: `transcode --diffuse` runs every decoded frame through a one-step
/// turbo model before the ladder; ffprobe checks the renditions, and `bench` reports the
/// stage's frames per second.
#[test]
fn transcode_and_bench_with_a_diffuse_stage() {
    let dir = common::scratch("diffuse-video");
    let m = dir.join("turbo");
    let out = common::gpuworker(&["ai-testmodel", m.to_str().unwrap(), "--kind", "turbo"]);
    assert!(out.status.success());
    let segs = dir.join("segs");
    std::fs::create_dir_all(&segs).unwrap();
    let clip = segs.join("seg0.ts");
    common::make_clip(&clip, "132x76", 10, 1.0, 10, &[]);
    let ladder = r#"[{"name":"small","width":96,"height":54,"bitrate":300000,"fps":0}]"#;
    let run = |out: &str, diffuse: bool| {
        let mut args = vec![
            "transcode",
            clip.to_str().unwrap(),
            "--profiles",
            ladder,
            "--json",
            "--quiet",
            "--out",
        ];
        let o = dir.join(out);
        args.push(o.to_str().unwrap());
        if diffuse {
            args.extend([
                "--diffuse",
                m.to_str().unwrap(),
                "--prompt",
                "a watercolour",
            ]);
        }
        let r = common::gpuworker(&args);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let report: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        (o.join("small/seg0.ts"), report)
    };
    let (plain, plain_report) = run("plain", false);
    let (diffused, report) = run("diffused", true);
    let seg = &report["segments"][0];
    assert!(seg["diffuse_seconds"].as_f64().unwrap() > 0.0, "{report}");
    assert_eq!(
        common::probe_video(&diffused, "stream", "codec_name"),
        "h264"
    );
    assert_eq!(common::probe_video(&diffused, "stream", "width"), "96");
    let frames = |r: &serde_json::Value| r["segments"][0]["renditions"][0]["frames"].clone();
    assert_eq!(frames(&report), frames(&plain_report));
    assert_eq!(seg["decoded_frames"], 10);
    // The pictures changed: PSNR against the plain transcode is far below a re-encode's.
    let psnr = common::gpuworker(&[
        "psnr",
        clip.to_str().unwrap(),
        diffused.to_str().unwrap(),
        "--json",
    ]);
    let p: serde_json::Value = serde_json::from_slice(&psnr.stdout).unwrap();
    let plain_psnr = common::gpuworker(&[
        "psnr",
        clip.to_str().unwrap(),
        plain.to_str().unwrap(),
        "--json",
    ]);
    let q: serde_json::Value = serde_json::from_slice(&plain_psnr.stdout).unwrap();
    assert!(
        p["y"].as_f64().unwrap() + 10.0 < q["y"].as_f64().unwrap(),
        "diffused {p} vs plain {q}"
    );

    let report = dir.join("bench.json");
    let b = common::gpuworker(&[
        "bench",
        "--in",
        segs.to_str().unwrap(),
        "--offline",
        "--sessions",
        "1",
        "--profiles",
        ladder,
        "--diffuse",
        m.to_str().unwrap(),
        "--prompt",
        "ink",
        "--report",
        report.to_str().unwrap(),
        "--out",
        dir.join("bench").to_str().unwrap(),
    ]);
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let text = String::from_utf8_lossy(&b.stdout);
    assert!(text.contains("frames/s per stream"), "{text}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let fps = r["trials"][0]["stages"]["diffuse_fps"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(fps > 0.0, "{r}");
}

/// A text encoder saved by transformers 5 has no `text_model.` prefix on its keys (issue 14:
/// such a checkpoint failed with "cannot find tensor text_model.encoder.layers.0…"); it loads
/// and embeds exactly as the prefixed layout of the same weights.
#[test]
fn both_clip_key_layouts_load_the_same_text_encoder() {
    let (d, m) = model(TinyKind::Sd, "clip_keys");
    let file = d.0.join("model/text_encoder/model.safetensors");
    let device = candle_core::Device::Cpu;
    let tensors = candle_core::safetensors::load(&file, &device).unwrap();
    assert!(tensors.keys().all(|k| k.starts_with("text_model.")));
    let stripped: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .map(|(k, t)| (k.trim_start_matches("text_model.").to_string(), t))
        .collect();
    candle_core::safetensors::save(&stripped, &file).unwrap();
    let m5 = Model::load(
        &d.0.join("model"),
        gpuworker::diffusion::device(None).unwrap(),
    )
    .expect("transformers 5 layout");
    let r = t2i(5, "a cat and the dog");
    assert_eq!(m.generate(&r).unwrap(), m5.generate(&r).unwrap());
}

/// Weights as diffusers and transformers save big models: the UNet in two shards with a
/// `diffusion_pytorch_model.safetensors.index.json`, the VAE as the `fp16` variant file; the
/// model generates what the single-file original does. A pickle-only component is refused
/// with what to do, not a bare "missing".
#[test]
fn sharded_and_variant_weights_load_and_pickle_is_refused() {
    let (d, m) = model(TinyKind::Sd, "shards");
    let dir = d.0.join("model");
    let device = candle_core::Device::Cpu;
    let unet = dir.join("unet/diffusion_pytorch_model.safetensors");
    let tensors = candle_core::safetensors::load(&unet, &device).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut weight_map = serde_json::Map::new();
    let mut shards = [
        std::collections::HashMap::new(),
        std::collections::HashMap::new(),
    ];
    for (i, n) in names.iter().enumerate() {
        let shard = format!(
            "diffusion_pytorch_model-0000{}-of-00002.safetensors",
            i % 2 + 1
        );
        weight_map.insert(n.to_string(), shard.into());
        shards[i % 2].insert(n.to_string(), tensors[*n].clone());
    }
    for (i, s) in shards.iter().enumerate() {
        let f = format!("diffusion_pytorch_model-0000{}-of-00002.safetensors", i + 1);
        candle_core::safetensors::save(s, dir.join("unet").join(f)).unwrap();
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(
        dir.join("unet/diffusion_pytorch_model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    std::fs::remove_file(&unet).unwrap();
    let vae = dir.join("vae/diffusion_pytorch_model.safetensors");
    std::fs::rename(
        &vae,
        dir.join("vae/diffusion_pytorch_model.fp16.safetensors"),
    )
    .unwrap();
    let cpu = || gpuworker::diffusion::device(None).unwrap();
    let sharded = Model::load(&dir, cpu()).expect("sharded UNet, fp16-variant VAE");
    let r = t2i(5, "a cat and the dog");
    assert_eq!(m.generate(&r).unwrap(), sharded.generate(&r).unwrap());
    // Pickle only.
    let te = dir.join("text_encoder");
    std::fs::rename(te.join("model.safetensors"), te.join("pytorch_model.bin")).unwrap();
    let e = Model::load(&dir, cpu()).err().expect("refused").to_string();
    assert!(
        e.contains("text_encoder/pytorch_model.bin holds pickle weights")
            && e.contains("safetensors"),
        "{e}"
    );
}

/// `--latents`: text-to-image from given initial latents (a NumPy float32 array, as diffusers'
/// `latents=`). The seed's own noise written as such a file gives the very same image, so the
/// latents replace exactly the first draw; a wrong shape is refused with both shapes.
#[test]
fn given_latents_replace_the_seeds_first_draw() {
    use gpuworker::diffusion::latents::Latents;
    use gpuworker::diffusion::noise::Noise;
    let (d, m) = model(TinyKind::Sd, "latents");
    let channels = m.files.vae.latent_channels;
    let shape = vec![1, channels, 48 / m.factor(), 64 / m.factor()];
    let n = shape.iter().product();
    let npy = d.0.join("seed5.npy");
    let given = Latents {
        shape: shape.clone(),
        data: Noise::new(5).samples(n),
    };
    std::fs::write(&npy, given.to_npy()).unwrap();
    let read = Latents::from_npy(&std::fs::read(&npy).unwrap()).unwrap();
    let seeded = m.generate(&t2i(5, "a red fox")).unwrap();
    let from_file = m
        .generate(&Request {
            latents: Some(read),
            seed: 6,
            ..t2i(6, "a red fox")
        })
        .unwrap();
    assert_eq!(seeded, from_file);
    let wrong = Latents {
        shape: vec![1, channels, 2, 2],
        data: vec![0.0; 4 * channels],
    };
    let e = m
        .generate(&Request {
            latents: Some(wrong),
            ..t2i(5, "a red fox")
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not fit this size"), "{e}");
}

/// Prompts tokenize as transformers' CLIPTokenizer does, id for id (tests/data/clip-tokens.json,
/// written by scripts/tokenizer-reference over the same vocabulary): digits one by one,
/// contractions, punctuation runs, accents and capitals, CJK, emoji, control and zero-width
/// characters, the special tokens written out, and prompts cut to the model's length with the
/// end token kept last.
#[test]
fn prompts_tokenize_as_transformers_clip_tokenizer() {
    use gpuworker::diffusion::tokenizer::PromptTokenizer;
    let d = tempdir::Dir::new("tokens");
    tiny::write(&d.0.join("model"), TinyKind::Sd, 7).unwrap();
    let tok = PromptTokenizer::load(&d.0.join("model/tokenizer")).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("data/clip-tokens.json")).unwrap();
    let len = reference["max_length"].as_u64().unwrap() as usize;
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as u32)
            .collect()
    };
    for case in reference["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        assert_eq!(tok.encode(prompt).unwrap(), ids(&case["ids"]), "{prompt:?}");
        assert_eq!(
            tok.ids(prompt, len).unwrap(),
            ids(&case["padded"]),
            "{prompt:?} padded"
        );
    }
}

/// A Stable Diffusion 1.5-shaped checkpoint saved by diffusers and transformers themselves
/// (tests/data/tiny-sd15: fp16 variant, the text encoder sharded under transformers' index
/// name, slow-tokenizer files, SD 1.5's PNDM scheduler) and what diffusers 0.31 computes with
/// it from fixed latents (tests/data/tiny-sd15-reference.json; `scripts/ai-reference` writes
/// both). The prompt's embeddings must agree to 1e-4 and the image to ≥ 45 dB PSNR; a
/// tokenizer, scheduler or loading slip costs far more than either.
#[test]
fn a_checkpoint_saved_by_diffusers_gives_diffusers_image() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("tiny-sd15-reference.json")).unwrap(),
    )
    .unwrap();
    let floats = |k: &str| -> Vec<f32> {
        r[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let m = Model::load(
        &data.join("tiny-sd15"),
        gpuworker::diffusion::device(None).unwrap(),
    )
    .unwrap();
    let (prompt, negative) = (
        r["prompt"].as_str().unwrap(),
        r["negative_prompt"].as_str().unwrap(),
    );
    let g = r["guidance_scale"].as_f64().unwrap();
    let cond = m.condition(prompt, negative, g).unwrap();
    let got: Vec<f32> = cond.embeddings().flatten_all().unwrap().to_vec1().unwrap();
    let want: Vec<f32> = [floats("negative_embeds"), floats("prompt_embeds")].concat();
    let max_rel = |got: &[f32], want: &[f32]| {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(0f32, |m, w| m.max(w.abs()));
        got.iter()
            .zip(want)
            .map(|(g, w)| (g - w).abs() / scale)
            .fold(0f32, f32::max)
    };
    let e = max_rel(&got, &want);
    assert!(
        e < 1e-4,
        "prompt embeddings differ from transformers' by {e}"
    );

    let latents = gpuworker::diffusion::latents::Latents::from_npy(
        &std::fs::read(data.join(r["latents"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let req = Request {
        prompt: prompt.into(),
        negative_prompt: negative.into(),
        guidance_scale: g,
        steps: r["steps"].as_u64().unwrap() as usize,
        seed: 0,
        task: Task::Text {
            width: r["width"].as_u64().unwrap() as usize,
            height: r["height"].as_u64().unwrap() as usize,
        },
        latents: Some(latents),
    };
    let fin: Vec<f32> = m
        .final_latents(&cond, &req)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let e = max_rel(&fin, &floats("final_latents"));
    eprintln!("final latents: max relative difference {e:.2e}");
    let img = m.generate_with(&cond, &req).unwrap();
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        r["image_png"].as_str().unwrap(),
    )
    .unwrap();
    let theirs = Rgb::decode(&png).unwrap();
    assert_eq!((img.width, img.height), (theirs.width, theirs.height));
    let p = gpuworker::scale::reference::psnr(&img.data, &theirs.data);
    eprintln!("image: {p:.1} dB PSNR against diffusers'");
    assert!(p >= 45.0, "image PSNR {p:.1} dB against diffusers'");
    assert!(e < 1e-4, "final latents differ from diffusers' by {e}");

    // transformers 5 saves CLIPTextModel without the `text_model.` prefix: the same weights
    // in that layout (one fp32 file, no shards) give the same embeddings.
    let dir = tempdir::Dir::new("clip-layout");
    let copy = dir.0.join("m");
    common::copy_dir(&data.join("tiny-sd15"), &copy);
    let te = copy.join("text_encoder");
    let mut tensors = std::collections::HashMap::new();
    for f in std::fs::read_dir(&te).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "safetensors") {
            for (k, t) in candle_core::safetensors::load(&p, &candle_core::Device::Cpu).unwrap() {
                let k = k.strip_prefix("text_model.").unwrap_or(&k).to_string();
                tensors.insert(k, t.to_dtype(candle_core::DType::F32).unwrap());
            }
        }
        if p.extension()
            .is_some_and(|e| e == "safetensors" || e == "json")
            && !p.ends_with("config.json")
        {
            std::fs::remove_file(&p).unwrap();
        }
    }
    assert!(tensors.keys().all(|k| !k.starts_with("text_model.")));
    candle_core::safetensors::save(&tensors, te.join("model.safetensors")).unwrap();
    let m5 = Model::load(&copy, gpuworker::diffusion::device(None).unwrap()).unwrap();
    let got5: Vec<f32> = m5
        .condition(prompt, negative, g)
        .unwrap()
        .embeddings()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let e = max_rel(&got5, &want);
    assert!(e < 1e-4, "transformers 5 layout: embeddings differ by {e}");
}

/// The video stage's frames pass the same memory guard as requests: a frame that would not fit
/// is refused with the out-of-memory error before anything is allocated.
#[test]
fn the_diffuse_stage_refuses_a_frame_that_would_not_fit() {
    use gpuworker::diffusion::video::DiffuseConfig;
    let dir = tempdir::Dir::new("diffuse-guard");
    let path = dir.0.join("model");
    tiny::write(&path, TinyKind::Turbo, 3).unwrap();
    let mut m = Model::load(&path, gpuworker::diffusion::device(None).unwrap()).unwrap();
    m.memory_limit = Some(100 << 20);
    let cfg = DiffuseConfig {
        model: std::sync::Arc::new(m),
        prompt: "x".into(),
        negative_prompt: String::new(),
        guidance_scale: 0.0,
        strength: 0.5,
        steps: 2,
        seed: 1,
    };
    let cond = cfg.condition().unwrap();
    let dev = candle_core::Device::Cpu;
    let big = candle_core::Tensor::zeros((1, 3, 512, 512), candle_core::DType::F32, &dev).unwrap();
    let e = cfg.frame(&cond, &big).unwrap_err();
    assert!(e.is_oom(), "{e}");
    let small = candle_core::Tensor::zeros((1, 3, 16, 16), candle_core::DType::F32, &dev).unwrap();
    assert_eq!(cfg.frame(&cond, &small).unwrap().dims(), &[1, 3, 16, 16]);
}

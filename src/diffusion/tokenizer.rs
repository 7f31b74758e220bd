//! The prompt tokenizer from `tokenizer/`: a `tokenizer.json` when the model ships one (the
//! fast tokenizer), else CLIP's own byte-pair encoding from `vocab.json` + `merges.txt` (the
//! diffusers layout), exactly as transformers' CLIPTokenizer runs it (see [`super::clip_bpe`]).

use super::clip_bpe::ClipBpe;
use super::DiffusionError;
use std::collections::HashMap;
use std::path::Path;
use tokenizers::Tokenizer;

pub const BOS: &str = "<|startoftext|>";
pub const EOS: &str = "<|endoftext|>";

enum Inner {
    Fast(Box<Tokenizer>),
    Clip { bpe: Box<ClipBpe>, bos: u32 },
}

pub struct PromptTokenizer {
    inner: Inner,
    eos: u32,
    pad: u32,
}

impl PromptTokenizer {
    pub fn load(dir: &Path) -> Result<Self, DiffusionError> {
        let bad = |problem: String| DiffusionError::Model {
            dir: dir.to_path_buf(),
            problem: format!("tokenizer: {problem}"),
        };
        let json = dir.join("tokenizer.json");
        let inner = if json.is_file() {
            Inner::Fast(Box::new(
                Tokenizer::from_file(&json).map_err(|e| bad(e.to_string()))?,
            ))
        } else {
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name)).map_err(|e| bad(format!("{name}: {e}")))
            };
            let vocab: HashMap<String, u32> = serde_json::from_str(&read("vocab.json")?)
                .map_err(|e| bad(format!("vocab.json: {e}")))?;
            let bos = *vocab
                .get(BOS)
                .ok_or_else(|| bad(format!("vocab.json has no {BOS}")))?;
            let bpe = ClipBpe::new(vocab, &read("merges.txt")?, EOS).map_err(bad)?;
            Inner::Clip {
                bpe: Box::new(bpe),
                bos,
            }
        };
        let token_id = |tok: &str| match &inner {
            Inner::Fast(t) => t.token_to_id(tok),
            Inner::Clip { bpe, .. } => bpe.token_id(tok),
        };
        let eos = token_id(EOS).ok_or_else(|| bad(format!("no {EOS} token")))?;
        // SD 2.x pads with "!" (tokenizer_config.json's pad_token); SD 1.x with the EOS.
        let pad = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| match &v["pad_token"] {
                serde_json::Value::String(s) => Some(s.clone()),
                o => o["content"].as_str().map(str::to_string),
            })
            .and_then(|p| token_id(&p))
            .unwrap_or(eos);
        Ok(PromptTokenizer { inner, eos, pad })
    }

    /// Token ids of `prompt` with the start and end tokens, uncut.
    pub fn encode(&self, prompt: &str) -> Result<Vec<u32>, DiffusionError> {
        Ok(match &self.inner {
            Inner::Fast(t) => t
                .encode(prompt, true)
                .map_err(|e| DiffusionError::Input(format!("prompt cannot be tokenized: {e}")))?
                .get_ids()
                .to_vec(),
            Inner::Clip { bpe, bos } => {
                let mut ids = vec![*bos];
                ids.extend(bpe.encode(prompt));
                ids.push(self.eos);
                ids
            }
        })
    }

    /// Token ids of `prompt`, cut or padded to exactly `len` (diffusers: `padding="max_length",
    /// truncation=True`, which keeps the end token last).
    pub fn ids(&self, prompt: &str, len: usize) -> Result<Vec<u32>, DiffusionError> {
        let mut ids = self.encode(prompt)?;
        if ids.len() > len {
            ids.truncate(len);
            ids[len - 1] = self.eos;
        }
        ids.resize(len, self.pad);
        Ok(ids)
    }
}

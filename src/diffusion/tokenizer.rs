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
        // The pad token is tokenizer_config.json's `pad_token`, else the end token, as
        // transformers 4.57's CLIPTokenizer takes it: special_tokens_map.json is not read for
        // it (SD 2.x ships `"!"` there and `<|endoftext|>` in the config; transformers pads
        // with `<|endoftext|>`, checked with scripts/ai-reference's venv), and a config that
        // says `"!"` pads with "!".
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

#[cfg(test)]
mod tests {
    use super::PromptTokenizer;

    /// SD 2.x's layout: `"!"` in special_tokens_map.json, `<|endoftext|>` in the config.
    #[test]
    fn the_pad_token_is_the_configs_as_transformers_reads_it() {
        let src =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-sd15/tokenizer");
        let dir = std::env::temp_dir().join(format!("gpuworker-pad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["vocab.json", "merges.txt", "tokenizer_config.json"] {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
        std::fs::write(dir.join("special_tokens_map.json"), r#"{"pad_token": "!"}"#).unwrap();
        let t = PromptTokenizer::load(&dir).unwrap();
        let ids = t.ids("a cat", 8).unwrap();
        // transformers: [541, 320, 66, 521, 542, 542, 542, 542].
        assert_eq!(ids, [541, 320, 66, 521, 542, 542, 542, 542]);
        let cfg = std::fs::read_to_string(src.join("tokenizer_config.json")).unwrap();
        let cfg = cfg.replace(r#""pad_token": "<|endoftext|>""#, r#""pad_token": "!""#);
        std::fs::write(dir.join("tokenizer_config.json"), cfg).unwrap();
        // transformers: [541, 320, 66, 521, 542, 0, 0, 0] ("!" as a token, not the word "!</w>").
        let t = PromptTokenizer::load(&dir).unwrap();
        assert_eq!(
            t.ids("a cat", 8).unwrap(),
            [541, 320, 66, 521, 542, 0, 0, 0]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The prompt tokenizer from `tokenizer/`: a `tokenizer.json` when the model ships one, else
//! CLIP's byte-pair encoding from `vocab.json` + `merges.txt` (the diffusers layout).

use super::DiffusionError;
use std::path::Path;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::utils::Lowercase;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::Tokenizer;

pub const BOS: &str = "<|startoftext|>";
pub const EOS: &str = "<|endoftext|>";

pub struct PromptTokenizer {
    inner: Tokenizer,
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
            Tokenizer::from_file(&json).map_err(|e| bad(e.to_string()))?
        } else {
            let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
            let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
                .end_of_word_suffix("</w>".into())
                .unk_token(EOS.into())
                .build()
                .map_err(|e| bad(format!("vocab.json + merges.txt: {e}")))?;
            let mut t = Tokenizer::new(bpe);
            t.with_normalizer(Some(Lowercase))
                .map_err(|e| bad(e.to_string()))?;
            t.with_pre_tokenizer(Some(BertPreTokenizer));
            let id = |tok: &str| {
                t.token_to_id(tok)
                    .ok_or_else(|| bad(format!("vocab.json has no {tok}")))
            };
            let post = TemplateProcessing::builder()
                .try_single(format!("{BOS} $A {EOS}"))
                .map_err(|e| bad(e.to_string()))?
                .special_tokens(vec![(BOS, id(BOS)?), (EOS, id(EOS)?)])
                .build()
                .map_err(|e| bad(e.to_string()))?;
            t.with_post_processor(Some(post));
            t
        };
        let eos = inner
            .token_to_id(EOS)
            .ok_or_else(|| bad(format!("no {EOS} token")))?;
        // SD 2.x pads with "!" (tokenizer_config.json's pad_token); SD 1.x with the EOS.
        let pad = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| match &v["pad_token"] {
                serde_json::Value::String(s) => Some(s.clone()),
                o => o["content"].as_str().map(str::to_string),
            })
            .and_then(|p| inner.token_to_id(&p))
            .unwrap_or(eos);
        Ok(PromptTokenizer { inner, eos, pad })
    }

    /// Token ids of `prompt`, cut or padded to exactly `len`.
    pub fn ids(&self, prompt: &str, len: usize) -> Result<Vec<u32>, DiffusionError> {
        let enc = self
            .inner
            .encode(prompt, true)
            .map_err(|e| DiffusionError::Input(format!("prompt cannot be tokenized: {e}")))?;
        let mut ids = enc.get_ids().to_vec();
        if ids.len() > len {
            ids.truncate(len);
            ids[len - 1] = self.eos;
        }
        ids.resize(len, self.pad);
        Ok(ids)
    }
}

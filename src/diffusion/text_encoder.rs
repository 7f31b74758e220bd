//! The CLIP text encoder (`CLIPTextModel` of transformers) built from `text_encoder/config.json`.
//! candle's own `clip::Config` only has fixed presets, so any other size (a distilled
//! encoder, or the tiny models of the tests) is built here with the same weight names.

use super::config::ClipJson;
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln1: LayerNorm,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

pub struct TextEncoder {
    token_embedding: Embedding,
    position_embedding: Embedding,
    layers: Vec<Layer>,
    final_layer_norm: LayerNorm,
    heads: usize,
    quick_gelu: bool,
    /// Tokens per prompt (the position table's length).
    pub max_len: usize,
}

impl TextEncoder {
    pub fn new(vb: VarBuilder, c: &ClipJson) -> Result<Self> {
        let vb = vb.pp("text_model");
        let h = c.hidden_size;
        let emb = vb.pp("embeddings");
        let enc = vb.pp("encoder").pp("layers");
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = enc.pp(i.to_string());
                let att = l.pp("self_attn");
                Ok(Layer {
                    q: linear(h, h, att.pp("q_proj"))?,
                    k: linear(h, h, att.pp("k_proj"))?,
                    v: linear(h, h, att.pp("v_proj"))?,
                    out: linear(h, h, att.pp("out_proj"))?,
                    ln1: layer_norm(h, c.layer_norm_eps, l.pp("layer_norm1"))?,
                    ln2: layer_norm(h, c.layer_norm_eps, l.pp("layer_norm2"))?,
                    fc1: linear(h, c.intermediate_size, l.pp("mlp").pp("fc1"))?,
                    fc2: linear(c.intermediate_size, h, l.pp("mlp").pp("fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TextEncoder {
            token_embedding: embedding(c.vocab_size, h, emb.pp("token_embedding"))?,
            position_embedding: embedding(
                c.max_position_embeddings,
                h,
                emb.pp("position_embedding"),
            )?,
            layers,
            final_layer_norm: layer_norm(h, c.layer_norm_eps, vb.pp("final_layer_norm"))?,
            heads: c.num_attention_heads,
            quick_gelu: c.hidden_act == "quick_gelu",
            max_len: c.max_position_embeddings,
        })
    }

    /// The last hidden state, `(1, tokens, hidden)`, for one prompt's token ids.
    pub fn encode(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        let n = ids.len();
        let ids = Tensor::new(ids, device)?.unsqueeze(0)?;
        let pos = Tensor::arange(0u32, n as u32, device)?.unsqueeze(0)?;
        let mut x =
            (self.token_embedding.forward(&ids)? + self.position_embedding.forward(&pos)?)?;
        let mask: Vec<f32> = (0..n)
            .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (n, n), device)?.to_dtype(x.dtype())?;
        for l in &self.layers {
            let r = x.clone();
            x = (self.attention(l, &l.ln1.forward(&x)?, &mask)? + r)?;
            let r = x.clone();
            let y = l.fc1.forward(&l.ln2.forward(&x)?)?;
            let y = if self.quick_gelu {
                (&y * candle_nn::ops::sigmoid(&(&y * 1.702)?)?)?
            } else {
                y.gelu_erf()?
            };
            x = (l.fc2.forward(&y)? + r)?;
        }
        self.final_layer_norm.forward(&x)
    }

    fn attention(&self, l: &Layer, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, n, h) = x.dims3()?;
        let d = h / self.heads;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, n, self.heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split((l.q.forward(x)? * (d as f64).powf(-0.5))?)?;
        let k = split(l.k.forward(x)?)?;
        let v = split(l.v.forward(x)?)?;
        let w = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let w =
            candle_nn::ops::softmax(&w.to_dtype(DType::F32)?, D::Minus1)?.to_dtype(v.dtype())?;
        let y = w.matmul(&v)?.transpose(1, 2)?.reshape((b, n, h))?;
        l.out.forward(&y)
    }
}

//! The VAE's encoder half, returning a sample of the latent distribution drawn from the
//! request's [`Noise`] as diffusers' image-to-image does (`retrieve_latents(...,
//! sample_mode="sample")`, pipeline_stable_diffusion_img2img.py; `DiagonalGaussianDistribution`
//! in models/autoencoders/vae.py). candle's `AutoEncoderKL::encode` samples from its
//! unseedable generator, so two identical requests would differ. Same weights, same layers
//! as candle's.

use super::config::VaeJson;
use super::noise::Noise;
use candle_core::{Module, Result, Tensor};
use candle_nn as nn;
use candle_transformers::models::stable_diffusion::unet_2d_blocks::{
    DownEncoderBlock2D, DownEncoderBlock2DConfig, UNetMidBlock2D, UNetMidBlock2DConfig,
};

pub struct VaeEncoder {
    conv_in: nn::Conv2d,
    down_blocks: Vec<DownEncoderBlock2D>,
    mid_block: UNetMidBlock2D,
    conv_norm_out: nn::GroupNorm,
    conv_out: nn::Conv2d,
    quant_conv: Option<nn::Conv2d>,
    latent_channels: usize,
}

impl VaeEncoder {
    /// `vb` is the VAE's root (the one `AutoEncoderKL` takes).
    pub fn new(vb: nn::VarBuilder, c: &VaeJson) -> Result<Self> {
        let enc = vb.pp("encoder");
        let chans = &c.block_out_channels;
        let pad1 = nn::Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let conv_in = nn::conv2d(c.in_channels, chans[0], 3, pad1, enc.pp("conv_in"))?;
        let down_blocks = (0..chans.len())
            .map(|i| {
                let cfg = DownEncoderBlock2DConfig {
                    num_layers: c.layers_per_block,
                    resnet_eps: 1e-6,
                    resnet_groups: c.norm_num_groups,
                    add_downsample: i + 1 != chans.len(),
                    downsample_padding: 0,
                    ..Default::default()
                };
                let input = chans[i.saturating_sub(1)];
                DownEncoderBlock2D::new(
                    enc.pp("down_blocks").pp(i.to_string()),
                    input,
                    chans[i],
                    cfg,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let last = *chans.last().expect("validated non-empty");
        let mid_cfg = UNetMidBlock2DConfig {
            resnet_eps: 1e-6,
            output_scale_factor: 1.,
            attn_num_head_channels: None,
            resnet_groups: Some(c.norm_num_groups),
            ..Default::default()
        };
        let mid_block = UNetMidBlock2D::new(enc.pp("mid_block"), last, None, mid_cfg)?;
        let conv_norm_out = nn::group_norm(c.norm_num_groups, last, 1e-6, enc.pp("conv_norm_out"))?;
        let conv_out = nn::conv2d(last, 2 * c.latent_channels, 3, pad1, enc.pp("conv_out"))?;
        let quant_conv = if c.use_quant_conv {
            let n = 2 * c.latent_channels;
            Some(nn::conv2d(
                n,
                n,
                1,
                Default::default(),
                vb.pp("quant_conv"),
            )?)
        } else {
            None
        };
        Ok(VaeEncoder {
            conv_in,
            down_blocks,
            mid_block,
            conv_norm_out,
            conv_out,
            quant_conv,
            latent_channels: c.latent_channels,
        })
    }

    /// A latent sample for `xs` (images in [-1, 1], `(n, 3, h, w)`): mean + σ·ε, ε from
    /// `noise`, log-variance clamped to [-30, 20] as diffusers clamps it.
    pub fn encode(&self, xs: &Tensor, noise: &mut Noise) -> Result<Tensor> {
        let mut x = xs.apply(&self.conv_in)?;
        for b in &self.down_blocks {
            x = x.apply(b)?;
        }
        let x = self
            .mid_block
            .forward(&x, None)?
            .apply(&self.conv_norm_out)?;
        let mut x = nn::ops::silu(&x)?.apply(&self.conv_out)?;
        if let Some(q) = &self.quant_conv {
            x = q.forward(&x)?;
        }
        let mean = x.narrow(1, 0, self.latent_channels)?;
        let logvar = x
            .narrow(1, self.latent_channels, self.latent_channels)?
            .clamp(-30.0, 20.0)?;
        let std = (logvar * 0.5)?.exp()?;
        let eps = noise
            .tensor(mean.dims(), mean.device())?
            .to_dtype(mean.dtype())?;
        mean + (std * eps)?
    }
}

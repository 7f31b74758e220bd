//! The VAE's encoder half, returning the mean of the latent distribution. candle's
//! `AutoEncoderKL::encode` only offers a sample drawn from its unseedable generator, which
//! would make image-to-image differ between two identical requests; diffusers' pipelines
//! also start from the mode when asked for determinism. Same weights, same layers as candle's.

use super::config::VaeJson;
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

    /// The latent mean of `xs` (images in [-1, 1], `(n, 3, h, w)`).
    pub fn encode(&self, xs: &Tensor) -> Result<Tensor> {
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
        x.narrow(1, 0, self.latent_channels)
    }
}

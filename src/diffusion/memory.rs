//! Admission by memory: before a generation starts, its peak working memory is estimated
//! from the model's shapes and compared with what the process may still use. A request that
//! would not fit is answered like the runner answers a CUDA out-of-memory error (500), and
//! nothing was allocated, so the server goes on serving. (An allocation failure in Rust
//! aborts the process; catching it after the fact is not an option on the host.)

use super::config::ModelFiles;

/// Bytes a generation needs beyond the loaded weights: the largest of the UNet's
/// activations and attention maps at the latent size, and the VAE's at the pixel size, with
/// `elem` bytes per element (4 for f32 on the CPU, 2 for f16 on CUDA).
pub fn estimate(
    m: &ModelFiles,
    batch: usize,
    latent: (usize, usize),
    pixels: (usize, usize),
    encode_too: bool,
    elem: u64,
) -> u64 {
    let f32b = elem;
    let tokens = (latent.0 * latent.1) as u64;
    let batch = batch as u64;
    let levels = m.unet.block_out_channels.len() as u64;
    let c0 = m.unet.block_out_channels[0] as u64;
    // Skip connections and resnet temporaries of every level, at the first level's size.
    let unet_act = batch * tokens * c0 * f32b * 6 * levels;
    // Scores, softmax and one copy of the self-attention map at the first level that has
    // attention (each level has a quarter of the previous one's tokens).
    let unet_attn = m
        .unet_config()
        .blocks
        .iter()
        .enumerate()
        .find(|(_, b)| b.use_cross_attn.is_some())
        .map_or(0, |(level, b)| {
            let t = tokens >> (2 * level);
            batch * b.attention_head_dim.max(1) as u64 * t * t * f32b * 3
        });
    let px = (pixels.0 * pixels.1) as u64;
    let vc0 = m.vae.block_out_channels[0] as u64;
    let vae_act = px * vc0 * f32b * 6;
    let vae_attn = tokens * tokens * f32b * 3;
    let vae = vae_act + vae_attn;
    let vae = if encode_too { vae * 2 } else { vae };
    (unet_act + unet_attn).max(vae) + (64 << 20)
}

/// Bytes this process may still allocate: the smallest of the configured limit,
/// MemAvailable, and the cgroup's remaining allowance.
pub fn available(limit: Option<u64>) -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024);
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .zip(read("/sys/fs/cgroup/memory.current"))
        .map(|(max, cur)| max.saturating_sub(cur));
    [limit, meminfo, cgroup]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX)
}

//! Seeded Gaussian noise. candle's CPU generator cannot be seeded, so every random draw of a
//! generation comes from here: the same seed gives the same latents on every machine and
//! device (the noise is made on the host and moved to the model's device).

use candle_core::{Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A stream of standard normal samples from one seed, or given values replayed in order.
pub struct Noise {
    source: Source,
}

enum Source {
    Seeded(Box<ChaCha8Rng>),
    Given(std::vec::IntoIter<f32>),
}

impl Noise {
    pub fn new(seed: u64) -> Self {
        Noise {
            source: Source::Seeded(Box::new(ChaCha8Rng::seed_from_u64(seed))),
        }
    }

    /// The draws of another implementation, replayed in order (then zeros): compares our
    /// samplers with diffusers' draw for draw.
    pub fn given(values: Vec<f32>) -> Self {
        Noise {
            source: Source::Given(values.into_iter()),
        }
    }

    /// `n` samples of N(0, 1) (Box–Muller on two uniform draws).
    pub fn samples(&mut self, n: usize) -> Vec<f32> {
        let rng = match &mut self.source {
            Source::Given(v) => return (0..n).map(|_| v.next().unwrap_or(0.0)).collect(),
            Source::Seeded(rng) => rng,
        };
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            // u1 in (0, 1] so ln(u1) is finite.
            let u1 = 1.0 - rng.random::<f64>();
            let u2 = rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            out.push((r * t.cos()) as f32);
            out.push((r * t.sin()) as f32);
        }
        out.truncate(n);
        out
    }

    /// A tensor of `shape` filled with N(0, 1) samples, on `device`.
    pub fn tensor(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let n = shape.iter().product();
        Tensor::from_vec(self.samples(n), shape, &Device::Cpu)?.to_device(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_noise_and_roughly_standard() {
        let a = Noise::new(42).samples(10_001);
        assert_eq!(a, Noise::new(42).samples(10_001));
        assert_ne!(a, Noise::new(43).samples(10_001));
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }
}

//! Noise schedulers, read from a diffusers `scheduler/scheduler_config.json`: DDIM (η = 0),
//! Euler and Euler ancestral, with diffusers' timestep spacings and prediction types. They
//! are ours rather than candle's so that every random draw comes from the request's seed
//! ([`super::noise`]) and image-to-image can start part-way through the schedule.

use super::noise::Noise;
use candle_core::{Result, Tensor};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ddim,
    Euler,
    EulerAncestral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    Linear,
    ScaledLinear,
    #[serde(rename = "squaredcos_cap_v2")]
    SquaredcosCapV2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    Epsilon,
    VPrediction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spacing {
    Leading,
    Trailing,
    Linspace,
}

/// The fields of `scheduler_config.json` that matter here (diffusers' defaults otherwise).
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    #[serde(rename = "_class_name", default = "default_class")]
    pub class_name: String,
    #[serde(default = "default_beta_start")]
    pub beta_start: f64,
    #[serde(default = "default_beta_end")]
    pub beta_end: f64,
    #[serde(default = "default_beta_schedule")]
    pub beta_schedule: BetaSchedule,
    #[serde(default = "default_train_timesteps")]
    pub num_train_timesteps: usize,
    #[serde(default = "default_prediction")]
    pub prediction_type: Prediction,
    #[serde(default)]
    pub steps_offset: usize,
    #[serde(default = "default_spacing")]
    pub timestep_spacing: Spacing,
    #[serde(default)]
    pub set_alpha_to_one: bool,
}

fn default_class() -> String {
    "DDIMScheduler".into()
}
fn default_beta_start() -> f64 {
    0.00085
}
fn default_beta_end() -> f64 {
    0.012
}
fn default_beta_schedule() -> BetaSchedule {
    BetaSchedule::ScaledLinear
}
fn default_train_timesteps() -> usize {
    1000
}
fn default_prediction() -> Prediction {
    Prediction::Epsilon
}
fn default_spacing() -> Spacing {
    Spacing::Leading
}

impl SchedulerConfig {
    /// Which sampler the class name asks for. Classes without their own implementation here
    /// (PNDM, LMS, DDPM, DPM-Solver, ...) run as DDIM, which diffusers accepts for any of them.
    pub fn kind(&self) -> Kind {
        match self.class_name.as_str() {
            "EulerDiscreteScheduler" => Kind::Euler,
            "EulerAncestralDiscreteScheduler" => Kind::EulerAncestral,
            _ => Kind::Ddim,
        }
    }
}

/// A schedule of `steps` denoising steps.
#[derive(Debug, Clone)]
pub struct Scheduler {
    kind: Kind,
    prediction: Prediction,
    spacing: Spacing,
    /// Model timesteps, from noisiest to cleanest.
    timesteps: Vec<f64>,
    /// Euler: the noise level of each timestep, then 0.
    sigmas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    final_alpha: f64,
    step_ratio: usize,
}

impl Scheduler {
    /// `steps` must be in 1..=num_train_timesteps (the caller validates requests).
    pub fn new(cfg: &SchedulerConfig, steps: usize) -> Self {
        let t = cfg.num_train_timesteps;
        let steps = steps.clamp(1, t);
        let betas: Vec<f64> = match cfg.beta_schedule {
            BetaSchedule::Linear => linspace(cfg.beta_start, cfg.beta_end, t),
            BetaSchedule::ScaledLinear => linspace(cfg.beta_start.sqrt(), cfg.beta_end.sqrt(), t)
                .into_iter()
                .map(|b| b * b)
                .collect(),
            BetaSchedule::SquaredcosCapV2 => {
                let bar = |x: f64| {
                    ((x + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (0..t)
                    .map(|i| {
                        let (t1, t2) = (i as f64 / t as f64, (i + 1) as f64 / t as f64);
                        (1.0 - bar(t2) / bar(t1)).min(0.999)
                    })
                    .collect()
            }
        };
        let mut alphas_cumprod = Vec::with_capacity(t);
        let mut acc = 1.0;
        for b in betas {
            acc *= 1.0 - b;
            alphas_cumprod.push(acc);
        }
        let step_ratio = t / steps;
        let timesteps: Vec<f64> = match cfg.timestep_spacing {
            Spacing::Leading => (0..steps)
                .rev()
                .map(|i| (i * step_ratio + cfg.steps_offset) as f64)
                .collect(),
            Spacing::Trailing => {
                let ratio = t as f64 / steps as f64;
                (0..steps)
                    .map(|i| (t as f64 - i as f64 * ratio).round() - 1.0)
                    .collect()
            }
            Spacing::Linspace => {
                let ts = linspace(0.0, (t - 1) as f64, steps).into_iter().rev();
                match cfg.kind() {
                    Kind::Ddim => ts.map(f64::round).collect(),
                    _ => ts.collect(),
                }
            }
        };
        let timesteps: Vec<f64> = timesteps
            .into_iter()
            .map(|x| x.clamp(0.0, (t - 1) as f64))
            .collect();
        let all: Vec<f64> = alphas_cumprod
            .iter()
            .map(|a| ((1.0 - a) / a).sqrt())
            .collect();
        let mut sigmas: Vec<f64> = timesteps.iter().map(|&x| interp(&all, x)).collect();
        sigmas.push(0.0);
        Scheduler {
            kind: cfg.kind(),
            prediction: cfg.prediction_type,
            spacing: cfg.timestep_spacing,
            timesteps,
            sigmas,
            final_alpha: if cfg.set_alpha_to_one {
                1.0
            } else {
                alphas_cumprod[0]
            },
            alphas_cumprod,
            step_ratio,
        }
    }

    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// How much the starting noise is scaled.
    pub fn init_noise_sigma(&self) -> f64 {
        match self.kind {
            Kind::Ddim => 1.0,
            _ => {
                let max = self.sigmas.iter().cloned().fold(0.0, f64::max);
                if self.spacing != Spacing::Leading {
                    max
                } else {
                    (max * max + 1.0).sqrt()
                }
            }
        }
    }

    /// The UNet's input at step `i`.
    pub fn scale_model_input(&self, x: &Tensor, i: usize) -> Result<Tensor> {
        match self.kind {
            Kind::Ddim => Ok(x.clone()),
            _ => {
                let s = self.sigmas[i];
                x / (s * s + 1.0).sqrt()
            }
        }
    }

    /// `x` noised to the level of step `i` (image-to-image starts there).
    pub fn add_noise(&self, x: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        match self.kind {
            Kind::Ddim => {
                let a = self.alphas_cumprod[self.timesteps[i] as usize];
                (x * a.sqrt())? + (noise * (1.0 - a).sqrt())?
            }
            _ => x + (noise * self.sigmas[i])?,
        }
    }

    /// One denoising step from step `i`: the model predicted `out` for sample `x`.
    pub fn step(&self, out: &Tensor, i: usize, x: &Tensor, noise: &mut Noise) -> Result<Tensor> {
        match self.kind {
            Kind::Ddim => {
                let t = self.timesteps[i] as usize;
                let a = self.alphas_cumprod[t];
                let a_prev = t
                    .checked_sub(self.step_ratio)
                    .map_or(self.final_alpha, |p| self.alphas_cumprod[p]);
                let (x0, eps) = match self.prediction {
                    Prediction::Epsilon => {
                        (((x - (out * (1.0 - a).sqrt())?)? / a.sqrt())?, out.clone())
                    }
                    Prediction::VPrediction => (
                        ((x * a.sqrt())? - (out * (1.0 - a).sqrt())?)?,
                        ((out * a.sqrt())? + (x * (1.0 - a).sqrt())?)?,
                    ),
                };
                (x0 * a_prev.sqrt())? + (eps * (1.0 - a_prev).sqrt())?
            }
            Kind::Euler | Kind::EulerAncestral => {
                let (s, next) = (self.sigmas[i], self.sigmas[i + 1]);
                let x0 = match self.prediction {
                    Prediction::Epsilon => (x - (out * s)?)?,
                    Prediction::VPrediction => {
                        ((out * (-s / (s * s + 1.0).sqrt()))? + (x / (s * s + 1.0))?)?
                    }
                };
                let derivative = ((x - x0)? / s)?;
                if self.kind == Kind::Euler {
                    return x + (derivative * (next - s))?;
                }
                let up = (next * next * (s * s - next * next) / (s * s))
                    .max(0.0)
                    .sqrt();
                let down = (next * next - up * up).max(0.0).sqrt();
                let moved = (x + (derivative * (down - s))?)?;
                if up == 0.0 {
                    return Ok(moved);
                }
                let n = noise.tensor(x.dims(), x.device())?.to_dtype(x.dtype())?;
                moved + (n * up)?
            }
        }
    }
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    match n {
        0 => vec![],
        1 => vec![a],
        _ => (0..n)
            .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
            .collect(),
    }
}

/// `table` (indexed by integer timestep) linearly interpolated at `x`.
fn interp(table: &[f64], x: f64) -> f64 {
    let lo = (x.floor() as usize).min(table.len() - 1);
    let hi = (lo + 1).min(table.len() - 1);
    let f = x - lo as f64;
    table[lo] * (1.0 - f) + table[hi] * f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> SchedulerConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn timesteps_follow_diffusers_spacings() {
        // DDIM, leading with offset 1 (Stable Diffusion 1.5): 50 steps → 981, 961, ..., 1.
        let s = Scheduler::new(&cfg(r#"{"steps_offset": 1}"#), 50);
        assert_eq!(s.timesteps()[0], 981.0);
        assert_eq!(*s.timesteps().last().unwrap(), 1.0);
        // Euler, trailing (sd-turbo): 1 step → 999; 4 steps → 999, 749, 499, 249.
        let turbo =
            cfg(r#"{"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "trailing"}"#);
        assert_eq!(Scheduler::new(&turbo, 1).timesteps(), &[999.0]);
        assert_eq!(
            Scheduler::new(&turbo, 4).timesteps(),
            &[999.0, 749.0, 499.0, 249.0]
        );
    }

    #[test]
    fn a_perfect_model_recovers_the_sample() {
        // If the model predicts exactly the noise that was added, every sampler lands on x0.
        let dev = candle_core::Device::Cpu;
        let x0 = Tensor::new(&[0.5f32, -0.25, 1.0, 0.0], &dev).unwrap();
        let noise = Tensor::new(&[1.0f32, -1.0, 0.5, 2.0], &dev).unwrap();
        for class in ["DDIMScheduler", "EulerDiscreteScheduler"] {
            // (set_alpha_to_one: DDIM's last step then lands on x0 rather than on t = 0.)
            let json = format!(r#"{{"_class_name": "{class}", "set_alpha_to_one": true}}"#);
            let s = Scheduler::new(&cfg(&json), 10);
            let mut x = s.add_noise(&x0, &noise, 0).unwrap();
            for i in 0..s.timesteps().len() {
                // Euler's model sees the scaled input but predicts the unscaled noise.
                x = s.step(&noise, i, &x, &mut Noise::new(0)).unwrap();
                // Re-noise the estimate to the next level like the forward process would.
                if i + 1 < s.timesteps().len() {
                    x = s.add_noise(&x0, &noise, i + 1).unwrap();
                }
            }
            let got: Vec<f32> = x.to_vec1().unwrap();
            for (g, w) in got.iter().zip([0.5f32, -0.25, 1.0, 0.0]) {
                assert!((g - w).abs() < 1e-3, "{class}: {got:?}");
            }
        }
    }
}

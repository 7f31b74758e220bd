//! Noise schedulers as diffusers v0.31.0 implements them (the version ai-runner pins), chosen
//! and configured by the checkpoint's `scheduler/scheduler_config.json`: DDIM, PNDM (PLMS),
//! Euler, Euler ancestral, LMS and DPM-Solver++ multistep. They are ours rather than candle's
//! so that every random draw comes from the request's seed ([`super::noise`]), image-to-image
//! can start part-way through the schedule, and each follows diffusers' arithmetic (float32
//! tables, numpy rounding). `tests/data/schedulers.json`, written by `scripts/ai-reference`
//! with diffusers itself, checks them.

mod alpha;
pub mod config;
mod dpm;
mod sigma;
mod tables;

pub use config::{BetaSchedule, Kind, Prediction, SchedulerConfig, Spacing};

use super::noise::Noise;
use candle_core::{DType, Result, Tensor};

/// A schedule of `steps` denoising steps and the sampler's state between them.
#[derive(Debug)]
pub struct Scheduler {
    kind: Kind,
    prediction: Prediction,
    steps: usize,
    train_steps: usize,
    /// Model timesteps, from noisiest to cleanest (PNDM repeats one: `steps + 1` entries).
    timesteps: Vec<f64>,
    /// σ-space samplers and DPM-Solver: the noise level of each timestep, then the last one.
    sigmas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    final_alpha: f64,
    clip_sample: Option<f64>,
    /// "leading" spacing: the σ samplers' starting noise is √(σ_max² + 1), not σ_max.
    leading_spacing: bool,
    state: State,
}

/// What a multistep sampler remembers between steps.
#[derive(Debug)]
enum State {
    None,
    /// PNDM: earlier model outputs, the step counter and the sample its second step restarts from.
    Plms {
        ets: Vec<Tensor>,
        counter: usize,
        cur_sample: Option<Tensor>,
    },
    /// LMS: the last (up to 4) derivatives.
    Lms {
        derivatives: Vec<Tensor>,
    },
    /// DPM-Solver++: the last data predictions and how many steps ran.
    Dpm {
        opts: dpm::Options,
        outputs: Vec<Tensor>,
        lower_order_nums: usize,
    },
}

impl Scheduler {
    /// `steps` must be in 1..=num_train_timesteps and `cfg` must have passed
    /// [`SchedulerConfig::check`] (both are checked before a request gets here).
    pub fn new(cfg: &SchedulerConfig, steps: usize) -> Self {
        let train_steps = cfg.num_train_timesteps();
        let steps = steps.clamp(1, train_steps);
        let kind = cfg.kind_or_ddim();
        let alphas_cumprod = tables::alphas_cumprod(cfg);
        let (timesteps, sigmas) = match kind {
            Kind::Ddim | Kind::Pndm => (alpha::timesteps(cfg, kind, steps), vec![]),
            Kind::DpmSolver => dpm::schedule(cfg, steps, &alphas_cumprod),
            _ => sigma::schedule(cfg, kind, steps, &alphas_cumprod),
        };
        let last = (train_steps - 1) as f64;
        let timesteps = timesteps.into_iter().map(|t| t.clamp(0.0, last)).collect();
        let state = match kind {
            Kind::Pndm => State::Plms {
                ets: vec![],
                counter: 0,
                cur_sample: None,
            },
            Kind::Lms => State::Lms {
                derivatives: vec![],
            },
            Kind::DpmSolver => State::Dpm {
                opts: dpm::Options::new(cfg),
                outputs: vec![],
                lower_order_nums: 0,
            },
            _ => State::None,
        };
        Scheduler {
            kind,
            prediction: cfg.prediction(),
            steps,
            train_steps,
            timesteps,
            sigmas,
            final_alpha: if cfg.set_alpha_to_one() {
                1.0
            } else {
                alphas_cumprod[0]
            },
            clip_sample: (kind == Kind::Ddim).then(|| cfg.clip_sample()).flatten(),
            leading_spacing: cfg.timestep_spacing() == Spacing::Leading,
            alphas_cumprod,
            state,
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// The σ of each timestep and the final one (empty for DDIM and PNDM).
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// Where image-to-image starts for `strength` (diffusers' `get_timesteps`: the last
    /// `int(steps × strength)` of the `steps` steps; every scheduler here has order 1), or
    /// `None` when that leaves no step, which diffusers refuses.
    pub fn start_for_strength(&self, strength: f64) -> Option<usize> {
        let init = ((self.steps as f64 * strength) as usize).min(self.steps);
        (init > 0).then_some(self.steps - init)
    }

    /// How much the starting noise is scaled.
    pub fn init_noise_sigma(&self) -> f64 {
        match self.kind {
            Kind::Ddim | Kind::Pndm | Kind::DpmSolver => 1.0,
            _ => sigma::init_noise_sigma(&self.sigmas, self.leading_spacing),
        }
    }

    /// The UNet's input at step `i`.
    pub fn scale_model_input(&self, x: &Tensor, i: usize) -> Result<Tensor> {
        match self.kind {
            Kind::Euler | Kind::EulerAncestral | Kind::Lms => {
                let s = self.sigmas[i];
                x / (s * s + 1.0).sqrt()
            }
            _ => Ok(x.clone()),
        }
    }

    /// `x` noised to the level of step `i` (image-to-image starts there).
    pub fn add_noise(&self, x: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        match self.kind {
            Kind::Ddim | Kind::Pndm => {
                let a = self.alphas_cumprod[self.timesteps[i] as usize];
                (x * a.sqrt())? + (noise * (1.0 - a).sqrt())?
            }
            Kind::DpmSolver => {
                let (alpha, sigma) = dpm::alpha_sigma(self.sigmas[i]);
                (x * alpha)? + (noise * sigma)?
            }
            _ => x + (noise * self.sigmas[i])?,
        }
    }

    /// One denoising step from step `i`: the model predicted `out` for sample `x`. Steps must
    /// be taken in order (the multistep samplers remember earlier ones). Arithmetic runs in
    /// f32 whatever the model's dtype, as diffusers upcasts; the result has `x`'s dtype.
    pub fn step(
        &mut self,
        out: &Tensor,
        i: usize,
        x: &Tensor,
        noise: &mut Noise,
    ) -> Result<Tensor> {
        let dtype = x.dtype();
        let (out, x) = (out.to_dtype(DType::F32)?, x.to_dtype(DType::F32)?);
        let next = match self.kind {
            Kind::Ddim => alpha::ddim_step(self, &out, i, &x)?,
            Kind::Pndm => alpha::plms_step(self, out, i, x)?,
            Kind::Euler | Kind::EulerAncestral => sigma::euler_step(self, &out, i, &x, noise)?,
            Kind::Lms => sigma::lms_step(self, &out, i, &x)?,
            Kind::DpmSolver => dpm::step(self, &out, i, &x)?,
        };
        next.to_dtype(dtype)
    }
}

#[cfg(test)]
mod fixtures;

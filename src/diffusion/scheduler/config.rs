//! `scheduler/scheduler_config.json` as diffusers reads it: each class with its own defaults
//! (diffusers v0.31.0 `register_to_config` signatures), and every option this worker cannot
//! honour refused by name at load instead of silently ignored.

use serde::Deserialize;

/// The samplers implemented here, one per diffusers class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `DDIMScheduler` (η = 0, as the pipelines call it).
    Ddim,
    /// `PNDMScheduler` with `skip_prk_steps` (PLMS): Stable Diffusion 1.x's default.
    Pndm,
    /// `EulerDiscreteScheduler`: SDXL, sd-turbo, SDXL-Lightning.
    Euler,
    /// `EulerAncestralDiscreteScheduler`: instruct-pix2pix.
    EulerAncestral,
    /// `LMSDiscreteScheduler`.
    Lms,
    /// `DPMSolverMultistepScheduler` with `algorithm_type` "dpmsolver++" (DPM++ 2M).
    DpmSolver,
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

/// The file's fields; absent ones take the class's diffusers default (the accessors).
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    #[serde(rename = "_class_name", default = "default_class")]
    pub class_name: String,
    beta_start: Option<f64>,
    beta_end: Option<f64>,
    beta_schedule: Option<BetaSchedule>,
    pub trained_betas: Option<Vec<f64>>,
    num_train_timesteps: Option<usize>,
    prediction_type: Option<Prediction>,
    steps_offset: Option<usize>,
    timestep_spacing: Option<Spacing>,
    set_alpha_to_one: Option<bool>,
    clip_sample: Option<bool>,
    clip_sample_range: Option<f64>,
    skip_prk_steps: Option<bool>,
    use_karras_sigmas: Option<bool>,
    pub sigma_min: Option<f64>,
    pub sigma_max: Option<f64>,
    rescale_betas_zero_snr: Option<bool>,
    thresholding: Option<bool>,
    interpolation_type: Option<String>,
    final_sigmas_type: Option<String>,
    timestep_type: Option<String>,
    algorithm_type: Option<String>,
    solver_order: Option<usize>,
    solver_type: Option<String>,
    lower_order_final: Option<bool>,
    euler_at_final: Option<bool>,
    lambda_min_clipped: Option<f64>,
    variance_type: Option<String>,
    use_lu_lambdas: Option<bool>,
    use_exponential_sigmas: Option<bool>,
    use_beta_sigmas: Option<bool>,
}

fn default_class() -> String {
    "DDIMScheduler".into()
}

impl SchedulerConfig {
    /// The sampler the class name asks for, or why it cannot run here.
    pub fn kind(&self) -> Result<Kind, String> {
        Ok(match self.class_name.as_str() {
            "DDIMScheduler" => Kind::Ddim,
            "PNDMScheduler" => Kind::Pndm,
            "EulerDiscreteScheduler" => Kind::Euler,
            "EulerAncestralDiscreteScheduler" => Kind::EulerAncestral,
            "LMSDiscreteScheduler" => Kind::Lms,
            "DPMSolverMultistepScheduler" => Kind::DpmSolver,
            other => {
                return Err(format!(
                    "_class_name {other:?} is not supported (DDIMScheduler, PNDMScheduler, \
                     EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, \
                     LMSDiscreteScheduler and DPMSolverMultistepScheduler are)"
                ))
            }
        })
    }

    /// The sampler, DDIM for a class [`Self::check`] refuses (which never reaches a request).
    pub fn kind_or_ddim(&self) -> Kind {
        self.kind().unwrap_or(Kind::Ddim)
    }

    /// Every option set to something this worker does not implement, by name; `Ok` when the
    /// configuration runs exactly as diffusers would run it.
    pub fn check(&self) -> Result<(), String> {
        let kind = self.kind()?;
        let refuse = |what: &str| Err(format!("{what} is not supported for {}", self.class_name));
        let on = |o: Option<bool>| o.unwrap_or(false);
        if on(self.thresholding) {
            return refuse("thresholding: true (dynamic thresholding)");
        }
        if on(self.use_exponential_sigmas) || on(self.use_beta_sigmas) || on(self.use_lu_lambdas) {
            return refuse("use_exponential_sigmas/use_beta_sigmas/use_lu_lambdas");
        }
        if let Some(b) = &self.trained_betas {
            if b.len() != self.num_train_timesteps() {
                return Err(format!(
                    "trained_betas has {} values for num_train_timesteps {}",
                    b.len(),
                    self.num_train_timesteps()
                ));
            }
        }
        if self.num_train_timesteps() < 2 {
            return Err("num_train_timesteps must be at least 2".into());
        }
        if self.rescale_betas_zero_snr() && kind != Kind::Ddim {
            return refuse("rescale_betas_zero_snr: true");
        }
        if self.use_karras_sigmas() && !matches!(kind, Kind::Euler | Kind::Lms | Kind::DpmSolver) {
            return refuse("use_karras_sigmas: true");
        }
        if self
            .interpolation_type
            .as_deref()
            .is_some_and(|t| t != "linear")
        {
            return refuse("interpolation_type other than \"linear\"");
        }
        if self
            .timestep_type
            .as_deref()
            .is_some_and(|t| t != "discrete")
        {
            return refuse("timestep_type other than \"discrete\"");
        }
        if let Some(t) = self.final_sigmas_type.as_deref() {
            if !matches!(t, "zero" | "sigma_min") {
                return refuse(&format!("final_sigmas_type {t:?}"));
            }
        }
        if kind == Kind::Pndm && !self.skip_prk_steps() {
            return refuse(
                "skip_prk_steps: false (the Runge-Kutta warm-up; Stable Diffusion's configs set \
                 it true)",
            );
        }
        if kind == Kind::DpmSolver {
            if let Some(a) = self.algorithm_type.as_deref() {
                if a != "dpmsolver++" {
                    return refuse(&format!("algorithm_type {a:?}"));
                }
            }
            if !matches!(self.solver_order(), 1 | 2) {
                return refuse(&format!("solver_order {}", self.solver_order()));
            }
            if !matches!(self.solver_type(), "midpoint" | "heun") {
                return refuse(&format!("solver_type {:?}", self.solver_type()));
            }
            if self.lambda_min_clipped.is_some_and(f64::is_finite) {
                return refuse("a finite lambda_min_clipped");
            }
            if self.variance_type.is_some() {
                return refuse("variance_type (learned variance)");
            }
        }
        Ok(())
    }

    pub fn num_train_timesteps(&self) -> usize {
        self.num_train_timesteps.unwrap_or(1000)
    }
    pub fn beta_start(&self) -> f64 {
        self.beta_start.unwrap_or(0.0001)
    }
    pub fn beta_end(&self) -> f64 {
        self.beta_end.unwrap_or(0.02)
    }
    pub fn beta_schedule(&self) -> BetaSchedule {
        self.beta_schedule.unwrap_or(BetaSchedule::Linear)
    }
    pub fn prediction(&self) -> Prediction {
        self.prediction_type.unwrap_or(Prediction::Epsilon)
    }
    pub fn steps_offset(&self) -> usize {
        self.steps_offset.unwrap_or(0)
    }
    /// DDIM and PNDM default to "leading"; the σ-space samplers to "linspace".
    pub fn timestep_spacing(&self) -> Spacing {
        self.timestep_spacing.unwrap_or(match self.kind_or_ddim() {
            Kind::Ddim | Kind::Pndm => Spacing::Leading,
            _ => Spacing::Linspace,
        })
    }
    /// DDIM: true; PNDM: false.
    pub fn set_alpha_to_one(&self) -> bool {
        self.set_alpha_to_one
            .unwrap_or(self.kind_or_ddim() == Kind::Ddim)
    }
    /// DDIM clamps its x₀ estimate to ±`clip_sample_range` unless told not to.
    pub fn clip_sample(&self) -> Option<f64> {
        self.clip_sample
            .unwrap_or(true)
            .then(|| self.clip_sample_range.unwrap_or(1.0))
    }
    pub fn skip_prk_steps(&self) -> bool {
        self.skip_prk_steps.unwrap_or(false)
    }
    pub fn use_karras_sigmas(&self) -> bool {
        self.use_karras_sigmas.unwrap_or(false)
    }
    pub fn rescale_betas_zero_snr(&self) -> bool {
        self.rescale_betas_zero_snr.unwrap_or(false)
    }
    /// The last σ: 0, or σ at t = 0 for "sigma_min".
    pub fn final_sigma_is_min(&self) -> bool {
        self.final_sigmas_type.as_deref() == Some("sigma_min")
    }
    pub fn solver_order(&self) -> usize {
        self.solver_order.unwrap_or(2)
    }
    pub fn solver_type(&self) -> &str {
        self.solver_type.as_deref().unwrap_or("midpoint")
    }
    pub fn lower_order_final(&self) -> bool {
        self.lower_order_final.unwrap_or(true)
    }
    pub fn euler_at_final(&self) -> bool {
        self.euler_at_final.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> SchedulerConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn each_class_has_diffusers_defaults() {
        let ddim = cfg(r#"{"_class_name": "DDIMScheduler"}"#);
        assert!(ddim.set_alpha_to_one());
        assert_eq!(ddim.clip_sample(), Some(1.0));
        assert_eq!(ddim.beta_schedule(), BetaSchedule::Linear);
        assert_eq!(ddim.timestep_spacing(), Spacing::Leading);
        let euler = cfg(r#"{"_class_name": "EulerDiscreteScheduler"}"#);
        assert_eq!(euler.timestep_spacing(), Spacing::Linspace);
        let pndm = cfg(r#"{"_class_name": "PNDMScheduler", "skip_prk_steps": true}"#);
        assert!(!pndm.set_alpha_to_one());
        assert!(pndm.check().is_ok());
    }

    #[test]
    fn options_that_cannot_run_are_refused_by_name() {
        for (json, name) in [
            (r#"{"_class_name": "UniPCMultistepScheduler"}"#, "UniPC"),
            (r#"{"_class_name": "PNDMScheduler"}"#, "skip_prk_steps"),
            (
                r#"{"_class_name": "DDIMScheduler", "thresholding": true}"#,
                "thresholding",
            ),
            (
                r#"{"_class_name": "EulerDiscreteScheduler", "timestep_type": "continuous"}"#,
                "timestep_type",
            ),
            (
                r#"{"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver++"}"#,
                "algorithm_type",
            ),
            (
                r#"{"_class_name": "DPMSolverMultistepScheduler", "solver_order": 3}"#,
                "solver_order",
            ),
            (
                r#"{"_class_name": "EulerAncestralDiscreteScheduler", "use_karras_sigmas": true}"#,
                "use_karras_sigmas",
            ),
        ] {
            let e = cfg(json).check().unwrap_err();
            assert!(e.contains(name), "{json}: {e}");
        }
    }
}

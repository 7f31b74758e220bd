//! The samplers that work in σ space (k-diffusion style): Euler
//! (scheduling_euler_discrete.py), Euler ancestral (scheduling_euler_ancestral_discrete.py)
//! and LMS (scheduling_lms_discrete.py, order 4).

use super::config::{Kind, Prediction, SchedulerConfig};
use super::{tables, Scheduler, State};
use crate::diffusion::noise::Noise;
use candle_core::{Result, Tensor};

/// LMS's order, as the pipelines call `step` (its default).
const LMS_ORDER: usize = 4;

/// Timesteps (float32, fractional for "linspace" and Karras) and σs with the final σ.
pub fn schedule(
    cfg: &SchedulerConfig,
    kind: Kind,
    steps: usize,
    alphas_cumprod: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let f32r = |x: f64| x as f32 as f64;
    let mut timesteps = tables::spaced_timesteps(cfg, steps, false);
    let (train, log_train) = tables::train_sigmas(alphas_cumprod);
    let mut sigmas: Vec<f64> = timesteps
        .iter()
        .map(|&t| tables::interp(&train, t))
        .collect();
    if cfg.use_karras_sigmas() && matches!(kind, Kind::Euler | Kind::Lms) {
        // Only Euler's config carries sigma_min/sigma_max (`hasattr(self.config, ...)`).
        let (lo, hi) = match kind {
            Kind::Euler => (cfg.sigma_min, cfg.sigma_max),
            _ => (None, None),
        };
        sigmas = tables::karras(&sigmas, steps, lo, hi);
        timesteps = sigmas
            .iter()
            .map(|&s| tables::sigma_to_t(s, &log_train))
            .collect();
    }
    let last = if kind == Kind::Euler && cfg.final_sigma_is_min() {
        ((1.0 - alphas_cumprod[0]) / alphas_cumprod[0]).sqrt()
    } else {
        0.0
    };
    sigmas.push(last);
    (
        timesteps.into_iter().map(f32r).collect(),
        sigmas.into_iter().map(f32r).collect(),
    )
}

/// σ_max for "linspace"/"trailing" spacing, √(σ_max² + 1) for "leading".
pub fn init_noise_sigma(sigmas: &[f64], leading: bool) -> f64 {
    let max = sigmas.iter().cloned().fold(0.0, f64::max);
    if leading {
        (max * max + 1.0).sqrt()
    } else {
        max
    }
}

/// The x₀ estimate at σ.
fn x0(prediction: Prediction, out: &Tensor, x: &Tensor, s: f64) -> Result<Tensor> {
    match prediction {
        Prediction::Epsilon => x - (out * s)?,
        Prediction::VPrediction => (out * (-s / (s * s + 1.0).sqrt()))? + (x / (s * s + 1.0))?,
    }
}

/// EulerDiscreteScheduler.step (no churn) and EulerAncestralDiscreteScheduler.step.
pub fn euler_step(
    sch: &Scheduler,
    out: &Tensor,
    i: usize,
    x: &Tensor,
    noise: &mut Noise,
) -> Result<Tensor> {
    let (s, next) = (sch.sigmas[i], sch.sigmas[i + 1]);
    let derivative = ((x - x0(sch.prediction, out, x, s)?)? / s)?;
    if sch.kind == Kind::Euler {
        return x + (derivative * (next - s))?;
    }
    let up = (next * next * (s * s - next * next) / (s * s))
        .max(0.0)
        .sqrt();
    let down = (next * next - up * up).max(0.0).sqrt();
    let moved = (x + (derivative * (down - s))?)?;
    // diffusers draws the noise even for the last step (σ_up = 0 there).
    let n = noise.tensor(x.dims(), x.device())?.to_dtype(x.dtype())?;
    moved + (n * up)?
}

/// LMSDiscreteScheduler.step: `x + Σ c_k · d_{i−k}` over the last (up to 4) derivatives, the
/// coefficients the integrals of the Lagrange basis over [σ_i, σ_{i+1}].
pub fn lms_step(sch: &mut Scheduler, out: &Tensor, i: usize, x: &Tensor) -> Result<Tensor> {
    let Scheduler {
        sigmas,
        prediction,
        state,
        ..
    } = sch;
    let s = sigmas[i];
    let derivative = ((x - x0(*prediction, out, x, s)?)? / s)?;
    let State::Lms { derivatives } = state else {
        unreachable!("an LMS scheduler holds its derivatives");
    };
    derivatives.push(derivative);
    if derivatives.len() > LMS_ORDER {
        derivatives.remove(0);
    }
    // diffusers: order = min(step_index + 1, 4), coefficients for every k < order, zipped
    // with the derivatives it has (fewer when image-to-image starts part-way).
    let order = (i + 1).min(LMS_ORDER);
    let mut next = x.clone();
    for (k, d) in (0..order).zip(derivatives.iter().rev()) {
        let c = lms_coefficient(sigmas, order, i, k);
        next = (next + (d * c)?)?;
    }
    Ok(next)
}

/// ∫_{σ_t}^{σ_{t+1}} Π_{j≠k} (τ − σ_{t−j}) / (σ_{t−k} − σ_{t−j}) dτ, exactly: the integrand
/// is a polynomial of degree < 4, and 4-point Gauss–Legendre is exact to degree 7 (diffusers
/// uses scipy's adaptive `quad`, which also lands on the exact value).
fn lms_coefficient(sigmas: &[f64], order: usize, t: usize, k: usize) -> f64 {
    let basis = |tau: f64| {
        (0..order)
            .filter(|&j| j != k)
            .map(|j| (tau - sigmas[t - j]) / (sigmas[t - k] - sigmas[t - j]))
            .product::<f64>()
    };
    let (a, b) = (sigmas[t], sigmas[t + 1]);
    let (mid, half) = ((a + b) / 2.0, (b - a) / 2.0);
    const NODES: [(f64, f64); 4] = [
        (0.339_981_043_584_856_3, 0.652_145_154_862_546_1),
        (-0.339_981_043_584_856_3, 0.652_145_154_862_546_1),
        (0.861_136_311_594_052_6, 0.347_854_845_137_453_9),
        (-0.861_136_311_594_052_6, 0.347_854_845_137_453_9),
    ];
    half * NODES
        .iter()
        .map(|&(x, w)| w * basis(mid + half * x))
        .sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lms_coefficients_integrate_the_lagrange_basis() {
        // Order 1: the basis is 1, so the coefficient is the interval's length.
        let s = [3.0, 2.0, 1.0, 0.0];
        assert!((lms_coefficient(&s, 1, 0, 0) - -1.0).abs() < 1e-12);
        // The basis polynomials sum to 1, so the coefficients sum to the length.
        let total: f64 = (0..3).map(|k| lms_coefficient(&s, 3, 2, k)).sum();
        assert!((total - -1.0).abs() < 1e-12, "{total}");
    }

    #[test]
    fn init_sigma_depends_on_spacing() {
        let s = [14.6, 1.0, 0.0];
        assert_eq!(init_noise_sigma(&s, false), 14.6);
        assert!((init_noise_sigma(&s, true) - (14.6f64 * 14.6 + 1.0).sqrt()).abs() < 1e-12);
    }
}

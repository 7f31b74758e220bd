//! DPM-Solver++ multistep (scheduling_dpmsolver_multistep.py, `algorithm_type`
//! "dpmsolver++", orders 1 and 2, midpoint or Heun): DPM++ 2M, the sampler many SDXL
//! fine-tunes ship.

use super::config::{Prediction, SchedulerConfig, Spacing};
use super::{tables, Scheduler, State};
use candle_core::{Result, Tensor};

/// Integer timesteps and σs (with the final σ) as `set_timesteps` makes them.
pub fn schedule(
    cfg: &SchedulerConfig,
    steps: usize,
    alphas_cumprod: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let f32r = |x: f64| x as f32 as f64;
    let t = cfg.num_train_timesteps();
    // lambda_min_clipped = −∞ (finite values are refused): nothing is clipped.
    let last = t;
    let mut timesteps: Vec<f64> = match cfg.timestep_spacing() {
        Spacing::Linspace => {
            let v = tables::linspace(0.0, (last - 1) as f64, steps + 1);
            v.into_iter()
                .rev()
                .take(steps)
                .map(tables::round_half_even)
                .collect()
        }
        Spacing::Leading => {
            let ratio = last / (steps + 1);
            (1..=steps)
                .rev()
                .map(|i| (i * ratio + cfg.steps_offset()) as f64)
                .collect()
        }
        Spacing::Trailing => tables::arange_down(last as f64, 0.0, t as f64 / steps as f64)
            .into_iter()
            .map(|x| tables::round_half_even(x) - 1.0)
            .collect(),
    };
    let (train, log_train) = tables::train_sigmas(alphas_cumprod);
    let mut sigmas: Vec<f64> = if cfg.use_karras_sigmas() {
        let flipped: Vec<f64> = train.iter().rev().copied().collect();
        let s = tables::karras(&flipped, steps, None, None);
        timesteps = s
            .iter()
            .map(|&x| tables::round_half_even(tables::sigma_to_t(x, &log_train)))
            .collect();
        s
    } else {
        timesteps
            .iter()
            .map(|&x| tables::interp(&train, x))
            .collect()
    };
    sigmas.push(if cfg.final_sigma_is_min() {
        train[0]
    } else {
        0.0
    });
    (timesteps, sigmas.into_iter().map(f32r).collect())
}

/// The solver's options from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    order: usize,
    heun: bool,
    lower_order_final: bool,
    euler_at_final: bool,
    final_zero: bool,
}

impl Options {
    pub fn new(cfg: &SchedulerConfig) -> Self {
        Options {
            order: cfg.solver_order(),
            heun: cfg.solver_type() == "heun",
            lower_order_final: cfg.lower_order_final(),
            euler_at_final: cfg.euler_at_final(),
            final_zero: !cfg.final_sigma_is_min(),
        }
    }
}

/// (α_t, σ_t) of the variance-preserving process at noise level σ.
pub fn alpha_sigma(sigma: f64) -> (f64, f64) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

fn lambda(sigma: f64) -> (f64, f64, f64) {
    let (a, s) = alpha_sigma(sigma);
    (a, s, a.ln() - s.ln())
}

/// DPMSolverMultistepScheduler.step.
pub fn step(sch: &mut Scheduler, out: &Tensor, i: usize, x: &Tensor) -> Result<Tensor> {
    let n = sch.timesteps.len();
    // convert_model_output: the data prediction x₀.
    let (a_s0, s_s0, l_s0) = lambda(sch.sigmas[i]);
    let x0 = match sch.prediction {
        Prediction::Epsilon => ((x - (out * s_s0)?)? / a_s0)?,
        Prediction::VPrediction => ((x * a_s0)? - (out * s_s0)?)?,
    };
    let (a_t, s_t, l_t) = lambda(sch.sigmas[i + 1]);
    let l_s1 = (i > 0).then(|| lambda(sch.sigmas[i - 1]).2);
    let State::Dpm {
        opts,
        outputs,
        lower_order_nums,
    } = &mut sch.state
    else {
        unreachable!("a DPM-Solver scheduler holds its model outputs");
    };
    let lower_order_final = i == n - 1
        && (opts.euler_at_final || (opts.lower_order_final && n < 15) || opts.final_zero);
    outputs.push(x0);
    if outputs.len() > opts.order {
        outputs.remove(0);
    }
    let m0 = &outputs[outputs.len() - 1];
    // h = λ_t − λ_s; at σ_t = 0, h = ∞, e^{−h} = 0 and the step lands on x₀.
    let h = l_t - l_s0;
    let em1 = (-h).exp() - 1.0;
    let first = ((x * (s_t / s_s0))? - (m0 * (a_t * em1))?)?;
    let next = match l_s1 {
        Some(l_s1) if opts.order == 2 && *lower_order_nums >= 1 && !lower_order_final => {
            let m1 = &outputs[outputs.len() - 2];
            let r0 = (l_s0 - l_s1) / h;
            let d1 = ((m0 - m1)? * (1.0 / r0))?;
            if opts.heun {
                (first + (d1 * (a_t * (em1 / h + 1.0)))?)?
            } else {
                (first - (d1 * (0.5 * a_t * em1))?)?
            }
        }
        _ => first,
    };
    if *lower_order_nums < opts.order {
        *lower_order_nums += 1;
    }
    Ok(next)
}

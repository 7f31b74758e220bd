//! The numbers every scheduler starts from, computed as diffusers computes them: the β
//! schedule and ᾱ (`alphas_cumprod`, float32 as torch keeps it), timesteps for each spacing
//! (numpy's `arange`/`linspace` and its half-to-even rounding), σ interpolation, Karras σs
//! and σ → t. References are to diffusers v0.31.0 `src/diffusers/schedulers/`.

use super::config::{BetaSchedule, SchedulerConfig, Spacing};

/// ᾱ_t for t in 0..num_train_timesteps, each rounded to f32 as diffusers' float32 tensors hold
/// it (betas by `torch.linspace(..., dtype=float32)`, then `torch.cumprod`).
pub fn alphas_cumprod(cfg: &SchedulerConfig) -> Vec<f64> {
    let t = cfg.num_train_timesteps();
    let f32r = |x: f64| x as f32 as f64;
    let betas: Vec<f64> = if let Some(b) = &cfg.trained_betas {
        b.iter().map(|&x| f32r(x)).collect()
    } else {
        match cfg.beta_schedule() {
            BetaSchedule::Linear => linspace(cfg.beta_start(), cfg.beta_end(), t)
                .into_iter()
                .map(f32r)
                .collect(),
            // `torch.linspace(start**0.5, end**0.5, T, dtype=float32) ** 2`
            BetaSchedule::ScaledLinear => {
                linspace(cfg.beta_start().sqrt(), cfg.beta_end().sqrt(), t)
                    .into_iter()
                    .map(|b| f32r(f32r(b) * f32r(b)))
                    .collect()
            }
            // scheduling_ddim.py `betas_for_alpha_bar` (cosine).
            BetaSchedule::SquaredcosCapV2 => {
                let bar = |x: f64| {
                    ((x + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (0..t)
                    .map(|i| {
                        let (t1, t2) = (i as f64 / t as f64, (i + 1) as f64 / t as f64);
                        f32r((1.0 - bar(t2) / bar(t1)).min(0.999))
                    })
                    .collect()
            }
        }
    };
    let betas = if cfg.rescale_betas_zero_snr() {
        rescale_zero_terminal_snr(&betas)
    } else {
        betas
    };
    // torch's CPU cumprod accumulates in double and stores each partial product as f32.
    let mut acc = 1.0f64;
    betas
        .iter()
        .map(|b| {
            acc *= f32r(1.0 - b);
            f32r(acc)
        })
        .collect()
}

/// scheduling_ddim.py `rescale_zero_terminal_snr` (arXiv 2305.08891, algorithm 1): the last
/// timestep gets zero signal-to-noise ratio.
fn rescale_zero_terminal_snr(betas: &[f64]) -> Vec<f64> {
    let mut acc = 1.0;
    let mut sqrt_bar: Vec<f64> = betas
        .iter()
        .map(|b| {
            acc *= 1.0 - b;
            f64::sqrt(acc)
        })
        .collect();
    let (first, last) = (sqrt_bar[0], sqrt_bar[sqrt_bar.len() - 1]);
    for a in sqrt_bar.iter_mut() {
        *a = (*a - last) * first / (first - last);
    }
    let bar: Vec<f64> = sqrt_bar.iter().map(|a| a * a).collect();
    let mut out = Vec::with_capacity(bar.len());
    out.push(1.0 - bar[0]);
    for w in bar.windows(2) {
        out.push(1.0 - w[1] / w[0]);
    }
    out
}

/// σ_t = √((1 − ᾱ_t)/ᾱ_t) for every training timestep, and its log, each rounded to f32 as
/// the σ samplers compute them from torch's float32 ᾱ (`np.log` of a float32 array).
pub fn train_sigmas(alphas_cumprod: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let f32r = |x: f64| x as f32 as f64;
    let sigmas: Vec<f64> = alphas_cumprod
        .iter()
        .map(|a| f32r(((1.0 - a) / a).sqrt()))
        .collect();
    let logs = sigmas.iter().map(|s| f32r(s.ln())).collect();
    (sigmas, logs)
}

/// The inference timesteps of `steps` steps, noisiest first, before any rounding to integers.
/// `round` says whether the spacing's values are rounded (numpy `.round()`, half to even) as
/// the scheduler does for integer timesteps.
pub fn spaced_timesteps(cfg: &SchedulerConfig, steps: usize, round: bool) -> Vec<f64> {
    let t = cfg.num_train_timesteps();
    match cfg.timestep_spacing() {
        Spacing::Linspace => {
            let v = linspace(0.0, (t - 1) as f64, steps);
            v.into_iter()
                .rev()
                .map(|x| {
                    if round {
                        round_half_even(x)
                    } else {
                        x as f32 as f64
                    }
                })
                .collect()
        }
        Spacing::Leading => {
            let ratio = t / steps;
            (0..steps)
                .rev()
                .map(|i| (i * ratio + cfg.steps_offset()) as f64)
                .collect()
        }
        Spacing::Trailing => {
            let ratio = t as f64 / steps as f64;
            arange_down(t as f64, 0.0, ratio)
                .into_iter()
                .map(|x| round_half_even(x) - 1.0)
                .collect()
        }
    }
}

/// numpy's `arange(start, stop, -step)`: `ceil((stop - start) / -step)` values `start - i·step`.
pub fn arange_down(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let n = ((stop - start) / -step).ceil().max(0.0) as usize;
    (0..n).map(|i| start + i as f64 * -step).collect()
}

/// numpy's `linspace(a, b, n)`: `i·step + a`, the last value exactly `b`.
pub fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    match n {
        0 => vec![],
        1 => vec![a],
        _ => {
            let step = (b - a) / (n - 1) as f64;
            let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + a).collect();
            v[n - 1] = b;
            v
        }
    }
}

/// numpy's rounding: halves go to the even neighbour.
pub fn round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

/// numpy's `interp(x, arange(len(table)), table)`.
pub fn interp(table: &[f64], x: f64) -> f64 {
    if x <= 0.0 {
        return table[0];
    }
    let last = table.len() - 1;
    if x >= last as f64 {
        return table[last];
    }
    let lo = x.floor() as usize;
    let f = x - lo as f64;
    table[lo] + (table[lo + 1] - table[lo]) * f
}

/// Karras et al. (2022) σs between the ends of `sigmas` (scheduling_euler_discrete.py
/// `_convert_to_karras`, ρ = 7), or between the configured `sigma_min`/`sigma_max`.
pub fn karras(sigmas: &[f64], steps: usize, min: Option<f64>, max: Option<f64>) -> Vec<f64> {
    let lo = min.unwrap_or(sigmas[sigmas.len() - 1]);
    let hi = max.unwrap_or(sigmas[0]);
    let rho = 7.0;
    let (lo_inv, hi_inv) = (lo.powf(1.0 / rho), hi.powf(1.0 / rho));
    linspace(0.0, 1.0, steps)
        .into_iter()
        .map(|r| (hi_inv + r * (lo_inv - hi_inv)).powf(rho))
        .collect()
}

/// The fractional timestep whose σ is `sigma` (`_sigma_to_t`: linear in log σ between the
/// neighbouring training timesteps).
pub fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    // low_idx: the last index whose log σ is ≤ log_sigma, at most len − 2.
    let count = log_sigmas.iter().filter(|&&l| log_sigma - l >= 0.0).count();
    let low = if count == 0 {
        0
    } else {
        // `cumsum(dists >= 0).argmax()`: the first index where the running count peaks.
        let mut running = 0;
        let mut at = 0;
        for (i, &l) in log_sigmas.iter().enumerate() {
            if log_sigma - l >= 0.0 {
                running += 1;
                if running == count {
                    at = i;
                    break;
                }
            }
        }
        at
    }
    .min(log_sigmas.len() - 2);
    let (l, h) = (log_sigmas[low], log_sigmas[low + 1]);
    let w = ((l - log_sigma) / (l - h)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * (low + 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_rounding_and_ranges() {
        assert_eq!(round_half_even(811.5), 812.0);
        assert_eq!(round_half_even(812.5), 812.0);
        assert_eq!(round_half_even(-0.5), -0.0);
        assert_eq!(round_half_even(2.4999), 2.0);
        assert_eq!(round_half_even(3.5), 4.0);
        // trailing spacing at 16 steps: 1000 − 62.5·3 = 812.5 → 812 → 811 as diffusers gives.
        let v: Vec<f64> = arange_down(1000.0, 0.0, 62.5);
        assert_eq!(v.len(), 16);
        assert_eq!(round_half_even(v[3]) - 1.0, 811.0);
        assert_eq!(linspace(0.0, 999.0, 3), vec![0.0, 499.5, 999.0]);
        assert_eq!(interp(&[0.0, 10.0, 20.0], 1.25), 12.5);
    }
}

//! The samplers that work on ᾱ at integer timesteps: DDIM (scheduling_ddim.py, η = 0) and
//! PNDM in its PLMS form (scheduling_pndm.py, `skip_prk_steps`).

use super::config::{Kind, Prediction, SchedulerConfig};
use super::{tables, Scheduler, State};
use candle_core::{Result, Tensor};

/// DDIM's timesteps noisiest first; PNDM's with its second-to-last timestep repeated
/// (`plms_timesteps`: the second model call restarts the first step with an averaged output).
pub fn timesteps(cfg: &SchedulerConfig, kind: Kind, steps: usize) -> Vec<f64> {
    let t = tables::spaced_timesteps(cfg, steps, true);
    if kind != Kind::Pndm || t.len() < 2 {
        return t;
    }
    // Ascending `_timesteps[:-1] ++ _timesteps[-2:-1] ++ _timesteps[-1:]`, reversed: the
    // smallest timestep but one appears twice, the noisiest first.
    let mut asc: Vec<f64> = t.iter().rev().copied().collect();
    let n = asc.len();
    asc.insert(n - 1, asc[n - 2]);
    asc.into_iter().rev().collect()
}

/// The gap between one timestep and the next (`num_train_timesteps // num_inference_steps`).
fn gap(s: &Scheduler) -> i64 {
    (s.train_steps / s.steps) as i64
}

fn alpha_at(s: &Scheduler, t: i64) -> f64 {
    if t >= 0 {
        s.alphas_cumprod[t as usize]
    } else {
        s.final_alpha
    }
}

/// DDIMScheduler.step with η = 0.
pub fn ddim_step(s: &Scheduler, out: &Tensor, i: usize, x: &Tensor) -> Result<Tensor> {
    let t = s.timesteps[i] as i64;
    let a = alpha_at(s, t);
    let a_prev = alpha_at(s, t - gap(s));
    let (x0, eps) = match s.prediction {
        Prediction::Epsilon => (((x - (out * (1.0 - a).sqrt())?)? / a.sqrt())?, out.clone()),
        Prediction::VPrediction => (
            ((x * a.sqrt())? - (out * (1.0 - a).sqrt())?)?,
            ((out * a.sqrt())? + (x * (1.0 - a).sqrt())?)?,
        ),
    };
    // `clip_sample` clamps the x₀ estimate; ε stays as predicted.
    let x0 = match s.clip_sample {
        Some(r) => x0.clamp(-r, r)?,
        None => x0,
    };
    (x0 * a_prev.sqrt())? + (eps * (1.0 - a_prev).sqrt())?
}

/// PNDMScheduler.step_plms: linear multistep over the last four model outputs, the first
/// step taken twice (once to get a second output, then again with their mean).
pub fn plms_step(s: &mut Scheduler, out: Tensor, i: usize, x: Tensor) -> Result<Tensor> {
    let gap = gap(s);
    let mut t = s.timesteps[i] as i64;
    let mut prev_t = t - gap;
    let State::Plms {
        ets,
        counter,
        cur_sample,
    } = &mut s.state
    else {
        unreachable!("a PNDM scheduler holds PLMS state");
    };
    if *counter != 1 {
        if ets.len() > 3 {
            ets.drain(..ets.len() - 3);
        }
        ets.push(out.clone());
    } else {
        prev_t = t;
        t += gap;
    }
    let (combined, sample) = match (ets.len(), *counter) {
        (1, 0) => {
            *cur_sample = Some(x.clone());
            (out, x)
        }
        (1, 1) => {
            let sample = cur_sample.take().unwrap_or(x);
            (((out + &ets[0])? / 2.0)?, sample)
        }
        (2, _) => ((((&ets[1] * 3.0)? - &ets[0])? / 2.0)?, x),
        (3, _) => {
            let m = (((&ets[2] * 23.0)? - (&ets[1] * 16.0)?)? + (&ets[0] * 5.0)?)?;
            ((m / 12.0)?, x)
        }
        _ => {
            let n = ets.len();
            let m = ((((&ets[n - 1] * 55.0)? - (&ets[n - 2] * 59.0)?)? + (&ets[n - 3] * 37.0)?)?
                - (&ets[n - 4] * 9.0)?)?;
            ((m / 24.0)?, x)
        }
    };
    *counter += 1;
    // _get_prev_sample
    let (a, a_prev) = (alpha_at(s, t), alpha_at(s, prev_t));
    let (b, b_prev) = (1.0 - a, 1.0 - a_prev);
    let eps = match s.prediction {
        Prediction::Epsilon => combined,
        Prediction::VPrediction => ((combined * a.sqrt())? + (&sample * b.sqrt())?)?,
    };
    let sample_coeff = (a_prev / a).sqrt();
    let denom = a * b_prev.sqrt() + (a * b * a_prev).sqrt();
    (sample * sample_coeff)? - (eps * ((a_prev - a) / denom))?
}

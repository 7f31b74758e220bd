//! Every scheduler against diffusers itself: tests/data/schedulers.json, written by
//! `scripts/ai-reference` with diffusers 0.31.0, holds for each shipped configuration and step
//! count the timesteps, σs, initial noise σ and whole sampling trajectories (text-to-image,
//! and image-to-image at strength 0.6) driven by a fixed synthetic model, with Euler
//! ancestral's noise given explicitly so both sides draw the same values.

use super::{Scheduler, SchedulerConfig};
use crate::diffusion::noise::Noise;
use candle_core::{Device, Tensor};
use serde_json::Value;

const FIXTURE: &str = include_str!("../../../tests/data/schedulers.json");

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The harness's model: `0.8 · input + 0.2 · cos(t/300 + 0.1 j)`, in f32 as torch computes it.
fn model(input: &Tensor, t: f64) -> Tensor {
    let n = input.dims1().unwrap();
    let c: Vec<f32> = (0..n)
        .map(|j| (0.2 * (t / 300.0 + 0.1 * j as f64).cos()) as f32)
        .collect();
    ((input * 0.8).unwrap() + Tensor::new(c, &Device::Cpu).unwrap()).unwrap()
}

fn close(got: &[f64], want: &[f64], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    let scale = want.iter().fold(1e-3f64, |m, w| m.max(w.abs()));
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= rel * scale,
            "{what}: {got:?}\n  diffusers: {want:?}"
        );
    }
}

fn sample(s: &mut Scheduler, start: Tensor, begin: usize, noise: Vec<f32>) -> Vec<f64> {
    let mut noise = Noise::given(noise);
    let mut x = start;
    for i in begin..s.timesteps().len() {
        let t = s.timesteps()[i];
        let input = s.scale_model_input(&x, i).unwrap();
        x = s.step(&model(&input, t), i, &x, &mut noise).unwrap();
    }
    x.to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

#[test]
fn every_scheduler_matches_diffusers() {
    let fx: Value = serde_json::from_str(FIXTURE).unwrap();
    let start: Vec<f32> = floats(&fx["start"]).into_iter().map(|x| x as f32).collect();
    let img_noise: Vec<f32> = floats(&fx["img2img_noise"])
        .into_iter()
        .map(|x| x as f32)
        .collect();
    let dev = Device::Cpu;
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 40, "the fixture lost cases");
    for case in cases {
        let name = format!("{} at {} steps", case["name"], case["steps"]);
        let cfg: SchedulerConfig = serde_json::from_value(case["config"].clone()).unwrap();
        cfg.check()
            .unwrap_or_else(|e| panic!("{name}: refused: {e}"));
        let steps = case["steps"].as_u64().unwrap() as usize;
        let mut s = Scheduler::new(&cfg, steps);
        close(
            s.timesteps(),
            &floats(&case["timesteps"]),
            1e-6,
            &format!("{name}: timesteps"),
        );
        let sigmas = floats(&case["sigmas"]);
        if !sigmas.is_empty() {
            close(s.sigmas(), &sigmas, 1e-5, &format!("{name}: sigmas"));
        }
        let init = case["init_noise_sigma"].as_f64().unwrap();
        assert!(
            (s.init_noise_sigma() - init).abs() <= 1e-5 * init.max(1.0),
            "{name}: init_noise_sigma {} vs {init}",
            s.init_noise_sigma()
        );
        let flat = |v: &Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .flat_map(floats)
                .map(|x| x as f32)
                .collect()
        };
        let x = (Tensor::new(start.clone(), &dev).unwrap() * s.init_noise_sigma()).unwrap();
        let got = sample(&mut s, x, 0, flat(&case["noise"]));
        close(
            &got,
            &floats(&case["final"]),
            1e-4,
            &format!("{name}: final sample"),
        );
        if let Some(img) = case.get("img2img") {
            let mut s = Scheduler::new(&cfg, steps);
            let strength = img["strength"].as_f64().unwrap();
            let begin = s.start_for_strength(strength).unwrap();
            assert_eq!(
                begin as u64,
                img["begin"].as_u64().unwrap(),
                "{name}: img2img start"
            );
            let x0 = Tensor::new(start.clone(), &dev).unwrap();
            let eps = Tensor::new(img_noise.clone(), &dev).unwrap();
            let x = s.add_noise(&x0, &eps, begin).unwrap();
            let got = sample(&mut s, x, begin, flat(&img["noise"]));
            close(
                &got,
                &floats(&img["final"]),
                1e-4,
                &format!("{name}: img2img final"),
            );
        }
    }
}

#[test]
fn no_step_left_is_refused_as_diffusers_refuses_it() {
    let cfg: SchedulerConfig =
        serde_json::from_str(r#"{"_class_name": "PNDMScheduler", "skip_prk_steps": true}"#)
            .unwrap();
    let s = Scheduler::new(&cfg, 4);
    assert_eq!(s.start_for_strength(0.2), None, "int(4 × 0.2) = 0 steps");
    assert_eq!(s.start_for_strength(0.25), Some(3));
    assert_eq!(s.start_for_strength(1.0), Some(0));
}

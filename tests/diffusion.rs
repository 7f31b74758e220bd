//! The diffusion models on the CPU: tiny random-weight models written in the diffusers
//! layout, loaded back through the same code as real ones.

use gpuworker::diffusion::model::{Model, Request, Task};
use gpuworker::diffusion::picture::Rgb;
use gpuworker::diffusion::tiny::{self, TinyKind};
use std::path::PathBuf;

fn model(kind: TinyKind, name: &str) -> (tempdir::Dir, Model) {
    let dir = tempdir::Dir::new(name);
    let path = dir.0.join("model");
    tiny::write(&path, kind, 7).unwrap();
    let m = Model::load(&path, gpuworker::diffusion::device(None).unwrap()).unwrap();
    (dir, m)
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!("gpuworker-diffusion-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn t2i(seed: u64, prompt: &str) -> Request {
    Request {
        prompt: prompt.into(),
        negative_prompt: String::new(),
        guidance_scale: 7.5,
        steps: 3,
        seed,
        task: Task::Text { width: 64, height: 48 },
    }
}

#[test]
fn text_to_image_is_deterministic_by_seed_and_prompt() {
    let (_d, m) = model(TinyKind::Sd, "t2i");
    let a = m.generate(&t2i(5, "a cat and the dog")).unwrap();
    assert_eq!((a.width, a.height), (64, 48));
    assert_eq!(a, m.generate(&t2i(5, "a cat and the dog")).unwrap());
    assert_ne!(a, m.generate(&t2i(6, "a cat and the dog")).unwrap());
    assert_ne!(a, m.generate(&t2i(5, "a red fox")).unwrap());
    let _: PathBuf = m.files.dir.clone();
}

//! `gpuworker probe`.

use gpuworker::backend::{cpu, cuda};

pub fn run(json: bool) -> anyhow::Result<i32> {
    let c = cpu::probe();
    let g = cuda::probe();
    if json {
        let v = serde_json::json!({ "cpu": c, "cuda": g });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!("backend  status");
    println!(
        "cpu      available: {} cores, {} SIMD, scaler {}, decoders [{}], encoders [{}], {}",
        c.cores,
        c.simd,
        c.scaler,
        c.decoders.join(", "),
        c.encoders.join(", "),
        c.ffmpeg
    );
    println!(
        "cuda     {}",
        g.reason.as_deref().unwrap_or(
            "available: scaling on the GPU (--scaler cuda); NVDEC/NVENC stages not built yet"
        )
    );
    for d in &g.devices {
        println!(
            "           GPU {}: {}, compute {}, {} MiB",
            d.index, d.name, d.compute_capability, d.memory_mib
        );
    }
    for l in &g.libraries {
        println!(
            "           {:<24} {:<12} {}",
            l.name,
            l.role,
            if l.found { "found" } else { "not found" }
        );
    }
    println!(
        "           kernels built in: {}",
        if g.kernel_cubins.is_empty() {
            "source only (compiled with libnvrtc at run time)".to_string()
        } else {
            format!("cubins for {} + PTX", g.kernel_cubins.join(", "))
        }
    );
    Ok(0)
}

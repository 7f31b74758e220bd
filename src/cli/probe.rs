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
    for (input, path) in &c.input_paths {
        println!("         input {input}: {path}");
    }
    println!(
        "cuda     {}",
        g.reason
            .as_deref()
            .unwrap_or("available (--scaler cuda, bench --device cuda:N)")
    );
    for d in &g.devices {
        println!(
            "           GPU {}: {}, compute {}, {} MiB; sessions run {}",
            d.index, d.name, d.compute_capability, d.memory_mib, d.path
        );
        let e = &d.engines;
        let dec: Vec<String> = e
            .nvdec
            .iter()
            .map(|c| format!("{} up to {}x{}", c.codec, c.max_width, c.max_height))
            .collect();
        println!(
            "             NVDEC: {}",
            if dec.is_empty() {
                e.nvdec_reason.clone().unwrap_or_else(|| "none".into())
            } else {
                dec.join(", ")
            }
        );
        let limit = e.nvenc_session_limit.map_or_else(
            || "no session limit found".to_string(),
            |n| format!("{n} concurrent sessions"),
        );
        println!(
            "             NVENC: {}",
            if e.nvenc.is_empty() {
                format!(
                    "none ({})",
                    e.nvenc_reason.as_deref().unwrap_or("no codec reported")
                )
            } else {
                format!("{}; {limit}", e.nvenc.join(", "))
            }
        );
        println!(
            "             kernel: {}",
            e.kernel
                .as_deref()
                .or(e.kernel_reason.as_deref())
                .unwrap_or("not probed")
        );
    }
    if let Some(v) = &g.driver_cuda {
        println!("           driver: CUDA {v}");
    }
    for l in &g.libraries {
        println!(
            "           {:<24} {:<12} {}",
            l.name,
            l.role,
            if l.found { "found" } else { "not found" }
        );
    }
    if let Some(why) = &g.video_libraries {
        println!("           note: {why}");
    }
    println!(
        "           kernels built in: {}",
        if g.kernel_cubins.is_empty() {
            "source only (compiled with libnvrtc at run time)".to_string()
        } else {
            format!(
                "cubins for {} + PTX {}",
                g.kernel_cubins.join(", "),
                cuda::kernels::PTX_ARCH
            )
        }
    );
    Ok(0)
}

//! Build script: compiles the CPU twins of the CUDA kernels (the `.cu` sources as C++, see
//! kernels/twin/) and prepares each kernel's self-contained source (header inlined) for
//! NVRTC at run time. No NVIDIA library or compiler is needed to build.

use std::path::PathBuf;

/// Kernel sources and the local headers they include.
const KERNELS: &[(&str, &[&str])] = &[("scale_nv12.cu", &["scale_nv12.h"])];

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));

    for (cu, headers) in KERNELS {
        let mut src = String::new();
        for h in *headers {
            src += &std::fs::read_to_string(format!("kernels/{h}")).expect("kernel header");
            src.push('\n');
        }
        let body = std::fs::read_to_string(format!("kernels/{cu}")).expect("kernel source");
        for line in body.lines() {
            let included = headers
                .iter()
                .any(|h| line.trim() == format!("#include \"{h}\""));
            if !included {
                src += line;
                src.push('\n');
            }
        }
        let name = cu.replace(".cu", ".combined.cu");
        std::fs::write(out.join(name), src).expect("write combined kernel source");
    }

    cc::Build::new()
        .cpp(true)
        .file("kernels/twin/twin.cpp")
        .include("kernels")
        .flag_if_supported("-std=c++17")
        .flag_if_supported("-Wno-unused-parameter")
        .opt_level(2)
        .compile("gpuworker_twin");
}

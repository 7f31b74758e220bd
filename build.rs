//! Build script for the CUDA kernels in kernels/:
//! - each kernel's self-contained source (local headers inlined), embedded for NVRTC;
//! - when NVRTC is present at build time (scripts/setup installs it into .venv from PyPI, or
//!   GPUWORKER_NVRTC_LIB names libnvrtc.so), cubins for every target architecture plus PTX,
//!   embedded so that a machine with only the NVIDIA driver runs them; without it, a warning
//!   and source only;
//! - the CPU twins (the `.cu` sources compiled as C++ through kernels/twin/shim.h).
//!
//! No NVIDIA library or compiler is needed to build.

use std::path::{Path, PathBuf};

/// Architectures with an embedded cubin: every GPU generation an operator runs, Pascal
/// (GTX 10xx, still common on Livepeer) to Blackwell. A cubin loads only on the same major
/// version with a minor version at least its own (real-gpu-rules.md R2), so each major needs
/// its lowest minor: 7.0 V100, 7.5 T4/RTX 20xx, 8.0 A100/A30, 8.6 A10/RTX 30xx, 8.9 L4/
/// RTX 40xx, 9.0 H100/H200, 10.0 B200, 12.0 RTX 50xx/RTX PRO. The crate reads this list from
/// the generated kernels_embedded.rs (`ARCHITECTURES`).
const ARCHITECTURES: &[&str] = &[
    "sm_61", "sm_70", "sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120",
];
/// PTX for the newest architecture, which the driver compiles for later GPUs (if it supports
/// the PTX ISA version: NVRTC 12.9 writes 8.8, which needs a CUDA 12.9 driver, R575+).
const PTX_ARCH: &str = "compute_120";

/// Kernel sources and the local headers they include.
const KERNELS: &[(&str, &[&str])] = &[
    ("scale_nv12.cu", &["scale_nv12.h"]),
    ("color.cu", &["color.h"]),
];

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-env-changed=GPUWORKER_NVRTC_LIB");
    println!("cargo:rerun-if-changed=.venv");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let nvrtc = find_nvrtc().and_then(|p| match nvrtc::Nvrtc::load(&p) {
        Ok(n) => Some(n),
        Err(e) => {
            println!("cargo:warning=cannot load {}: {e}", p.display());
            None
        }
    });
    println!("cargo:rerun-if-env-changed=GPUWORKER_ALLOW_SOURCE_ONLY_KERNELS");
    if nvrtc.is_none() {
        // A release binary without cubins works only where libnvrtc is installed, which the
        // NVIDIA driver does not bring: it would fail on most GPU machines.
        let release = std::env::var("PROFILE").as_deref() == Ok("release");
        let allowed = std::env::var_os("GPUWORKER_ALLOW_SOURCE_ONLY_KERNELS").is_some();
        if release && !allowed {
            panic!(
                "NVRTC not found at build time: a release build must embed the CUDA kernels' \
                 cubins. Run scripts/setup (it installs NVRTC from PyPI into .venv) or set \
                 GPUWORKER_NVRTC_LIB=/path/to/libnvrtc.so.12; GPUWORKER_ALLOW_SOURCE_ONLY_KERNELS=1 \
                 builds without them."
            );
        }
        println!(
            "cargo:warning=NVRTC not found at build time: CUDA kernels are embedded as source \
             only (a GPU machine then needs libnvrtc). Run scripts/setup to embed cubins."
        );
    }
    let mut embedded = String::from("/// Architectures that get a cubin (build.rs).\n");
    embedded += &format!("pub const ARCHITECTURES: &[&str] = &{ARCHITECTURES:?};\n");
    embedded += &format!(
        "/// The architecture of the embedded PTX.\npub const PTX_ARCH: &str = {PTX_ARCH:?};\n"
    );
    embedded += "/// (kernel, architecture, cubin or PTX) built by build.rs.\n";
    embedded += "pub const EMBEDDED: &[(&str, &str, &[u8])] = &[\n";

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
        std::fs::write(out.join(&name), &src).expect("write combined kernel source");
        if let Some(nv) = &nvrtc {
            let stem = cu.trim_end_matches(".cu");
            for arch in ARCHITECTURES.iter().chain([&PTX_ARCH]) {
                let bin = nv
                    .compile(&src, cu, arch)
                    .unwrap_or_else(|e| panic!("kernels/{cu} for {arch}: {e}"));
                let file = out.join(format!("{stem}.{arch}.bin"));
                std::fs::write(&file, bin).expect("write cubin");
                embedded += &format!(
                    "    ({stem:?}, {arch:?}, include_bytes!({:?})),\n",
                    file.display().to_string()
                );
            }
        }
    }
    embedded += "];\n";
    std::fs::write(out.join("kernels_embedded.rs"), embedded).expect("write kernels_embedded.rs");

    build_simulated_driver(&out);
    build_protocol();

    cc::Build::new()
        .cpp(true)
        .file("kernels/twin/twin.cpp")
        .include("kernels")
        .flag_if_supported("-std=c++17")
        .flag_if_supported("-Wno-unused-parameter")
        // The float conversions must round each operation as the Rust reference does.
        .flag_if_supported("-ffp-contract=off")
        .opt_level(2)
        .compile("gpuworker_twin");
}

/// The simulated NVIDIA driver libraries for tests (tests/sim/): libcuda.so.1 (device memory
/// is host memory, launches run the kernels' CPU twins), libnvcuvid.so.1 and
/// libnvidia-encode.so.1 (NVDEC and NVENC over libavcodec; they need the nv-codec-headers of
/// libffmpeg-nvenc-dev). Tests find them through GPUWORKER_SIM_DIR and LD_LIBRARY_PATH.
fn build_simulated_driver(out: &Path) {
    println!("cargo:rerun-if-changed=tests/sim");
    let dir = out.join("sim");
    std::fs::create_dir_all(&dir).expect("create sim dir");
    let compiler = cc::Build::new().cpp(true).get_compiler();
    let build = |lib: &str, src: &str, extra: &[&str]| {
        let status = compiler
            .to_command()
            .args(["-shared", "-fPIC", "-O2", "-std=c++17", "-ffp-contract=off"])
            .arg("-o")
            .arg(dir.join(lib))
            .arg(src)
            .args(extra)
            .status()
            .expect("run the C++ compiler for the simulated driver");
        assert!(status.success(), "building {src} failed");
    };
    build("libcuda.so.1", "tests/sim/libcuda.cpp", &[]);
    let link = dir.join("libcuda.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("libcuda.so.1", &link).expect("symlink libcuda.so");
    if Path::new("/usr/include/ffnvcodec/nvEncodeAPI.h").exists() {
        let libs = [
            "-L",
            dir.to_str().expect("utf-8 OUT_DIR"),
            "-Wl,-rpath,$ORIGIN",
            "-lcuda",
            "-lavcodec",
            "-lavutil",
        ];
        build("libnvcuvid.so.1", "tests/sim/libnvcuvid.cpp", &libs);
        build(
            "libnvidia-encode.so.1",
            "tests/sim/libnvidia-encode.cpp",
            &libs,
        );
    } else {
        println!(
            "cargo:warning=nv-codec-headers missing (apt-get install libffmpeg-nvenc-dev, \
             scripts/setup does): the simulated NVDEC and NVENC are not built"
        );
    }
    println!("cargo:rustc-env=GPUWORKER_SIM_DIR={}", dir.display());
}

/// The go-livepeer protocol as prost messages and tonic clients and servers, compiled with
/// protox (no protoc needed): our subset (proto/lp_rpc.proto), used by the transcoder, and
/// upstream's file verbatim (proto/upstream/), used by the test orchestrator so that the two
/// sides of every loopback test speak through code generated from different files.
fn build_protocol() {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for (file, dir, sub) in [
        ("proto/lp_rpc.proto", "proto", "ours"),
        ("proto/upstream/lp_rpc.proto", "proto/upstream", "upstream"),
    ] {
        let fds = protox::compile([file], [dir]).unwrap_or_else(|e| panic!("compile {file}: {e}"));
        let dest = out.join(sub);
        std::fs::create_dir_all(&dest).expect("proto output dir");
        tonic_build::configure()
            .build_client(true)
            .build_server(true)
            .out_dir(&dest)
            .compile_fds(fds)
            .unwrap_or_else(|e| panic!("generate code for {file}: {e}"));
    }
}

/// libnvrtc: GPUWORKER_NVRTC_LIB, else the PyPI wheel in the project's .venv.
fn find_nvrtc() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GPUWORKER_NVRTC_LIB") {
        return Some(PathBuf::from(p));
    }
    let lib = Path::new(".venv/lib");
    let py = std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))?;
    let p = py
        .path()
        .join("site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12");
    p.exists().then(|| std::fs::canonicalize(p).ok()).flatten()
}

/// The few NVRTC entry points the build needs, loaded from a path.
mod nvrtc {
    use std::ffi::{c_char, c_int, c_void, CString};
    use std::path::Path;

    type Program = *mut c_void;
    type Create = unsafe extern "C" fn(
        *mut Program,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> c_int;
    type Compile = unsafe extern "C" fn(Program, c_int, *const *const c_char) -> c_int;
    type Size = unsafe extern "C" fn(Program, *mut usize) -> c_int;
    type Get = unsafe extern "C" fn(Program, *mut c_char) -> c_int;
    type Destroy = unsafe extern "C" fn(*mut Program) -> c_int;

    pub struct Nvrtc {
        _lib: libloading::Library,
        create: Create,
        compile: Compile,
        log_size: Size,
        log: Get,
        cubin_size: Size,
        cubin: Get,
        ptx_size: Size,
        ptx: Get,
        destroy: Destroy,
    }

    impl Nvrtc {
        pub fn load(path: &Path) -> Result<Self, libloading::Error> {
            // SAFETY: loading libnvrtc runs no initialiser with side effects beyond its own
            // state; each symbol is looked up with the signature of the NVRTC C API
            // (nvrtc.h), and the function pointers do not outlive `_lib`, which is kept.
            unsafe {
                let lib = libloading::Library::new(path)?;
                Ok(Nvrtc {
                    create: *lib.get(b"nvrtcCreateProgram")?,
                    compile: *lib.get(b"nvrtcCompileProgram")?,
                    log_size: *lib.get(b"nvrtcGetProgramLogSize")?,
                    log: *lib.get(b"nvrtcGetProgramLog")?,
                    cubin_size: *lib.get(b"nvrtcGetCUBINSize")?,
                    cubin: *lib.get(b"nvrtcGetCUBIN")?,
                    ptx_size: *lib.get(b"nvrtcGetPTXSize")?,
                    ptx: *lib.get(b"nvrtcGetPTX")?,
                    destroy: *lib.get(b"nvrtcDestroyProgram")?,
                    _lib: lib,
                })
            }
        }

        /// A cubin for `sm_XX`, or PTX for `compute_XX`.
        pub fn compile(&self, src: &str, name: &str, arch: &str) -> Result<Vec<u8>, String> {
            let (src, name) = (CString::new(src).unwrap(), CString::new(name).unwrap());
            let opts: Vec<CString> = [format!("--gpu-architecture={arch}"), "--std=c++17".into()]
                .into_iter()
                .map(|o| CString::new(o).unwrap())
                .collect();
            let opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
            let ptx = arch.starts_with("compute_");
            let mut prog: Program = std::ptr::null_mut();
            // SAFETY: every pointer passed is valid for the call (CStrings and vectors live to
            // the end of this function); the program is destroyed exactly once, below.
            unsafe {
                let r = (self.create)(
                    &mut prog,
                    src.as_ptr(),
                    name.as_ptr(),
                    0,
                    std::ptr::null(),
                    std::ptr::null(),
                );
                if r != 0 {
                    return Err(format!("nvrtcCreateProgram failed ({r})"));
                }
                let r = (self.compile)(prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr());
                let result = if r != 0 {
                    let mut n = 0usize;
                    (self.log_size)(prog, &mut n);
                    let mut log = vec![0u8; n];
                    (self.log)(prog, log.as_mut_ptr() as *mut c_char);
                    Err(String::from_utf8_lossy(&log)
                        .trim_end_matches('\0')
                        .to_string())
                } else {
                    let (size, get) = if ptx {
                        (self.ptx_size, self.ptx)
                    } else {
                        (self.cubin_size, self.cubin)
                    };
                    let mut n = 0usize;
                    size(prog, &mut n);
                    let mut buf = vec![0u8; n];
                    get(prog, buf.as_mut_ptr() as *mut c_char);
                    Ok(buf)
                };
                (self.destroy)(&mut prog);
                result
            }
        }
    }
}

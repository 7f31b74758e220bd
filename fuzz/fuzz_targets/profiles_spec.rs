//! Profiles as a request names them (serve's `Profiles` header or query, `--profiles`):
//! transcodingOptions JSON or a comma list of preset names.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = gpuworker::net::serve::request_profiles(Some(spec), None, &[]) {
        for p in &list {
            let _ = p.output_size(1280, 720);
        }
    }
});

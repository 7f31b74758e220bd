//! A transcode result as the orchestrator receives it: the first line is the Content-Type
//! header, the rest the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let Ok(ctype) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let body = bytes::Bytes::copy_from_slice(data.get(split + 1..).unwrap_or(&[]));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _ = rt.block_on(gpuworker::net::results::parse(ctype, body));
});

//! Two MPEG-7 signatures as a gateway receives them from transcoders (untrusted bytes),
//! compared as lpms does: any input must give a verdict or InvalidSignData, never a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = usize::from(data[0]) * data.len() / 256;
    let (a, b) = data[1..].split_at(split.min(data.len() - 1));
    let _ = gpuworker::mpeg7::compare(a, b);
});

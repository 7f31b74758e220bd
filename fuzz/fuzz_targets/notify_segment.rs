//! A NotifySegment as it arrives from an orchestrator: protobuf decode, then everything the
//! transcoder derives from it before downloading (profiles, capability check, clip).
#![no_main]

use gpuworker::net::{capabilities, profiles, proto};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(n) = proto::NotifySegment::decode(data) else {
        return;
    };
    let seg = n.seg_data.unwrap_or_default();
    if let Ok(list) = profiles::from_segdata(&seg) {
        for p in &list {
            // The sizes every rendition would be encoded at, for any source.
            let _ = p.output_size(1920, 1080);
            let _ = p.output_size(1, 1);
            let _ = p.frame_rate();
        }
    }
    if let Some(c) = &seg.capabilities {
        let _ = capabilities::covers(&capabilities::bitstring(capabilities::DEFAULT), &c.bitstring);
        let _ = capabilities::list(&c.bitstring);
        let _ = capabilities::version_compatible(
            c.constraints.as_ref().map_or("", |k| k.min_version.as_str()),
            &c.version,
        );
    }
    if let Some(p) = &seg.segment_parameters {
        let _ = gpuworker::pipeline::Clip::new(p.from, p.to);
    }
});

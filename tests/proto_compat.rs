//! Our protocol file (proto/lp_rpc.proto, a subset) against go-livepeer's
//! (proto/upstream/lp_rpc.proto, verbatim): every field we have must have upstream's number,
//! name, type and cardinality; messages encoded by our generated code must decode with a
//! schema compiled from the upstream file to the same values, and back.

use gpuworker::net::proto;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value,
};

fn pool(file: &str, dir: &str) -> DescriptorPool {
    let root = env!("CARGO_MANIFEST_DIR");
    let fds = protox::compile([format!("{root}/{dir}/{file}")], [format!("{root}/{dir}")])
        .expect("the proto file compiles");
    DescriptorPool::from_file_descriptor_set(fds).expect("descriptor pool")
}

fn upstream() -> DescriptorPool {
    pool("lp_rpc.proto", "proto/upstream")
}

fn ours() -> DescriptorPool {
    pool("lp_rpc.proto", "proto")
}

fn kind_name(k: &Kind) -> String {
    match k {
        Kind::Message(m) => format!("message {}", m.full_name()),
        Kind::Enum(e) => format!("enum {}", e.full_name()),
        other => format!("{other:?}"),
    }
}

fn check_message(ours: &MessageDescriptor, up: &MessageDescriptor, errors: &mut Vec<String>) {
    for f in ours.fields() {
        let Some(u) = up.get_field(f.number()) else {
            errors.push(format!(
                "{}: field {} = {} is not upstream",
                ours.full_name(),
                f.name(),
                f.number()
            ));
            continue;
        };
        if u.name() != f.name()
            || kind_name(&u.kind()) != kind_name(&f.kind())
            || u.is_list() != f.is_list()
            || u.is_map() != f.is_map()
        {
            errors.push(format!(
                "{}.{} = {}: ours {} {}, upstream {} {}",
                ours.full_name(),
                f.name(),
                f.number(),
                if f.is_list() { "repeated" } else { "" },
                kind_name(&f.kind()),
                if u.is_list() { "repeated" } else { "" },
                kind_name(&u.kind())
            ));
        }
    }
}

#[test]
fn every_field_of_ours_matches_upstream() {
    let (ours, up) = (ours(), upstream());
    let mut errors = Vec::new();
    let mut checked = 0;
    for m in ours.all_messages() {
        match up.get_message_by_name(m.full_name()) {
            Some(u) => {
                check_message(&m, &u, &mut errors);
                checked += 1;
            }
            None => errors.push(format!("message {} is not upstream", m.full_name())),
        }
    }
    for e in ours.all_enums() {
        let u = up.get_enum_by_name(e.full_name()).expect("enum upstream");
        for v in e.values() {
            let uv = u.get_value(v.number());
            if uv.map(|x| x.name().to_string()) != Some(v.name().to_string()) {
                errors.push(format!(
                    "{}.{} = {} differs upstream",
                    e.full_name(),
                    v.name(),
                    v.number()
                ));
            }
        }
    }
    let svc = up
        .get_service_by_name("net.Transcoder")
        .expect("upstream service");
    let rpc = svc
        .methods()
        .find(|m| m.name() == "RegisterTranscoder")
        .expect("rpc");
    assert!(rpc.is_server_streaming() && !rpc.is_client_streaming());
    assert_eq!(rpc.input().full_name(), "net.RegisterRequest");
    assert_eq!(rpc.output().full_name(), "net.NotifySegment");
    // Every service and method of ours is upstream's, with the same messages and streaming.
    for s in ours.services() {
        let u = up
            .get_service_by_name(s.full_name())
            .unwrap_or_else(|| panic!("service {} is not upstream", s.full_name()));
        for m in s.methods() {
            let um = u
                .methods()
                .find(|x| x.name() == m.name())
                .unwrap_or_else(|| panic!("{}.{} is not upstream", s.full_name(), m.name()));
            assert_eq!(um.input().full_name(), m.input().full_name());
            assert_eq!(um.output().full_name(), m.output().full_name());
            assert_eq!(um.is_server_streaming(), m.is_server_streaming());
            assert_eq!(um.is_client_streaming(), m.is_client_streaming());
        }
    }
    assert!(ours.get_service_by_name("net.AIWorker").is_some());
    assert!(checked >= 15, "only {checked} messages compared");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

fn sample() -> proto::NotifySegment {
    proto::NotifySegment {
        url: "https://127.0.0.1:8935/stream/abc/7.tempfile".into(),
        task_id: 42,
        orch_id: "offchain".into(),
        profiles: b"invalid".to_vec(),
        seg_data: Some(proto::SegData {
            manifest_id: b"abc".to_vec(),
            seq: 7,
            duration: 2000,
            calc_perceptual_hash: true,
            force_session_reinit: true,
            capabilities: Some(gpuworker::net::capabilities::message(
                gpuworker::net::capabilities::DEFAULT,
                "0.9.1",
            )),
            auth_token: Some(proto::AuthToken {
                token: vec![1, 2, 3],
                session_id: "abc".into(),
                expiration: 1_700_000_000,
            }),
            full_profiles3: vec![proto::VideoProfile {
                name: "P360p".into(),
                width: 640,
                height: 360,
                bitrate: 1_200_000,
                fps: 30000,
                fps_den: 1001,
                format: proto::video_profile::Format::Mp4 as i32,
                profile: proto::video_profile::Profile::H264High as i32,
                gop: 2000,
                encoder: proto::video_profile::VideoCodec::H264 as i32,
                color_depth: 8,
                chroma_format: proto::video_profile::ChromaSubsampling::Chroma420 as i32,
                quality: 23,
            }],
            full_profiles: vec![proto::VideoProfile {
                name: "old".into(),
                ..Default::default()
            }],
            segment_parameters: Some(proto::SegParameters {
                from: 100,
                to: 1900,
            }),
            ..Default::default()
        }),
    }
}

fn field<'a>(m: &'a DynamicMessage, name: &str) -> std::borrow::Cow<'a, Value> {
    m.get_field_by_name(name)
        .unwrap_or_else(|| panic!("no field {name}"))
}

#[test]
fn our_messages_decode_with_the_upstream_schema_and_back() {
    let up = upstream();
    let desc = up.get_message_by_name("net.NotifySegment").unwrap();
    let ours = sample();
    let bytes = ours.encode_to_vec();
    let dm = DynamicMessage::decode(desc.clone(), bytes.as_slice()).expect("upstream decodes ours");
    assert_eq!(
        dm.unknown_fields().count(),
        0,
        "fields upstream does not know"
    );
    assert_eq!(field(&dm, "url").as_str(), Some(ours.url.as_str()));
    assert_eq!(field(&dm, "taskId").as_i64(), Some(42));
    assert_eq!(field(&dm, "orchId").as_str(), Some("offchain"));
    let seg = field(&dm, "segData").as_message().unwrap().clone();
    assert_eq!(field(&seg, "seq").as_i64(), Some(7));
    assert_eq!(field(&seg, "duration").as_i32(), Some(2000));
    assert_eq!(field(&seg, "ForceSessionReinit").as_bool(), Some(true));
    let auth = field(&seg, "auth_token").as_message().unwrap().clone();
    assert_eq!(field(&auth, "session_id").as_str(), Some("abc"));
    let p3 = field(&seg, "fullProfiles3").as_list().unwrap().to_vec();
    let p = p3[0].as_message().unwrap();
    assert_eq!(field(p, "fpsDen").as_u32(), Some(1001));
    assert_eq!(field(p, "gop").as_i32(), Some(2000));
    assert_eq!(field(p, "format").as_enum_number(), Some(1));
    assert_eq!(field(p, "profile").as_enum_number(), Some(3));
    let caps = field(&seg, "capabilities").as_message().unwrap().clone();
    let bits: Vec<u64> = field(&caps, "bitstring")
        .as_list()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        bits,
        gpuworker::net::capabilities::message(gpuworker::net::capabilities::DEFAULT, "0.9.1")
            .bitstring
    );

    // Upstream's encoding (including fields we do not model) decodes with ours to the same
    // values; the extra fields are skipped.
    let mut back = dm.clone();
    let mut seg_up = seg.clone();
    let storage = up.get_message_by_name("net.OSInfo").unwrap();
    let mut os = DynamicMessage::new(storage);
    os.set_field_by_name("storageType", Value::EnumNumber(1));
    seg_up.set_field_by_name("storage", Value::List(vec![Value::Message(os)]));
    seg_up.set_field_by_name("sig", Value::Bytes(vec![9; 65].into()));
    back.set_field_by_name("segData", Value::Message(seg_up));
    let decoded = proto::NotifySegment::decode(back.encode_to_vec().as_slice())
        .expect("ours decodes upstream");
    assert_eq!(decoded, ours);

    let reg = up.get_message_by_name("net.RegisterRequest").unwrap();
    let r = proto::RegisterRequest {
        secret: "s".into(),
        capacity: 5,
        capabilities: Some(gpuworker::net::capabilities::message(
            gpuworker::net::capabilities::DEFAULT,
            "0.9.1",
        )),
    };
    let dm = DynamicMessage::decode(reg, r.encode_to_vec().as_slice()).unwrap();
    assert_eq!(field(&dm, "capacity").as_i64(), Some(5));
    assert_eq!(
        proto::RegisterRequest::decode(dm.encode_to_vec().as_slice()).unwrap(),
        r
    );
    let _ = dm.descriptor();
}

#[test]
fn ai_worker_messages_cross_both_ways() {
    let up = upstream();
    let req = proto::RegisterAiWorkerRequest {
        secret: "s".into(),
        capabilities: Some(gpuworker::net::capabilities::message(&[27, 28], "0.9.1")),
        hardware: vec![proto::HardwareInformation {
            pipeline: "text-to-image".into(),
            model_id: "stabilityai/sd-turbo".into(),
            gpu_info: [(
                "0".to_string(),
                proto::GpuComputeInfo {
                    id: "GPU-1".into(),
                    name: "NVIDIA L4".into(),
                    major: 8,
                    minor: 9,
                    memory_free: 1 << 30,
                    memory_total: 24 << 30,
                },
            )]
            .into(),
        }],
    };
    let desc = up
        .get_message_by_name("net.RegisterAIWorkerRequest")
        .unwrap();
    let dm = DynamicMessage::decode(desc, req.encode_to_vec().as_slice()).unwrap();
    assert_eq!(dm.unknown_fields().count(), 0);
    let hw = field(&dm, "hardware").as_list().unwrap().to_vec();
    let hw = hw[0].as_message().unwrap();
    assert_eq!(field(hw, "model_id").as_str(), Some("stabilityai/sd-turbo"));
    assert_eq!(
        proto::RegisterAiWorkerRequest::decode(dm.encode_to_vec().as_slice()).unwrap(),
        req
    );
    let job = proto::NotifyAiJob {
        ai_job_data: Some(proto::AiJobData {
            pipeline: "text-to-image".into(),
            request_data: br#"{"prompt":"x"}"#.to_vec(),
        }),
        task_id: 9,
    };
    let desc = up.get_message_by_name("net.NotifyAIJob").unwrap();
    let dm = DynamicMessage::decode(desc, job.encode_to_vec().as_slice()).unwrap();
    assert_eq!(field(&dm, "taskId").as_i64(), Some(9));
    assert_eq!(
        proto::NotifyAiJob::decode(dm.encode_to_vec().as_slice()).unwrap(),
        job
    );
}

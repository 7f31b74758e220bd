//! `gpuworker ai` on loopback, driven like go-livepeer's AI worker drives the Python runner:
//! the three generate routes with JSON and multipart bodies, images checked with ffprobe,
//! seeds and determinism, every refusal with the schema's status and envelope, the memory
//! guard, auth, and the info routes.

mod common;

use common::scratch;
use common::server::{self, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A tiny model of `kind` under `dir`, written by the CLI as a user would.
fn model(dir: &Path, kind: &str) -> PathBuf {
    let path = dir.join(format!("tiny-{kind}"));
    let out = common::gpuworker(&["ai-testmodel", path.to_str().unwrap(), "--kind", kind]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn serve(pipeline: &str, model: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "ai",
        "--pipeline",
        pipeline,
        "--model",
        model.to_str().unwrap(),
    ];
    args.extend(extra);
    server::start(&args)
}

async fn post_json(base: &str, route: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{route}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// A multipart form with text fields and one `image` file part.
async fn post_form(
    base: &str,
    route: &str,
    fields: &[(&str, &str)],
    image: Option<&[u8]>,
) -> (u16, Value) {
    let boundary = "gpuworkerTestBoundary7d1";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some(img) = image {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; \
                 filename=\"in.png\"\r\nContent-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(img);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let r = reqwest::Client::new()
        .post(format!("{base}{route}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Writes the data URL's PNG to `path` and returns ffprobe's (codec, width, height).
fn probe_png(url: &str, path: &Path) -> (String, u32, u32) {
    let bytes = gpuworker::diffusion::picture::data_url_bytes(url).expect("a base64 data URL");
    assert!(url.starts_with("data:image/png;base64,"));
    std::fs::write(path, bytes).unwrap();
    let get = |e: &str| common::probe_video(path, "stream", e);
    (
        get("codec_name"),
        get("width").parse().unwrap(),
        get("height").parse().unwrap(),
    )
}

/// A `w`x`h` PNG made by ffmpeg's test pattern.
fn test_png(dir: &Path, w: u32, h: u32) -> Vec<u8> {
    let p = dir.join(format!("in-{w}x{h}.png"));
    common::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={w}x{h}"),
        "-frames:v",
        "1",
        p.to_str().unwrap(),
    ]);
    std::fs::read(p).unwrap()
}

fn msg(v: &Value) -> &str {
    v["detail"]["msg"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail.msg in {v}"))
}

#[test]
fn text_to_image_answers_like_the_runner() {
    let dir = scratch("ai-t2i");
    let m = model(&dir, "sd");
    let s = serve(
        "text-to-image",
        &m,
        &[
            "--model-id",
            "tiny/sd",
            "--max-size",
            "256",
            "--max-steps",
            "8",
        ],
    );
    rt().block_on(async {
        let base = &s.base;
        let req = json!({"prompt": "a cat and the dog", "width": 64, "height": 48,
                         "num_inference_steps": 3, "seed": 11, "num_images_per_prompt": 2});
        let (st, a) = post_json(base, "/text-to-image", req.clone()).await;
        assert_eq!(st, 200, "{a}");
        let images = a["images"].as_array().unwrap();
        assert_eq!(images.len(), 2);
        for (i, img) in images.iter().enumerate() {
            assert_eq!(img["seed"], 11 + i as i64);
            assert_eq!(img["nsfw"], false);
            let png = dir.join(format!("t2i-{i}.png"));
            assert_eq!(
                probe_png(img["url"].as_str().unwrap(), &png),
                ("png".into(), 64, 48)
            );
        }
        assert_ne!(
            images[0]["url"], images[1]["url"],
            "seed + i gives another image"
        );
        // Same request and seed, same images; the trailing-slash route is the same route.
        let (st, b) = post_json(base, "/text-to-image/", req).await;
        assert_eq!(st, 200);
        assert_eq!(a, b);
        // Image 1 of a request seeded 11 is image 0 of a request seeded 12.
        let (_, c) = post_json(
            base,
            "/text-to-image",
            json!({"prompt": "a cat and the dog",
            "width": 64, "height": 48, "num_inference_steps": 3, "seed": 12}),
        )
        .await;
        assert_eq!(c["images"][0], a["images"][1]);
        // No seed: a random one is reported, in 0..2^32.
        let (_, d) = post_json(
            base,
            "/text-to-image",
            json!({"prompt": "x", "width": 32,
            "height": 32, "num_inference_steps": 1}),
        )
        .await;
        assert!((0..1i64 << 32).contains(&d["images"][0]["seed"].as_i64().unwrap()));

        // Bad input: the schema's codes and envelopes.
        let (st, v) = post_json(base, "/text-to-image", json!({"width": 64})).await;
        assert_eq!(st, 422);
        assert_eq!(v["detail"][0]["loc"], json!(["body", "prompt"]));
        assert_eq!(v["detail"][0]["type"], "missing");
        let (st, v) = post_json(
            base,
            "/text-to-image",
            json!({"prompt": "x", "width": "wide"}),
        )
        .await;
        assert_eq!(
            (st, v["detail"][0]["type"].as_str()),
            (422, Some("int_type"))
        );
        let (st, v) = post_json(base, "/text-to-image", json!({"prompt": ""})).await;
        assert_eq!((st, msg(&v)), (400, "Prompt must be provided."));
        for (w, h) in [(0, 64), (64, -8), (4096, 64), (60, 64)] {
            let (st, v) = post_json(
                base,
                "/text-to-image",
                json!({"prompt": "x", "width": w,
                "height": h, "num_inference_steps": 1}),
            )
            .await;
            assert_eq!(st, 400, "{w}x{h}: {v}");
            assert!(msg(&v).contains("width"), "{v}");
        }
        let (st, v) = post_json(
            base,
            "/text-to-image",
            json!({"prompt": "x", "width": 64,
            "height": 64, "num_inference_steps": 9}),
        )
        .await;
        assert_eq!(st, 400);
        assert!(msg(&v).contains("num_inference_steps"), "{v}");
        let (st, _) = post_json(
            base,
            "/text-to-image",
            json!({"prompt": "x", "width": 64,
            "height": 64, "num_images_per_prompt": 0}),
        )
        .await;
        assert_eq!(st, 400);
        let (st, v) = post_json(
            base,
            "/text-to-image",
            json!({"prompt": "x",
            "model_id": "stabilityai/sd-turbo"}),
        )
        .await;
        assert_eq!(st, 400);
        assert_eq!(
            msg(&v),
            "pipeline configured with tiny/sd but called with stabilityai/sd-turbo."
        );
        let r = reqwest::Client::new()
            .post(format!("{base}/text-to-image"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 422);
        // Only the loaded pipeline's route exists.
        let (st, _) = post_form(base, "/image-to-image", &[("prompt", "x")], None).await;
        assert_eq!(st, 404);

        // Info routes.
        let get = |p: &str| reqwest::get(format!("{base}{p}"));
        let v: Value = get("/health").await.unwrap().json().await.unwrap();
        assert_eq!(v, json!({"status": "OK"}));
        let v: Value = get("/version").await.unwrap().json().await.unwrap();
        assert_eq!(v["pipeline"], "text-to-image");
        assert_eq!(v["model_id"], "tiny/sd");
        let ver = v["version"].as_str().unwrap();
        assert_eq!(
            ver.split('.').filter(|p| p.parse::<u64>().is_ok()).count(),
            3,
            "{ver}"
        );
        let v: Value = get("/hardware/info").await.unwrap().json().await.unwrap();
        assert_eq!(v["gpu_info"], json!({}), "a CPU-only worker lists no GPU");
        let v: Value = get("/hardware/stats").await.unwrap().json().await.unwrap();
        assert!(v["gpu_stats"].is_object());
    });
}

#[test]
fn image_to_image_and_upscale_take_multipart_images() {
    let dir = scratch("ai-i2i");
    let turbo = model(&dir, "turbo");
    let png = test_png(&dir, 100, 60);
    let s = serve("image-to-image", &turbo, &["--model-id", "tiny-sd-turbo"]);
    rt().block_on(async {
        let base = &s.base;
        let fields = [
            ("prompt", "oil painting"),
            ("num_inference_steps", "2"),
            ("seed", "5"),
            ("strength", "0.5"),
            ("safety_check", "false"),
        ];
        let (st, a) = post_form(base, "/image-to-image", &fields, Some(&png)).await;
        assert_eq!(st, 200, "{a}");
        // Rounded down to the VAE's multiple of 8, as diffusers' image processor does.
        let url = a["images"][0]["url"].as_str().unwrap();
        assert_eq!(probe_png(url, &dir.join("i2i.png")), ("png".into(), 96, 56));
        assert_eq!(a["images"][0]["seed"], 5);
        let (_, b) = post_form(base, "/image-to-image", &fields, Some(&png)).await;
        assert_eq!(a, b, "same request and seed, same image");
        let other = test_png(&dir, 96, 56);
        let (_, c) = post_form(base, "/image-to-image", &fields, Some(&other)).await;
        assert_ne!(a, c, "the output depends on the input image");

        // The runner decodes the upload outside its error handling: a 500, as there.
        let (st, v) = post_form(base, "/image-to-image", &fields, Some(b"GIF89a garbage")).await;
        assert_eq!(st, 500);
        assert!(msg(&v).contains("not a decodable image"), "{v}");
        // int(2 × 0.2) = 0 steps: diffusers refuses it and the runner answers 400.
        let few = [
            ("prompt", "x"),
            ("num_inference_steps", "2"),
            ("strength", "0.2"),
        ];
        let (st, v) = post_form(base, "/image-to-image", &few, Some(&png)).await;
        assert_eq!(st, 400, "{v}");
        assert!(msg(&v).contains("no denoising step"), "{v}");
        let (st, v) = post_form(base, "/image-to-image", &fields, None).await;
        assert_eq!(st, 422);
        assert_eq!(v["detail"][0]["loc"], json!(["body", "image"]));
        let (st, v) = post_form(
            base,
            "/image-to-image",
            &[("prompt", "x"), ("strength", "1.5")],
            Some(&png),
        )
        .await;
        assert_eq!(st, 400, "{v}");
        let (st, v) = post_form(
            base,
            "/image-to-image",
            &[("prompt", "x"), ("seed", "abc")],
            Some(&png),
        )
        .await;
        assert_eq!(
            (st, v["detail"][0]["type"].as_str()),
            (422, Some("int_parsing"))
        );
    });
    drop(s);

    let up = model(&dir, "upscaler");
    let s = serve("upscale", &up, &[]);
    rt().block_on(async {
        let small = test_png(&dir, 24, 16);
        let (st, a) = post_form(
            &s.base,
            "/upscale",
            &[
                ("prompt", "sharp"),
                ("num_inference_steps", "2"),
                ("seed", "9"),
            ],
            Some(&small),
        )
        .await;
        assert_eq!(st, 200, "{a}");
        let url = a["images"][0]["url"].as_str().unwrap();
        assert_eq!(probe_png(url, &dir.join("up.png")), ("png".into(), 96, 64));
        assert_eq!(a["images"].as_array().unwrap().len(), 1);
        // 26x18 is rounded down to 24x16 first, as diffusers' upscale image processor does.
        let odd = test_png(&dir, 26, 18);
        let fields = [("prompt", "sharp"), ("num_inference_steps", "1")];
        let (st, b) = post_form(&s.base, "/upscale", &fields, Some(&odd)).await;
        assert_eq!(st, 200, "{b}");
        let url = b["images"][0]["url"].as_str().unwrap();
        assert_eq!(probe_png(url, &dir.join("up2.png")), ("png".into(), 96, 64));
    });
}

#[test]
fn out_of_memory_auth_and_oversized_bodies_leave_the_server_serving() {
    let dir = scratch("ai-guards");
    let m = model(&dir, "turbo");
    let s = serve(
        "text-to-image",
        &m,
        &[
            "--memory-limit-mib",
            "100",
            "--auth-token",
            "s3cret",
            "--max-body-mib",
            "1",
        ],
    );
    rt().block_on(async {
        let c = reqwest::Client::new();
        let post = |body: Value, token: Option<&str>| {
            let mut r = c.post(format!("{}/text-to-image", s.base)).json(&body);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        let r = post(json!({"prompt": "x"}), None).await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let v: Value = r.json().await.unwrap();
        assert_eq!(msg(&v), "Invalid bearer token.");
        let r = post(json!({"prompt": "x"}), Some("wrong")).await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        // As the runner, the body is validated before the token: 422, and the empty-prompt
        // 400, reach a client without one; every other check comes after the token's.
        let r = post(json!({"width": 64}), None).await.unwrap();
        assert_eq!(r.status().as_u16(), 422);
        let r = post(json!({"prompt": ""}), None).await.unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let r = post(json!({"prompt": "x", "model_id": "other"}), None)
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        // 2048x2048 needs far more than 100 MiB: the runner's OOM answer, nothing allocated.
        let big = json!({"prompt": "x", "width": 2048, "height": 2048, "num_inference_steps": 1});
        let r = post(big, Some("s3cret")).await.unwrap();
        assert_eq!(r.status().as_u16(), 500);
        let v: Value = r.json().await.unwrap();
        assert!(msg(&v).starts_with("Out of memory"), "{v}");
        // ...and the server goes on serving.
        let small = json!({"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1});
        let r = post(small, Some("s3cret")).await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let huge = json!({"prompt": "x".repeat(2 << 20)});
        let r = post(huge, Some("s3cret")).await.unwrap();
        assert_eq!(r.status().as_u16(), 413);
    });
}

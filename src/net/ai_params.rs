//! Requests of the AI runner's generate routes, read and checked the way its FastAPI app
//! does: JSON (`/text-to-image`) or multipart form (`/image-to-image`, `/upscale`) fields with
//! the schema's names and defaults (`ai-runner-openapi.yaml`); a missing or mistyped field is
//! a 422 with pydantic's `{"detail": [{loc, msg, type}]}`, a value the pipeline refuses is a
//! 400 with `{"detail": {"msg"}}`.

use crate::diffusion::model::{check_multiple, Request, Task};
use crate::diffusion::picture::Rgb;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The pipelines this worker serves (one per process, as the runner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pipeline {
    TextToImage,
    ImageToImage,
    Upscale,
}

impl Pipeline {
    pub fn name(self) -> &'static str {
        match self {
            Pipeline::TextToImage => "text-to-image",
            Pipeline::ImageToImage => "image-to-image",
            Pipeline::Upscale => "upscale",
        }
    }

    /// The runner's answer to an error it has no specific message for.
    pub fn default_error(self) -> &'static str {
        match self {
            Pipeline::TextToImage => "Text-to-image pipeline error.",
            Pipeline::ImageToImage => "Image-to-image pipeline error.",
            Pipeline::Upscale => "Upscale pipeline error.",
        }
    }

    /// The runner's answer to an out-of-memory error.
    pub fn oom_error(self) -> &'static str {
        match self {
            Pipeline::TextToImage => "Out of memory error. Try reducing output image resolution.",
            _ => "Out of memory error. Try reducing input image resolution.",
        }
    }
}

/// An error answer in the runner's envelopes.
#[derive(Debug)]
pub enum ApiError {
    /// 422: fields missing or of the wrong type.
    Validation(Vec<Value>),
    /// 400, 401, 413, 500, 503 with `{"detail": {"msg"}}`.
    Status(StatusCode, String),
}

impl ApiError {
    pub fn bad(msg: impl Into<String>) -> Self {
        ApiError::Status(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Validation(detail) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({ "detail": detail })),
            )
                .into_response(),
            ApiError::Status(status, msg) => {
                let mut r = (status, axum::Json(json!({"detail": {"msg": msg}}))).into_response();
                if status == StatusCode::UNAUTHORIZED {
                    r.headers_mut()
                        .insert("www-authenticate", "Bearer".parse().expect("header"));
                }
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    r.headers_mut()
                        .insert("retry-after", "1".parse().expect("header"));
                }
                r
            }
        }
    }
}

/// What a server accepts (beyond the schema, which sets no bounds).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest width or height, in or out, in pixels.
    pub max_side: usize,
    pub max_steps: usize,
    pub max_images: usize,
}

/// One request: `images` generations of `base`, image i with seed `seed + i`.
#[derive(Debug, Clone)]
pub struct Job {
    pub base: Request,
    pub seed: i64,
    pub images: usize,
}

/// A form part: text, or a file's bytes.
pub enum Part {
    Text(String),
    File(Bytes),
}

/// A request's fields: a JSON object or a multipart form.
pub enum Fields<'a> {
    Json(&'a Map<String, Value>),
    Form(&'a HashMap<String, Part>),
}

/// Reads typed fields, collecting every problem as pydantic would report it.
struct Reader<'a> {
    fields: Fields<'a>,
    errors: Vec<Value>,
}

impl Reader<'_> {
    fn fail(&mut self, name: &str, kind: &str, msg: &str) {
        self.errors
            .push(json!({"loc": ["body", name], "msg": msg, "type": kind}));
    }

    /// The raw value; JSON null counts as absent (the runner's optional fields), and so does
    /// an empty form value (FastAPI 0.115 reads `name=` as missing).
    fn raw(&self, name: &str) -> Option<Result<&Value, &Part>> {
        match &self.fields {
            Fields::Json(m) => m.get(name).filter(|v| !v.is_null()).map(Ok),
            Fields::Form(m) => m
                .get(name)
                .filter(|p| !matches!(p, Part::Text(t) if t.is_empty()))
                .map(Err),
        }
    }

    fn string(&mut self, name: &str, required: bool) -> Option<String> {
        match self.raw(name) {
            None if required => {
                self.fail(name, "missing", "Field required");
                None
            }
            None => None,
            Some(Ok(Value::String(s))) => Some(s.clone()),
            Some(Err(p)) => Some(form_text(p)),
            Some(Ok(_)) => {
                self.fail(name, "string_type", "Input should be a valid string");
                None
            }
        }
    }

    fn int(&mut self, name: &str) -> Option<i64> {
        match self.raw(name) {
            None => None,
            Some(Ok(v)) => match v.as_i64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            }) {
                Some(i) => Some(i),
                None => {
                    self.fail(name, "int_type", "Input should be a valid integer");
                    None
                }
            },
            Some(Err(p)) => match form_text(p).trim().parse::<i64>() {
                Ok(i) => Some(i),
                Err(_) => {
                    self.fail(
                        name,
                        "int_parsing",
                        "Input should be a valid integer, unable to parse string as an integer",
                    );
                    None
                }
            },
        }
    }

    fn float(&mut self, name: &str) -> Option<f64> {
        match self.raw(name) {
            None => None,
            Some(Ok(v)) => match v.as_f64() {
                Some(f) => Some(f),
                None => {
                    self.fail(name, "float_type", "Input should be a valid number");
                    None
                }
            },
            Some(Err(p)) => match form_text(p).trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Some(f),
                _ => {
                    self.fail(
                        name,
                        "float_parsing",
                        "Input should be a valid number, unable to parse string as a number",
                    );
                    None
                }
            },
        }
    }

    fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.raw(name) {
            None => None,
            Some(Ok(Value::Bool(b))) => Some(*b),
            Some(Ok(_)) => {
                self.fail(name, "bool_type", "Input should be a valid boolean");
                None
            }
            Some(Err(p)) => match form_text(p).trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "t" | "yes" | "y" | "on" => Some(true),
                "0" | "false" | "f" | "no" | "n" | "off" => Some(false),
                _ => {
                    self.fail(
                        name,
                        "bool_parsing",
                        "Input should be a valid boolean, unable to interpret input",
                    );
                    None
                }
            },
        }
    }

    fn file(&mut self, name: &str) -> Option<Bytes> {
        match self.raw(name) {
            Some(Err(Part::File(b))) => Some(b.clone()),
            Some(Err(Part::Text(s))) => Some(Bytes::from(s.clone().into_bytes())),
            _ => {
                self.fail(name, "missing", "Field required");
                None
            }
        }
    }
}

fn form_text(p: &Part) -> String {
    match p {
        Part::Text(s) => s.clone(),
        Part::File(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// The JSON body of `/text-to-image`.
pub fn json_fields(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::Validation(vec![json!({
            "loc": ["body"], "type": "model_attributes_type",
            "msg": "Input should be a valid dictionary or object to extract fields from",
        })])),
        Err(e) => Err(ApiError::Validation(vec![json!({
            "loc": ["body", e.column()], "type": "json_invalid", "msg": "JSON decode error",
            "ctx": {"error": e.to_string()},
        })])),
    }
}

/// The model ids the runner treats as distilled (ai-runner pipelines text_to_image.py and
/// image_to_image.py): guidance forced to 0; SDXL-Lightning also takes its step count from
/// the checkpoint's name. Matched exactly as the runner matches them, not by substring.
const TURBO_MODELS: [&str; 2] = ["stabilityai/sd-turbo", "stabilityai/sdxl-turbo"];
const LIGHTNING_MODEL: &str = "ByteDance/SDXL-Lightning";

/// The first part of a `|`-separated prompt, as the runner's `split_prompt(..., max_splits=3)`
/// leaves it for single-encoder models (Stable Diffusion 1.x/2.x ignore `prompt_2`...):
/// parts stripped, empty parts dropped. `None` when nothing is left.
pub fn first_prompt(prompt: &str) -> Option<&str> {
    prompt.splitn(4, '|').map(str::trim).find(|p| !p.is_empty())
}

/// Reads a generate request of `pipeline`, applying the runner's defaults and our limits.
/// The outer error is what the runner answers before it checks the bearer token (422 for
/// the body's fields, 400 for an empty text-to-image prompt); the inner one comes after.
pub fn job(
    pipeline: Pipeline,
    fields: Fields,
    lim: Limits,
    factor: usize,
    loaded_model: &str,
) -> Result<Result<Job, ApiError>, ApiError> {
    let mut r = Reader {
        fields,
        errors: Vec::new(),
    };
    let parsed = read(pipeline, &mut r);
    if !r.errors.is_empty() {
        return Err(ApiError::Validation(r.errors));
    }
    if pipeline == Pipeline::TextToImage && parsed.prompt.as_deref() == Some("") {
        return Err(ApiError::bad("Prompt must be provided."));
    }
    Ok(finish(pipeline, parsed, lim, factor, loaded_model))
}

/// The fields of a request as read, before defaults.
struct Parsed {
    prompt: Option<String>,
    image: Option<Bytes>,
    model_id: String,
    loras: Option<String>,
    width: Option<i64>,
    height: Option<i64>,
    guidance: Option<f64>,
    negative: Option<String>,
    strength: Option<f64>,
    seed: Option<i64>,
    steps: Option<i64>,
    images: Option<i64>,
}

fn read(pipeline: Pipeline, r: &mut Reader) -> Parsed {
    let prompt = r.string("prompt", true);
    let image = (pipeline != Pipeline::TextToImage)
        .then(|| r.file("image"))
        .flatten();
    let model_id = r.string("model_id", false).unwrap_or_default();
    let loras = match pipeline {
        Pipeline::Upscale => None,
        _ => r.string("loras", false),
    };
    let (width, height) = match pipeline {
        Pipeline::TextToImage => (r.int("width"), r.int("height")),
        _ => (None, None),
    };
    let guidance = match pipeline {
        Pipeline::Upscale => None,
        _ => r.float("guidance_scale"),
    };
    let negative = match pipeline {
        Pipeline::Upscale => None,
        _ => r.string("negative_prompt", false),
    };
    let strength = match pipeline {
        Pipeline::ImageToImage => r.float("strength"),
        _ => None,
    };
    if pipeline == Pipeline::ImageToImage {
        r.float("image_guidance_scale");
    }
    r.boolean("safety_check");
    let seed = r.int("seed");
    let steps = r.int("num_inference_steps");
    let images = match pipeline {
        Pipeline::Upscale => None,
        _ => r.int("num_images_per_prompt"),
    };
    Parsed {
        prompt,
        image,
        model_id,
        loras,
        width,
        height,
        guidance,
        negative,
        strength,
        seed,
        steps,
        images,
    }
}

/// Defaults, the runner's per-model overrides, and the checks after the token's.
fn finish(
    pipeline: Pipeline,
    p: Parsed,
    lim: Limits,
    factor: usize,
    loaded_model: &str,
) -> Result<Job, ApiError> {
    let Parsed {
        prompt,
        image,
        model_id,
        loras,
        width,
        height,
        guidance,
        negative,
        strength,
        seed,
        steps,
        images,
    } = p;
    if !model_id.is_empty() && model_id != loaded_model {
        return Err(ApiError::bad(format!(
            "pipeline configured with {loaded_model} but called with {model_id}."
        )));
    }
    let mut prompt = prompt.expect("checked");
    let mut negative = negative.unwrap_or_default();
    if pipeline == Pipeline::TextToImage {
        // A whitespace-only prompt leaves split_prompt nothing; the runner fails outside its
        // error handling there, a 500.
        prompt = match first_prompt(&prompt) {
            Some(p) => p.to_string(),
            None => {
                return Err(ApiError::Status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Prompt must be provided.".into(),
                ))
            }
        };
        negative = first_prompt(&negative).unwrap_or("").to_string();
    }
    if loras.is_some_and(|l| !l.trim().is_empty()) {
        return Err(ApiError::bad(
            "LoRAs are not supported by this worker; leave `loras` empty.",
        ));
    }
    let turbo = TURBO_MODELS.contains(&loaded_model) && pipeline != Pipeline::Upscale;
    let lightning = loaded_model.contains(LIGHTNING_MODEL) && pipeline != Pipeline::Upscale;
    // The route's default when the field is absent; below 1 the runner drops the field and
    // diffusers' default applies (50, the upscaler's 75), or the turbo override's.
    let steps = match steps {
        Some(s) if s >= 1 => s as usize,
        Some(_) => match pipeline {
            _ if turbo && pipeline == Pipeline::TextToImage => 1,
            _ if turbo => 2,
            Pipeline::Upscale => 75,
            _ => 50,
        },
        None => match pipeline {
            Pipeline::TextToImage => 50,
            Pipeline::ImageToImage => 100,
            Pipeline::Upscale => 75,
        },
    };
    let steps = if lightning {
        ["2step", "4step", "8step"]
            .iter()
            .zip([2, 4, 8])
            .find(|(name, _)| loaded_model.contains(*name))
            .map_or(2, |(_, n)| n)
    } else {
        steps
    };
    if steps > lim.max_steps {
        return Err(ApiError::bad(format!(
            "`num_inference_steps` must be between 1 and {} but is {steps}.",
            lim.max_steps
        )));
    }
    let images = images.unwrap_or(1);
    if images < 1 || images as usize > lim.max_images {
        return Err(ApiError::bad(format!(
            "`num_images_per_prompt` must be between 1 and {} but is {images}.",
            lim.max_images
        )));
    }
    let strength = strength.unwrap_or(0.8);
    if !(0.0..=1.0).contains(&strength) {
        return Err(ApiError::bad(format!(
            "`strength` must be between 0 and 1 but is {strength}."
        )));
    }
    let seed = match seed {
        // The upscale route treats 0 as unset.
        Some(0) if pipeline == Pipeline::Upscale => None,
        s => s,
    }
    .unwrap_or_else(|| rand::random::<u32>() as i64);
    let check_size = |w: i64, h: i64, what: &str| -> Result<(), ApiError> {
        if w < 1 || h < 1 || w as usize > lim.max_side || h as usize > lim.max_side {
            return Err(ApiError::bad(format!(
                "{what} {w}x{h} is out of range: width and height must be between 1 and {}.",
                lim.max_side
            )));
        }
        Ok(())
    };
    let task = match pipeline {
        Pipeline::TextToImage => {
            let (w, h) = (width.unwrap_or(1024), height.unwrap_or(576));
            check_size(w, h, "image size")?;
            check_multiple(w as usize, h as usize, factor)
                .map_err(|e| ApiError::bad(e.to_string()))?;
            Task::Text {
                width: w as usize,
                height: h as usize,
            }
        }
        _ => {
            // The runner decodes outside its error handling: an undecodable image is a 500.
            let img = Rgb::decode(&image.expect("checked"))
                .map_err(|e| ApiError::Status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let (w, h) = (img.width as i64, img.height as i64);
            check_size(w, h, "input image")?;
            if pipeline == Pipeline::Upscale {
                // The upscale pipeline's image processor (vae_scale_factor 4) rounds the input
                // down to a multiple of 4 (pipeline_stable_diffusion_upscale.py).
                let (rw, rh) = (img.width / 4 * 4, img.height / 4 * 4);
                if rw == 0 || rh == 0 {
                    return Err(ApiError::bad(format!(
                        "input image {w}x{h} is smaller than 4x4."
                    )));
                }
                check_size((rw * factor) as i64, (rh * factor) as i64, "upscaled image")?;
                Task::Upscale {
                    image: img.resized(rw, rh),
                }
            } else {
                // diffusers' image processor rounds down to the VAE's multiple.
                let (rw, rh) = (img.width / factor * factor, img.height / factor * factor);
                if rw == 0 || rh == 0 {
                    return Err(ApiError::bad(format!(
                        "input image {w}x{h} is smaller than {factor}x{factor}."
                    )));
                }
                Task::Image {
                    image: img.resized(rw, rh),
                    strength,
                }
            }
        }
    };
    Ok(Job {
        base: Request {
            prompt,
            negative_prompt: negative,
            guidance_scale: if turbo || lightning {
                0.0
            } else {
                guidance.unwrap_or(match pipeline {
                    Pipeline::Upscale => 9.0,
                    _ => 7.5,
                })
            },
            steps,
            seed: seed as u64,
            task,
            latents: None,
        },
        seed,
        images: images as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits {
        max_side: 2048,
        max_steps: 200,
        max_images: 4,
    };

    fn t2i(body: Value, model: &str) -> Result<Result<Job, ApiError>, ApiError> {
        let m = body.as_object().unwrap().clone();
        job(Pipeline::TextToImage, Fields::Json(&m), LIM, 8, model)
    }

    fn ok(r: Result<Result<Job, ApiError>, ApiError>) -> Job {
        match r {
            Ok(Ok(j)) => j,
            Ok(Err(e)) | Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn prompts_split_at_bars_as_the_runner_splits_them() {
        assert_eq!(first_prompt("  a cat | a dog"), Some("a cat"));
        assert_eq!(first_prompt(" | | a dog|x"), Some("a dog"));
        assert_eq!(first_prompt("a|b|c|d|e"), Some("a"));
        assert_eq!(first_prompt(" | "), None);
        let j = ok(t2i(
            json!({"prompt": "a castle | watercolor", "negative_prompt": "blurry|low"}),
            "m",
        ));
        assert_eq!(
            (j.base.prompt.as_str(), j.base.negative_prompt.as_str()),
            ("a castle", "blurry")
        );
        // Whitespace only: the runner fails outside its handler, a 500; empty: its 400,
        // before the token is checked.
        match t2i(json!({"prompt": "   "}), "m") {
            Ok(Err(ApiError::Status(s, _))) => assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(t2i(json!({"prompt": ""}), "m"), Err(ApiError::Status(s, _)) if s == StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn step_defaults_and_distilled_overrides_follow_the_runner() {
        let steps = |body: Value, model: &str| ok(t2i(body, model)).base.steps;
        assert_eq!(steps(json!({"prompt": "x"}), "m"), 50);
        assert_eq!(
            steps(json!({"prompt": "x", "num_inference_steps": 0}), "m"),
            50
        );
        assert_eq!(
            steps(
                json!({"prompt": "x", "num_inference_steps": 0}),
                "stabilityai/sd-turbo"
            ),
            1
        );
        assert_eq!(
            steps(
                json!({"prompt": "x", "num_inference_steps": 30}),
                "ByteDance/SDXL-Lightning-4step"
            ),
            4
        );
        let g = |model: &str| {
            ok(t2i(json!({"prompt": "x", "guidance_scale": 5.0}), model))
                .base
                .guidance_scale
        };
        assert_eq!(g("stabilityai/sd-turbo"), 0.0);
        assert_eq!(g("stabilityai/sdxl-turbo"), 0.0);
        assert_eq!(g("ByteDance/SDXL-Lightning"), 0.0);
        // Matched exactly, as the runner does: a fine-tune named *turbo* keeps its guidance.
        assert_eq!(g("someone/my-turbo-finetune"), 5.0);
        // Image-to-image: absent → the route's 100; below 1 → diffusers' 50 (turbo: 2).
        let png = Rgb {
            width: 16,
            height: 16,
            data: vec![128; 16 * 16 * 3],
        }
        .png();
        let form = |steps: Option<&str>, image: &[u8]| {
            let mut m = HashMap::new();
            m.insert("prompt".to_string(), Part::Text("x".into()));
            m.insert(
                "image".to_string(),
                Part::File(Bytes::copy_from_slice(image)),
            );
            if let Some(s) = steps {
                m.insert("num_inference_steps".to_string(), Part::Text(s.into()));
            }
            m
        };
        for (steps, model, want) in [
            (None, "m", 100),
            (Some("0"), "m", 50),
            (Some("0"), "stabilityai/sd-turbo", 2),
        ] {
            let m = form(steps, &png);
            let j = ok(job(Pipeline::ImageToImage, Fields::Form(&m), LIM, 8, model));
            assert_eq!(j.base.steps, want, "{steps:?} {model}");
        }
        // An image that does not decode: the runner decodes outside its handler, a 500.
        let m = form(None, b"not an image");
        match job(Pipeline::ImageToImage, Fields::Form(&m), LIM, 8, "m") {
            Ok(Err(ApiError::Status(s, _))) => assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_form_value_is_missing_as_fastapi_reads_it() {
        let mut m = HashMap::new();
        m.insert("prompt".to_string(), Part::Text(String::new()));
        m.insert("image".to_string(), Part::File(Bytes::from_static(b"x")));
        match job(Pipeline::ImageToImage, Fields::Form(&m), LIM, 8, "m") {
            Err(ApiError::Validation(v)) => assert_eq!(v[0]["type"], "missing"),
            other => panic!("{other:?}"),
        }
    }
}

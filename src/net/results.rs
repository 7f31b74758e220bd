//! Transcode results on the wire (go-livepeer `sendTranscodeResult`): a `multipart/mixed` body
//! with one part per rendition in profile order, each with `Content-Type`, `Content-Length` and
//! `Pixels`; or, on failure, a `livepeer/transcoding-error` body holding the message. Used by
//! the remote transcoder (upload to the orchestrator) and by `serve` (HTTP responses), and
//! parsed by the test orchestrator.

use crate::pipeline::SegmentReport;
use std::sync::atomic::{AtomicU64, Ordering};

pub const ERROR_MIME: &str = "livepeer/transcoding-error";
/// The `Authorization` value a transcoder sends with its results.
pub const PROTOCOL: &str = "Livepeer-Transcoder-1.0";

/// One rendition in a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub name: String,
    pub mime: String,
    pub pixels: u64,
    pub data: Vec<u8>,
}

/// A multipart body and its content type.
pub struct Body {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

fn boundary() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{:016x}{:08x}{:08x}",
        t,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The multipart/mixed body for `parts`.
pub fn multipart(parts: &[Part]) -> Body {
    let b = boundary();
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.data.len() + 200).sum());
    for p in parts {
        out.extend_from_slice(
            format!(
                "--{b}\r\nContent-Type: {}\r\nContent-Length: {}\r\nPixels: {}\r\nRendition-Name: {}\r\n\r\n",
                p.mime,
                p.data.len(),
                p.pixels,
                p.name
            )
            .as_bytes(),
        );
        out.extend_from_slice(&p.data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    Body {
        content_type: format!("multipart/mixed; boundary={b}"),
        bytes: out,
    }
}

/// The parts of a finished segment: each rendition file read back, with its pixels.
pub fn parts_of(report: &SegmentReport, mimes: &[&str]) -> std::io::Result<Vec<Part>> {
    report
        .renditions
        .iter()
        .zip(mimes)
        .map(|(r, mime)| {
            Ok(Part {
                name: r.name.clone(),
                mime: mime.to_string(),
                pixels: r.pixels,
                data: std::fs::read(&r.path)?,
            })
        })
        .collect()
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("content type {0:?} is not multipart/mixed with a boundary")]
    ContentType(String),
    #[error("malformed multipart body: {0}")]
    Body(String),
    #[error("part {0} has no valid Pixels header")]
    Pixels(usize),
}

/// The boundary of a `multipart/mixed` content type.
pub fn boundary_of(content_type: &str) -> Result<String, ParseError> {
    let bad = || ParseError::ContentType(content_type.to_string());
    let mime: Vec<&str> = content_type.split(';').map(str::trim).collect();
    if !mime
        .first()
        .is_some_and(|m| m.eq_ignore_ascii_case("multipart/mixed"))
    {
        return Err(bad());
    }
    mime[1..]
        .iter()
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| v.trim().trim_matches('"').to_string())
        })
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or_else(bad)
}

/// Parses a result body (what the orchestrator does): the rendition parts with their pixels.
/// Parts without a `Pixels` header (perceptual hashes) are skipped, as go-livepeer attaches
/// them to the previous rendition.
pub async fn parse(content_type: &str, body: bytes::Bytes) -> Result<Vec<Part>, ParseError> {
    let boundary = boundary_of(content_type)?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    while let Some(field) = mp
        .next_field()
        .await
        .map_err(|e| ParseError::Body(e.to_string()))?
    {
        let header = |k: &str| {
            field
                .headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mime = header("content-type").unwrap_or_default();
        let name = header("rendition-name").unwrap_or_default();
        let Some(pixels) = header("pixels") else {
            continue;
        };
        let pixels = pixels
            .trim()
            .parse()
            .map_err(|_| ParseError::Pixels(parts.len()))?;
        let data = field
            .bytes()
            .await
            .map_err(|e| ParseError::Body(e.to_string()))?
            .to_vec();
        parts.push(Part {
            name,
            mime,
            pixels,
            data,
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_parses_back_into_its_parts() {
        let parts = vec![
            Part {
                name: "240p".into(),
                mime: "video/mp2t".into(),
                pixels: 1234,
                data: b"\r\n--not-a-boundary\r\n".to_vec(),
            },
            Part {
                name: "360p".into(),
                mime: "video/mp4".into(),
                pixels: 99,
                data: vec![0, 1, 2, 255],
            },
        ];
        let b = multipart(&parts);
        assert!(b.content_type.starts_with("multipart/mixed; boundary="));
        let back = parse(&b.content_type, b.bytes.into()).await.unwrap();
        assert_eq!(back, parts);
    }

    #[tokio::test]
    async fn bad_bodies_are_errors() {
        assert!(matches!(
            parse("text/plain", bytes::Bytes::new()).await,
            Err(ParseError::ContentType(_))
        ));
        let body = "--x\r\nPixels: many\r\n\r\nabc\r\n--x--\r\n";
        assert_eq!(
            parse("multipart/mixed; boundary=x", body.into()).await,
            Err(ParseError::Pixels(0))
        );
        let body = "--x\r\nPixels: 5\r\n\r\nabc";
        assert!(matches!(
            parse("multipart/mixed; boundary=x", body.into()).await,
            Err(ParseError::Body(_))
        ));
    }
}

//! Transcode results on the wire (go-livepeer server/ot_rpc.go `runTranscode` and
//! `TranscodeResults`): a `multipart/mixed` body with one part per rendition in profile order,
//! each with `Content-Type`, `Content-Length` and `Pixels`, each followed by an
//! `application/octet-stream` part (no `Pixels`) holding its MPEG-7 signature when one was
//! asked for; or, on failure, a `livepeer/transcoding-error` body holding the message. Used by
//! the remote transcoder (upload to the orchestrator) and by `serve` (HTTP responses), and
//! parsed by the test orchestrator as the orchestrator does.

use crate::pipeline::SegmentReport;
use std::sync::atomic::{AtomicU64, Ordering};

pub const ERROR_MIME: &str = "livepeer/transcoding-error";
/// The media type of a perceptual-hash (signature) part.
pub const PHASH_MIME: &str = "application/octet-stream";
/// The `Authorization` value a transcoder sends with its results.
pub const PROTOCOL: &str = "Livepeer-Transcoder-1.0";

/// One rendition in a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub name: String,
    pub mime: String,
    pub pixels: u64,
    pub data: Vec<u8>,
    /// The rendition's MPEG-7 signature, sent as the part after it.
    pub phash: Option<Vec<u8>>,
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
        if let Some(h) = &p.phash {
            out.extend_from_slice(
                format!(
                    "--{b}\r\nContent-Type: {PHASH_MIME}\r\nContent-Length: {}\r\n\r\n",
                    h.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(h);
            out.extend_from_slice(b"\r\n");
        }
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
                phash: r.signature.clone(),
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
    /// A signature part before any rendition (go-livepeer's text).
    #[error("Unknown perceptual hash")]
    UnknownPhash,
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

/// Parses a result body as the orchestrator does (server/ot_rpc.go:391-427): a part with a
/// `Pixels` header is a rendition; an `application/octet-stream` part without one is the
/// previous rendition's signature; any other part is ignored.
pub async fn parse(content_type: &str, body: bytes::Bytes) -> Result<Vec<Part>, ParseError> {
    let boundary = boundary_of(content_type)?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut parts: Vec<Part> = Vec::new();
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
            if mime == PHASH_MIME {
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| ParseError::Body(e.to_string()))?;
                let last = parts.last_mut().ok_or(ParseError::UnknownPhash)?;
                last.phash = Some(data.to_vec());
            }
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
            phash: None,
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
                phash: Some(vec![7; 40]),
            },
            Part {
                name: "360p".into(),
                mime: "video/mp4".into(),
                pixels: 99,
                data: vec![0, 1, 2, 255],
                phash: None,
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
        let body = "--x\r\nContent-Type: application/octet-stream\r\n\r\nabc\r\n--x--\r\n";
        assert_eq!(
            parse("multipart/mixed; boundary=x", body.into()).await,
            Err(ParseError::UnknownPhash)
        );
        let body = "--x\r\nPixels: 5\r\n\r\nabc";
        assert!(matches!(
            parse("multipart/mixed; boundary=x", body.into()).await,
            Err(ParseError::Body(_))
        ));
    }
}

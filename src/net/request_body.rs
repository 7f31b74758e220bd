//! Reading a request body up to a limit, answering an oversized one cleanly.
//!
//! A server that answers 413 and closes while the client is still sending leaves unread
//! bytes in its socket; the kernel then resets the connection and the client sees
//! "connection reset" or an incomplete message instead of the 413 (hyper does no lingering
//! close). So an oversized body is read on and discarded, up to [`DRAIN_LIMIT`] bytes past
//! the limit, before the answer goes out; only a body larger still is cut off.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

/// How much of an oversized body is read and discarded so that the client gets the answer.
pub const DRAIN_LIMIT: usize = 64 << 20;

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    Read(String),
}

/// The whole body, if it is at most `limit` bytes.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut body = body;
    let declared = axum::body::HttpBody::size_hint(&body).exact();
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |n| n.min(limit as u64) as usize));
    let mut over = false;
    let mut drained = 0usize;
    if declared.is_some_and(|n| n > (limit + DRAIN_LIMIT) as u64) {
        // Too large even to drain: answer now.
        return Err(BodyError::TooLarge { limit });
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if over {
            drained += data.len();
            if drained > DRAIN_LIMIT {
                break;
            }
        } else if buf.len() + data.len() > limit {
            over = true;
            drained = buf.len() + data.len();
            buf = BytesMut::new();
        } else {
            buf.extend_from_slice(&data);
        }
    }
    if over {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn a_body_within_the_limit_comes_back_whole() {
        let b = rt()
            .block_on(read_limited(Body::from(vec![7u8; 1000]), 1000))
            .unwrap();
        assert_eq!(b.len(), 1000);
        assert!(b.iter().all(|&x| x == 7));
    }

    #[test]
    fn a_body_over_the_limit_is_refused_after_it_is_read() {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            (0..10).map(|_| Ok(Bytes::from(vec![1u8; 300]))).collect();
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let e = rt().block_on(read_limited(body, 1000)).unwrap_err();
        assert!(matches!(e, BodyError::TooLarge { limit: 1000 }), "{e}");
    }
}

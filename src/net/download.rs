//! Fetching a segment as go-livepeer's transcoder does (`core.DownloadData`): HTTP GET with a
//! 4 s timeout, any status but 200 is an error, at most 300 MB (`common.MaxSegSize`).

use futures_util::StreamExt;
use std::time::Duration;

pub const TIMEOUT: Duration = Duration::from_secs(4);
pub const MAX_BYTES: u64 = 300_000_000;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("download {url}: timed out after {0:?}", TIMEOUT)]
    Timeout { url: String },
    #[error("download {url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("download {url}: more than {MAX_BYTES} bytes")]
    TooLarge { url: String },
    #[error("download {url}: {detail}")]
    Failed { url: String, detail: String },
}

/// Downloads `url` with `client`, within [`TIMEOUT`] and [`MAX_BYTES`].
pub async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, DownloadError> {
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            DownloadError::Timeout { url: url.into() }
        } else {
            DownloadError::Failed {
                url: url.into(),
                detail: e.to_string(),
            }
        }
    };
    let work = async {
        let resp = client.get(url).send().await.map_err(failed)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(DownloadError::Status {
                url: url.into(),
                status: resp.status().as_u16(),
            });
        }
        if resp.content_length().is_some_and(|n| n > MAX_BYTES) {
            return Err(DownloadError::TooLarge { url: url.into() });
        }
        let mut body = Vec::new();
        let mut chunks = resp.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(failed)?;
            if body.len() as u64 + chunk.len() as u64 > MAX_BYTES {
                return Err(DownloadError::TooLarge { url: url.into() });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(DownloadError::Timeout { url: url.into() }))
}

//! The streams a network front end keeps open: one worker session per stream key (go-livepeer's
//! `auth_token.session_id`, or a client's `Session-Id`), reopened when its profiles change or on
//! request, closed when torn down or idle for [`IDLE`].

use crate::error::Error;
use crate::pipeline::{SegmentOptions, SegmentReport, Session, SessionConfig};
use crate::profile::Profile;
use crate::worker::Worker;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A session with no segment for this long is closed (go-livepeer's transcodeLoopTimeout).
pub const IDLE: Duration = Duration::from_secs(70);

/// One stream's session and the profiles it was opened with.
pub struct Stream {
    session: Mutex<Session>,
    profiles: Vec<Profile>,
    last_used: Mutex<Instant>,
}

pub struct SessionTable {
    worker: Arc<Worker>,
    template: SessionConfig,
    streams: Mutex<HashMap<String, Arc<Stream>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SessionTable {
    /// Sessions are opened on `worker` from `template` (its profiles replaced per stream).
    pub fn new(worker: Arc<Worker>, template: SessionConfig) -> Self {
        SessionTable {
            worker,
            template,
            streams: Mutex::new(HashMap::new()),
        }
    }

    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    /// The stream `key` with `profiles`: the open one, or a new session (busy at capacity).
    pub fn get(&self, key: &str, profiles: &[Profile], reinit: bool) -> Result<Arc<Stream>, Error> {
        let mut streams = lock(&self.streams);
        if let Some(s) = streams.get(key) {
            if !reinit && s.profiles == profiles {
                *lock(&s.last_used) = Instant::now();
                return Ok(s.clone());
            }
            streams.remove(key);
        }
        let mut cfg = self.template.clone();
        cfg.profiles = profiles.to_vec();
        let session = self.worker.open_session(cfg)?;
        let s = Arc::new(Stream {
            session: Mutex::new(session),
            profiles: profiles.to_vec(),
            last_used: Mutex::new(Instant::now()),
        });
        streams.insert(key.to_string(), s.clone());
        Ok(s)
    }

    /// Closes stream `key`; false if it was not open.
    pub fn remove(&self, key: &str) -> bool {
        lock(&self.streams).remove(key).is_some()
    }

    /// A guard that closes stream `key` when dropped (a one-segment stream), also when the
    /// request that opened it goes away early.
    pub fn closing(&self, key: &str) -> Closing<'_> {
        Closing {
            table: self,
            key: key.to_string(),
        }
    }

    /// Open streams whose key starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        lock(&self.streams)
            .keys()
            .filter(|k| k.starts_with(prefix))
            .count()
    }

    /// Closes streams idle for [`IDLE`]; returns their keys.
    pub fn close_idle(&self) -> Vec<String> {
        let mut closed = Vec::new();
        lock(&self.streams).retain(|key, s| {
            let keep = lock(&s.last_used).elapsed() < IDLE;
            if !keep {
                closed.push(key.clone());
            }
            keep
        });
        closed
    }
}

/// A request's or task's work directory, removed when it ends, whichever way.
pub struct WorkDir(pub PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Closing<'a> {
    table: &'a SessionTable,
    key: String,
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.table.remove(&self.key);
    }
}

impl Stream {
    /// Transcodes `input` into `outputs` (one per profile) in this stream's session, off the
    /// async threads.
    pub async fn transcode(
        &self,
        input: PathBuf,
        outputs: Vec<PathBuf>,
        opts: SegmentOptions,
    ) -> Result<SegmentReport, Error> {
        let ticket = lock(&self.session).submit_with(&input, &outputs, opts)?;
        let report = tokio::task::spawn_blocking(move || ticket.wait())
            .await
            .unwrap_or(Err(Error::Closed));
        *lock(&self.last_used) = Instant::now();
        report
    }
}

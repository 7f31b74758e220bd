//! The orchestrator's bookkeeping of remote transcoders, rule for rule go-livepeer's
//! `RemoteTranscoderManager` (core/orchestrator.go:1067-1260 at 0.9.1):
//! - a transcoder that registers without capabilities is given `DefaultCapabilities()`
//!   (server/ot_rpc.go:324-326);
//! - the list is kept sorted by load/capacity, most loaded first (`byLoadFactor`), and a new
//!   stream goes to the *last* transcoder whose capabilities cover the job's and whose
//!   version passes the job's minimum (`selectTranscoder`); none: "no transcoders can provide
//!   requested capabilities";
//! - a stream keeps its transcoder (`streamSessions`); a new stream on a transcoder at its
//!   capacity gets "no transcoders available";
//! - any error frees the stream's slot without a teardown (`completeStreamSession`); a
//!   transcoder whose stream is gone is dropped from the list at the next selection.

use super::super::capabilities;
use super::super::proto::upstream::{Capabilities, NotifySegment};
use std::collections::HashMap;
use tokio::sync::mpsc;

pub const NO_COMPATIBLE: &str = "no transcoders can provide requested capabilities";
pub const NO_TRANSCODERS: &str = "no transcoders available";

pub type Tx = mpsc::Sender<Result<NotifySegment, tonic::Status>>;

pub struct Remote {
    pub id: u64,
    pub tx: Tx,
    pub capacity: i64,
    pub load: i64,
    pub bits: Vec<u64>,
    pub version: String,
}

impl Remote {
    fn load_factor(&self) -> f64 {
        self.load as f64 / self.capacity as f64
    }

    pub fn live(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// What a job requires: capabilities and the gateway's minimum version.
#[derive(Debug, Clone, Default)]
pub struct Job {
    pub bits: Vec<u64>,
    pub min_version: String,
}

#[derive(Default)]
pub struct Manager {
    /// Sorted by load factor, most loaded first.
    remotes: Vec<Remote>,
    /// Stream session → transcoder id.
    sessions: HashMap<String, u64>,
}

impl Manager {
    /// A transcoder registered (`Manage`).
    pub fn add(&mut self, id: u64, tx: Tx, capacity: i64, caps: Option<Capabilities>) {
        let (bits, version) = match caps {
            Some(c) => (c.bitstring, c.version),
            None => (
                capabilities::bitstring(capabilities::DEFAULT),
                String::new(),
            ),
        };
        self.remotes.push(Remote {
            id,
            tx,
            capacity,
            load: 0,
            bits,
            version,
        });
        self.sort();
    }

    fn sort(&mut self) {
        // sort.Sort(byLoadFactor): descending load factor (Go's sort is not stable either;
        // ties keep insertion order here).
        self.remotes
            .sort_by(|a, b| b.load_factor().total_cmp(&a.load_factor()));
    }

    /// Live transcoders and their total capacity.
    pub fn live(&self) -> (usize, i64) {
        let live = self.remotes.iter().filter(|r| r.live());
        (live.clone().count(), live.map(|r| r.capacity).sum())
    }

    /// `selectTranscoder(sessionId, caps)`.
    pub fn select(&mut self, session: &str, job: &Job) -> Result<(u64, Tx), &'static str> {
        while !self.remotes.is_empty() {
            let compatible = self.remotes.iter().rposition(|r| {
                capabilities::covers(&r.bits, &job.bits)
                    && capabilities::version_compatible(&job.min_version, &r.version)
            });
            let Some(last) = compatible else {
                return Err(NO_COMPATIBLE);
            };
            let current = self.sessions.get(session).copied();
            let idx = match current {
                Some(id) => self.remotes.iter().position(|r| r.id == id),
                None => Some(last),
            };
            let idx = match idx {
                Some(i) if self.remotes[i].live() => i,
                gone => {
                    // Its transcoder is gone: forget the session and the transcoder, retry.
                    if current.is_some() {
                        self.complete(session);
                    }
                    if let Some(i) = gone {
                        self.remotes.remove(i);
                    }
                    continue;
                }
            };
            if current.is_none() {
                if self.remotes[idx].load == self.remotes[idx].capacity {
                    // The least loaded is full, so all are.
                    return Err(NO_TRANSCODERS);
                }
                self.sessions
                    .insert(session.to_string(), self.remotes[idx].id);
                self.remotes[idx].load += 1;
                let picked = (self.remotes[idx].id, self.remotes[idx].tx.clone());
                self.sort();
                return Ok(picked);
            }
            return Ok((self.remotes[idx].id, self.remotes[idx].tx.clone()));
        }
        Err(NO_TRANSCODERS)
    }

    /// `completeStreamSession`: frees the stream's slot.
    pub fn complete(&mut self, session: &str) {
        if let Some(id) = self.sessions.remove(session) {
            if let Some(r) = self.remotes.iter_mut().find(|r| r.id == id) {
                r.load -= 1;
            }
            self.sort();
        }
    }

    /// The transcoder a stream is mapped to, if any (a teardown goes only there).
    pub fn session_tx(&self, session: &str) -> Option<Tx> {
        let id = self.sessions.get(session)?;
        self.remotes
            .iter()
            .find(|r| r.id == *id)
            .map(|r| r.tx.clone())
    }

    /// A transcoder failed fatally (timeout, send error): it is no longer live.
    pub fn drop_remote(&mut self, id: u64) {
        self.remotes.retain(|r| r.id != id);
        self.sessions.retain(|_, t| *t != id);
    }

    /// Senders of every live transcoder (to wait for teardowns to drain).
    pub fn senders(&self) -> Vec<Tx> {
        self.remotes.iter().map(|r| r.tx.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(
        m: &mut Manager,
        id: u64,
        capacity: i64,
        caps: &[u32],
        version: &str,
    ) -> mpsc::Receiver<Result<NotifySegment, tonic::Status>> {
        let (tx, rx) = mpsc::channel(4);
        m.add(
            id,
            tx,
            capacity,
            Some(Capabilities {
                bitstring: capabilities::bitstring(caps),
                version: version.into(),
                ..Default::default()
            }),
        );
        rx
    }

    fn job(caps: &[u32], min: &str) -> Job {
        Job {
            bits: capabilities::bitstring(caps),
            min_version: min.into(),
        }
    }

    #[test]
    fn selection_follows_go_livepeer() {
        let mut m = Manager::default();
        let _a = remote(&mut m, 1, 2, &[0, 1, 12], "0.9.1");
        let _b = remote(&mut m, 2, 1, &[0, 1, 12, 14, 26], "0.9.1");
        // An HTTP-push job needs 26: only transcoder 2 has it.
        assert_eq!(m.select("s1", &job(&[0, 12, 26], "")).unwrap().0, 2);
        // Transcoder 2 is full: a second such stream finds none.
        assert_eq!(
            m.select("s2", &job(&[0, 12, 26], "")).unwrap_err(),
            NO_TRANSCODERS
        );
        // The same stream keeps its transcoder.
        assert_eq!(m.select("s1", &job(&[0, 12, 26], "")).unwrap().0, 2);
        // Capabilities nobody has.
        assert_eq!(
            m.select("s3", &job(&[0, 15], "")).unwrap_err(),
            NO_COMPATIBLE
        );
        // A minimum version above everyone's.
        assert_eq!(
            m.select("s3", &job(&[0], "0.9.2")).unwrap_err(),
            NO_COMPATIBLE
        );
        // An error frees the slot without a teardown.
        m.complete("s1");
        assert!(m.session_tx("s1").is_none());
        assert_eq!(m.select("s2", &job(&[0, 12, 26], "")).unwrap().0, 2);
        // Plain jobs go to the least loaded.
        assert_eq!(m.select("s4", &job(&[0], "")).unwrap().0, 1);
    }

    #[test]
    fn a_gone_transcoder_is_dropped_and_its_streams_move() {
        let mut m = Manager::default();
        let a = remote(&mut m, 1, 2, &[0], "0.9.1");
        let _b = remote(&mut m, 2, 2, &[0], "0.9.1");
        let first = m.select("s", &job(&[0], "")).unwrap().0;
        if first == 1 {
            drop(a);
        } else {
            drop(_b);
        }
        let second = m.select("s", &job(&[0], "")).unwrap().0;
        assert_ne!(first, second);
        assert_eq!(m.live().0, 1);
    }
}

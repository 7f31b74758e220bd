//! Admission control: a worker takes at most `capacity` sessions. Past that, a new session is
//! refused at once with a "busy" error (what go-livepeer calls `OrchestratorCapped`): no queue
//! of waiting sessions exists, so overload can never turn into unbounded memory.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

#[derive(Debug)]
pub struct Admission {
    capacity: usize,
    active: AtomicUsize,
    refused: AtomicUsize,
}

/// Refused: the worker is at capacity.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("busy: all {capacity} sessions of this worker are in use")]
pub struct Busy {
    pub capacity: usize,
}

/// One admitted session; dropping it frees the place.
#[derive(Debug)]
pub struct Permit(Arc<Admission>);

impl Admission {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Admission {
            capacity,
            active: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        })
    }

    /// Admits one more session, or refuses it at once.
    pub fn admit(self: &Arc<Self>) -> Result<Permit, Busy> {
        let mut now = self.active.load(SeqCst);
        loop {
            if now >= self.capacity {
                self.refused.fetch_add(1, SeqCst);
                return Err(Busy {
                    capacity: self.capacity,
                });
            }
            match self.active.compare_exchange(now, now + 1, SeqCst, SeqCst) {
                Ok(_) => return Ok(Permit(self.clone())),
                Err(seen) => now = seen,
            }
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sessions admitted and not yet closed.
    pub fn active(&self) -> usize {
        self.active.load(SeqCst)
    }

    /// Sessions refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(SeqCst)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_capacity_and_frees_on_drop() {
        let a = Admission::new(2);
        let p1 = a.admit().unwrap();
        let _p2 = a.admit().unwrap();
        assert_eq!(a.admit().unwrap_err(), Busy { capacity: 2 });
        assert_eq!((a.active(), a.refused()), (2, 1));
        drop(p1);
        assert!(a.admit().is_ok());
    }
}

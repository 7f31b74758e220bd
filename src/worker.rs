//! The worker: one CPU stage pool sized to the cores, admission control in sessions, and the
//! sessions it runs. Every front end (CLI, bench, network) goes through it.

use crate::error::Result;
use crate::pipeline::{Session, SessionConfig};
use crate::sched::{Admission, Placement, Pool};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Pool threads; 0 = one per core.
    pub threads: usize,
    /// Sessions admitted at once; more are refused as busy.
    pub capacity: usize,
    /// CUDA devices sessions are placed on (least-loaded, sticky); empty = CPU only.
    pub devices: Vec<usize>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            threads: 0,
            capacity: 16,
            devices: Vec::new(),
        }
    }
}

/// Close (drop) a worker's sessions before the worker: its pool threads run their stages.
pub struct Worker {
    pool: Pool,
    admission: Arc<Admission>,
    placement: Option<Arc<Placement>>,
}

/// Cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Worker {
    pub fn new(cfg: WorkerConfig) -> Self {
        let threads = if cfg.threads == 0 {
            cores()
        } else {
            cfg.threads
        };
        let max_actors = cfg.capacity * (crate::profile::MAX_RENDITIONS + 1);
        // A GPU that loads no image of the scale kernel takes no sessions: they run on the
        // CPU (or on the other GPUs) instead of failing there one by one.
        let devices: Vec<usize> = cfg
            .devices
            .into_iter()
            .filter(
                |&d| match crate::backend::cuda::engines::engines(d).kernel_reason {
                    Some(why) => {
                        tracing::warn!("GPU {d} is not used: {why}");
                        false
                    }
                    None => true,
                },
            )
            .collect();
        Worker {
            pool: Pool::new(threads, max_actors),
            admission: Admission::new(cfg.capacity),
            placement: (!devices.is_empty()).then(|| Placement::new(devices)),
        }
    }

    /// Opens a session, or refuses at once with [`crate::Error::Busy`] at capacity. With GPUs
    /// configured, the session is placed on the least-loaded one and scales there; it also
    /// decodes there where NVDEC takes the stream (see the source stage), and encodes there if
    /// the GPU has NVENC and the sessions its driver allows are not all taken (otherwise its
    /// renditions encode on the CPU).
    pub fn open_session(&self, mut cfg: SessionConfig) -> Result<Session> {
        let permit = self.admission.admit()?;
        let mut lease = self.placement.as_ref().map(|p| p.place());
        if let Some(l) = &mut lease {
            let engines = crate::backend::cuda::engines::engines(l.device);
            cfg.cuda_device = Some(l.device);
            let renditions = cfg.profiles.len() as u32;
            // NVENC takes the session only if it encodes every rendition's codec (the scaler
            // writes device frames for all of them, or host frames for all).
            let encodes_all = cfg.profiles.iter().all(|p| engines.nvenc_encodes(p.codec));
            cfg.nvenc = cfg.nvenc
                && encodes_all
                && l.reserve_nvenc(renditions, engines.nvenc_session_limit);
            tracing::debug!(
                device = l.device,
                nvdec = cfg.nvdec,
                nvenc = cfg.nvenc,
                "session placed"
            );
        }
        Session::open(&self.pool.handle(), permit, lease, cfg)
    }

    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// What `/metrics` shows: sessions, capacity and sessions per device.
    pub fn snapshot(&self) -> crate::net::metrics::Snapshot {
        crate::net::metrics::Snapshot {
            sessions: self.admission.active(),
            capacity: self.admission.capacity(),
            devices: self.placement.as_ref().map_or_else(Vec::new, |p| {
                p.devices()
                    .iter()
                    .zip(p.load())
                    .map(|(d, n)| (format!("cuda:{d}"), n))
                    .collect()
            }),
        }
    }
}

//! GPU placement: a session is pinned to one device for its whole life (its frames, codecs and
//! kernels live there), chosen least-loaded at admission, ties to the lowest index. It also
//! counts each device's NVENC sessions (one per rendition) against the limit the driver
//! enforces on consumer cards, so a session that would exceed it encodes on the CPU instead
//! of failing.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct Placement {
    devices: Vec<usize>,
    load: Mutex<Vec<usize>>,
    /// NVENC sessions in use per device.
    nvenc: Mutex<Vec<u32>>,
}

/// A session's place on a device; dropping it frees the place and its NVENC sessions.
#[derive(Debug)]
pub struct DeviceLease {
    placement: Arc<Placement>,
    slot: usize,
    pub device: usize,
    nvenc_sessions: AtomicU32,
}

impl DeviceLease {
    /// Reserves `n` NVENC sessions on this device if they fit under `limit` (None = no
    /// limit); false when the device is at its limit.
    pub fn reserve_nvenc(&mut self, n: u32, limit: Option<u32>) -> bool {
        let mut used = lock(&self.placement.nvenc);
        if limit.is_some_and(|l| used[self.slot] + n > l) {
            return false;
        }
        used[self.slot] += n;
        self.nvenc_sessions.fetch_add(n, SeqCst);
        true
    }

    /// Gives back one NVENC session of this lease's reservation (a rendition that the driver
    /// refused a session encodes on the CPU); false when none is left.
    pub fn release_nvenc(&self) -> bool {
        let mut used = lock(&self.placement.nvenc);
        let taken = self
            .nvenc_sessions
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if taken {
            used[self.slot] -= 1;
        }
        taken
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Placement {
    /// Placement over the given CUDA device ordinals (at least one).
    pub fn new(devices: Vec<usize>) -> Arc<Self> {
        assert!(!devices.is_empty(), "placement needs a device");
        Arc::new(Placement {
            load: Mutex::new(vec![0; devices.len()]),
            nvenc: Mutex::new(vec![0; devices.len()]),
            devices,
        })
    }

    /// The least-loaded device, for one more session.
    pub fn place(self: &Arc<Self>) -> DeviceLease {
        let mut load = lock(&self.load);
        let slot = (0..load.len())
            .min_by_key(|&i| (load[i], i))
            .expect("a device");
        load[slot] += 1;
        DeviceLease {
            placement: self.clone(),
            slot,
            device: self.devices[slot],
            nvenc_sessions: AtomicU32::new(0),
        }
    }

    /// Sessions per device, in the order of [`Placement::new`].
    pub fn load(&self) -> Vec<usize> {
        lock(&self.load).clone()
    }

    /// The device ordinals, in placement order.
    pub fn devices(&self) -> &[usize] {
        &self.devices
    }

    /// NVENC sessions in use per device.
    pub fn nvenc_load(&self) -> Vec<u32> {
        lock(&self.nvenc).clone()
    }
}

impl Drop for DeviceLease {
    fn drop(&mut self) {
        lock(&self.placement.load)[self.slot] -= 1;
        lock(&self.placement.nvenc)[self.slot] -= self.nvenc_sessions.load(SeqCst);
    }
}

/// Parses `--nvidia`: `0,1,3` or `all` (every device of `available`).
pub fn parse_devices(spec: &str, available: usize) -> Result<Vec<usize>, String> {
    if spec == "all" {
        return if available == 0 {
            Err("no CUDA device found".into())
        } else {
            Ok((0..available).collect())
        };
    }
    let mut v = Vec::new();
    for part in spec.split(',') {
        let d: usize = part
            .trim()
            .parse()
            .map_err(|_| format!("'{spec}': expected device numbers like 0,1 or 'all'"))?;
        if d >= available {
            return Err(format!("device {d}: only {available} CUDA device(s) found"));
        }
        if !v.contains(&d) {
            v.push(d);
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_loaded_and_sticky_until_dropped() {
        let p = Placement::new(vec![0, 1]);
        let a = p.place();
        let b = p.place();
        let c = p.place();
        assert_eq!((a.device, b.device, c.device), (0, 1, 0));
        drop(b);
        assert_eq!(p.place().device, 1);
        assert_eq!(p.load(), vec![2, 0]);
    }

    #[test]
    fn nvenc_sessions_given_back_one_by_one() {
        let p = Placement::new(vec![0]);
        let mut a = p.place();
        assert!(a.reserve_nvenc(2, Some(3)));
        assert!(!p.place().reserve_nvenc(2, Some(3)));
        assert!(a.release_nvenc());
        assert_eq!(p.nvenc_load(), vec![1]);
        assert!(a.release_nvenc());
        assert!(!a.release_nvenc());
        assert_eq!(p.nvenc_load(), vec![0]);
        drop(a);
        assert_eq!(p.nvenc_load(), vec![0]);
    }

    #[test]
    fn device_lists() {
        assert_eq!(parse_devices("all", 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_devices("1, 0,1", 2).unwrap(), vec![1, 0]);
        assert!(parse_devices("2", 2).unwrap_err().contains("only 2"));
        assert!(parse_devices("x", 2).is_err());
        assert!(parse_devices("all", 0).is_err());
    }
}

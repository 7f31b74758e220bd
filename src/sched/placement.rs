//! GPU placement: a session is pinned to one device for its whole life (its frames, codecs and
//! kernels live there), chosen least-loaded at admission, ties to the lowest index.

use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct Placement {
    devices: Vec<usize>,
    load: Mutex<Vec<usize>>,
}

/// A session's place on a device; dropping it frees the place.
#[derive(Debug)]
pub struct DeviceLease {
    placement: Arc<Placement>,
    slot: usize,
    pub device: usize,
}

impl Placement {
    /// Placement over the given CUDA device ordinals (at least one).
    pub fn new(devices: Vec<usize>) -> Arc<Self> {
        assert!(!devices.is_empty(), "placement needs a device");
        Arc::new(Placement {
            load: Mutex::new(vec![0; devices.len()]),
            devices,
        })
    }

    /// The least-loaded device, for one more session.
    pub fn place(self: &Arc<Self>) -> DeviceLease {
        let mut load = self.load.lock().unwrap_or_else(|p| p.into_inner());
        let slot = (0..load.len())
            .min_by_key(|&i| (load[i], i))
            .expect("a device");
        load[slot] += 1;
        DeviceLease {
            placement: self.clone(),
            slot,
            device: self.devices[slot],
        }
    }

    /// Sessions per device, in the order of [`Placement::new`].
    pub fn load(&self) -> Vec<usize> {
        self.load.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for DeviceLease {
    fn drop(&mut self) {
        let mut load = self
            .placement
            .load
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        load[self.slot] -= 1;
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
    fn device_lists() {
        assert_eq!(parse_devices("all", 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_devices("1, 0,1", 2).unwrap(), vec![1, 0]);
        assert!(parse_devices("2", 2).unwrap_err().contains("only 2"));
        assert!(parse_devices("x", 2).is_err());
        assert!(parse_devices("all", 0).is_err());
    }
}

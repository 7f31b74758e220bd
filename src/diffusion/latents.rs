//! Initial latents given by the caller instead of seeded noise, read from a NumPy `.npy` file
//! (float32, `[1, channels, height / 8, width / 8]`), so that anyone can start our sampler and
//! another implementation (diffusers' `latents=` argument) from the same tensor and compare.

use super::DiffusionError;

/// A float32 tensor read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Latents {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

fn bad(why: impl std::fmt::Display) -> DiffusionError {
    DiffusionError::Input(format!("latents: {why}"))
}

impl Latents {
    /// Parses `.npy` bytes (format versions 1 to 3): little-endian float32, C order.
    pub fn from_npy(bytes: &[u8]) -> Result<Self, DiffusionError> {
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
            return Err(bad("not a .npy file"));
        }
        let (len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            ),
            v => return Err(bad(format!("unsupported .npy version {v}"))),
        };
        let header = bytes
            .get(start..start + len)
            .and_then(|h| std::str::from_utf8(h).ok())
            .ok_or_else(|| bad("truncated header"))?;
        let field = |key: &str| -> Option<&str> {
            let at = header.find(&format!("'{key}':"))? + key.len() + 3;
            Some(header[at..].trim_start())
        };
        let descr = field("descr").ok_or_else(|| bad("no descr"))?;
        if !descr.starts_with("'<f4'") {
            return Err(bad(format!(
                "the data must be little-endian float32 ('<f4'), not {}",
                descr.split(',').next().unwrap_or(descr)
            )));
        }
        if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
            return Err(bad(
                "Fortran-ordered arrays are not read (save a C-ordered one)",
            ));
        }
        let shape = field("shape")
            .and_then(|v| v.strip_prefix('('))
            .and_then(|v| v.split(')').next())
            .ok_or_else(|| bad("no shape"))?;
        let shape: Vec<usize> = shape
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| bad(format!("bad shape entry '{s}'"))))
            .collect::<Result<_, _>>()?;
        let n: usize = shape.iter().product();
        let body = &bytes[start + len..];
        if body.len() != 4 * n {
            return Err(bad(format!(
                "shape {shape:?} needs {} bytes of data, the file has {}",
                4 * n,
                body.len()
            )));
        }
        let data = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Latents { shape, data })
    }

    /// The `.npy` bytes of a float32 tensor (format 1.0), as `numpy.save` writes them.
    pub fn to_npy(&self) -> Vec<u8> {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        let shape = match dims.len() {
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.join(", ")),
        };
        let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        // Magic, version and length take 10 bytes; the header ends in a newline, padded so
        // that the data starts on a multiple of 64.
        let pad = 64 - (10 + header.len() + 1) % 64;
        header.push_str(&" ".repeat(pad % 64));
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for v in &self.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_refusals() {
        let l = Latents {
            shape: vec![1, 4, 2, 3],
            data: (0..24).map(|i| i as f32 * 0.5 - 3.0).collect(),
        };
        let bytes = l.to_npy();
        assert_eq!(
            (10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64,
            0
        );
        assert_eq!(Latents::from_npy(&bytes).unwrap(), l);
        let mut f8 = bytes.clone();
        let at = f8.windows(3).position(|w| w == b"<f4").unwrap();
        f8[at + 2] = b'8';
        let e = Latents::from_npy(&f8).unwrap_err().to_string();
        assert!(e.contains("float32"), "{e}");
        let e = Latents::from_npy(&bytes[..bytes.len() - 4])
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs 96 bytes"), "{e}");
        assert!(Latents::from_npy(b"PK\x03\x04 not npy").is_err());
    }
}

//! Images in and out of the model: any common format decoded to RGB, tensors in [-1, 1],
//! and PNG data URLs as the runner returns them.

use super::DiffusionError;
use base64::Engine;
use candle_core::{DType, Device, Result, Tensor};

/// 8-bit RGB, rows top to bottom, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Rgb {
    /// Decodes PNG, JPEG, WebP, BMP or GIF (first frame).
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, DiffusionError> {
        let img = image::load_from_memory(bytes).map_err(|e| {
            DiffusionError::Input(format!(
                "image is not a decodable image (PNG, JPEG, WebP, BMP or GIF): {e}"
            ))
        })?;
        let rgb = img.to_rgb8();
        Ok(Rgb {
            width: rgb.width() as usize,
            height: rgb.height() as usize,
            data: rgb.into_raw(),
        })
    }

    /// This image resized (Lanczos) to `width`x`height`; itself if it already is that size.
    pub fn resized(self, width: usize, height: usize) -> Self {
        if (width, height) == (self.width, self.height) {
            return self;
        }
        let img = image::RgbImage::from_raw(self.width as u32, self.height as u32, self.data)
            .expect("buffer matches its size");
        let out = image::imageops::resize(
            &img,
            width as u32,
            height as u32,
            image::imageops::FilterType::Lanczos3,
        );
        Rgb {
            width,
            height,
            data: out.into_raw(),
        }
    }

    /// `(1, 3, h, w)` in [-1, 1] on `device` as `dtype`.
    pub fn to_tensor(&self, device: &Device, dtype: DType) -> Result<Tensor> {
        let t = Tensor::from_vec(
            self.data.clone(),
            (self.height, self.width, 3),
            &Device::Cpu,
        )?
        .permute((2, 0, 1))?
        .to_dtype(DType::F32)?;
        ((t / 127.5)? - 1.0)?
            .unsqueeze(0)?
            .to_device(device)?
            .to_dtype(dtype)
    }

    /// From `(1, 3, h, w)` in [-1, 1] (clamped, rounded).
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let (_, _, h, w) = t.dims4()?;
        let t = ((t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.get(0)? + 1.0)? * 127.5)?;
        let v: Vec<f32> = t.permute((1, 2, 0))?.flatten_all()?.to_vec1()?;
        let data = v
            .into_iter()
            .map(|x| {
                if x.is_nan() {
                    0
                } else {
                    (x + 0.5).clamp(0.0, 255.0) as u8
                }
            })
            .collect();
        Ok(Rgb {
            width: w,
            height: h,
            data,
        })
    }

    pub fn png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let enc = image::codecs::png::PngEncoder::new(&mut out);
        image::ImageEncoder::write_image(
            enc,
            &self.data,
            self.width as u32,
            self.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .expect("PNG encoding into memory cannot fail");
        out
    }

    /// `data:image/png;base64,...` as the runner's `image_to_data_url`.
    pub fn png_data_url(&self) -> String {
        format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(self.png())
        )
    }
}

/// The bytes of a `data:` URL with base64 content.
pub fn data_url_bytes(url: &str) -> Option<Vec<u8>> {
    let (_, b64) = url.strip_prefix("data:")?.split_once(";base64,")?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip_and_tensor_round_trip() {
        let img = Rgb {
            width: 3,
            height: 2,
            data: (0..18).map(|i| (i * 14) as u8).collect(),
        };
        let back = Rgb::decode(&data_url_bytes(&img.png_data_url()).unwrap()).unwrap();
        assert_eq!(back, img);
        let t = img.to_tensor(&Device::Cpu, DType::F32).unwrap();
        assert_eq!(t.dims(), &[1, 3, 2, 3]);
        assert_eq!(Rgb::from_tensor(&t).unwrap(), img);
        assert!(Rgb::decode(b"not an image").is_err());
    }
}

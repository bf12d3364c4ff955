//! Raw media as the app hands it over, and the packed I420 picture the encoders take.

use crate::error::{Error, Result};

/// Pixel formats accepted by `push_video`. Values are stable (they cross the C ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum PixelFormat {
    /// Planar Y, U, V (three planes).
    KP_PIXEL_FORMAT_I420 = 0,
    /// Y plane + interleaved UV plane (iOS camera, MediaCodec).
    KP_PIXEL_FORMAT_NV12 = 1,
    /// Y plane + interleaved VU plane (Android camera).
    KP_PIXEL_FORMAT_NV21 = 2,
}

impl PixelFormat {
    pub fn from_raw(v: i64) -> Result<Self> {
        Ok(match v {
            0 => PixelFormat::KP_PIXEL_FORMAT_I420,
            1 => PixelFormat::KP_PIXEL_FORMAT_NV12,
            2 => PixelFormat::KP_PIXEL_FORMAT_NV21,
            other => return Err(Error::BadPixelFormat(other)),
        })
    }

    /// Number of planes the app passes.
    pub fn planes(self) -> usize {
        match self {
            PixelFormat::KP_PIXEL_FORMAT_I420 => 3,
            _ => 2,
        }
    }
}

/// A borrowed raw picture. Unused planes are empty slices with stride 0.
#[derive(Debug, Clone, Copy)]
pub struct VideoFrame<'a> {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub planes: [&'a [u8]; 3],
    /// Bytes per row of each plane (>= the plane's row width).
    pub strides: [usize; 3],
}

/// A packed I420 picture (Y, then U, then V, no padding), owned; pooled by the pusher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct I420Buffer {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl I420Buffer {
    pub fn new(width: u32, height: u32) -> Self {
        let mut b = I420Buffer::default();
        b.resize(width, height);
        b
    }

    pub fn resize(&mut self, width: u32, height: u32) {
        self.width = width;
        self.height = height;
        self.data.resize(Self::size(width, height), 0);
    }

    pub fn size(width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        w * h + 2 * (w.div_ceil(2) * h.div_ceil(2))
    }

    fn luma_len(&self) -> usize {
        self.width as usize * self.height as usize
    }

    fn chroma_len(&self) -> usize {
        (self.width as usize).div_ceil(2) * (self.height as usize).div_ceil(2)
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.luma_len()]
    }
    pub fn u(&self) -> &[u8] {
        let (l, c) = (self.luma_len(), self.chroma_len());
        &self.data[l..l + c]
    }
    pub fn v(&self) -> &[u8] {
        let (l, c) = (self.luma_len(), self.chroma_len());
        &self.data[l + c..l + 2 * c]
    }
    /// Mutable Y, U and V planes at once.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (l, c) = (self.luma_len(), self.chroma_len());
        let (y, rest) = self.data.split_at_mut(l);
        let (u, v) = rest.split_at_mut(c);
        (y, u, &mut v[..c])
    }
}

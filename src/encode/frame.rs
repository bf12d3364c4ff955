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
    /// Packed 4:2:2, bytes Y0 U Y1 V (USB/V4L2 cameras; FFmpeg's `yuyv422`). One plane.
    KP_PIXEL_FORMAT_YUY2 = 3,
    /// Packed 4:2:2, bytes U Y0 V Y1 (FFmpeg's `uyvy422`). One plane.
    KP_PIXEL_FORMAT_UYVY = 4,
    /// 8-bit R, G, B, A bytes per pixel (GPU read-backs); alpha is ignored. One plane.
    KP_PIXEL_FORMAT_RGBA = 5,
    /// 8-bit B, G, R, A bytes per pixel (Windows/macOS capture); alpha is ignored. One plane.
    KP_PIXEL_FORMAT_BGRA = 6,
}

impl PixelFormat {
    pub fn from_raw(v: i64) -> Result<Self> {
        Ok(match v {
            0 => PixelFormat::KP_PIXEL_FORMAT_I420,
            1 => PixelFormat::KP_PIXEL_FORMAT_NV12,
            2 => PixelFormat::KP_PIXEL_FORMAT_NV21,
            3 => PixelFormat::KP_PIXEL_FORMAT_YUY2,
            4 => PixelFormat::KP_PIXEL_FORMAT_UYVY,
            5 => PixelFormat::KP_PIXEL_FORMAT_RGBA,
            6 => PixelFormat::KP_PIXEL_FORMAT_BGRA,
            other => return Err(Error::BadPixelFormat(other)),
        })
    }

    /// Number of planes the app passes.
    pub fn planes(self) -> usize {
        match self {
            PixelFormat::KP_PIXEL_FORMAT_I420 => 3,
            PixelFormat::KP_PIXEL_FORMAT_NV12 | PixelFormat::KP_PIXEL_FORMAT_NV21 => 2,
            _ => 1,
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

/// How the chroma of an [`I420Buffer`] is laid out after the Y plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChromaLayout {
    /// U plane, then V plane (I420): what every encoder takes.
    #[default]
    Planar,
    /// One interleaved plane, U first (NV12). Only for encoders that take it (x264), so camera
    /// frames reach them without a conversion.
    Nv12,
    /// One interleaved plane, V first (NV21).
    Nv21,
}

/// A packed 4:2:0 picture (Y, then chroma, no padding), owned; pooled by the pusher. The chroma is
/// I420 (U plane, V plane) unless `chroma` says otherwise; both layouts have the same size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct I420Buffer {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
    pub chroma: ChromaLayout,
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
        self.chroma = ChromaLayout::Planar;
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

    /// The interleaved chroma plane of a semi-planar (NV12/NV21) picture: `width` bytes per row.
    pub fn uv(&self) -> &[u8] {
        let (l, c) = (self.luma_len(), self.chroma_len());
        &self.data[l..l + 2 * c]
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
    /// The picture as a frame to push or convert (planar I420 only: not for NV12 layout).
    pub fn as_frame(&self) -> VideoFrame<'_> {
        let cw = (self.width as usize).div_ceil(2);
        VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_I420,
            width: self.width,
            height: self.height,
            planes: [self.y(), self.u(), self.v()],
            strides: [self.width as usize, cw, cw],
        }
    }

    /// Mutable Y, U and V planes at once.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (l, c) = (self.luma_len(), self.chroma_len());
        let (y, rest) = self.data.split_at_mut(l);
        let (u, v) = rest.split_at_mut(c);
        (y, u, &mut v[..c])
    }
}

//! Pixel format checks and conversion of app frames into the packed 4:2:0 picture the encoders take.
//!
//! Apps hand over camera buffers with row padding (strides) and, on mobile, semi-planar chroma
//! (NV12 from iOS / MediaCodec, NV21 from the Android camera); USB cameras give packed 4:2:2
//! (YUY2, UYVY) and GPUs RGBA/BGRA. Everything here is bounds-checked up front by [`validate`], so
//! the copy loops can use plain slices without per-pixel checks.
//!
//! Each frame is converted once, on the pushing thread, straight into the pooled picture the
//! encoder reads: RGB by the `yuv` crate (SIMD); the semi-planar de-interleave (no crate has it)
//! and packed 4:2:2 (the crate's drops half the chroma rows) are hand-written below. RGB uses BT.601 limited range (Y in
//! 16..=235, the matrix FFmpeg's swscale and most decoders assume for SD/HD H.264 without colour
//! metadata): Y = 16 + 0.257 R + 0.504 G + 0.098 B, Cb = 128 - 0.148 R - 0.291 G + 0.439 B,
//! Cr = 128 + 0.439 R - 0.368 G - 0.071 B, chroma averaged over each 2x2 block.

use super::frame::{ChromaLayout, I420Buffer, PixelFormat, VideoFrame};
use super::scale::{Plane, PlaneScaler};
use crate::encode::options::VideoScaling;
use crate::error::{Error, Result};
use yuv::{BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange, YuvStandardMatrix};

/// Checks that `frame` has the configured size and that every plane it needs is long enough for
/// its stride and row count.
///
/// A plane must hold `stride * (rows - 1) + row_bytes` bytes: the last row need not carry its
/// padding, because Android's `Image` planes (and some hardware buffers) end right after the last
/// pixel. An interleaved (NV12/NV21) chroma plane may even end one byte before its last row does:
/// Camera2's `YUV_420_888` planes with a pixel stride of 2 are two views of one interleaved block,
/// each ending at its own last sample, so the plane handed over as NV12 (from U) or NV21 (from V)
/// lacks the other component's last sample; it is taken from its left neighbour. Sizes are
/// computed with checked arithmetic so hostile C callers cannot overflow them.
pub fn validate(frame: &VideoFrame, width: u32, height: u32) -> Result<()> {
    validate_shape(frame)?;
    let (w, h) = (frame.width, frame.height);
    if (w, h) != (width, height) {
        return Err(Error::BadDimensions(format!("{w}x{h} differs from the configured {width}x{height}")));
    }
    Ok(())
}

/// [`validate`] without the size check: the frame is consistent in itself.
pub fn validate_shape(frame: &VideoFrame) -> Result<()> {
    let (w, h) = (frame.width, frame.height);
    if w == 0 || h == 0 || w % 2 != 0 || h % 2 != 0 {
        return Err(Error::BadDimensions(format!("{w}x{h}: width and height must be non-zero and even")));
    }
    let (w, h) = (w as usize, h as usize);
    let (cw, ch) = (w / 2, h / 2);
    match frame.format {
        PixelFormat::KP_PIXEL_FORMAT_I420 => {
            check_plane(frame, 0, w, h, "Y")?;
            check_plane(frame, 1, cw, ch, "U")?;
            check_plane(frame, 2, cw, ch, "V")
        }
        PixelFormat::KP_PIXEL_FORMAT_NV12 => {
            check_plane(frame, 0, w, h, "Y")?;
            check_plane_short(frame, 1, w, ch, "UV", 1)
        }
        PixelFormat::KP_PIXEL_FORMAT_NV21 => {
            check_plane(frame, 0, w, h, "Y")?;
            check_plane_short(frame, 1, w, ch, "VU", 1)
        }
        PixelFormat::KP_PIXEL_FORMAT_YUY2 | PixelFormat::KP_PIXEL_FORMAT_UYVY => {
            let row = w.checked_mul(2).ok_or_else(|| Error::BadDimensions(format!("{w} pixels per row")))?;
            check_plane(frame, 0, row, h, "packed YUV")?;
            check_u32_geometry(frame)
        }
        PixelFormat::KP_PIXEL_FORMAT_RGBA | PixelFormat::KP_PIXEL_FORMAT_BGRA => {
            let row = w.checked_mul(4).ok_or_else(|| Error::BadDimensions(format!("{w} pixels per row")))?;
            check_plane(frame, 0, row, h, "RGB")?;
            check_u32_geometry(frame)
        }
    }
}

/// [`validate`] for a pusher whose frames may be larger than its `width` x `height` (the
/// configured size) when `scaling` allows scaling down.
pub fn validate_scalable(frame: &VideoFrame, width: u32, height: u32, scaling: VideoScaling) -> Result<()> {
    validate_shape(frame)?;
    let (w, h) = (frame.width, frame.height);
    if (w, h) == (width, height) {
        return Ok(());
    }
    if scaling == VideoScaling::KP_VIDEO_SCALING_OFF {
        return Err(Error::BadDimensions(format!(
            "{w}x{h} differs from the configured {width}x{height} (scaling is off)"
        )));
    }
    if w < width || h < height {
        return Err(Error::BadDimensions(format!(
            "{w}x{h} is smaller than the configured {width}x{height}: frames are only scaled down"
        )));
    }
    Ok(())
}

/// Converts and scales frames larger than the output size; made once per pusher and reused, so
/// that scaling allocates only when the input size changes.
#[derive(Debug, Default)]
pub struct Downscaler {
    luma: PlaneScaler,
    chroma: PlaneScaler,
    /// The frame converted to I420 at its own size, for formats that are not I420 already.
    full: I420Buffer,
}

/// The part of a `w` x `h` frame that is scaled into `dw` x `dh`: (x, y, width, height), all even.
pub fn source_rect(w: u32, h: u32, dw: u32, dh: u32, scaling: VideoScaling) -> (u32, u32, u32, u32) {
    let (w64, h64, dw64, dh64) = (u64::from(w), u64::from(h), u64::from(dw), u64::from(dh));
    if scaling != VideoScaling::KP_VIDEO_SCALING_FILL || w64 * dh64 == h64 * dw64 {
        return (0, 0, w, h);
    }
    // Nearest even size with the output's aspect ratio; never below the output size, since the
    // uncut side is at least as large as the output's.
    let even = |num: u64, den: u64| ((num + den) / (2 * den) * 2) as u32;
    if w64 * dh64 > h64 * dw64 {
        let cw = even(h64 * dw64, dh64).clamp(dw, w);
        (((w - cw) / 2) & !1, 0, cw, h)
    } else {
        let ch = even(w64 * dh64, dw64).clamp(dh, h);
        (0, ((h - ch) / 2) & !1, w, ch)
    }
}

/// Like [`copy_to_picture`], scaling a frame larger than `width` x `height` down to that size
/// (as `scaling` says; the caller has checked it with [`validate_scalable`]). A frame of that size
/// takes the plain conversion. Scaled pictures are I420.
pub fn convert_scaled(
    frame: &VideoFrame,
    out: &mut I420Buffer,
    semi_planar_ok: bool,
    (width, height): (u32, u32),
    scaling: VideoScaling,
    scaler: &mut Downscaler,
) -> Result<()> {
    validate_scalable(frame, width, height, scaling)?;
    if (frame.width, frame.height) == (width, height) {
        return convert(frame, out, semi_planar_ok);
    }
    let (x, y, cw, ch) = source_rect(frame.width, frame.height, width, height, scaling);
    let (x, y, cw, ch) = (x as usize, y as usize, cw as usize, ch as usize);
    let (dw, dh) = (width as usize, height as usize);
    if scaler.luma.sizes() != ((cw, ch), (dw, dh)) {
        scaler.luma = PlaneScaler::new((cw, ch), (dw, dh));
        scaler.chroma = PlaneScaler::new((cw / 2, ch / 2), (dw / 2, dh / 2));
    }
    let (fw, fh) = (frame.width as usize, frame.height as usize);
    out.resize(width, height);
    // NV12/NV21 are read in place too: the interleaved chroma is scaled as it lies, which costs
    // about what I420 does, where converting the whole frame first cost a full-size copy. A chroma
    // plane that ends before its last row does (Camera2, see `validate`) takes the copy instead.
    let vu = frame.format == PixelFormat::KP_PIXEL_FORMAT_NV21;
    let semi_planar = vu || frame.format == PixelFormat::KP_PIXEL_FORMAT_NV12;
    if semi_planar && frame.planes[1].len() >= frame.strides[1] * (fh / 2 - 1) + fw {
        let luma = Plane { data: frame.planes[0], stride: frame.strides[0], width: fw, height: fh };
        let chroma = Plane { data: frame.planes[1], stride: frame.strides[1], width: fw, height: fh / 2 };
        let (oy, ou, ov) = out.planes_mut();
        let (oa, ob) = if vu { (ov, ou) } else { (ou, ov) };
        scaler.luma.scale(&luma.crop(x, y, cw, ch), oy);
        // Chroma column x / 2 starts at byte x of the interleaved row.
        scaler.chroma.scale_interleaved(&chroma.crop(x, y / 2, cw, ch / 2), oa, ob);
        return Ok(());
    }
    // I420 is read in place; every other format is converted once at its own size first.
    let planes = if frame.format == PixelFormat::KP_PIXEL_FORMAT_I420 {
        [0, 1, 2].map(|i| {
            let (pw, ph) = if i == 0 { (fw, fh) } else { (fw / 2, fh / 2) };
            Plane { data: frame.planes[i], stride: frame.strides[i], width: pw, height: ph }
        })
    } else {
        convert(frame, &mut scaler.full, false)?;
        let f = &scaler.full;
        [
            Plane { data: f.y(), stride: fw, width: fw, height: fh },
            Plane { data: f.u(), stride: fw / 2, width: fw / 2, height: fh / 2 },
            Plane { data: f.v(), stride: fw / 2, width: fw / 2, height: fh / 2 },
        ]
    };
    let (oy, ou, ov) = out.planes_mut();
    scaler.luma.scale(&planes[0].crop(x, y, cw, ch), oy);
    scaler.chroma.scale(&planes[1].crop(x / 2, y / 2, cw / 2, ch / 2), ou);
    scaler.chroma.scale(&planes[2].crop(x / 2, y / 2, cw / 2, ch / 2), ov);
    Ok(())
}

/// The `yuv` crate takes strides and sizes as u32.
fn check_u32_geometry(frame: &VideoFrame) -> Result<()> {
    if u32::try_from(frame.strides[0]).is_err() {
        return Err(Error::BadFrameSize(format!("stride {} does not fit in 32 bits", frame.strides[0])));
    }
    Ok(())
}

fn check_plane(frame: &VideoFrame, index: usize, row_bytes: usize, rows: usize, name: &str) -> Result<()> {
    check_plane_short(frame, index, row_bytes, rows, name, 0)
}

/// [`check_plane`] for a plane whose last row may lack its last `may_lack` bytes.
fn check_plane_short(
    frame: &VideoFrame,
    index: usize,
    row_bytes: usize,
    rows: usize,
    name: &str,
    may_lack: usize,
) -> Result<()> {
    let (plane, stride) = (frame.planes[index], frame.strides[index]);
    if plane.is_empty() {
        return Err(Error::BadFrameSize(format!("{name} plane missing")));
    }
    if stride < row_bytes {
        return Err(Error::BadFrameSize(format!("{name} stride {stride} < row width {row_bytes}")));
    }
    let needed = stride
        .checked_mul(rows - 1)
        .and_then(|n| n.checked_add(row_bytes))
        .ok_or_else(|| Error::BadFrameSize(format!("{name} plane size overflows ({stride} x {rows})")))?;
    if plane.len() < needed - may_lack.min(row_bytes.saturating_sub(1)) {
        return Err(Error::BadFrameSize(format!(
            "{name} plane has {} bytes, needs {needed} (stride {stride}, {rows} rows)",
            plane.len()
        )));
    }
    Ok(())
}

/// Validates `frame` against its own size and copies it into `out` as packed I420.
///
/// `out` is resized to the frame size; its allocation is reused when it is already big enough,
/// which is what keeps the pooled buffers allocation-free in steady state.
pub fn copy_to_i420(frame: &VideoFrame, out: &mut I420Buffer) -> Result<()> {
    convert(frame, out, false)
}

/// Like [`copy_to_i420`], but NV12/NV21 frames keep their interleaved chroma (`out.chroma` says
/// which): for encoders that read semi-planar input themselves.
pub fn copy_to_picture(frame: &VideoFrame, out: &mut I420Buffer, semi_planar_ok: bool) -> Result<()> {
    convert(frame, out, semi_planar_ok)
}

fn convert(frame: &VideoFrame, out: &mut I420Buffer, semi_planar_ok: bool) -> Result<()> {
    validate_shape(frame)?;
    out.resize(frame.width, frame.height);
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (cw, ch) = (w / 2, h / 2);
    let semi = match frame.format {
        PixelFormat::KP_PIXEL_FORMAT_NV12 if semi_planar_ok => Some(ChromaLayout::Nv12),
        PixelFormat::KP_PIXEL_FORMAT_NV21 if semi_planar_ok => Some(ChromaLayout::Nv21),
        _ => None,
    };
    if let Some(layout) = semi {
        let luma = w * h;
        let (y, uv) = out.data.split_at_mut(luma);
        copy_plane(frame.planes[0], frame.strides[0], y, w, h);
        copy_interleaved(frame.planes[1], frame.strides[1], uv, w, ch);
        out.chroma = layout;
        return Ok(());
    }
    let (y, u, v) = out.planes_mut();
    match frame.format {
        PixelFormat::KP_PIXEL_FORMAT_I420 => {
            copy_plane(frame.planes[0], frame.strides[0], y, w, h);
            copy_plane(frame.planes[1], frame.strides[1], u, cw, ch);
            copy_plane(frame.planes[2], frame.strides[2], v, cw, ch);
        }
        PixelFormat::KP_PIXEL_FORMAT_NV12 => {
            copy_plane(frame.planes[0], frame.strides[0], y, w, h);
            deinterleave(frame.planes[1], frame.strides[1], u, v, cw, ch);
        }
        PixelFormat::KP_PIXEL_FORMAT_NV21 => {
            copy_plane(frame.planes[0], frame.strides[0], y, w, h);
            deinterleave(frame.planes[1], frame.strides[1], v, u, cw, ch);
        }
        PixelFormat::KP_PIXEL_FORMAT_YUY2 => packed_422_to_i420(frame, [0, 1, 2, 3], y, u, v),
        PixelFormat::KP_PIXEL_FORMAT_UYVY => packed_422_to_i420(frame, [1, 0, 3, 2], y, u, v),
        PixelFormat::KP_PIXEL_FORMAT_RGBA | PixelFormat::KP_PIXEL_FORMAT_BGRA => rgb_to_i420(frame, y, u, v)?,
    }
    Ok(())
}

/// RGBA/BGRA → I420 by the `yuv` crate: BT.601 limited range, chroma from the 2x2 average.
fn rgb_to_i420(frame: &VideoFrame, y: &mut [u8], u: &mut [u8], v: &mut [u8]) -> Result<()> {
    let (w, h) = (frame.width, frame.height);
    let (src, stride) = (frame.planes[0], frame.strides[0]);
    let row = w as usize * 4;
    let bgra = frame.format == PixelFormat::KP_PIXEL_FORMAT_BGRA;
    let convert = |y: &mut [u8], u: &mut [u8], v: &mut [u8], src: &[u8], stride: usize, rows: u32| {
        let mut planar = YuvPlanarImageMut {
            y_plane: BufferStoreMut::Borrowed(y),
            y_stride: w,
            u_plane: BufferStoreMut::Borrowed(u),
            u_stride: w / 2,
            v_plane: BufferStoreMut::Borrowed(v),
            v_stride: w / 2,
            width: w,
            height: rows,
        };
        // validate_shape checked that the stride fits in u32.
        let (stride, range, matrix) = (stride as u32, YuvRange::Limited, YuvStandardMatrix::Bt601);
        let r = if bgra {
            yuv::bgra_to_yuv420(&mut planar, src, stride, range, matrix, YuvConversionMode::Balanced)
        } else {
            yuv::rgba_to_yuv420(&mut planar, src, stride, range, matrix, YuvConversionMode::Balanced)
        };
        // validate_shape checked what the crate checks; an error here is a bug on one side.
        r.map_err(|e| Error::Internal(format!("{:?} conversion: {e}", frame.format)))
    };
    if src.len() >= stride * h as usize {
        return convert(y, u, v, src, stride, h);
    }
    // The crate walks the picture in blocks of two whole strides and silently skips a last block
    // that is shorter, as it is when the last row comes without its padding (which `validate`
    // allows): convert all rows but the last two in place, and those two from a copy.
    let (wu, top) = (w as usize, h as usize - 2);
    let (y_top, y_last) = y.split_at_mut(wu * top);
    let (u_top, u_last) = u.split_at_mut(wu / 2 * top / 2);
    let (v_top, v_last) = v.split_at_mut(wu / 2 * top / 2);
    if top > 0 {
        convert(y_top, u_top, v_top, &src[..stride * top], stride, top as u32)?;
    }
    let mut last = Vec::with_capacity(2 * row);
    last.extend_from_slice(&src[stride * top..stride * top + row]);
    last.extend_from_slice(&src[stride * (top + 1)..stride * (top + 1) + row]);
    convert(y_last, u_last, v_last, &last, row, 2)
}

/// YUY2/UYVY → I420. `order` gives the byte positions of Y0, U, Y1, V in each 4-byte pixel pair.
///
/// Hand-written although the `yuv` crate has this conversion: it takes the chroma of the upper row
/// of each pair and drops the lower one, which aliases on vertical colour detail; this averages
/// the two rows (rounding up, as libyuv does), which is also closer to FFmpeg's swscale.
fn packed_422_to_i420(frame: &VideoFrame, order: [usize; 4], y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (src, stride) = (frame.planes[0], frame.strides[0]);
    let [y0, cb, y1, cr] = order;
    let row = 2 * w;
    for cy in 0..h / 2 {
        let top = &src[2 * cy * stride..2 * cy * stride + row];
        let bottom = &src[(2 * cy + 1) * stride..(2 * cy + 1) * stride + row];
        let (y_top, y_bottom) = y[2 * cy * w..(2 * cy + 2) * w].split_at_mut(w);
        let u_row = &mut u[cy * w / 2..(cy + 1) * w / 2];
        let v_row = &mut v[cy * w / 2..(cy + 1) * w / 2];
        let pairs = top.chunks_exact(4).zip(bottom.chunks_exact(4));
        let dst = y_top.chunks_exact_mut(2).zip(y_bottom.chunks_exact_mut(2)).zip(u_row.iter_mut().zip(v_row));
        for ((t, b), ((yt, yb), (u, v))) in pairs.zip(dst) {
            yt.copy_from_slice(&[t[y0], t[y1]]);
            yb.copy_from_slice(&[b[y0], b[y1]]);
            *u = ((u16::from(t[cb]) + u16::from(b[cb]) + 1) >> 1) as u8;
            *v = ((u16::from(t[cr]) + u16::from(b[cr]) + 1) >> 1) as u8;
        }
    }
}

/// Copies `rows` rows of `row_bytes` from a strided plane into a packed one. The caller has
/// validated the sizes.
fn copy_plane(src: &[u8], stride: usize, dst: &mut [u8], row_bytes: usize, rows: usize) {
    if stride == row_bytes {
        // Unpadded planes are one contiguous block: a single memcpy.
        let n = row_bytes * rows;
        dst[..n].copy_from_slice(&src[..n]);
        return;
    }
    // `chunks` (not `chunks_exact`) because the last source row may lack its padding.
    for (s, d) in src.chunks(stride).zip(dst.chunks_exact_mut(row_bytes)).take(rows) {
        d.copy_from_slice(&s[..row_bytes]);
    }
}

/// Copies an interleaved chroma plane of `ch` rows of `row_bytes` whose last row may lack its last
/// byte (see [`validate`]).
fn copy_interleaved(src: &[u8], stride: usize, dst: &mut [u8], row_bytes: usize, ch: usize) {
    let full = stride * (ch - 1) + row_bytes;
    if src.len() >= full {
        copy_plane(src, stride, dst, row_bytes, ch);
        return;
    }
    copy_plane(src, stride, dst, row_bytes, ch - 1);
    let last = &mut dst[row_bytes * (ch - 1)..row_bytes * ch];
    last[..row_bytes - 1].copy_from_slice(&src[stride * (ch - 1)..]);
    last[row_bytes - 1] = if row_bytes >= 4 { last[row_bytes - 3] } else { 128 };
}

/// Splits an interleaved chroma plane (pairs `a b a b ...`) into two packed planes.
/// `cw` is the chroma width in pairs. The last row may lack its last byte (see [`validate`]).
fn deinterleave(src: &[u8], stride: usize, a: &mut [u8], b: &mut [u8], cw: usize, ch: usize) {
    let rows = src.chunks(stride).zip(a.chunks_exact_mut(cw)).zip(b.chunks_exact_mut(cw)).take(ch);
    for ((s, a_row), b_row) in rows {
        if s.len() < 2 * cw {
            // The short last row, byte by byte: its missing sample is its left neighbour's.
            for i in 0..cw {
                a_row[i] = s[2 * i];
                b_row[i] = s.get(2 * i + 1).copied().unwrap_or(if i > 0 { b_row[i - 1] } else { 128 });
            }
            continue;
        }
        let s = &s[..2 * cw];
        // Four pairs per 64-bit word, split with shifts and masks: twice as fast as the byte
        // loop, which the compiler does not vectorise well.
        let mut words = s.chunks_exact(8);
        let mut a4 = a_row.chunks_exact_mut(4);
        let mut b4 = b_row.chunks_exact_mut(4);
        for ((word, a), b) in (&mut words).zip(&mut a4).zip(&mut b4) {
            let x = u64::from_le_bytes(word.try_into().unwrap());
            a.copy_from_slice(&even_bytes(x).to_le_bytes());
            b.copy_from_slice(&even_bytes(x >> 8).to_le_bytes());
        }
        let pairs =
            words.remainder().chunks_exact(2).zip(a4.into_remainder().iter_mut()).zip(b4.into_remainder().iter_mut());
        for ((pair, a_px), b_px) in pairs {
            *a_px = pair[0];
            *b_px = pair[1];
        }
    }
}

/// Packs bytes 0, 2, 4 and 6 of `x` into a u32 (little-endian order).
#[inline(always)]
fn even_bytes(x: u64) -> u32 {
    let m = x & 0x00FF_00FF_00FF_00FF;
    let m = (m | (m >> 8)) & 0x0000_FFFF_0000_FFFF;
    (m | (m >> 16)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u32 = 6;
    const H: u32 = 4;

    /// Y value at (x, y) in the test pictures; chroma values are distinct per plane.
    fn y_at(x: usize, y: usize) -> u8 {
        (y * 16 + x) as u8
    }
    fn u_at(x: usize, y: usize) -> u8 {
        100 + (y * 8 + x) as u8
    }
    fn v_at(x: usize, y: usize) -> u8 {
        200 + (y * 8 + x) as u8
    }

    /// A strided plane with padding bytes set to 0xEE, so a copy that picks up padding fails.
    fn strided(row_bytes: usize, rows: usize, stride: usize, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        let mut p = vec![0xEE; stride * rows];
        for y in 0..rows {
            for x in 0..row_bytes {
                p[y * stride + x] = f(x, y);
            }
        }
        p
    }

    fn expected() -> I420Buffer {
        let (w, h) = (W as usize, H as usize);
        let mut b = I420Buffer::new(W, H);
        let (y, u, v) = b.planes_mut();
        for r in 0..h {
            for c in 0..w {
                y[r * w + c] = y_at(c, r);
            }
        }
        for r in 0..h / 2 {
            for c in 0..w / 2 {
                u[r * w / 2 + c] = u_at(c, r);
                v[r * w / 2 + c] = v_at(c, r);
            }
        }
        b
    }

    fn nv_plane(stride: usize, uv_first: bool) -> Vec<u8> {
        strided(W as usize, H as usize / 2, stride, |x, y| {
            let (c, is_first) = (x / 2, x % 2 == 0);
            if is_first == uv_first {
                u_at(c, y)
            } else {
                v_at(c, y)
            }
        })
    }

    #[test]
    fn i420_with_padded_strides() {
        let y = strided(6, 4, 8, y_at);
        let u = strided(3, 2, 5, u_at);
        let v = strided(3, 2, 7, v_at);
        let f = VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_I420,
            width: W,
            height: H,
            planes: [&y, &u, &v],
            strides: [8, 5, 7],
        };
        let mut out = I420Buffer::default();
        copy_to_i420(&f, &mut out).unwrap();
        assert_eq!(out, expected());
    }

    #[test]
    fn i420_unpadded() {
        let e = expected();
        let f = VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_I420,
            width: W,
            height: H,
            planes: [e.y(), e.u(), e.v()],
            strides: [6, 3, 3],
        };
        let mut out = I420Buffer::default();
        copy_to_i420(&f, &mut out).unwrap();
        assert_eq!(out, e);
    }

    #[test]
    fn nv12_with_padded_strides() {
        let y = strided(6, 4, 10, y_at);
        let uv = nv_plane(9, true);
        let f = VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_NV12,
            width: W,
            height: H,
            planes: [&y, &uv, &[]],
            strides: [10, 9, 0],
        };
        let mut out = I420Buffer::default();
        copy_to_i420(&f, &mut out).unwrap();
        assert_eq!(out, expected());
    }

    #[test]
    fn nv21_with_padded_strides() {
        let y = strided(6, 4, 10, y_at);
        let vu = nv_plane(8, false);
        let f = VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_NV21,
            width: W,
            height: H,
            planes: [&y, &vu, &[]],
            strides: [10, 8, 0],
        };
        let mut out = I420Buffer::default();
        copy_to_i420(&f, &mut out).unwrap();
        assert_eq!(out, expected());
    }

    #[test]
    fn nv21_is_nv12_with_chroma_swapped() {
        let y = strided(6, 4, 6, y_at);
        let uv = nv_plane(6, true);
        let mut f = VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_NV12,
            width: W,
            height: H,
            planes: [&y, &uv, &[]],
            strides: [6, 6, 0],
        };
        let mut nv12 = I420Buffer::default();
        copy_to_i420(&f, &mut nv12).unwrap();
        f.format = PixelFormat::KP_PIXEL_FORMAT_NV21;
        let mut nv21 = I420Buffer::default();
        copy_to_i420(&f, &mut nv21).unwrap();
        assert_eq!(nv12.y(), nv21.y());
        assert_eq!(nv12.u(), nv21.v());
        assert_eq!(nv12.v(), nv21.u());
        assert_ne!(nv12.u(), nv12.v());
    }

    #[test]
    fn last_row_without_padding_is_accepted() {
        let mut y = strided(6, 4, 8, y_at);
        y.truncate(8 * 3 + 6);
        let mut uv = nv_plane(8, true);
        uv.truncate(8 + 6);
        let f = VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_NV12,
            width: W,
            height: H,
            planes: [&y, &uv, &[]],
            strides: [8, 8, 0],
        };
        let mut out = I420Buffer::default();
        copy_to_i420(&f, &mut out).unwrap();
        assert_eq!(out, expected());
    }

    #[test]
    fn camera2_chroma_plane_one_byte_short_is_accepted() {
        // Camera2's YUV_420_888 with pixel stride 2: the plane from U (NV12) lacks the last V, the
        // plane from V (NV21) the last U. The missing sample repeats its left neighbour.
        let y = strided(6, 4, 6, y_at);
        let (cw, ch) = (W as usize / 2, H as usize / 2);
        for (format, uv_first) in
            [(PixelFormat::KP_PIXEL_FORMAT_NV12, true), (PixelFormat::KP_PIXEL_FORMAT_NV21, false)]
        {
            for stride in [6usize, 8] {
                let full = nv_plane(stride, uv_first);
                let short = &full[..stride * (ch - 1) + 2 * cw - 1];
                let f = VideoFrame { format, width: W, height: H, planes: [&y, short, &[]], strides: [6, stride, 0] };
                let mut out = I420Buffer::default();
                copy_to_i420(&f, &mut out).unwrap();
                let mut want = expected();
                let (_, u, v) = want.planes_mut();
                let missing = if uv_first { v } else { u };
                missing[cw * ch - 1] = missing[cw * ch - 2];
                assert_eq!(out, want, "{format:?} stride {stride}");

                // Kept interleaved (the x264 path): the same sample repeated.
                copy_to_picture(&f, &mut out, true).unwrap();
                let mut whole = I420Buffer::default();
                let f_full = VideoFrame { planes: [&y, &full, &[]], ..f };
                copy_to_picture(&f_full, &mut whole, true).unwrap();
                let n = whole.data.len();
                whole.data[n - 1] = whole.data[n - 3];
                assert_eq!(out.data, whole.data, "{format:?} stride {stride}, interleaved");

                let shorter = &full[..short.len() - 1];
                let f = VideoFrame { planes: [&y, shorter, &[]], ..f };
                let r = copy_to_i420(&f, &mut out);
                assert!(matches!(r, Err(Error::BadFrameSize(_))), "{r:?}");
            }
        }
    }

    #[test]
    fn wide_frames_match_a_naive_conversion() {
        let (w, h, stride) = (130usize, 6usize, 160usize);
        let byte = |i: usize| (i.wrapping_mul(2_654_435_761) >> 7) as u8;
        let y: Vec<u8> = (0..stride * h).map(byte).collect();
        let c: Vec<u8> = (0..stride * h / 2).map(|i| byte(i + 99_991)).collect();
        for format in [PixelFormat::KP_PIXEL_FORMAT_NV12, PixelFormat::KP_PIXEL_FORMAT_NV21] {
            let f = VideoFrame {
                format,
                width: w as u32,
                height: h as u32,
                planes: [&y, &c, &[]],
                strides: [stride, stride, 0],
            };
            let mut out = I420Buffer::default();
            copy_to_i420(&f, &mut out).unwrap();
            let mut want = I420Buffer::new(w as u32, h as u32);
            let (wy, wu, wv) = want.planes_mut();
            let (first, second) = match format {
                PixelFormat::KP_PIXEL_FORMAT_NV12 => (wu, wv),
                _ => (wv, wu),
            };
            for r in 0..h {
                for x in 0..w {
                    wy[r * w + x] = y[r * stride + x];
                }
            }
            for r in 0..h / 2 {
                for x in 0..w / 2 {
                    first[r * w / 2 + x] = c[r * stride + 2 * x];
                    second[r * w / 2 + x] = c[r * stride + 2 * x + 1];
                }
            }
            assert_eq!(out, want, "{format:?}");
        }
    }

    #[test]
    fn output_buffer_is_reused() {
        let e = expected();
        let f = VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_I420,
            width: W,
            height: H,
            planes: [e.y(), e.u(), e.v()],
            strides: [6, 3, 3],
        };
        let mut out = I420Buffer::new(64, 64);
        let ptr = out.data.as_ptr();
        copy_to_i420(&f, &mut out).unwrap();
        assert_eq!(out, e);
        assert_eq!(out.data.as_ptr(), ptr);
    }

    fn i420_frame<'a>(y: &'a [u8], u: &'a [u8], v: &'a [u8]) -> VideoFrame<'a> {
        VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_I420,
            width: W,
            height: H,
            planes: [y, u, v],
            strides: [6, 3, 3],
        }
    }

    fn assert_frame_size(r: Result<()>) {
        assert!(matches!(r, Err(Error::BadFrameSize(_))), "{r:?}");
    }
    fn assert_dimensions(r: Result<()>) {
        assert!(matches!(r, Err(Error::BadDimensions(_))), "{r:?}");
    }

    #[test]
    fn bad_dimensions() {
        let e = expected();
        for (w, h) in [(0, 4), (6, 0), (5, 4), (6, 3), (0, 0)] {
            let mut f = i420_frame(e.y(), e.u(), e.v());
            f.width = w;
            f.height = h;
            assert_dimensions(validate(&f, w, h));
            assert_dimensions(copy_to_i420(&f, &mut I420Buffer::default()));
        }
        let f = i420_frame(e.y(), e.u(), e.v());
        assert!(validate(&f, W, H).is_ok());
        assert_dimensions(validate(&f, W + 2, H));
        assert_dimensions(validate(&f, W, H - 2));
    }

    #[test]
    fn short_planes() {
        let e = expected();
        let (y, u, v) = (e.y(), e.u(), e.v());
        assert_frame_size(validate(&i420_frame(&y[..y.len() - 1], u, v), W, H));
        assert_frame_size(validate(&i420_frame(y, &u[..u.len() - 1], v), W, H));
        assert_frame_size(validate(&i420_frame(y, u, &v[..v.len() - 1]), W, H));
        let yuv = vec![0; 24];
        let nv = |uv: &[u8]| {
            validate(
                &VideoFrame {
                    format: PixelFormat::KP_PIXEL_FORMAT_NV12,
                    width: W,
                    height: H,
                    planes: [&yuv, uv, &[]],
                    strides: [6, 6, 0],
                },
                W,
                H,
            )
        };
        assert!(nv(&[0; 12]).is_ok());
        // One byte short is Camera2's layout (camera2_chroma_plane_one_byte_short_is_accepted).
        assert!(nv(&[0; 11]).is_ok());
        assert_frame_size(nv(&[0; 10]));
    }

    #[test]
    fn missing_planes() {
        let e = expected();
        let (y, u, v) = (e.y(), e.u(), e.v());
        assert_frame_size(validate(&i420_frame(&[], u, v), W, H));
        assert_frame_size(validate(&i420_frame(y, &[], v), W, H));
        assert_frame_size(validate(&i420_frame(y, u, &[]), W, H));
        let f = VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_NV21,
            width: W,
            height: H,
            planes: [y, &[], &[]],
            strides: [6, 6, 0],
        };
        assert_frame_size(validate(&f, W, H));
    }

    #[test]
    fn stride_smaller_than_row() {
        let big = vec![0u8; 4096];
        let mut f = i420_frame(&big, &big, &big);
        f.strides = [5, 3, 3];
        assert_frame_size(validate(&f, W, H));
        f.strides = [6, 2, 3];
        assert_frame_size(validate(&f, W, H));
        f.strides = [6, 3, 2];
        assert_frame_size(validate(&f, W, H));
        let f = VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_NV12,
            width: W,
            height: H,
            planes: [&big, &big, &[]],
            // 3 chroma pairs need 6 bytes per row.
            strides: [6, 5, 0],
        };
        assert_frame_size(validate(&f, W, H));
    }

    #[test]
    fn huge_strides_do_not_overflow() {
        let e = expected();
        let mut f = i420_frame(e.y(), e.u(), e.v());
        f.strides = [usize::MAX, 3, 3];
        assert_frame_size(validate(&f, W, H));
        f.strides = [usize::MAX / 2, 3, 3];
        assert_frame_size(validate(&f, W, H));
        f.strides = [6, usize::MAX, usize::MAX];
        assert_frame_size(validate(&f, W, H));
        // A huge (even) size with tiny planes must fail cleanly, not overflow or allocate.
        let mut f = i420_frame(e.y(), e.u(), e.v());
        f.width = u32::MAX - 1;
        f.height = u32::MAX - 1;
        f.strides = [usize::MAX, usize::MAX, usize::MAX];
        assert_frame_size(validate(&f, u32::MAX - 1, u32::MAX - 1));
    }

    /// A packed frame (one plane) of `bpp` bytes per pixel with deterministic content.
    fn packed(width: usize, height: usize, bpp: usize, stride: usize, short_last_row: bool) -> Vec<u8> {
        let mut p = strided(width * bpp, height, stride, |x, y| (x * 7 + y * 31 + (x * y) % 13) as u8);
        if short_last_row {
            p.truncate(stride * (height - 1) + width * bpp);
        }
        p
    }

    #[test]
    fn packed_formats_with_and_without_the_last_rows_padding() {
        use PixelFormat::*;
        for (format, bpp) in
            [(KP_PIXEL_FORMAT_YUY2, 2), (KP_PIXEL_FORMAT_UYVY, 2), (KP_PIXEL_FORMAT_RGBA, 4), (KP_PIXEL_FORMAT_BGRA, 4)]
        {
            for (w, h) in [(6, 4), (6, 2), (34, 10)] {
                let stride = w * bpp + 12;
                let full = packed(w, h, bpp, stride, false);
                let short = packed(w, h, bpp, stride, true);
                let frame = |p| VideoFrame {
                    format,
                    width: w as u32,
                    height: h as u32,
                    planes: [p, &[], &[]],
                    strides: [stride, 0, 0],
                };
                let (mut a, mut b) = (I420Buffer::default(), I420Buffer::default());
                copy_to_i420(&frame(&full), &mut a).unwrap();
                // A stale buffer must be overwritten everywhere, including the last rows.
                b.resize(w as u32, h as u32);
                b.data.fill(0x55);
                copy_to_i420(&frame(&short), &mut b).unwrap();
                assert_eq!(a, b, "{format:?} {w}x{h}");
                let mut too_short = short.clone();
                too_short.pop();
                assert_frame_size(copy_to_i420(&frame(&too_short), &mut b));
            }
        }
    }

    #[test]
    fn yuy2_and_uyvy_average_the_chroma_rows() {
        // Two rows of one pixel pair: Y0 U Y1 V = 10 100 20 200, then 30 51 40 150.
        let yuy2 = [10, 100, 20, 200, 30, 51, 40, 150];
        let uyvy = [100, 10, 200, 20, 51, 30, 150, 40];
        for (format, data) in [(PixelFormat::KP_PIXEL_FORMAT_YUY2, yuy2), (PixelFormat::KP_PIXEL_FORMAT_UYVY, uyvy)] {
            let f = VideoFrame { format, width: 2, height: 2, planes: [&data, &[], &[]], strides: [4, 0, 0] };
            let mut out = I420Buffer::default();
            copy_to_i420(&f, &mut out).unwrap();
            assert_eq!(out.data, [10, 20, 30, 40, 76, 175], "{format:?}");
        }
    }

    #[test]
    fn rgb_uses_bt601_limited_range() {
        // White, black and a 2x2 block of pure red: Y 235/16/82, red's Cb 90 and Cr 240 (BT.601).
        for (r, g, b, y, u, v) in [(255, 255, 255, 235, 128, 128), (0, 0, 0, 16, 128, 128), (255, 0, 0, 82, 90, 240)] {
            for format in [PixelFormat::KP_PIXEL_FORMAT_RGBA, PixelFormat::KP_PIXEL_FORMAT_BGRA] {
                let px = if format == PixelFormat::KP_PIXEL_FORMAT_RGBA { [r, g, b, 0] } else { [b, g, r, 0] };
                let data = px.repeat(4);
                let f = VideoFrame { format, width: 2, height: 2, planes: [&data, &[], &[]], strides: [8, 0, 0] };
                let mut out = I420Buffer::default();
                copy_to_i420(&f, &mut out).unwrap();
                let close = |a: u8, b: u8| a.abs_diff(b) <= 1;
                assert!(out.y().iter().all(|&p| close(p, y)), "{format:?} {:?}", out.data);
                assert!(close(out.u()[0], u) && close(out.v()[0], v), "{format:?} {:?}", out.data);
            }
        }
    }

    #[test]
    fn fill_keeps_the_middle_with_the_output_aspect() {
        use VideoScaling::*;
        assert_eq!(source_rect(1280, 720, 640, 360, KP_VIDEO_SCALING_FILL), (0, 0, 1280, 720));
        assert_eq!(source_rect(960, 720, 640, 360, KP_VIDEO_SCALING_FILL), (0, 90, 960, 540));
        assert_eq!(source_rect(1280, 720, 640, 480, KP_VIDEO_SCALING_FILL), (160, 0, 960, 720));
        assert_eq!(source_rect(960, 720, 640, 360, KP_VIDEO_SCALING_STRETCH), (0, 0, 960, 720));
        // Offsets and sizes stay even (chroma is subsampled), the cut never below the output.
        for (w, h, dw, dh) in [(1282, 722, 426, 240), (642, 362, 640, 360), (1920, 1080, 1278, 718), (4, 2, 2, 2)] {
            let (x, y, cw, ch) = source_rect(w, h, dw, dh, KP_VIDEO_SCALING_FILL);
            assert!([x, y, cw, ch].iter().all(|v| v % 2 == 0), "{w}x{h} -> {dw}x{dh}: {x} {y} {cw} {ch}");
            assert!(cw >= dw && ch >= dh && x + cw <= w && y + ch <= h, "{w}x{h} -> {dw}x{dh}: {x} {y} {cw} {ch}");
        }
    }

    #[test]
    fn same_size_takes_the_plain_conversion_and_larger_is_scaled() {
        let y = strided(6, 4, 10, y_at);
        let uv = nv_plane(8, true);
        let f = VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_NV12,
            width: W,
            height: H,
            planes: [&y, &uv, &[]],
            strides: [10, 8, 0],
        };
        let mut scaler = Downscaler::default();
        let (mut out, fill) = (I420Buffer::default(), VideoScaling::KP_VIDEO_SCALING_FILL);
        convert_scaled(&f, &mut out, true, (W, H), fill, &mut scaler).unwrap();
        assert_eq!(out.chroma, ChromaLayout::Nv12, "same size: copied for an encoder that takes NV12");
        convert_scaled(&f, &mut out, true, (2, 2), VideoScaling::KP_VIDEO_SCALING_STRETCH, &mut scaler).unwrap();
        assert_eq!((out.width, out.height, out.chroma), (2, 2, ChromaLayout::Planar));
        let off = VideoScaling::KP_VIDEO_SCALING_OFF;
        assert_dimensions(convert_scaled(&f, &mut out, false, (2, 2), off, &mut scaler));
        assert_dimensions(convert_scaled(&f, &mut out, false, (8, 4), fill, &mut scaler));
        assert_dimensions(validate_scalable(&f, W, H + 2, fill));
        assert!(validate_scalable(&f, 4, 2, fill).is_ok());
    }

    #[test]
    fn semi_planar_kept_for_encoders_that_take_it() {
        let y = strided(6, 4, 10, y_at);
        let uv = nv_plane(8, false);
        let f = VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_NV21,
            width: W,
            height: H,
            planes: [&y, &uv, &[]],
            strides: [10, 8, 0],
        };
        let mut out = I420Buffer::default();
        copy_to_picture(&f, &mut out, true).unwrap();
        assert_eq!(out.chroma, ChromaLayout::Nv21);
        assert_eq!(out.y(), expected().y());
        let packed_vu: Vec<u8> = uv.chunks(8).flat_map(|r| r[..6].to_vec()).collect();
        assert_eq!(out.uv(), packed_vu);
        // The same buffer reused for I420 goes back to planar.
        copy_to_picture(&f, &mut out, false).unwrap();
        assert_eq!((out.chroma, &out), (ChromaLayout::Planar, &expected()));
    }

    #[test]
    fn semi_planar_scaled_in_place_equals_the_planar_path() {
        // 100x60 into 40x30 with FILL: the crop starts at an even x > 0, so the interleaved chroma
        // is entered at a byte offset; every component differs so a swap would show.
        let (w, h, stride) = (100usize, 60usize, 112usize);
        let val = |x: usize, y: usize, k: usize| ((x * 7 + y * 13 + k * 101) % 251) as u8;
        let y = strided(w, h, stride, |x, y| val(x, y, 0));
        let (u, v) =
            (strided(w / 2, h / 2, w / 2, |x, y| val(x, y, 1)), strided(w / 2, h / 2, w / 2, |x, y| val(x, y, 2)));
        let fill = VideoScaling::KP_VIDEO_SCALING_FILL;
        let i420 = VideoFrame {
            format: PixelFormat::KP_PIXEL_FORMAT_I420,
            width: w as u32,
            height: h as u32,
            planes: [&y, &u, &v],
            strides: [stride, w / 2, w / 2],
        };
        let mut want = I420Buffer::default();
        convert_scaled(&i420, &mut want, false, (40, 30), fill, &mut Downscaler::default()).unwrap();
        assert_ne!(source_rect(100, 60, 40, 30, fill).0, 0);
        for (format, u_first) in [(PixelFormat::KP_PIXEL_FORMAT_NV12, true), (PixelFormat::KP_PIXEL_FORMAT_NV21, false)]
        {
            let mut uv = strided(w, h / 2, stride, |x, y| val(x / 2, y, if (x % 2 == 0) == u_first { 1 } else { 2 }));
            for short in [0, stride - w, stride - w + 1] {
                // Padded, without the last row's padding, and one byte shorter still (Camera2:
                // the copy path takes it; the sample it borrows lies outside the crop).
                uv.truncate(stride * (h / 2) - short);
                let f = VideoFrame { format, planes: [&y, &uv, &[]], strides: [stride, stride, 0], ..i420 };
                let mut got = I420Buffer::default();
                convert_scaled(&f, &mut got, false, (40, 30), fill, &mut Downscaler::default()).unwrap();
                assert!(got == want, "{format:?}, {short} bytes short");
            }
        }
    }
}

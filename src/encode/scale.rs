//! Downscaling of 8-bit planes: a separable triangle ("bilinear") filter whose support widens with
//! the ratio, as FFmpeg's swscale does with `flags=bilinear`, so every source pixel contributes
//! and 2x or 1.5x reductions do not alias.
//!
//! Hand-written rather than a crate: the well-kept scaling crates (`fast_image_resize`,
//! `pic-scale`) carry many pixel types, filters and SIMD back ends for whole images, while the SDK
//! needs one filter on 8-bit planes read in place from strided camera buffers; this is under 200
//! lines and matches swscale's bilinear output within rounding (tests/scaling.rs).
//!
//! Weights are computed once per (source, destination) size and reused; a frame is scaled row by
//! row (the vertical taps into one 16-bit row, then the horizontal taps), so a frame needs no
//! memory beyond one row.

/// A borrowed 8-bit plane: `height` rows of `width` bytes, `stride` bytes apart. The last row
/// may lack its padding.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

impl<'a> Plane<'a> {
    fn row(&self, r: usize) -> &'a [u8] {
        &self.data[r * self.stride..r * self.stride + self.width]
    }

    /// The `width` x `height` part starting at column `x`, row `y` (inside this plane).
    pub fn crop(&self, x: usize, y: usize, width: usize, height: usize) -> Plane<'a> {
        debug_assert!(x + width <= self.width && y + height <= self.height);
        Plane { data: &self.data[y * self.stride + x..], stride: self.stride, width, height }
    }
}

/// Fixed-point precision of the weights: they sum to 1 << WEIGHT_BITS per output pixel.
const WEIGHT_BITS: u32 = 14;
/// Fractional bits kept between the vertical and horizontal pass (255 << 7 fits in u16 and the
/// horizontal sums fit in i32).
const MID_BITS: u32 = 7;

/// The filter taps of one axis: output `i` reads `taps` source samples from `start[i]`, weighted
/// by `weights[i * taps..(i + 1) * taps]`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Taps {
    src: usize,
    dst: usize,
    taps: usize,
    start: Vec<usize>,
    weights: Vec<i32>,
}

impl Taps {
    fn new(src: usize, dst: usize) -> Taps {
        let scale = src as f64 / dst as f64;
        // Downscaling widens the triangle to the ratio (every source pixel counts); at 1:1 it is
        // the identity.
        let radius = scale.max(1.0);
        // Output i is centred on source position (i + 0.5) * scale - 0.5 and reads the samples
        // strictly inside the triangle, [first_raw, last_raw], some possibly outside the picture.
        let window = |i: usize| {
            let center = (i as f64 + 0.5) * scale - 0.5;
            let first_raw = (center - radius).floor() as i64 + 1;
            let last_raw = (center + radius).ceil() as i64 - 1;
            (center, first_raw, last_raw)
        };
        let inside = |raw: i64| raw.clamp(0, src as i64 - 1) as usize;
        let taps = (0..dst).map(window).map(|(_, a, b)| inside(b) - inside(a) + 1).max().unwrap_or(1);
        let mut t = Taps { src, dst, taps, start: Vec::with_capacity(dst), weights: vec![0; dst * taps] };
        let mut w = vec![0f64; taps];
        for i in 0..dst {
            let (center, first_raw, last_raw) = window(i);
            // Near the end the window is moved left so it stays inside the source; its extra
            // taps get zero weight.
            let start = inside(first_raw).min(src - taps);
            w.fill(0.0);
            for s in first_raw..=last_raw {
                let weight = 1.0 - (s as f64 - center).abs() / radius;
                if weight > 0.0 {
                    // Outside the picture the edge sample repeats.
                    w[inside(s) - start] += weight;
                }
            }
            let sum: f64 = w.iter().sum();
            let out = &mut t.weights[i * taps..(i + 1) * taps];
            for (o, x) in out.iter_mut().zip(&w) {
                *o = (x / sum * f64::from(1 << WEIGHT_BITS)).round() as i32;
            }
            // Rounding may leave the sum off by one or two: give the rest to the biggest weight
            // so flat areas stay exactly flat.
            let err = (1 << WEIGHT_BITS) - out.iter().sum::<i32>();
            let (max_i, _) = out.iter().enumerate().max_by_key(|(_, v)| **v).unwrap();
            out[max_i] += err;
            t.start.push(start);
        }
        t
    }
}

/// Scales one plane size to another, reusing its weights and row buffer across frames.
#[derive(Debug, Clone, Default)]
pub struct PlaneScaler {
    h: Taps,
    v: Taps,
    row: Vec<u16>,
    acc: Vec<u32>,
}

impl PlaneScaler {
    /// Weights for `src` -> `dst` (width, height); both non-zero, and `dst` not larger than `src`
    /// on either axis (the filter is made for reducing).
    pub fn new(src: (usize, usize), dst: (usize, usize)) -> PlaneScaler {
        assert!(src.0 >= dst.0 && src.1 >= dst.1 && dst.0 > 0 && dst.1 > 0, "{src:?} -> {dst:?}");
        PlaneScaler { h: Taps::new(src.0, dst.0), v: Taps::new(src.1, dst.1), row: vec![0; src.0], acc: vec![0; src.0] }
    }

    /// (source, destination) sizes this scaler was made for.
    pub fn sizes(&self) -> ((usize, usize), (usize, usize)) {
        ((self.h.src, self.v.src), (self.h.dst, self.v.dst))
    }

    /// Scales `src` (of the source size) into `dst`, packed rows of the destination width.
    pub fn scale(&mut self, src: &Plane, dst: &mut [u8]) {
        assert_eq!((src.width, src.height), (self.h.src, self.v.src));
        let (dw, dh) = (self.h.dst, self.v.dst);
        assert!(dst.len() >= dw * dh);
        let vt = self.v.taps;
        for (y, out) in dst.chunks_exact_mut(dw).take(dh).enumerate() {
            let start = self.v.start[y];
            let weights = &self.v.weights[y * vt..(y + 1) * vt];
            // The common tap counts (ratios up to 3.5) get loops unrolled at compile time, which
            // the compiler vectorises; others take the general loop.
            match vt {
                1 => vertical::<1>(src, start, weights, &mut self.row),
                2 => vertical::<2>(src, start, weights, &mut self.row),
                3 => vertical::<3>(src, start, weights, &mut self.row),
                4 => vertical::<4>(src, start, weights, &mut self.row),
                5 => vertical::<5>(src, start, weights, &mut self.row),
                6 => vertical::<6>(src, start, weights, &mut self.row),
                7 => vertical::<7>(src, start, weights, &mut self.row),
                8 => vertical::<8>(src, start, weights, &mut self.row),
                _ => vertical_any(src, start, weights, &mut self.acc, &mut self.row),
            }
            match self.h.taps {
                1 => horizontal::<1>(&self.h, &self.row, out),
                2 => horizontal::<2>(&self.h, &self.row, out),
                3 => horizontal::<3>(&self.h, &self.row, out),
                4 => horizontal::<4>(&self.h, &self.row, out),
                5 => horizontal::<5>(&self.h, &self.row, out),
                6 => horizontal::<6>(&self.h, &self.row, out),
                7 => horizontal::<7>(&self.h, &self.row, out),
                8 => horizontal::<8>(&self.h, &self.row, out),
                _ => horizontal_any(&self.h, &self.row, out),
            }
        }
    }
}

/// Rounds a vertical sum down to the intermediate precision.
#[inline(always)]
fn to_mid(a: u32) -> u16 {
    let shift = WEIGHT_BITS - MID_BITS;
    ((a + (1 << (shift - 1))) >> shift) as u16
}

/// Rounds a horizontal sum to a pixel.
#[inline(always)]
fn to_pixel(sum: i32) -> u8 {
    ((sum + (1 << (WEIGHT_BITS + MID_BITS - 1))) >> (WEIGHT_BITS + MID_BITS)).clamp(0, 255) as u8
}

/// One output row's vertical pass with `T` taps: source rows `start..start + T` into `row`.
fn vertical<const T: usize>(src: &Plane, start: usize, weights: &[i32], row: &mut [u16]) {
    let rows: [&[u8]; T] = std::array::from_fn(|k| src.row(start + k));
    let w: [u32; T] = std::array::from_fn(|k| weights[k] as u32);
    let row = &mut row[..src.width];
    for (x, r) in row.iter_mut().enumerate() {
        let mut a = 0u32;
        for k in 0..T {
            a += w[k] * u32::from(rows[k][x]);
        }
        *r = to_mid(a);
    }
}

fn vertical_any(src: &Plane, start: usize, weights: &[i32], acc: &mut [u32], row: &mut [u16]) {
    acc.fill(0);
    for (k, &w) in weights.iter().enumerate() {
        for (a, &p) in acc.iter_mut().zip(src.row(start + k)) {
            *a += w as u32 * u32::from(p);
        }
    }
    for (r, &a) in row.iter_mut().zip(acc.iter()) {
        *r = to_mid(a);
    }
}

/// One output row's horizontal pass with `T` taps.
fn horizontal<const T: usize>(h: &Taps, row: &[u16], out: &mut [u8]) {
    for ((o, &s), w) in out.iter_mut().zip(&h.start).zip(h.weights.chunks_exact(T)) {
        let p: &[u16; T] = row[s..s + T].try_into().unwrap();
        let w: &[i32; T] = w.try_into().unwrap();
        let mut sum = 0i32;
        for k in 0..T {
            sum += w[k] * i32::from(p[k]);
        }
        *o = to_pixel(sum);
    }
}

fn horizontal_any(h: &Taps, row: &[u16], out: &mut [u8]) {
    let t = h.taps;
    for ((o, &s), w) in out.iter_mut().zip(&h.start).zip(h.weights.chunks_exact(t)) {
        let sum: i32 = w.iter().zip(&row[s..s + t]).map(|(&w, &p)| w * i32::from(p)).sum();
        *o = to_pixel(sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(data: &[u8], stride: usize, width: usize, height: usize) -> Plane<'_> {
        Plane { data, stride, width, height }
    }

    #[test]
    fn weights_sum_to_one_and_stay_inside() {
        for (src, dst) in [(1280, 640), (1920, 1280), (1279, 360), (7, 3), (5, 1), (9, 9), (640, 639), (3, 2)] {
            let t = Taps::new(src, dst);
            assert_eq!(t.start.len(), dst);
            for i in 0..dst {
                let w = &t.weights[i * t.taps..(i + 1) * t.taps];
                assert_eq!(w.iter().sum::<i32>(), 1 << WEIGHT_BITS, "{src}->{dst} at {i}");
                assert!(w.iter().all(|&x| x >= 0));
                assert!(t.start[i] + t.taps <= src, "{src}->{dst} at {i}");
            }
        }
    }

    #[test]
    fn same_size_is_a_copy() {
        let (w, h, stride) = (11, 5, 16);
        let data: Vec<u8> = (0..stride * h).map(|i| (i * 37 % 251) as u8).collect();
        let mut out = vec![0; w * h];
        PlaneScaler::new((w, h), (w, h)).scale(&plane(&data, stride, w, h), &mut out);
        for r in 0..h {
            assert_eq!(&out[r * w..(r + 1) * w], &data[r * stride..r * stride + w]);
        }
    }

    #[test]
    fn flat_stays_flat_at_any_ratio() {
        for (src, dst) in [((1280, 720), (640, 360)), ((1279, 719), (13, 7)), ((6, 4), (1, 1)), ((100, 50), (99, 49))] {
            let data = vec![173u8; src.0 * src.1];
            let mut out = vec![0; dst.0 * dst.1];
            PlaneScaler::new(src, dst).scale(&plane(&data, src.0, src.0, src.1), &mut out);
            assert!(out.iter().all(|&p| p == 173), "{src:?} -> {dst:?}");
        }
    }

    #[test]
    fn halving_averages_neighbourhoods() {
        // A horizontal ramp 0, 10, 20, ...: halving with the widened triangle (weights 1/8, 3/8,
        // 3/8, 1/8 around pixel pairs) gives the pair's mean, 5 + 20 x, except at the edges.
        let (w, h) = (16, 4);
        let data: Vec<u8> = (0..w * h).map(|i| (i % w * 10) as u8).collect();
        let mut out = vec![0; w / 2 * h / 2];
        PlaneScaler::new((w, h), (w / 2, h / 2)).scale(&plane(&data, w, w, h), &mut out);
        for row in out.chunks(w / 2) {
            for (x, &p) in row.iter().enumerate().skip(1).take(w / 2 - 2) {
                assert_eq!(p, (5 + 20 * x) as u8, "{row:?}");
            }
            // The edge repeats: 1/8 * 0 + 3/8 * 0 + 3/8 * 10 + 1/8 * 20 = 6.25.
            assert_eq!(row[0], 6);
        }
    }

    #[test]
    fn strided_and_unpadded_sources_agree() {
        let (w, h, stride) = (37, 23, 48);
        let packed: Vec<u8> = (0..w * h).map(|i| (i * 7919 % 256) as u8).collect();
        let mut strided = vec![0xEE; stride * (h - 1) + w];
        for r in 0..h {
            strided[r * stride..r * stride + w].copy_from_slice(&packed[r * w..(r + 1) * w]);
        }
        let mut s = PlaneScaler::new((w, h), (15, 9));
        let (mut a, mut b) = (vec![0; 15 * 9], vec![0; 15 * 9]);
        s.scale(&plane(&packed, w, w, h), &mut a);
        s.scale(&plane(&strided, stride, w, h), &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn crop_reads_the_inside() {
        let (w, h) = (8, 6);
        let data: Vec<u8> = (0..w * h).map(|i| i as u8).collect();
        let p = plane(&data, w, w, h).crop(2, 1, 4, 3);
        assert_eq!(p.row(0), &[10, 11, 12, 13]);
        assert_eq!(p.row(2), &[26, 27, 28, 29]);
    }
}

//! Downscaling of 8-bit planes: a separable triangle ("bilinear") filter whose support widens with
//! the ratio, as FFmpeg's swscale does with `flags=bilinear`, so every source pixel contributes
//! and 2x or 1.5x reductions do not alias.
//!
//! Hand-written rather than a crate. Tried for 720p → 360p I420 (one thread, testsrc2, CPU time):
//! `pic-scale` 0.7 (planar plans with a scratch buffer: strided input, 0 allocations per frame)
//! took 0.70 ms and `fast_image_resize` 6.1 (packed planes only, ~2000 allocations per frame: it
//! recomputes its coefficients on every call) 1.12 ms, against 0.19-0.27 ms for swscale in the
//! benchmark runs of the same hour (≈3x and 5x); both also differ from swscale by up
//! to 6 in chroma (they normalise the kernel at the picture's edges where swscale repeats the
//! edge sample), beyond tests/scaling.rs's bound of 4. The SDK needs one filter on 8-bit planes
//! read in place from strided camera buffers, which this file does in SSE2/AVX2 (x86-64) and
//! NEON (aarch64) with the scalar loops as fallback and reference.
//!
//! Weights are computed once per (source, destination) size and reused; a frame is scaled row by
//! row (the vertical taps into one 16-bit row, then the horizontal taps), so a frame needs no
//! memory beyond a few rows.

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

/// Which code runs the passes: picked once per scaler from what the CPU has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Kernel {
    /// The portable loops above: the fallback, and the reference the SIMD ones must equal.
    #[default]
    Scalar,
    /// SSE2 (every x86-64) for both passes.
    #[cfg(target_arch = "x86_64")]
    Sse2,
    /// AVX2 for the vertical pass (32 samples per step), SSE2 for the horizontal one.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// NEON (every aarch64) for both passes.
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Kernel {
    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
            Kernel::Sse2
        }
        #[cfg(target_arch = "aarch64")]
        {
            Kernel::Neon
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            Kernel::Scalar
        }
    }
}

/// Most vertical taps the SIMD pass takes (ratios up to ~7.5); more go to the scalar loop.
const SIMD_MAX_VTAPS: usize = 16;
/// u16 samples readable past a row's end: a SIMD horizontal step loads 4 or 8 samples from an
/// output's first tap, which near the end reaches past the last real sample (weight 0 there).
const ROW_PAD: usize = 8;

/// Scales one plane size to another, reusing its weights and row buffers across frames.
#[derive(Debug, Clone, Default)]
pub struct PlaneScaler {
    h: Taps,
    v: Taps,
    kernel: Kernel,
    /// Vertical weights as i16 (they are at most 1 << WEIGHT_BITS), for the SIMD pass.
    v16: Vec<i16>,
    /// Horizontal weights as i16, `h_lanes` per output (the taps padded with zeros to 4 or 8);
    /// `h_lanes` 0: more than 8 taps, scalar.
    h16: Vec<i16>,
    h_lanes: usize,
    /// Outputs [.0, .1) read samples 2 i + c with the same weights (a 2:1 reduction away from
    /// the edges): the SIMD pass then reads contiguous samples instead of gathering per output.
    step2: Option<(usize, usize)>,
    /// The vertical pass's output (two interleaved rows' worth for NV12), and NV12's two
    /// de-interleaved rows.
    row: Vec<u16>,
    row_a: Vec<u16>,
    row_b: Vec<u16>,
    acc: Vec<u32>,
}

impl PlaneScaler {
    /// Weights for `src` -> `dst` (width, height); both non-zero, and `dst` not larger than `src`
    /// on either axis (the filter is made for reducing).
    pub fn new(src: (usize, usize), dst: (usize, usize)) -> PlaneScaler {
        PlaneScaler::with_kernel(src, dst, Kernel::detect())
    }

    /// [`PlaneScaler::new`] on the portable loops only: for benchmarks (the SIMD passes'
    /// speed-up, measured in the same run) and as the fallback's own check.
    #[doc(hidden)]
    pub fn new_scalar(src: (usize, usize), dst: (usize, usize)) -> PlaneScaler {
        PlaneScaler::with_kernel(src, dst, Kernel::Scalar)
    }

    fn with_kernel(src: (usize, usize), dst: (usize, usize), kernel: Kernel) -> PlaneScaler {
        assert!(src.0 >= dst.0 && src.1 >= dst.1 && dst.0 > 0 && dst.1 > 0, "{src:?} -> {dst:?}");
        let (h, v) = (Taps::new(src.0, dst.0), Taps::new(src.1, dst.1));
        let h_lanes = match h.taps {
            1..=4 => 4,
            5..=8 => 8,
            _ => 0,
        };
        let mut h16 = vec![0i16; dst.0 * h_lanes];
        if h_lanes > 0 {
            for (o, w) in h16.chunks_exact_mut(h_lanes).zip(h.weights.chunks_exact(h.taps)) {
                for (o, &w) in o.iter_mut().zip(w) {
                    *o = w as i16;
                }
            }
        }
        let v16 = v.weights.iter().map(|&w| w as i16).collect();
        let step2 = if h.taps <= 4 { step2_run(&h) } else { None };
        PlaneScaler {
            h,
            v,
            kernel,
            v16,
            h16,
            h_lanes,
            step2,
            row: vec![0; 2 * src.0 + ROW_PAD],
            row_a: vec![0; src.0 + ROW_PAD],
            row_b: vec![0; src.0 + ROW_PAD],
            acc: vec![0; 2 * src.0],
        }
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
        for (y, out) in dst.chunks_exact_mut(dw).take(dh).enumerate() {
            let mut row = std::mem::take(&mut self.row);
            self.vertical(src, y, &mut row[..src.width]);
            self.horizontal(&row, out);
            self.row = row;
        }
    }

    /// Scales an interleaved two-component plane (NV12's UV, NV21's VU: `src.width` bytes per row
    /// = twice the source width) into two packed planes, without de-interleaving the source first.
    pub fn scale_interleaved(&mut self, src: &Plane, dst_a: &mut [u8], dst_b: &mut [u8]) {
        assert_eq!((src.width, src.height), (2 * self.h.src, self.v.src));
        let (dw, dh) = (self.h.dst, self.v.dst);
        assert!(dst_a.len() >= dw * dh && dst_b.len() >= dw * dh);
        let n = self.h.src;
        let rows = dst_a.chunks_exact_mut(dw).zip(dst_b.chunks_exact_mut(dw)).take(dh);
        for (y, (out_a, out_b)) in rows.enumerate() {
            let mut row = std::mem::take(&mut self.row);
            let (mut row_a, mut row_b) = (std::mem::take(&mut self.row_a), std::mem::take(&mut self.row_b));
            self.vertical(src, y, &mut row[..2 * n]);
            for ((a, b), p) in row_a.iter_mut().zip(row_b.iter_mut()).zip(row[..2 * n].chunks_exact(2)) {
                *a = p[0];
                *b = p[1];
            }
            self.horizontal(&row_a, out_a);
            self.horizontal(&row_b, out_b);
            self.row = row;
            self.row_a = row_a;
            self.row_b = row_b;
        }
    }

    /// Output row `y`'s vertical pass over all of `src.width` into `row`.
    fn vertical(&mut self, src: &Plane, y: usize, row: &mut [u16]) {
        let vt = self.v.taps;
        let start = self.v.start[y];
        let weights = &self.v.weights[y * vt..(y + 1) * vt];
        let mut done = 0;
        if self.kernel != Kernel::Scalar && vt <= SIMD_MAX_VTAPS {
            let mut rows: [&[u8]; SIMD_MAX_VTAPS] = [&[]; SIMD_MAX_VTAPS];
            for (k, r) in rows.iter_mut().take(vt).enumerate() {
                *r = src.row(start + k);
            }
            let w16 = &self.v16[y * vt..(y + 1) * vt];
            done = simd::vertical(self.kernel, &rows[..vt], w16, row);
        }
        if done == row.len() {
            return;
        }
        // The scalar loops: whole rows without SIMD, the last few samples with it.
        match vt {
            1 => vertical::<1>(src, start, weights, row, done),
            2 => vertical::<2>(src, start, weights, row, done),
            3 => vertical::<3>(src, start, weights, row, done),
            4 => vertical::<4>(src, start, weights, row, done),
            5 => vertical::<5>(src, start, weights, row, done),
            6 => vertical::<6>(src, start, weights, row, done),
            7 => vertical::<7>(src, start, weights, row, done),
            8 => vertical::<8>(src, start, weights, row, done),
            _ => vertical_any(src, start, weights, &mut self.acc, row, done),
        }
    }

    /// The horizontal pass of one row (`row` holds the source width plus `ROW_PAD` samples).
    fn horizontal(&self, row: &[u16], out: &mut [u8]) {
        assert!(row.len() >= self.h.src + ROW_PAD);
        if let (Some((a, b)), true) = (self.step2, self.kernel != Kernel::Scalar) {
            self.horizontal_range(row, out, 0, a);
            let w = &self.h16[a * 4..a * 4 + 4];
            let done = simd::horizontal_step2(self.kernel, row, self.h.start[a], w, &mut out[a..b]);
            self.horizontal_range(row, out, a + done, out.len());
        } else {
            self.horizontal_range(row, out, 0, out.len());
        }
    }

    /// Outputs `from..to` of the horizontal pass.
    fn horizontal_range(&self, row: &[u16], out: &mut [u8], from: usize, to: usize) {
        let mut done = from;
        if self.kernel != Kernel::Scalar && self.h_lanes > 0 && from < to {
            let (starts, w) = (&self.h.start[from..to], &self.h16[from * self.h_lanes..to * self.h_lanes]);
            done += simd::horizontal(self.kernel, row, starts, w, self.h_lanes, &mut out[from..to]);
        }
        if done >= to {
            return;
        }
        let out = &mut out[..to];
        match self.h.taps {
            1 => horizontal::<1>(&self.h, row, out, done),
            2 => horizontal::<2>(&self.h, row, out, done),
            3 => horizontal::<3>(&self.h, row, out, done),
            4 => horizontal::<4>(&self.h, row, out, done),
            5 => horizontal::<5>(&self.h, row, out, done),
            6 => horizontal::<6>(&self.h, row, out, done),
            7 => horizontal::<7>(&self.h, row, out, done),
            8 => horizontal::<8>(&self.h, row, out, done),
            _ => horizontal_any(&self.h, row, out, done),
        }
    }
}

/// The longest run of outputs around the middle that start at 2 i + c with the middle's weights,
/// if it is worth a pass of its own (16 outputs or more).
fn step2_run(h: &Taps) -> Option<(usize, usize)> {
    let t = h.taps;
    let mid = h.dst / 2;
    let c = h.start[mid] as isize - 2 * mid as isize;
    let w = &h.weights[mid * t..(mid + 1) * t];
    let regular = |i: usize| h.start[i] as isize - 2 * i as isize == c && &h.weights[i * t..(i + 1) * t] == w;
    let a = (0..=mid).rev().take_while(|&i| regular(i)).last()?;
    let b = (mid..h.dst).take_while(|&i| regular(i)).last()? + 1;
    (b - a >= 16).then_some((a, b))
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

/// One output row's vertical pass with `T` taps: source rows `start..start + T` into `row`, from
/// sample `from` on.
fn vertical<const T: usize>(src: &Plane, start: usize, weights: &[i32], row: &mut [u16], from: usize) {
    let rows: [&[u8]; T] = std::array::from_fn(|k| src.row(start + k));
    let w: [u32; T] = std::array::from_fn(|k| weights[k] as u32);
    for (x, r) in row.iter_mut().enumerate().skip(from) {
        let mut a = 0u32;
        for k in 0..T {
            a += w[k] * u32::from(rows[k][x]);
        }
        *r = to_mid(a);
    }
}

fn vertical_any(src: &Plane, start: usize, weights: &[i32], acc: &mut [u32], row: &mut [u16], from: usize) {
    let acc = &mut acc[from..row.len()];
    acc.fill(0);
    for (k, &w) in weights.iter().enumerate() {
        for (a, &p) in acc.iter_mut().zip(&src.row(start + k)[from..]) {
            *a += w as u32 * u32::from(p);
        }
    }
    for (r, &a) in row[from..].iter_mut().zip(acc.iter()) {
        *r = to_mid(a);
    }
}

/// One output row's horizontal pass with `T` taps, from output `from` on.
fn horizontal<const T: usize>(h: &Taps, row: &[u16], out: &mut [u8], from: usize) {
    let outputs = out.iter_mut().zip(&h.start).zip(h.weights.chunks_exact(T)).skip(from);
    for ((o, &s), w) in outputs {
        let p: &[u16; T] = row[s..s + T].try_into().unwrap();
        let w: &[i32; T] = w.try_into().unwrap();
        let mut sum = 0i32;
        for k in 0..T {
            sum += w[k] * i32::from(p[k]);
        }
        *o = to_pixel(sum);
    }
}

fn horizontal_any(h: &Taps, row: &[u16], out: &mut [u8], from: usize) {
    let t = h.taps;
    for ((o, &s), w) in out.iter_mut().zip(&h.start).zip(h.weights.chunks_exact(t)).skip(from) {
        let sum: i32 = w.iter().zip(&row[s..s + t]).map(|(&w, &p)| w * i32::from(p)).sum();
        *o = to_pixel(sum);
    }
}

/// The SIMD passes. They compute exactly what the scalar loops do (same integer weights, sums
/// and rounding; no intermediate saturates: a vertical sum is at most 255 << 14, a rounded
/// intermediate 255 << 7 fits i16, a horizontal sum at most (255 << 7) << 14 fits i32), so their
/// output equals the scalar output bit for bit (tests below). Each returns how many leading
/// samples it wrote; the scalar loops finish the rest.
mod simd {
    use super::Kernel;

    pub(super) fn vertical(kernel: Kernel, rows: &[&[u8]], w: &[i16], out: &mut [u16]) -> usize {
        assert!(rows.len() == w.len() && rows.iter().all(|r| r.len() >= out.len()));
        match kernel {
            Kernel::Scalar => 0,
            // SAFETY: SSE2 is part of x86-64; AVX2 was detected at run time (Kernel::detect).
            // Every row holds `out.len()` bytes (checked above), and the kernels read and write
            // only below that.
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse2 => unsafe { x86::vertical_sse2(rows, w, out, 0) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe {
                let done = x86::vertical_avx2(rows, w, out);
                x86::vertical_sse2(rows, w, out, done)
            },
            // SAFETY: NEON is part of aarch64; bounds as above.
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => unsafe { neon::vertical(rows, w, out) },
        }
    }

    /// `w` holds `lanes` (4 or 8) weights per output.
    pub(super) fn horizontal(
        kernel: Kernel,
        row: &[u16],
        starts: &[usize],
        w: &[i16],
        lanes: usize,
        out: &mut [u8],
    ) -> usize {
        assert!(starts.len() >= out.len() && w.len() >= out.len() * lanes);
        assert!(starts.iter().all(|&s| s + lanes <= row.len()));
        match (kernel, lanes) {
            (Kernel::Scalar, _) => 0,
            // SAFETY: SSE2 is part of x86-64; every load of `lanes` samples from a start is
            // inside `row` (checked above), weights and outputs are read and written below
            // `out.len()` outputs.
            #[cfg(target_arch = "x86_64")]
            (Kernel::Sse2 | Kernel::Avx2, 4) => unsafe { x86::horizontal4(row, starts, w, out) },
            #[cfg(target_arch = "x86_64")]
            (Kernel::Sse2 | Kernel::Avx2, 8) => unsafe { x86::horizontal8(row, starts, w, out) },
            // SAFETY: NEON is part of aarch64; bounds as above.
            #[cfg(target_arch = "aarch64")]
            (Kernel::Neon, 4) => unsafe { neon::horizontal4(row, starts, w, out) },
            #[cfg(target_arch = "aarch64")]
            (Kernel::Neon, 8) => unsafe { neon::horizontal8(row, starts, w, out) },
            _ => 0,
        }
    }

    /// Outputs that read 4 (zero-padded) taps `w` at samples `first + 2 i`.
    pub(super) fn horizontal_step2(kernel: Kernel, row: &[u16], first: usize, w: &[i16], out: &mut [u8]) -> usize {
        let w: [i16; 4] = w.try_into().expect("4 weights");
        match kernel {
            Kernel::Scalar => 0,
            // SAFETY: SSE2 is part of x86-64; the kernel reads row[first + 2 i ..][..18] only
            // while that is inside `row`, and writes below `out.len()`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse2 | Kernel::Avx2 => unsafe { x86::horizontal_step2(row, first, w, out) },
            // SAFETY: NEON is part of aarch64; bounds as above.
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => unsafe { neon::horizontal_step2(row, first, w, out) },
        }
    }

    /// Rounding of the vertical and horizontal sums (see `to_mid` and `to_pixel`).
    const V_SHIFT: i32 = (super::WEIGHT_BITS - super::MID_BITS) as i32;
    const H_SHIFT: i32 = (super::WEIGHT_BITS + super::MID_BITS) as i32;

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use super::{H_SHIFT, V_SHIFT};
        use std::arch::x86_64::*;

        /// Two taps' weights in the i16 lanes `pmaddwd` pairs with interleaved samples of
        /// `rows[k]` and `rows[k + 1]` (an odd last tap is paired with itself at weight 0).
        #[inline(always)]
        fn pair(rows: &[&[u8]], w: &[i16], k: usize) -> (usize, i32) {
            let (k1, w1) = if k + 1 < rows.len() { (k + 1, w[k + 1]) } else { (k, 0) };
            (k1, (i32::from(w1 as u16) << 16) | i32::from(w[k] as u16))
        }

        #[target_feature(enable = "sse2")]
        pub(super) unsafe fn vertical_sse2(rows: &[&[u8]], w: &[i16], out: &mut [u16], from: usize) -> usize {
            let zero = _mm_setzero_si128();
            let round = _mm_set1_epi32(1 << (V_SHIFT - 1));
            let mut x = from;
            while x + 16 <= out.len() {
                let (mut a0, mut a1, mut a2, mut a3) = (zero, zero, zero, zero);
                for k in (0..rows.len()).step_by(2) {
                    let (k1, wp) = pair(rows, w, k);
                    let wp = _mm_set1_epi32(wp);
                    let p0 = _mm_loadu_si128(rows[k].as_ptr().add(x) as *const __m128i);
                    let p1 = _mm_loadu_si128(rows[k1].as_ptr().add(x) as *const __m128i);
                    let (lo, hi) = (_mm_unpacklo_epi8(p0, p1), _mm_unpackhi_epi8(p0, p1));
                    a0 = _mm_add_epi32(a0, _mm_madd_epi16(_mm_unpacklo_epi8(lo, zero), wp));
                    a1 = _mm_add_epi32(a1, _mm_madd_epi16(_mm_unpackhi_epi8(lo, zero), wp));
                    a2 = _mm_add_epi32(a2, _mm_madd_epi16(_mm_unpacklo_epi8(hi, zero), wp));
                    a3 = _mm_add_epi32(a3, _mm_madd_epi16(_mm_unpackhi_epi8(hi, zero), wp));
                }
                let r = |a| _mm_srai_epi32(_mm_add_epi32(a, round), V_SHIFT);
                let dst = out.as_mut_ptr().add(x) as *mut __m128i;
                _mm_storeu_si128(dst, _mm_packs_epi32(r(a0), r(a1)));
                _mm_storeu_si128(dst.add(1), _mm_packs_epi32(r(a2), r(a3)));
                x += 16;
            }
            x
        }

        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn vertical_avx2(rows: &[&[u8]], w: &[i16], out: &mut [u16]) -> usize {
            let zero = _mm256_setzero_si256();
            let round = _mm256_set1_epi32(1 << (V_SHIFT - 1));
            let mut x = 0;
            while x + 32 <= out.len() {
                let (mut a0, mut a1, mut a2, mut a3) = (zero, zero, zero, zero);
                for k in (0..rows.len()).step_by(2) {
                    let (k1, wp) = pair(rows, w, k);
                    let wp = _mm256_set1_epi32(wp);
                    let p0 = _mm256_loadu_si256(rows[k].as_ptr().add(x) as *const __m256i);
                    let p1 = _mm256_loadu_si256(rows[k1].as_ptr().add(x) as *const __m256i);
                    // Per 128-bit lane: lo holds samples 0-7 | 16-23, hi 8-15 | 24-31.
                    let (lo, hi) = (_mm256_unpacklo_epi8(p0, p1), _mm256_unpackhi_epi8(p0, p1));
                    a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_unpacklo_epi8(lo, zero), wp));
                    a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_unpackhi_epi8(lo, zero), wp));
                    a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_unpacklo_epi8(hi, zero), wp));
                    a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_unpackhi_epi8(hi, zero), wp));
                }
                let r = |a| _mm256_srai_epi32(_mm256_add_epi32(a, round), V_SHIFT);
                // 0-7 | 16-23 and 8-15 | 24-31: put the lanes back in order.
                let (s01, s23) = (_mm256_packs_epi32(r(a0), r(a1)), _mm256_packs_epi32(r(a2), r(a3)));
                let dst = out.as_mut_ptr().add(x) as *mut __m256i;
                _mm256_storeu_si256(dst, _mm256_permute2x128_si256(s01, s23, 0x20));
                _mm256_storeu_si256(dst.add(1), _mm256_permute2x128_si256(s01, s23, 0x31));
                x += 32;
            }
            x
        }

        /// [a0 + a1, a2 + a3, b0 + b1, b2 + b3].
        #[inline(always)]
        unsafe fn add_pairs(a: __m128i, b: __m128i) -> __m128i {
            let (a, b) = (_mm_castsi128_ps(a), _mm_castsi128_ps(b));
            let even = _mm_castps_si128(_mm_shuffle_ps(a, b, 0b10_00_10_00));
            let odd = _mm_castps_si128(_mm_shuffle_ps(a, b, 0b11_01_11_01));
            _mm_add_epi32(even, odd)
        }

        /// Rounds 8 horizontal sums to pixels and stores them at `dst`.
        #[inline(always)]
        unsafe fn store8(dst: *mut u8, s0: __m128i, s1: __m128i) {
            let round = _mm_set1_epi32(1 << (H_SHIFT - 1));
            let r = |s| _mm_srai_epi32(_mm_add_epi32(s, round), H_SHIFT);
            let words = _mm_packs_epi32(r(s0), r(s1));
            _mm_storel_epi64(dst as *mut __m128i, _mm_packus_epi16(words, words));
        }

        /// Up to 4 taps: two outputs' 4 samples per register.
        #[target_feature(enable = "sse2")]
        pub(super) unsafe fn horizontal4(row: &[u16], starts: &[usize], w: &[i16], out: &mut [u8]) -> usize {
            let at = |i: usize| _mm_loadl_epi64(row.as_ptr().add(starts[i]) as *const __m128i);
            let four = |i: usize| {
                let m01 = _mm_madd_epi16(
                    _mm_unpacklo_epi64(at(i), at(i + 1)),
                    _mm_loadu_si128(w.as_ptr().add(4 * i) as *const __m128i),
                );
                let m23 = _mm_madd_epi16(
                    _mm_unpacklo_epi64(at(i + 2), at(i + 3)),
                    _mm_loadu_si128(w.as_ptr().add(4 * i + 8) as *const __m128i),
                );
                add_pairs(m01, m23)
            };
            let mut i = 0;
            while i + 8 <= out.len() {
                store8(out.as_mut_ptr().add(i), four(i), four(i + 4));
                i += 8;
            }
            i
        }

        /// 2:1 with up to 4 taps: output j of a step reads samples 2 j .. 2 j + 3, so one load
        /// of samples 0-7 pairs with taps 0-1 and one of samples 2-9 with taps 2-3.
        #[target_feature(enable = "sse2")]
        pub(super) unsafe fn horizontal_step2(row: &[u16], first: usize, w: [i16; 4], out: &mut [u8]) -> usize {
            let pairs = |a: i16, b: i16| _mm_set1_epi32((i32::from(b as u16) << 16) | i32::from(a as u16));
            let (w01, w23) = (pairs(w[0], w[1]), pairs(w[2], w[3]));
            let mut i = 0;
            while i + 8 <= out.len() && first + 2 * i + 18 <= row.len() {
                let p = row.as_ptr().add(first + 2 * i);
                let load = |k: usize| _mm_loadu_si128(p.add(k) as *const __m128i);
                let s0 = _mm_add_epi32(_mm_madd_epi16(load(0), w01), _mm_madd_epi16(load(2), w23));
                let s1 = _mm_add_epi32(_mm_madd_epi16(load(8), w01), _mm_madd_epi16(load(10), w23));
                store8(out.as_mut_ptr().add(i), s0, s1);
                i += 8;
            }
            i
        }

        /// 5 to 8 taps: one output's 8 samples per register.
        #[target_feature(enable = "sse2")]
        pub(super) unsafe fn horizontal8(row: &[u16], starts: &[usize], w: &[i16], out: &mut [u8]) -> usize {
            let one = |i: usize| {
                _mm_madd_epi16(
                    _mm_loadu_si128(row.as_ptr().add(starts[i]) as *const __m128i),
                    _mm_loadu_si128(w.as_ptr().add(8 * i) as *const __m128i),
                )
            };
            let four = |i: usize| add_pairs(add_pairs(one(i), one(i + 1)), add_pairs(one(i + 2), one(i + 3)));
            let mut i = 0;
            while i + 8 <= out.len() {
                store8(out.as_mut_ptr().add(i), four(i), four(i + 4));
                i += 8;
            }
            i
        }
    }

    #[cfg(target_arch = "aarch64")]
    mod neon {
        use super::{H_SHIFT, V_SHIFT};
        use std::arch::aarch64::*;

        #[target_feature(enable = "neon")]
        pub(super) unsafe fn vertical(rows: &[&[u8]], w: &[i16], out: &mut [u16]) -> usize {
            let mut x = 0;
            while x + 16 <= out.len() {
                let zero = vdupq_n_u32(0);
                let (mut a0, mut a1, mut a2, mut a3) = (zero, zero, zero, zero);
                for (r, &wk) in rows.iter().zip(w) {
                    let wk = wk as u16;
                    let p = vld1q_u8(r.as_ptr().add(x));
                    let (lo, hi) = (vmovl_u8(vget_low_u8(p)), vmovl_u8(vget_high_u8(p)));
                    a0 = vmlal_n_u16(a0, vget_low_u16(lo), wk);
                    a1 = vmlal_n_u16(a1, vget_high_u16(lo), wk);
                    a2 = vmlal_n_u16(a2, vget_low_u16(hi), wk);
                    a3 = vmlal_n_u16(a3, vget_high_u16(hi), wk);
                }
                // Rounding narrowing shift: (a + 64) >> 7, as `to_mid`.
                let dst = out.as_mut_ptr().add(x);
                vst1q_u16(dst, vcombine_u16(vrshrn_n_u32::<V_SHIFT>(a0), vrshrn_n_u32::<V_SHIFT>(a1)));
                vst1q_u16(dst.add(8), vcombine_u16(vrshrn_n_u32::<V_SHIFT>(a2), vrshrn_n_u32::<V_SHIFT>(a3)));
                x += 16;
            }
            x
        }

        /// Rounds 8 horizontal sums to pixels ((s + 2^20) >> 21, saturated as `to_pixel` clamps)
        /// and stores them at `dst`.
        #[inline(always)]
        unsafe fn store8(dst: *mut u8, s0: uint32x4_t, s1: uint32x4_t) {
            let words = vcombine_u16(vqmovn_u32(vrshrq_n_u32::<H_SHIFT>(s0)), vqmovn_u32(vrshrq_n_u32::<H_SHIFT>(s1)));
            vst1_u8(dst, vqmovn_u16(words));
        }

        #[target_feature(enable = "neon")]
        pub(super) unsafe fn horizontal4(row: &[u16], starts: &[usize], w: &[i16], out: &mut [u8]) -> usize {
            let w = w.as_ptr() as *const u16;
            let one = |i: usize| vmull_u16(vld1_u16(row.as_ptr().add(starts[i])), vld1_u16(w.add(4 * i)));
            let four = |i: usize| vpaddq_u32(vpaddq_u32(one(i), one(i + 1)), vpaddq_u32(one(i + 2), one(i + 3)));
            let mut i = 0;
            while i + 8 <= out.len() {
                store8(out.as_mut_ptr().add(i), four(i), four(i + 4));
                i += 8;
            }
            i
        }

        /// 2:1 with up to 4 taps: `vld2q` splits samples into even and odd ones, so output j is
        /// w0 even[j] + w1 odd[j] + w2 even[j + 1] + w3 odd[j + 1].
        #[target_feature(enable = "neon")]
        pub(super) unsafe fn horizontal_step2(row: &[u16], first: usize, w: [i16; 4], out: &mut [u8]) -> usize {
            let w = w.map(|w| w as u16);
            let mut i = 0;
            while i + 8 <= out.len() && first + 2 * i + 18 <= row.len() {
                let p = row.as_ptr().add(first + 2 * i);
                let (a, b) = (vld2q_u16(p), vld2q_u16(p.add(2)));
                let half = |e: uint16x4_t, o: uint16x4_t, e1: uint16x4_t, o1: uint16x4_t| {
                    let s = vmull_n_u16(e, w[0]);
                    let s = vmlal_n_u16(s, o, w[1]);
                    let s = vmlal_n_u16(s, e1, w[2]);
                    vmlal_n_u16(s, o1, w[3])
                };
                let s0 = half(vget_low_u16(a.0), vget_low_u16(a.1), vget_low_u16(b.0), vget_low_u16(b.1));
                let s1 = half(vget_high_u16(a.0), vget_high_u16(a.1), vget_high_u16(b.0), vget_high_u16(b.1));
                store8(out.as_mut_ptr().add(i), s0, s1);
                i += 8;
            }
            i
        }

        #[target_feature(enable = "neon")]
        pub(super) unsafe fn horizontal8(row: &[u16], starts: &[usize], w: &[i16], out: &mut [u8]) -> usize {
            let w = w.as_ptr() as *const u16;
            let one = |i: usize| {
                let (p, k) = (vld1q_u16(row.as_ptr().add(starts[i])), vld1q_u16(w.add(8 * i)));
                vmlal_u16(vmull_u16(vget_low_u16(p), vget_low_u16(k)), vget_high_u16(p), vget_high_u16(k))
            };
            let four = |i: usize| vpaddq_u32(vpaddq_u32(one(i), one(i + 1)), vpaddq_u32(one(i + 2), one(i + 3)));
            let mut i = 0;
            while i + 8 <= out.len() {
                store8(out.as_mut_ptr().add(i), four(i), four(i + 4));
                i += 8;
            }
            i
        }
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

    /// The kernels this CPU runs, scalar first.
    fn kernels() -> Vec<Kernel> {
        let mut k = vec![Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            k.push(Kernel::Sse2);
            if is_x86_feature_detected!("avx2") {
                k.push(Kernel::Avx2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        k.push(Kernel::Neon);
        k
    }

    fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 8) as u8
            })
            .collect()
    }

    /// Sizes that take every path: 4 and 8 horizontal lanes, more taps than the SIMD passes
    /// take, widths that leave scalar tails, 1:1.
    const SIZES: [((usize, usize), (usize, usize)); 10] = [
        ((1280, 720), (640, 360)),
        ((640, 360), (320, 180)),
        ((1280, 720), (960, 540)),
        ((1920, 1080), (640, 360)),
        ((1280, 720), (320, 180)),
        ((1280, 720), (160, 90)),
        ((1280, 720), (100, 40)),
        ((37, 23), (15, 9)),
        ((100, 50), (99, 49)),
        ((66, 34), (66, 34)),
    ];

    #[test]
    fn simd_output_equals_scalar_output() {
        assert!(kernels().len() > 1 || !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")));
        // 2:1 takes the contiguous pass everywhere but at the edges.
        let (a, b) = PlaneScaler::new((1280, 720), (640, 360)).step2.unwrap();
        assert!(a <= 1 && b >= 639, "{a}..{b}");
        for (src, dst) in SIZES {
            // Saturated noise and flat white: the sums' extremes.
            for data in [noise((src.0 + 24) * src.1, (src.0 * dst.1) as u32), vec![255; (src.0 + 24) * src.1]] {
                let p = plane(&data, src.0 + 24, src.0, src.1);
                let mut reference = vec![0; dst.0 * dst.1];
                PlaneScaler::with_kernel(src, dst, Kernel::Scalar).scale(&p, &mut reference);
                for k in kernels() {
                    let mut out = vec![0; dst.0 * dst.1];
                    PlaneScaler::with_kernel(src, dst, k).scale(&p, &mut out);
                    assert!(out == reference, "{k:?} {src:?} -> {dst:?}");
                }
            }
        }
    }

    #[test]
    fn interleaved_equals_planar() {
        for (src, dst) in SIZES {
            let stride = 2 * src.0 + 10;
            let uv = noise(stride * src.1, src.1 as u32);
            let (mut u, mut v) = (vec![0; src.0 * src.1], vec![0; src.0 * src.1]);
            for r in 0..src.1 {
                for x in 0..src.0 {
                    u[r * src.0 + x] = uv[r * stride + 2 * x];
                    v[r * src.0 + x] = uv[r * stride + 2 * x + 1];
                }
            }
            let mut want = (vec![0; dst.0 * dst.1], vec![0; dst.0 * dst.1]);
            let mut s = PlaneScaler::with_kernel(src, dst, Kernel::Scalar);
            s.scale(&plane(&u, src.0, src.0, src.1), &mut want.0);
            s.scale(&plane(&v, src.0, src.0, src.1), &mut want.1);
            for k in kernels() {
                let mut got = (vec![0; dst.0 * dst.1], vec![0; dst.0 * dst.1]);
                let p = plane(&uv, stride, 2 * src.0, src.1);
                PlaneScaler::with_kernel(src, dst, k).scale_interleaved(&p, &mut got.0, &mut got.1);
                assert!(got == want, "{k:?} {src:?} -> {dst:?}");
            }
        }
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

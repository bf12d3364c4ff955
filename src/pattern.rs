//! Test media: a moving picture with a readable frame counter, and a sine tone.
//!
//! Used by examples, benchmarks and end-to-end tests: the moving parts keep the encoder honest
//! (a static picture compresses to nothing and hides rate-control bugs), and the counter makes
//! dropped or repeated frames visible in a recording and checkable by a test. The [`frame_code`]
//! strip at the top left carries the frame number and the wall-clock time the picture was drawn in a
//! form machines read back from a decoded picture ([`read_frame_code`]): lost frames and latency.

use std::f64::consts::TAU;
use std::time::{SystemTime, UNIX_EPOCH};

pub mod frame_code;
pub use frame_code::read_frame_code;

use crate::encode::I420Buffer;

/// 75 % colour bars in BT.601 limited range: white, yellow, cyan, green, magenta, red, blue, black.
const BARS: [(u8, u8, u8); 8] = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
    (16, 128, 128),
];

const WHITE: u8 = 235;
/// Dark grey behind the digits; a value no bar uses, so a reader can find the plate's edge.
const PLATE: u8 = 48;
const NEUTRAL: u8 = 128;

/// Pixels the bars move per frame; even, so the chroma moves by whole samples.
const SCROLL_STEP: u64 = 4;

/// 5x7 digit glyphs; bit 4 of each row is the leftmost column.
const FONT: [[u8; 7]; 10] = [
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
];
const GLYPH_W: usize = 5;
const GLYPH_H: usize = 7;
/// Glyph advance in font cells (one cell of spacing).
const ADVANCE: usize = GLYPH_W + 1;

/// A moving test picture: colour bars scrolling horizontally, a band of grey texture along the
/// bottom that changes unpredictably every frame, a white box bouncing around, the frame code
/// (frame number and drawing time as black and white blocks) at the top left, and the frame number
/// in large digits under it.
///
/// The texture is what makes the rate control work for its money: bars and a box alone are so
/// cheap to code that an encoder stays far below any realistic bitrate and a broken rate control
/// would go unnoticed.
#[derive(Debug, Clone)]
pub struct VideoPattern {
    width: u32,
    height: u32,
    /// One row of bars, twice over, so any scroll offset is a single contiguous slice.
    bars_y: Vec<u8>,
    bars_u: Vec<u8>,
    bars_v: Vec<u8>,
    /// Smoothed noise, `2 * width` x `2 * band_h`; each frame shows a window at a pseudo-random
    /// offset, so motion search cannot predict it from the previous frame.
    texture: Vec<u8>,
    band_h: usize,
    /// Size in pixels of one font cell.
    scale: usize,
    box_size: usize,
}

/// The frame code's clock. A clock before 1970 only spoils the latency a reader computes, not
/// the picture.
fn unix_ms_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl VideoPattern {
    /// A pattern for `width` x `height` pictures. Odd sizes are rounded down to even (I420 has
    /// whole chroma samples only).
    pub fn new(width: u32, height: u32) -> Self {
        let (width, height) = (width & !1, height & !1);
        let (w, h) = (width as usize, height as usize);
        let cw = w / 2;
        let bar = |x: usize, n: usize| BARS[x * BARS.len() / n.max(1)];
        let bars_y: Vec<u8> = (0..2 * w).map(|x| bar(x % w, w).0).collect();
        let bars_u: Vec<u8> = (0..2 * cw).map(|x| bar(x % cw, cw).1).collect();
        let bars_v: Vec<u8> = (0..2 * cw).map(|x| bar(x % cw, cw).2).collect();
        let band_h = (h / 4) & !1;
        VideoPattern {
            width,
            height,
            bars_y,
            bars_u,
            bars_v,
            texture: texture(2 * w, 2 * band_h),
            band_h,
            // About 1/8 of the height per digit: readable after heavy compression.
            scale: (h / 60).max(1),
            box_size: (h / 6) & !1,
        }
    }

    /// Renders frame `frame_index` into `out` (resized to the pattern size, reusing its
    /// allocation), its frame code stamped with the wall-clock time now.
    pub fn fill(&mut self, frame_index: u64, out: &mut I420Buffer) {
        self.fill_at(frame_index, unix_ms_now(), out);
    }

    /// [`fill`](Self::fill) with the frame code's time given: the output depends only on the size,
    /// `frame_index` and `unix_ms`.
    pub fn fill_at(&mut self, frame_index: u64, unix_ms: u64, out: &mut I420Buffer) {
        out.resize(self.width, self.height);
        let (y, u, v) = out.planes_mut();
        self.fill_planes_at(frame_index, unix_ms, y, u, v);
    }

    /// [`fill`](Self::fill) into unpadded I420 planes of the pattern's size (a video slot's,
    /// `Pusher::video_slot`). Panics if a plane has another size.
    pub fn fill_planes(&mut self, frame_index: u64, y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
        self.fill_planes_at(frame_index, unix_ms_now(), y, u, v);
    }

    fn fill_planes_at(&mut self, frame_index: u64, unix_ms: u64, y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
        let (w, h) = (self.width as usize, self.height as usize);
        let chroma = (w / 2) * (h / 2);
        assert!(y.len() == w * h && u.len() == chroma && v.len() == chroma, "planes of another size");
        if w == 0 || h == 0 {
            return;
        }
        let cw = w / 2;

        let off = ((frame_index % w as u64) * SCROLL_STEP % w as u64) as usize & !1;
        let coff = off / 2;
        for row in y.chunks_exact_mut(w) {
            row.copy_from_slice(&self.bars_y[off..off + w]);
        }
        for row in u.chunks_exact_mut(cw) {
            row.copy_from_slice(&self.bars_u[coff..coff + cw]);
        }
        for row in v.chunks_exact_mut(cw) {
            row.copy_from_slice(&self.bars_v[coff..coff + cw]);
        }

        if self.band_h > 0 {
            let r = splitmix64(frame_index);
            let ox = (r % w as u64) as usize;
            let oy = ((r >> 32) % self.band_h as u64) as usize;
            let tw = 2 * w;
            let band = &mut y[(h - self.band_h) * w..];
            for (i, row) in band.chunks_exact_mut(w).enumerate() {
                let at = (oy + i) * tw + ox;
                row.copy_from_slice(&self.texture[at..at + w]);
            }
            let (cu, cv) = (&mut u[(h - self.band_h) / 2 * cw..], &mut v[(h - self.band_h) / 2 * cw..]);
            cu.fill(NEUTRAL);
            cv.fill(NEUTRAL);
        }

        if self.box_size > 0 {
            let bx = bounce(frame_index, 6, w.saturating_sub(self.box_size));
            let by = bounce(frame_index, 4, h.saturating_sub(self.box_size));
            let (s, planes) = (self.box_size, (&mut *y, &mut *u, &mut *v));
            fill_rect(planes, w, (bx, by, s, s), (WHITE, NEUTRAL, NEUTRAL));
        }

        self.draw_counter(frame_index, y, u, v);
        // Truncation is the layout: 16 bits of frame number, the low 32 bits of the ms.
        frame_code::draw(frame_index as u16, unix_ms as u32, w, h, y, u, v);
    }

    /// Top-left corner and cell size of the counter: (x, y, scale). It sits under the frame code.
    fn counter_origin(&self) -> (usize, usize, usize) {
        let s = self.scale;
        let code_h = frame_code::height(self.width as usize, self.height as usize);
        ((2 * s) & !1, (code_h + 2 * s) & !1, s)
    }

    fn draw_counter(&self, n: u64, y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
        let (w, h) = (self.width as usize, self.height as usize);
        let (x0, y0, s) = self.counter_origin();
        let mut digits = [0u8; 20];
        let mut len = 0;
        let mut rest = n;
        loop {
            digits[len] = (rest % 10) as u8;
            len += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        digits[..len].reverse();

        // A dark plate with a one-cell margin keeps the digits readable over any background.
        let plate_w = ((len * ADVANCE + 1) * s + 1) & !1;
        let plate_h = ((GLYPH_H + 2) * s + 1) & !1;
        let (px, py) = (x0.saturating_sub(s) & !1, y0.saturating_sub(s) & !1);
        fill_rect((y, u, v), w, (px, py, plate_w, plate_h), (PLATE, NEUTRAL, NEUTRAL));

        for (i, &d) in digits[..len].iter().enumerate() {
            let gx = x0 + i * ADVANCE * s;
            if gx >= w {
                break;
            }
            for (r, bits) in FONT[d as usize].iter().enumerate() {
                let top = y0 + r * s;
                for c in 0..GLYPH_W {
                    if bits & (0x10 >> c) == 0 {
                        continue;
                    }
                    let left = gx + c * s;
                    let right = (left + s).min(w);
                    if left >= w {
                        break;
                    }
                    for row in top..(top + s).min(h) {
                        y[row * w + left..row * w + right].fill(WHITE);
                    }
                }
            }
        }
    }
}

/// A well-mixed hash of the frame index: deterministic, but no two nearby frames alike.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Noise smoothed by a 3x3 box filter: texture like foliage or gravel rather than pure static,
/// in roughly 60..200 so it stays in range and clear of the counter's plate.
fn texture(w: usize, h: usize) -> Vec<u8> {
    let noise: Vec<u8> = (0..w * h).map(|i| (splitmix64(i as u64 ^ 0x5EED) >> 56) as u8).collect();
    let at = |x: usize, y: usize| u32::from(noise[y.min(h - 1) * w + x.min(w - 1)]);
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0;
            for (dx, dy) in [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (2, 2)] {
                sum += at((x + dx).saturating_sub(1), (y + dy).saturating_sub(1));
            }
            out.push((60 + sum * 140 / (9 * 255)) as u8);
        }
    }
    out
}

/// A triangle wave over `0..=span`, so moving things bounce off the edges instead of jumping.
fn bounce(frame_index: u64, speed: u64, span: usize) -> usize {
    if span == 0 {
        return 0;
    }
    let period = 2 * span as u64;
    // Reduce before multiplying so any u64 frame index works.
    let p = ((frame_index % period) * speed % period) as usize;
    let pos = if p <= span { p } else { 2 * span - p };
    pos & !1
}

/// Fills an even-aligned rectangle (clipped to the picture) in all three planes.
fn fill_rect(
    (y, u, v): (&mut [u8], &mut [u8], &mut [u8]),
    w: usize,
    (x, top, rw, rh): (usize, usize, usize, usize),
    (cy, cu, cv): (u8, u8, u8),
) {
    let h = y.len() / w;
    let (x1, y1) = ((x + rw).min(w), (top + rh).min(h));
    if x >= x1 || top >= y1 {
        return;
    }
    for row in top..y1 {
        y[row * w + x..row * w + x1].fill(cy);
    }
    let cw = w / 2;
    for row in top / 2..y1 / 2 {
        u[row * cw + x / 2..row * cw + x1 / 2].fill(cu);
        v[row * cw + x / 2..row * cw + x1 / 2].fill(cv);
    }
}

/// A continuous sine tone at about -12 dBFS, interleaved s16 on every channel.
#[derive(Debug, Clone)]
pub struct Tone {
    channels: usize,
    phase: f64,
    step: f64,
    amplitude: f64,
}

impl Tone {
    pub fn new(sample_rate: u32, channels: u32, freq_hz: f64) -> Self {
        Tone {
            channels: channels.max(1) as usize,
            phase: 0.0,
            step: TAU * freq_hz / f64::from(sample_rate.max(1)),
            // -12 dBFS: loud enough to be obviously present, far from clipping after encoding.
            amplitude: f64::from(i16::MAX) * 10f64.powf(-12.0 / 20.0),
        }
    }

    /// Fills `out` with whole interleaved sample frames; the phase carries over to the next call,
    /// so chunk boundaries are inaudible. A trailing partial frame is zeroed and does not advance
    /// the phase.
    pub fn fill(&mut self, out: &mut [i16]) {
        let mut frames = out.chunks_exact_mut(self.channels);
        for frame in &mut frames {
            frame.fill((self.phase.sin() * self.amplitude) as i16);
            self.phase += self.step;
            if self.phase >= TAU {
                self.phase -= TAU;
            }
        }
        frames.into_remainder().fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the counter back from the luma plane by sampling the centre of each font cell.
    fn read_counter(p: &VideoPattern, pic: &I420Buffer) -> u64 {
        let (x0, y0, s) = p.counter_origin();
        let w = pic.width as usize;
        let y = pic.y();
        let mut n = 0u64;
        for i in 0.. {
            let gx = x0 + i * ADVANCE * s;
            // The plate's bottom margin under the glyph marks a digit slot.
            let margin = (y0 + GLYPH_H * s + s / 2) * w + gx + s / 2;
            if gx + GLYPH_W * s > w || y[margin] != PLATE {
                break;
            }
            let mut glyph = [0u8; 7];
            for (r, bits) in glyph.iter_mut().enumerate() {
                for c in 0..GLYPH_W {
                    let (px, py) = (gx + c * s + s / 2, y0 + r * s + s / 2);
                    if y[py * w + px] > 128 {
                        *bits |= 0x10 >> c;
                    }
                }
            }
            match FONT.iter().position(|g| *g == glyph) {
                Some(d) => n = n * 10 + d as u64,
                None => panic!("unreadable glyph {glyph:02x?} at digit {i}"),
            }
        }
        n
    }

    #[test]
    fn counter_is_readable_and_changes() {
        for (w, h) in [(320, 240), (1280, 720), (176, 144)] {
            let mut p = VideoPattern::new(w, h);
            let mut pic = I420Buffer::default();
            for n in [0, 1, 2, 9, 10, 42, 99, 100, 12345] {
                p.fill(n, &mut pic);
                assert_eq!(read_counter(&p, &pic), n, "{w}x{h}");
            }
        }
    }

    #[test]
    fn consecutive_frames_differ() {
        let mut p = VideoPattern::new(320, 240);
        let (mut a, mut b) = (I420Buffer::default(), I420Buffer::default());
        for n in 0..40 {
            p.fill(n, &mut a);
            p.fill(n + 1, &mut b);
            assert_ne!(a, b, "frame {n}");
            // Not only the counter: the bars or the box moved too.
            let (_, y0, s) = p.counter_origin();
            let below = (y0 + (GLYPH_H + 2) * s) * 320;
            assert_ne!(a.y()[below..], b.y()[below..], "frame {n}");
        }
    }

    #[test]
    fn output_is_deterministic() {
        let mut p1 = VideoPattern::new(640, 360);
        let mut p2 = VideoPattern::new(640, 360);
        let (mut a, mut b) = (I420Buffer::default(), I420Buffer::default());
        p1.fill_at(77, 1_000, &mut a);
        for n in 0..10 {
            p2.fill(n, &mut b);
        }
        p2.fill_at(77, 1_000, &mut b);
        assert_eq!(a, b);
        assert_eq!(a.data.len(), I420Buffer::size(640, 360));
        // Both chroma planes carry colour, not a flat grey.
        assert!(a.u().iter().any(|&c| c != NEUTRAL));
        assert!(a.v().iter().any(|&c| c != NEUTRAL));
    }

    #[test]
    fn frame_code_is_readable_and_stamped_now() {
        for (w, h) in [(320, 240), (1280, 720), (1920, 1080)] {
            let mut p = VideoPattern::new(w, h);
            let mut pic = I420Buffer::default();
            for n in [0, 1, 65_535, 65_536 + 7] {
                p.fill_at(n, (1u64 << 40) + n, &mut pic);
                let code = read_frame_code(pic.y(), w as usize, w as usize, h as usize);
                assert_eq!(code, Some((n as u16, n as u32)), "{w}x{h} frame {n}");
                // The counter still reads under the code.
                assert_eq!(read_counter(&p, &pic), n, "{w}x{h}");
            }
            let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u32;
            p.fill(5, &mut pic);
            let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u32;
            let (_, ms) = read_frame_code(pic.y(), w as usize, w as usize, h as usize).unwrap();
            assert!(ms.wrapping_sub(before) <= after.wrapping_sub(before), "{before} <= {ms} <= {after}");
        }
    }

    #[test]
    fn tiny_sizes_do_not_panic() {
        let mut pic = I420Buffer::default();
        for (w, h) in [(0, 0), (2, 2), (3, 3), (16, 8), (8, 16), (16, 400)] {
            let mut p = VideoPattern::new(w, h);
            for n in [0, 1, 123_456_789, u64::MAX] {
                p.fill(n, &mut pic);
            }
        }
    }

    #[test]
    fn tone_is_440_hz() {
        let mut t = Tone::new(44100, 1, 440.0);
        let mut buf = vec![0i16; 44100];
        t.fill(&mut buf);
        let crossings = buf.windows(2).filter(|p| (p[0] < 0) != (p[1] < 0)).count();
        // Two zero crossings per period.
        assert!((878..=882).contains(&crossings), "{crossings}");
        let peak = buf.iter().map(|s| s.unsigned_abs()).max().unwrap();
        let dbfs = 20.0 * (f64::from(peak) / 32768.0).log10();
        assert!((-12.5..=-11.5).contains(&dbfs), "{dbfs}");
    }

    #[test]
    fn tone_phase_is_continuous_across_calls() {
        let mut whole = vec![0i16; 2 * 4800];
        Tone::new(48000, 2, 1000.0).fill(&mut whole);
        let mut pieces = vec![0i16; 2 * 4800];
        let mut t = Tone::new(48000, 2, 1000.0);
        let mut at = 0;
        for len in [2, 14, 1000, 2, 338, 2048, 1].iter().cycle() {
            let end = (at + len * 2).min(pieces.len());
            t.fill(&mut pieces[at..end]);
            at = end;
            if at == pieces.len() {
                break;
            }
        }
        assert_eq!(whole, pieces);
        // Interleaved: both channels carry the same sample.
        assert!(whole.chunks_exact(2).all(|f| f[0] == f[1]));
    }
}

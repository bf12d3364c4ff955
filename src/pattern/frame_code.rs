//! The machine-readable frame code at the top left of the test picture: the frame number and the
//! wall-clock time the picture was drawn, as big black and white blocks that survive H.264 at low
//! bitrates, so a receiver can count lost frames and measure glass-to-glass latency.
//!
//! # Layout (the Python test endpoint `tests/peers/whip_endpoint.py` reads the same)
//!
//! - Block size `B = min(W / 40, H / 30)` rounded down to a multiple of 8 luma pixels; no code when
//!   `B < 8` or the code does not fit (pictures smaller than 320x240, or very thin ones). A multiple
//!   of 8 at an offset of `B` keeps each block on whole 8x8 transform blocks, so quantisation smears
//!   nothing across block edges. 320x240 gives 8, 1280x720 gives 24, 1920x1080 gives 32.
//! - Guard: the rectangle `x in [0, 34 B)`, `y in [0, 4 B)` is mid-grey (luma 128, chroma 128).
//! - Bits: 2 rows of 32 blocks inside the guard; bit `i` (0..64) is the block at
//!   `x = B + (i % 32) B`, `y = B + (i / 32) B`: black (luma 16) for 0, white (luma 235) for 1.
//! - Payload, most significant bit first: bits 0..16 the frame number (low 16 bits of the frame
//!   index), bits 16..48 the wall-clock time in ms since the Unix epoch (low 32 bits), bits 48..64
//!   CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR) over
//!   the 6 payload bytes in big-endian order.
//! - Reading: the mean luma over each block's central `B/2 x B/2` square (from `B/4` to `3B/4` on
//!   both axes). Below 96 is 0, above 160 is 1, anything in between refuses the code, and so does a
//!   CRC mismatch.

/// Blocks per row of the code and rows of blocks.
const COLS: usize = 32;
const ROWS: usize = 2;
const BLACK: u8 = 16;
const WHITE: u8 = 235;
const GUARD: u8 = 128;
/// Mean block luma thresholds: far enough from the mid-grey guard that a smeared block is refused
/// instead of misread.
const ZERO_BELOW: u32 = 96;
const ONE_ABOVE: u32 = 160;

/// The code's block size in luma pixels for a `w` x `h` picture, or `None` when it has no code.
pub fn block_size(w: usize, h: usize) -> Option<usize> {
    let b = (w / 40).min(h / 30) / 8 * 8;
    (b >= 8 && (COLS + 2) * b <= w && (ROWS + 2) * b <= h).then_some(b)
}

/// Height in luma rows the code occupies (guard included) at the top of a `w` x `h` picture; 0
/// when the picture has no code.
pub fn height(w: usize, h: usize) -> usize {
    block_size(w, h).map_or(0, |b| (ROWS + 2) * b)
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

fn payload(frame: u16, unix_ms: u32) -> [u8; 6] {
    let (f, t) = (frame.to_be_bytes(), unix_ms.to_be_bytes());
    [f[0], f[1], t[0], t[1], t[2], t[3]]
}

fn bits(frame: u16, unix_ms: u32) -> u64 {
    (u64::from(frame) << 48) | (u64::from(unix_ms) << 16) | u64::from(crc16(&payload(frame, unix_ms)))
}

/// Draws the code into a tightly packed I420 picture (`y` is `w` x `h`, `u` and `v` are `w/2` x
/// `h/2`). Does nothing for a picture too small to carry it.
pub fn draw(frame: u16, unix_ms: u32, w: usize, h: usize, y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    let Some(b) = block_size(w, h) else { return };
    let (gw, gh) = ((COLS + 2) * b, (ROWS + 2) * b);
    for row in y.chunks_exact_mut(w).take(gh) {
        row[..gw].fill(GUARD);
    }
    let cw = w / 2;
    for plane in [u, v] {
        for row in plane.chunks_exact_mut(cw).take(gh / 2) {
            row[..gw / 2].fill(GUARD);
        }
    }
    let code = bits(frame, unix_ms);
    for r in 0..ROWS {
        let top = (1 + r) * b;
        // Draw one pixel row of the block row, then copy it down: B rows for the price of one.
        let first = &mut y[top * w..top * w + w];
        for c in 0..COLS {
            let bit = code >> (63 - (r * COLS + c)) & 1;
            let x = (1 + c) * b;
            first[x..x + b].fill(if bit == 1 { WHITE } else { BLACK });
        }
        for i in 1..b {
            y.copy_within(top * w + b..top * w + b + COLS * b, (top + i) * w + b);
        }
    }
}

/// Reads the frame code from a luma plane (`stride` bytes per row, `w` x `h` pixels): the frame
/// number and the low 32 bits of the wall-clock ms it was drawn at, or `None` when the picture has
/// no code, a block is neither clearly black nor clearly white, or the CRC does not match.
pub fn read_frame_code(luma: &[u8], stride: usize, w: usize, h: usize) -> Option<(u16, u32)> {
    let b = block_size(w, h)?;
    if stride < w || luma.len() < (ROWS + 1) * b * stride {
        return None;
    }
    let (lo, hi) = (b / 4, 3 * b / 4);
    let area = ((hi - lo) * (hi - lo)) as u32;
    let mut code = 0u64;
    for i in 0..ROWS * COLS {
        let (x, top) = ((1 + i % COLS) * b, (1 + i / COLS) * b);
        let sum: u32 = (top + lo..top + hi)
            .map(|row| luma[row * stride + x + lo..row * stride + x + hi].iter().map(|&p| u32::from(p)).sum::<u32>())
            .sum();
        let mean = sum / area;
        let bit = match mean {
            m if m < ZERO_BELOW => 0,
            m if m > ONE_ABOVE => 1,
            _ => return None,
        };
        code = code << 1 | bit;
    }
    let (frame, unix_ms, crc) = ((code >> 48) as u16, (code >> 16) as u32, code as u16);
    (crc16(&payload(frame, unix_ms)) == crc).then_some((frame, unix_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: usize, h: usize, frame: u16, ms: u32) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (mut y, mut u, mut v) = (vec![90u8; w * h], vec![60u8; w * h / 4], vec![200u8; w * h / 4]);
        draw(frame, ms, w, h, &mut y, &mut u, &mut v);
        (y, u, v)
    }

    #[test]
    fn crc_is_ccitt_false() {
        // The standard check value of CRC-16/CCITT-FALSE.
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn block_sizes() {
        assert_eq!(block_size(320, 240), Some(8));
        assert_eq!(block_size(640, 360), Some(8));
        assert_eq!(block_size(1280, 720), Some(24));
        assert_eq!(block_size(1920, 1080), Some(32));
        assert_eq!(block_size(176, 144), None);
        assert_eq!(block_size(16, 400), None);
    }

    #[test]
    fn round_trip() {
        for (w, h) in [(320, 240), (640, 360), (1280, 720), (1920, 1080), (400, 1000)] {
            for (frame, ms) in [(0, 0), (1, 1), (0xFFFF, u32::MAX), (12345, 0xDEAD_BEEF), (0x8001, 0x8000_0001)] {
                let (y, u, _) = picture(w, h, frame, ms);
                assert_eq!(read_frame_code(&y, w, w, h), Some((frame, ms)), "{w}x{h}");
                // The guard is neutral in chroma too, so colour cannot bleed into the blocks.
                assert_eq!(u[0], GUARD);
            }
        }
    }

    #[test]
    fn reads_with_a_padded_stride() {
        let (w, h, stride) = (320, 240, 384);
        let (y, _, _) = picture(w, h, 777, 123_456);
        let mut padded = vec![0u8; stride * h];
        for (dst, src) in padded.chunks_exact_mut(stride).zip(y.chunks_exact(w)) {
            dst[..w].copy_from_slice(src);
        }
        assert_eq!(read_frame_code(&padded, stride, w, h), Some((777, 123_456)));
    }

    #[test]
    fn survives_mild_noise() {
        let (w, h) = (320, 240);
        let (mut y, _, _) = picture(w, h, 4242, 99_999);
        for (i, p) in y.iter_mut().enumerate() {
            *p = p.saturating_add_signed(((i * 7919) % 41) as i8 - 20);
        }
        assert_eq!(read_frame_code(&y, w, w, h), Some((4242, 99_999)));
    }

    #[test]
    fn damaged_code_is_refused() {
        let (w, h) = (320, 240);
        let b = block_size(w, h).unwrap();
        for bit in [0, 15, 16, 40, 47, 48, 63] {
            let (mut y, _, _) = picture(w, h, 4242, 99_999);
            // A flipped block: every bit is covered by the CRC, so one flip is always caught.
            let (x, top) = ((1 + bit % COLS) * b, (1 + bit / COLS) * b);
            let was = y[top * w + x];
            for row in top..top + b {
                y[row * w + x..row * w + x + b].fill(if was == WHITE { BLACK } else { WHITE });
            }
            assert_eq!(read_frame_code(&y, w, w, h), None, "bit {bit}");
            // A smeared block (mid-grey) is refused before the CRC is even looked at.
            for row in top..top + b {
                y[row * w + x..row * w + x + b].fill(GUARD);
            }
            assert_eq!(read_frame_code(&y, w, w, h), None, "bit {bit}");
        }
        // No code at all: a flat picture, and one cut too short.
        assert_eq!(read_frame_code(&vec![16u8; w * h], w, w, h), None);
        let (y, _, _) = picture(w, h, 1, 2);
        assert_eq!(read_frame_code(&y[..2 * b * w], w, w, h), None);
    }

    #[test]
    fn tiny_pictures_have_no_code() {
        let (w, h) = (176, 144);
        let (y, _, _) = picture(w, h, 1, 2);
        assert!(y.iter().all(|&p| p == 90));
        assert_eq!(read_frame_code(&y, w, w, h), None);
        assert_eq!(height(w, h), 0);
    }
}

//! Reused buffers for FLV tag bodies, so that packetizing a frame allocates nothing in steady
//! state.
//!
//! A body is written into a pooled `BytesMut` and split off as `Bytes`; when every body cut from
//! a buffer has been sent and dropped, `try_reclaim` makes the whole buffer writable again without
//! allocating. A buffer whose bodies are still queued (a slow network) is passed over; only when
//! no buffer can take the body is a new one allocated, and the pool keeps at most `MAX_BUFFERS`
//! of them (bodies still in flight keep their own buffer alive, so dropping the pool's handle
//! frees nothing early).

use bytes::{BufMut, Bytes, BytesMut};

/// A buffer holds several typical frames, so one keyframe does not force a new buffer.
const MIN_BUFFER: usize = 64 * 1024;
const MAX_BUFFERS: usize = 4;

pub struct BodyPool {
    buffers: Vec<BytesMut>,
    buffer_size: usize,
}

impl Default for BodyPool {
    fn default() -> Self {
        BodyPool::with_buffer_size(MIN_BUFFER)
    }
}

impl BodyPool {
    /// Buffers of `size` bytes at least (bigger when a body needs it).
    pub fn with_buffer_size(size: usize) -> Self {
        BodyPool { buffers: Vec::new(), buffer_size: size.max(1) }
    }

    /// Builds one body of at most `max_len` bytes with `fill`, which appends to the (empty)
    /// buffer it is given; returns the body and what `fill` returned. `fill`'s error leaves the
    /// pool as it was.
    pub fn build<T, E>(
        &mut self,
        max_len: usize,
        fill: impl FnOnce(&mut BytesMut) -> Result<T, E>,
    ) -> Result<(Bytes, T), E> {
        let i = self.buffer_for(max_len);
        let buf = &mut self.buffers[i];
        debug_assert!(buf.is_empty());
        match fill(buf) {
            Ok(t) => Ok((buf.split().freeze(), t)),
            Err(e) => {
                buf.clear();
                Err(e)
            }
        }
    }

    /// `parts` concatenated, as one body.
    pub fn concat(&mut self, parts: &[&[u8]]) -> Bytes {
        let len = parts.iter().map(|p| p.len()).sum();
        let built: Result<_, std::convert::Infallible> = self.build(len, |b| {
            parts.iter().for_each(|p| b.put_slice(p));
            Ok(())
        });
        match built {
            Ok((body, ())) => body,
        }
    }

    fn buffer_for(&mut self, len: usize) -> usize {
        // Two from the start: the buffer being carved always has its newest bodies in flight
        // when it runs out, and by the time the second one runs out the first is free again.
        if self.buffers.is_empty() {
            self.buffers.push(new_buffer(self.buffer_size));
            self.buffers.push(new_buffer(self.buffer_size));
        }
        // Spare capacity first (no atomic traffic), then buffers whose bodies are all gone.
        if let Some(i) = self.buffers.iter().position(|b| b.capacity() >= len) {
            return i;
        }
        if let Some(i) = self.buffers.iter_mut().position(|b| b.try_reclaim(len)) {
            return i;
        }
        if self.buffers.len() >= MAX_BUFFERS {
            // The oldest: most likely to be reclaimable soon, but its bodies are still in flight.
            self.buffers.remove(0);
        }
        self.buffers.push(new_buffer(len.max(self.buffer_size)));
        self.buffers.len() - 1
    }
}

/// A buffer already in its shared form: the first split of a fresh `BytesMut` allocates its
/// reference count, which would otherwise happen the first time a body is cut from it.
fn new_buffer(size: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(size);
    drop(b.split());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_independent_and_buffers_come_back_when_bodies_drop() {
        let mut pool = BodyPool::default();
        let a = pool.concat(&[b"ab", b"cd"]);
        let b = pool.concat(&[b"efg"]);
        assert_eq!((&a[..], &b[..]), (&b"abcd"[..], &b"efg"[..]));
        // Fill the first buffer: the next body needs a second one while `a` and `b` live.
        let big = vec![7u8; MIN_BUFFER];
        let c = pool.concat(&[&big]);
        assert_eq!(pool.buffers.len(), 2);
        assert_eq!(pool.buffers[1].capacity(), 0, "the second buffer took it");
        drop((a, b));
        // The first buffer is reclaimed once its bodies are gone.
        let d = pool.concat(&[&big[..MIN_BUFFER - 10]]);
        assert_eq!(pool.buffers.len(), 2);
        assert!(c.iter().all(|&x| x == 7) && d.len() == MIN_BUFFER - 10);
        // Held bodies never get overwritten, and the pool stays bounded.
        let held: Vec<Bytes> = (0..10).map(|i| pool.concat(&[&vec![i as u8; MIN_BUFFER]])).collect();
        assert!(pool.buffers.len() <= MAX_BUFFERS);
        for (i, h) in held.iter().enumerate() {
            assert!(h.iter().all(|&x| x == i as u8));
        }
        let e: Result<(Bytes, ()), &str> = pool.build(10, |b| {
            b.put_slice(b"junk");
            Err("no")
        });
        assert!(e.is_err());
        assert_eq!(&pool.concat(&[b"x"])[..], b"x");
    }
}

//! Raw media waiting for the encode worker, in two bounded queues (video is dropped when the
//! encoder falls behind; audio has its own room so a slow video encoder does not starve it),
//! handed out oldest first, plus pools so steady-state pushing does not allocate.

use crate::encode::I420Buffer;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

pub enum Input {
    Video(I420Buffer, u64),
    Audio(Vec<i16>, u64),
}

/// What [`InputQueue::next_until`] found.
pub enum Next {
    Input(Input),
    /// The deadline passed (or [`InputQueue::wake`] was called) with nothing queued.
    Timeout,
    Closed,
}

struct Inner {
    video: VecDeque<(I420Buffer, u64)>,
    audio: VecDeque<(Vec<i16>, u64)>,
    video_pool: Vec<I420Buffer>,
    /// The last picture encoded, kept for pause frames. New input gets its buffer only when the
    /// pool has none left: then a newer picture is on its way to become the last one, and a
    /// 720p stream holds one picture (1.4 MB) less whenever its queue is busy.
    last_video: Option<I420Buffer>,
    audio_pool: Vec<Vec<i16>>,
    /// Video buffers made so far: the pool only grows, to the most pictures ever in flight.
    video_made: usize,
    /// Pictures lent to the app as video slots (`Pusher::video_slot`), not yet back.
    slots_out: usize,
    closed: bool,
    woken: bool,
}

pub struct InputQueue {
    inner: Mutex<Inner>,
    ready: Condvar,
    video_cap: usize,
    audio_cap: usize,
}

impl InputQueue {
    pub fn new(video_cap: usize, audio_cap: usize) -> Self {
        InputQueue {
            inner: Mutex::new(Inner {
                video: VecDeque::with_capacity(video_cap),
                audio: VecDeque::with_capacity(audio_cap),
                video_pool: Vec::with_capacity(video_cap + 2),
                last_video: None,
                audio_pool: Vec::with_capacity(audio_cap + 2),
                video_made: 0,
                slots_out: 0,
                closed: false,
                woken: false,
            }),
            ready: Condvar::new(),
            video_cap,
            audio_cap,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only plain queues behind: keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer to fill, or None when the video queue is full (the frame is to be dropped).
    pub fn video_buffer(&self) -> Option<I420Buffer> {
        let mut g = self.lock();
        if g.closed || g.video.len() >= self.video_cap {
            return None;
        }
        let b = g.video_pool.pop().or_else(|| g.last_video.take());
        g.video_made += usize::from(b.is_none());
        Some(b.unwrap_or_default())
    }

    /// A buffer lent to the app to write a picture into (a video slot), or None when the video
    /// queue is full or `max` slots are out already ([`InputQueue::slots_out`] tells which). The
    /// slot, pushed or not, ends with [`InputQueue::slot_returned`].
    pub fn video_slot(&self, max: usize) -> Option<I420Buffer> {
        let mut g = self.lock();
        if g.closed || g.video.len() >= self.video_cap || g.slots_out >= max {
            return None;
        }
        let b = g.video_pool.pop().or_else(|| g.last_video.take());
        g.video_made += usize::from(b.is_none());
        g.slots_out += 1;
        Some(b.unwrap_or_default())
    }

    pub fn slot_returned(&self) {
        let mut g = self.lock();
        g.slots_out = g.slots_out.saturating_sub(1);
    }

    pub fn slots_out(&self) -> usize {
        self.lock().slots_out
    }

    /// Keeps `pic`, just encoded, as the last picture; the one kept before returns to the pool.
    pub fn keep_last_video(&self, pic: I420Buffer) {
        let mut g = self.lock();
        if let Some(old) = g.last_video.replace(pic) {
            g.video_pool.push(old);
        }
    }

    /// The last picture encoded, to encode again (a pause frame): give it back with
    /// [`InputQueue::keep_last_video`]. None when there is none, or new input has taken its buffer.
    pub fn take_last_video(&self) -> Option<I420Buffer> {
        self.lock().last_video.take()
    }

    /// How many video buffers the pool has made (each holds one raw picture once filled).
    pub fn video_buffers_made(&self) -> usize {
        self.lock().video_made
    }

    pub fn audio_buffer(&self) -> Option<Vec<i16>> {
        let mut g = self.lock();
        if g.closed || g.audio.len() >= self.audio_cap {
            return None;
        }
        Some(g.audio_pool.pop().unwrap_or_default())
    }

    /// Queue a filled buffer; false when the queue filled up or closed meanwhile (the buffer is
    /// returned to the pool).
    pub fn push(&self, input: Input) -> bool {
        let mut g = self.lock();
        let ok = !g.closed
            && match input {
                Input::Video(b, ts) if g.video.len() < self.video_cap => {
                    g.video.push_back((b, ts));
                    true
                }
                Input::Audio(b, ts) if g.audio.len() < self.audio_cap => {
                    g.audio.push_back((b, ts));
                    true
                }
                other => {
                    Self::recycle_locked(&mut g, other);
                    false
                }
            };
        drop(g);
        if ok {
            self.ready.notify_one();
        }
        ok
    }

    pub fn recycle(&self, input: Input) {
        Self::recycle_locked(&mut self.lock(), input);
    }

    fn recycle_locked(g: &mut Inner, input: Input) {
        match input {
            Input::Video(b, _) => g.video_pool.push(b),
            Input::Audio(b, _) => g.audio_pool.push(b),
        }
    }

    /// The oldest queued input; blocks until there is one. None once closed and drained.
    #[cfg(test)]
    pub fn next(&self) -> Option<Input> {
        loop {
            match self.next_until(None) {
                Next::Input(i) => return Some(i),
                Next::Closed => return None,
                Next::Timeout => {}
            }
        }
    }

    /// The oldest queued input, waiting at most until `deadline` (None: no limit) or until
    /// [`InputQueue::wake`].
    pub fn next_until(&self, deadline: Option<Instant>) -> Next {
        let mut g = self.lock();
        loop {
            let v = g.video.front().map(|x| x.1);
            let a = g.audio.front().map(|x| x.1);
            let next = match (v, a) {
                (Some(v), Some(a)) if a < v => g.audio.pop_front().map(|(b, t)| Input::Audio(b, t)),
                (Some(_), _) => g.video.pop_front().map(|(b, t)| Input::Video(b, t)),
                (None, Some(_)) => g.audio.pop_front().map(|(b, t)| Input::Audio(b, t)),
                (None, None) if g.closed => return Next::Closed,
                (None, None) => None,
            };
            if let Some(i) = next {
                return Next::Input(i);
            }
            if g.woken {
                g.woken = false;
                return Next::Timeout;
            }
            g = match deadline {
                None => self.ready.wait(g).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Next::Timeout;
                    }
                    self.ready.wait_timeout(g, left).unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
    }

    /// Makes a waiting [`InputQueue::next_until`] return `Timeout` (the worker has new control
    /// state to look at, e.g. a pause).
    pub fn wake(&self) {
        self.lock().woken = true;
        self.ready.notify_all();
    }

    /// No more input: `next` drains what is queued, then returns None.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Drop everything queued (a failed or aborted stream); returns how many video frames went.
    pub fn clear(&self) -> usize {
        let mut g = self.lock();
        let n = g.video.len();
        // Back to the pools: the next pictures reuse them instead of allocating.
        while let Some((b, _)) = g.video.pop_front() {
            g.video_pool.push(b);
        }
        while let Some((b, _)) = g.audio.pop_front() {
            g.audio_pool.push(b);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_first_and_pooled() {
        let q = InputQueue::new(2, 4);
        for ts in [0, 33] {
            let b = q.video_buffer().unwrap();
            assert!(q.push(Input::Video(b, ts)));
        }
        assert!(q.video_buffer().is_none(), "video queue full");
        let a = q.audio_buffer().unwrap();
        assert!(q.push(Input::Audio(a, 10)));
        let order: Vec<u64> = (0..3)
            .map(|_| match q.next().unwrap() {
                Input::Video(b, t) => {
                    q.recycle(Input::Video(b, t));
                    t
                }
                Input::Audio(_, t) => t,
            })
            .collect();
        assert_eq!(order, vec![0, 10, 33]);
        assert_eq!(q.video_buffers_made(), 2);
        let b = q.video_buffer().unwrap();
        assert!(q.push(Input::Video(b, 66)));
        assert_eq!(q.clear(), 1);
        let b = q.video_buffer().unwrap();
        assert!(q.push(Input::Video(b, 99)));
        assert_eq!(q.video_buffers_made(), 2, "recycled and cleared buffers are reused");
        q.clear();
        q.close();
        assert!(q.next().is_none());
        assert!(q.video_buffer().is_none());
    }

    #[test]
    fn the_last_picture_is_kept_until_new_input_needs_its_buffer() {
        let q = InputQueue::new(2, 4);
        let picture = |q: &InputQueue, fill: u8| {
            let mut b = q.video_buffer().unwrap();
            b.data.clear();
            b.data.push(fill);
            b
        };
        let (a, b) = (picture(&q, 1), picture(&q, 2));
        q.keep_last_video(a);
        q.keep_last_video(b);
        // The older one went back to the pool and is handed out first.
        assert_eq!(picture(&q, 3).data, [3]);
        assert_eq!(q.video_buffers_made(), 2);
        let last = q.take_last_video().unwrap();
        assert_eq!(last.data, [2], "the last picture is intact");
        q.keep_last_video(last);
        // With the pool empty, new input takes the last picture's buffer rather than a new one.
        assert_eq!(picture(&q, 4).data, [4]);
        assert_eq!(q.video_buffers_made(), 2);
        assert!(q.take_last_video().is_none());
    }
}

//! Pictures written in place: the app borrows an I420 picture of the configured size from the
//! pusher's input pool, draws or decodes or copies its frame straight into it, and hands it back
//! to be encoded. `push_video` copies every frame into such a picture; an app whose frames are
//! made in software (a renderer, a decoder, the test pattern, a file) saves that copy (~7 % of a
//! 720p30 push's CPU next to OpenH264) and the memory of the frame it would have copied from.
//!
//! A slot owns its picture until [`Pusher::push_video_slot`] takes it or it is dropped (back to
//! the pool). It holds the pusher's shared state, so a slot outliving its pusher is still valid
//! memory; it can only be pushed to the pusher it came from.

use super::input::Input;
use super::shared::Shared;
use super::{lock, Pusher};
use crate::encode::I420Buffer;
use crate::error::{Error, Result};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// At most this many slots out at once per pusher: one being written while the one before is
/// pushed. More would only grow the pool by a picture each.
pub const MAX_SLOTS_OUT: usize = 2;

/// An I420 picture of the configured size, lent by the pusher (see the module docs).
pub struct VideoSlot {
    /// Boxed so that the C ABI can hand out its address ([`VideoSlot::into_raw`]); the box is
    /// reused by the pusher's next slot. Always Some until dropped.
    cell: Option<Box<SlotCell>>,
}

/// What a slot holds: its picture (until pushed) and the pusher's state (until given back; a
/// pooled cell holds neither, or pusher and pool would keep each other alive).
pub struct SlotCell {
    buf: Option<I420Buffer>,
    shared: Option<Arc<Shared>>,
}

impl VideoSlot {
    pub fn width(&self) -> u32 {
        self.picture().width
    }

    pub fn height(&self) -> u32 {
        self.picture().height
    }

    /// Bytes per row of the Y, U and V planes (no padding: width, and half of it rounded up).
    pub fn strides(&self) -> [usize; 3] {
        let w = self.width() as usize;
        [w, w.div_ceil(2), w.div_ceil(2)]
    }

    /// The Y, U and V planes to write the frame into. What the pool had in them before is
    /// undefined: every byte is the app's to set.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        self.cell_mut().buf.as_mut().expect("a slot holds its picture until pushed").planes_mut()
    }

    /// The slot as a raw pointer (for the C ABI), to be made a slot again with
    /// [`VideoSlot::from_raw`] exactly once.
    pub fn into_raw(mut self) -> *mut SlotCell {
        // Without its cell, the slot's drop does nothing: the pointer owns the cell.
        Box::into_raw(self.cell.take().expect("a slot holds its cell until dropped"))
    }

    /// # Safety
    /// `raw` came from [`VideoSlot::into_raw`] and is made a slot again only once.
    pub unsafe fn from_raw(raw: *mut SlotCell) -> VideoSlot {
        // SAFETY: per this function's contract.
        VideoSlot { cell: Some(unsafe { Box::from_raw(raw) }) }
    }

    fn cell(&self) -> &SlotCell {
        self.cell.as_ref().expect("a slot holds its cell until dropped")
    }

    fn cell_mut(&mut self) -> &mut SlotCell {
        self.cell.as_mut().expect("a slot holds its cell until dropped")
    }

    fn picture(&self) -> &I420Buffer {
        self.cell().buf.as_ref().expect("a slot holds its picture until pushed")
    }

    fn shared(&self) -> &Arc<Shared> {
        self.cell().shared.as_ref().expect("a slot holds its pusher until given back")
    }
}

impl Drop for VideoSlot {
    fn drop(&mut self) {
        let Some(mut cell) = self.cell.take() else { return };
        let Some(shared) = cell.shared.take() else { return };
        if let Some(buf) = cell.buf.take() {
            shared.input.recycle(Input::Video(buf, 0));
        }
        shared.input.slot_returned();
        // The cell goes back for the next slot.
        let mut cells = lock(&shared.slot_cells);
        if cells.len() < MAX_SLOTS_OUT {
            cells.push(cell);
        }
    }
}

impl Pusher {
    /// Lends a picture of the configured size to write the next frame into in place (see
    /// [`VideoSlot`]); push it with [`Pusher::push_video_slot`], or drop it to give it back.
    /// Errors: those of `push_video` before any copy (`NotStarted`, `InvalidState` for disabled or
    /// pre-encoded video, `Paused`), `QueueFull` when the encoder is behind (the frame is counted
    /// in and dropped, as `push_video` counts it), `InvalidState` when [`MAX_SLOTS_OUT`] are out.
    pub fn video_slot(&self) -> Result<VideoSlot> {
        let v = self.raw_video()?;
        self.not_paused("video_slot")?;
        let Some(mut buf) = self.shared.input.video_slot(MAX_SLOTS_OUT) else {
            if self.shared.input.slots_out() >= MAX_SLOTS_OUT {
                return self.reject(Error::InvalidState(format!(
                    "{MAX_SLOTS_OUT} video slots are out already: push or drop one first"
                )));
            }
            self.shared.counters.video_frames_in.fetch_add(1, Relaxed);
            self.shared.counters.video_frames_dropped_encoder.fetch_add(1, Relaxed);
            self.shared.ladder.queue_full.fetch_add(1, Relaxed);
            return Err(Error::QueueFull("the encoder is behind; no picture to write the frame into"));
        };
        buf.resize(v.width, v.height);
        let mut cell =
            lock(&self.shared.slot_cells).pop().unwrap_or_else(|| Box::new(SlotCell { buf: None, shared: None }));
        cell.buf = Some(buf);
        cell.shared = Some(self.shared.clone());
        Ok(VideoSlot { cell: Some(cell) })
    }

    /// Queues a slot's picture for encoding, stamped `pts_us` (< 0: the SDK's clock), as
    /// `push_video` queues its copy; the slot is consumed whatever the outcome. A slot of another
    /// pusher is refused (`InvalidArgument`). On a lower rung of the encode ladder the picture is
    /// scaled down to the rung's size (a copy only then); a frame rate rung may skip the picture.
    pub fn push_video_slot(&self, mut slot: VideoSlot, pts_us: i64) -> Result<()> {
        if !Arc::ptr_eq(slot.shared(), &self.shared) {
            return self.reject(Error::InvalidArgument("the video slot belongs to another pusher".into()));
        }
        self.accepting()?;
        self.not_paused("push_video_slot")?;
        let Some(pts_us) = self.admit_video(pts_us)? else {
            return Ok(());
        };
        let buf = slot.cell_mut().buf.take().expect("a slot holds its picture until pushed");
        let Some(v) = self.shared.config.video.as_ref() else {
            return Err(Error::Internal("a video slot without a video track".into()));
        };
        if (buf.width, buf.height) == self.shared.ladder.size((buf.width, buf.height)) {
            return self.queue_picture(buf, pts_us);
        }
        // A lower rung of the ladder: scaled into another picture of the pool, as push_video's
        // frames are.
        let queued = self.copy_and_queue(&buf.as_frame(), v, pts_us);
        self.shared.input.recycle(Input::Video(buf, 0));
        queued
    }
}

//! Pictures written in place (`crate::pusher::video_slot`) through the C ABI: acquire a slot, write
//! the frame into its planes, submit it. The one exception to "inputs are copied before the call
//! returns": the slot's memory is the SDK's, lent to the app between acquire and submit (or free).

use super::error::null_arg;
use super::pusher::{kp_pusher, pusher_ref};
use crate::pusher::video_slot::SlotCell;
use crate::pusher::VideoSlot;
use crate::Error;
use std::mem::{offset_of, size_of};

/// An I420 picture of the configured size lent by a pusher (opaque), from
/// kp_pusher_acquire_video_slot. The app owns it until kp_pusher_submit_video_slot or
/// kp_video_slot_free, each of which takes it whatever it returns; afterwards the pointer and the
/// plane pointers of its layout are invalid. A slot stays valid memory even after its pusher is
/// freed (it can then only be freed).
#[allow(non_camel_case_types)]
pub struct kp_video_slot {
    _opaque: [u8; 0],
}

fn to_c(slot: VideoSlot) -> *mut kp_video_slot {
    slot.into_raw().cast()
}

/// # Safety
/// `slot` is non-NULL, came from [`to_c`] and is taken back only once.
unsafe fn from_c(slot: *mut kp_video_slot) -> VideoSlot {
    // SAFETY: per this function's contract, a pointer VideoSlot::into_raw made.
    unsafe { VideoSlot::from_raw(slot.cast::<SlotCell>()) }
}

/// Where to write the frame, filled by kp_pusher_acquire_video_slot. Set `struct_size` to
/// sizeof(kp_video_slot_layout) first: fields are only ever appended.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(non_camel_case_types)]
pub struct kp_video_slot_layout {
    /// Set by the caller; never written by the library.
    pub struct_size: u32,
    /// The configured video size, in pixels.
    pub width: u32,
    pub height: u32,
    /// First byte of the Y, U and V planes (I420), writable until the slot is submitted or freed.
    /// Their previous content is undefined: every byte is the app's to write.
    pub planes: [*mut u8; 3],
    /// Bytes per row of each plane: width, and half of it rounded up for U and V.
    pub strides: [u32; 3],
    /// Bytes of each plane (stride times its rows).
    pub plane_sizes: [usize; 3],
}

ffi_fn! {
    /// Lends a picture of the configured size to write the next frame into in place, instead of
    /// handing a frame to kp_pusher_push_video, which copies it: for frames made in software (a
    /// renderer, a decoder, a file), whose copy is then saved. Writes the slot to `*slot` and its
    /// planes to `*layout` (set layout->struct_size = sizeof(kp_video_slot_layout) first) on
    /// success only. Give it back with kp_pusher_submit_video_slot (encoded) or kp_video_slot_free
    /// (not). At most 2 slots per pusher are out at once.
    /// Errors: KP_ERR_INVALID_ARGUMENT (NULL pusher, slot or layout, struct_size too small),
    /// KP_ERR_NOT_STARTED, KP_ERR_INVALID_STATE (no video track, pre-encoded video, or 2 slots out
    /// already), KP_ERR_PAUSED, KP_ERR_QUEUE_FULL (the encoder is behind: the frame is counted in
    /// and dropped, as kp_pusher_push_video counts a refused frame). Thread-safe; non-blocking.
    fn kp_pusher_acquire_video_slot(
        p: *mut kp_pusher,
        slot: *mut *mut kp_video_slot,
        layout: *mut kp_video_slot_layout,
    ) -> kp_result {
        const F: &str = "kp_pusher_acquire_video_slot";
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, F) }?;
        if slot.is_null() {
            return Err(null_arg(F, "slot"));
        }
        if layout.is_null() {
            return Err(null_arg(F, "layout"));
        }
        // SAFETY: layout is non-NULL and the app's kp_video_slot_layout, which starts with
        // struct_size; read unaligned because only the app's own layout vouches for alignment.
        let size = unsafe { layout.cast::<u32>().read_unaligned() } as usize;
        if size < size_of::<kp_video_slot_layout>() {
            return Err(Error::InvalidArgument(format!(
                "{F}: struct_size {size} is smaller than {}",
                size_of::<kp_video_slot_layout>()
            )));
        }
        let mut lent = p.inner.video_slot()?;
        let (w, h) = (lent.width(), lent.height());
        let strides = lent.strides();
        let (y, u, v) = lent.planes_mut();
        let filled = kp_video_slot_layout {
            struct_size: size as u32,
            width: w,
            height: h,
            planes: [y.as_mut_ptr(), u.as_mut_ptr(), v.as_mut_ptr()],
            strides: strides.map(|s| s as u32),
            plane_sizes: [y.len(), u.len(), v.len()],
        };
        // Everything after struct_size, which stays the app's.
        let from = offset_of!(kp_video_slot_layout, width);
        // SAFETY: the app declares at least sizeof(kp_video_slot_layout) writable bytes at layout
        // (checked above), copied byte-wise (no alignment assumed); slot is non-NULL and writable.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&raw const filled).cast::<u8>().add(from),
                layout.cast::<u8>().add(from),
                size_of::<kp_video_slot_layout>() - from,
            );
            slot.write_unaligned(to_c(lent));
        }
        Ok(())
    }
}

ffi_fn! {
    /// Queues the frame written into `slot` for encoding with its presentation time in
    /// microseconds (< 0: stamped by the SDK), as kp_pusher_push_video queues its copy. Takes the
    /// slot whatever it returns (a NULL pusher included): `slot` is invalid afterwards.
    /// Errors: KP_ERR_INVALID_ARGUMENT (NULL pusher or slot, a slot of another pusher),
    /// KP_ERR_NOT_STARTED, KP_ERR_PAUSED, KP_ERR_NON_MONOTONIC_TIMESTAMP, KP_ERR_QUEUE_FULL.
    /// Thread-safe; non-blocking.
    fn kp_pusher_submit_video_slot(p: *mut kp_pusher, slot: *mut kp_video_slot, pts_us: i64) -> kp_result {
        const F: &str = "kp_pusher_submit_video_slot";
        if slot.is_null() {
            return Err(null_arg(F, "slot"));
        }
        // SAFETY: a non-NULL slot came from kp_pusher_acquire_video_slot and, per the contract, is
        // given back once.
        let slot = unsafe { from_c(slot) };
        // SAFETY: per the contract above, p is NULL or live.
        let p = unsafe { pusher_ref(p, F) }?;
        p.inner.push_video_slot(slot, pts_us)
    }
}

ffi_fn! {
    /// Gives a slot back unsubmitted (its picture returns to the pusher's pool); NULL is a no-op.
    /// `slot` is invalid afterwards. Thread-safe; non-blocking.
    fn kp_video_slot_free(slot: *mut kp_video_slot) {
        if !slot.is_null() {
            // SAFETY: a non-NULL slot came from kp_pusher_acquire_video_slot and, per the contract,
            // is given back once.
            drop(unsafe { from_c(slot) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::config::{kp_config_free, kp_config_new, kp_config_set_url};
    use crate::ffi::pusher::{kp_pusher_free, kp_pusher_new, kp_pusher_start, kp_pusher_stop};
    use crate::ResultCode;
    use std::ptr::null_mut;

    const INVALID: i32 = ResultCode::KP_ERR_INVALID_ARGUMENT as i32;

    fn layout() -> kp_video_slot_layout {
        kp_video_slot_layout {
            struct_size: size_of::<kp_video_slot_layout>() as u32,
            width: 0,
            height: 0,
            planes: [null_mut(); 3],
            strides: [0; 3],
            plane_sizes: [0; 3],
        }
    }

    #[test]
    fn slots_are_lent_written_and_given_back_through_the_c_abi() {
        // SAFETY: the C ABI used as the header says, on objects made here.
        unsafe {
            let cfg = kp_config_new();
            assert_eq!(kp_config_set_url(cfg, c"rtmp://127.0.0.1:1/live/slot".as_ptr()), 0);
            let mut p = null_mut();
            assert_eq!(kp_pusher_new(cfg, &mut p), 0);
            kp_config_free(cfg);
            let (mut slot, mut l) = (null_mut(), layout());
            let not_started = ResultCode::KP_ERR_NOT_STARTED as i32;
            assert_eq!(kp_pusher_acquire_video_slot(p, &mut slot, &mut l), not_started);
            assert!(slot.is_null() && l.planes[0].is_null(), "nothing written on failure");
            assert_eq!(kp_pusher_start(p), 0);
            assert_eq!(kp_pusher_acquire_video_slot(null_mut(), &mut slot, &mut l), INVALID);
            assert_eq!(kp_pusher_acquire_video_slot(p, null_mut(), &mut l), INVALID);
            assert_eq!(kp_pusher_acquire_video_slot(p, &mut slot, null_mut()), INVALID);
            let mut short = layout();
            short.struct_size = 8;
            assert_eq!(kp_pusher_acquire_video_slot(p, &mut slot, &mut short), INVALID);
            assert_eq!(kp_pusher_acquire_video_slot(p, &mut slot, &mut l), 0);
            // The default configuration: 1280x720 I420, unpadded planes.
            assert_eq!((l.width, l.height, l.strides), (1280, 720, [1280, 640, 640]));
            assert_eq!(l.plane_sizes, [1280 * 720, 640 * 360, 640 * 360]);
            std::slice::from_raw_parts_mut(l.planes[0], l.plane_sizes[0]).fill(16);
            std::slice::from_raw_parts_mut(l.planes[1], l.plane_sizes[1]).fill(128);
            std::slice::from_raw_parts_mut(l.planes[2], l.plane_sizes[2]).fill(128);
            // A second slot may be out beside it, not a third.
            let (mut second, mut third, mut l2) = (null_mut(), null_mut(), layout());
            assert_eq!(kp_pusher_acquire_video_slot(p, &mut second, &mut l2), 0);
            let full = ResultCode::KP_ERR_INVALID_STATE as i32;
            assert_eq!(kp_pusher_acquire_video_slot(p, &mut third, &mut l2), full);
            kp_video_slot_free(second);
            kp_video_slot_free(null_mut());
            assert_eq!(kp_pusher_submit_video_slot(p, slot, 0), 0);
            assert_eq!(kp_pusher_submit_video_slot(p, null_mut(), 0), INVALID);
            // A NULL pusher still takes the slot (nothing leaks: the test runs under the leak
            // checks of the sanitizer builds of tests/c too).
            assert_eq!(kp_pusher_acquire_video_slot(p, &mut slot, &mut l), 0);
            assert_eq!(kp_pusher_submit_video_slot(null_mut(), slot, 40_000), INVALID);
            // A slot kept past its pusher's end is still the app's memory, then only freed.
            let (mut kept, mut lk) = (null_mut(), layout());
            assert_eq!(kp_pusher_acquire_video_slot(p, &mut kept, &mut lk), 0);
            // Nothing can be delivered (no server): with frames queued a 0 ms stop times out.
            let stopped = kp_pusher_stop(p, 0);
            assert!(stopped == 0 || stopped == ResultCode::KP_ERR_TIMEOUT as i32, "{stopped}");
            kp_pusher_free(p);
            std::slice::from_raw_parts_mut(lk.planes[2], lk.plane_sizes[2]).fill(128);
            kp_video_slot_free(kept);
        }
    }
}

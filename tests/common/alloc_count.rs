//! A counting global allocator for the allocation tests: every allocation is counted per thread
//! while `measure` runs. A test binary installs it with
//! `#[global_allocator] static GLOBAL: Counting = Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed};

const SLOTS: usize = 64;

pub struct Counting;

static ENABLED: AtomicBool = AtomicBool::new(false);
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
static COUNTS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static BYTES: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
/// Kernel thread id per slot, to name the thread afterwards (/proc/self/task/TID/comm).
static TIDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

/// The first sizes allocated per slot, to tell what allocated.
static SIZES: [[AtomicU64; 8]; SLOTS] = [const { [const { AtomicU64::new(0) }; 8] }; SLOTS];

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn count(size: usize) {
    if !ENABLED.load(Relaxed) {
        return;
    }
    // `try_with`: allocations during thread teardown happen after the slot is gone.
    let _ = SLOT.try_with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT_SLOT.fetch_add(1, Relaxed).min(SLOTS - 1);
            // SAFETY: gettid has no preconditions.
            TIDS[i].store(unsafe { libc::gettid() }, Relaxed);
            s.set(i);
        }
        let n = COUNTS[i].fetch_add(1, Relaxed);
        if n < 8 {
            SIZES[i][n as usize].store(size as u64, Relaxed);
        }
        BYTES[i].fetch_add(size as u64, Relaxed);
    });
}

// SAFETY: forwards to the system allocator unchanged; counting touches only atomics and a
// const-initialised thread local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// (thread name, allocations, bytes) per thread that allocated while counting was on.
pub fn measure(f: impl FnOnce()) -> Vec<(String, u64, u64)> {
    for i in 0..SLOTS {
        COUNTS[i].store(0, Relaxed);
        BYTES[i].store(0, Relaxed);
    }
    ENABLED.store(true, Relaxed);
    f();
    ENABLED.store(false, Relaxed);
    let mut out = Vec::new();
    for i in 0..NEXT_SLOT.load(Relaxed).min(SLOTS) {
        let n = COUNTS[i].load(Relaxed);
        if n > 0 {
            let tid = TIDS[i].load(Relaxed);
            let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| format!("tid {tid} (exited)"));
            let sizes: Vec<u64> = SIZES[i].iter().map(|s| s.load(Relaxed)).take(n as usize).collect();
            out.push((format!("{name} (first sizes {sizes:?})"), n, BYTES[i].load(Relaxed)));
        }
    }
    out
}

/// The measuring thread's own name in the table.
pub fn this_thread() -> String {
    std::fs::read_to_string("/proc/thread-self/comm").unwrap().trim().to_string()
}

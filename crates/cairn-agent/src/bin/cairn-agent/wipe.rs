//! The agent's allocator: the system's, but every block is zeroed as it is freed, so that
//! secrets (and the copies the standard library makes of them, in a spawn's environment)
//! do not linger in freed memory that a checkpoint of the sandbox would capture.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// [`System`], wiping on free.
pub struct Wiping;

// SAFETY: every method forwards to `System` with the caller's arguments; `dealloc` first
// writes zeros over the block it is given, which the caller guarantees is allocated with
// `layout` (so `layout.size()` bytes are ours to write) and no longer used.
unsafe impl GlobalAlloc for Wiping {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` points to `layout.size()` bytes allocated by us (see above); the
        // volatile writes keep the compiler from dropping the zeroing of memory it frees.
        unsafe {
            for i in 0..layout.size() {
                std::ptr::write_volatile(ptr.add(i), 0);
            }
            System.dealloc(ptr, layout);
        }
    }
    // `realloc` is GlobalAlloc's default: a new block, a copy, and `dealloc` of the old one.
}

//! What `std` and the `wit-bindgen` runtime crate would otherwise supply to a component:
//! memory allocation, the `cabi_realloc` export, `memcmp`, a panic handler and the two runtime
//! hooks the generated bindings call.
//!
//! An instance serves a single evaluation and is then dropped, so the allocator only bumps a
//! pointer and never reuses memory: simple, fast, and bounded by the host's memory cap.

#![allow(
    unsafe_code,
    reason = "a global allocator and the canonical ABI's `cabi_realloc` are unsafe interfaces"
)]

/// The runtime items the generated bindings name through `runtime_path`.
pub mod wit_bindgen {
    /// The bindings call this so that a `cabi_realloc` gets linked; ours is always defined.
    pub fn maybe_link_cabi_realloc() {}

    /// The bindings call this before each export to run static constructors once. A Rust
    /// `no_std` policy has none to run.
    pub fn run_ctors_once() {}
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use core::alloc::{GlobalAlloc, Layout};
    use core::sync::atomic::{AtomicUsize, Ordering};

    const PAGE_BYTES: usize = 65_536;

    /// The least memory grown at once, so that small allocations do not each grow memory.
    const MIN_GROW_PAGES: usize = 4;

    /// Hands out memory from pages the allocator grew itself, which nothing else touches: a
    /// policy has no `std` and no other allocator.
    struct BumpAllocator {
        next: AtomicUsize,
        end: AtomicUsize,
    }

    impl BumpAllocator {
        /// Grows memory by enough pages for `layout` and moves the bump region there when the
        /// new pages do not continue it.
        fn grow(&self, layout: Layout) -> bool {
            let needed = layout.size().saturating_add(layout.align());
            let pages = needed.div_ceil(PAGE_BYTES).max(MIN_GROW_PAGES);
            let previous = core::arch::wasm32::memory_grow(0, pages);
            if previous == usize::MAX {
                return false;
            }
            let start = previous * PAGE_BYTES;
            if start != self.end.load(Ordering::Relaxed) {
                self.next.store(start, Ordering::Relaxed);
            }
            self.end
                .store(start + pages * PAGE_BYTES, Ordering::Relaxed);
            true
        }

        fn bump(&self, layout: Layout) -> Option<usize> {
            let next = self.next.load(Ordering::Relaxed);
            let start = next.checked_next_multiple_of(layout.align())?;
            let end = start.checked_add(layout.size())?;
            if end > self.end.load(Ordering::Relaxed) {
                return None;
            }
            self.next.store(end, Ordering::Relaxed);
            Some(start)
        }
    }

    // SAFETY: `alloc` returns either null or a block of at least `layout.size()` bytes aligned
    // to `layout.align()`, inside pages grown for this allocator alone and never handed out
    // twice.
    unsafe impl GlobalAlloc for BumpAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if let Some(start) = self.bump(layout) {
                return start as *mut u8;
            }
            if !self.grow(layout) {
                return core::ptr::null_mut();
            }
            self.bump(layout)
                .map_or(core::ptr::null_mut(), |start| start as *mut u8)
        }

        unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {
            // Memory is given back when the host drops the instance, after the evaluation.
        }
    }

    #[global_allocator]
    static ALLOCATOR: BumpAllocator = BumpAllocator {
        next: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
    };

    /// The canonical ABI's allocation function, which the host calls to copy the action
    /// description into the instance.
    #[unsafe(no_mangle)]
    unsafe extern "C" fn cabi_realloc(
        old_ptr: *mut u8,
        old_len: usize,
        align: usize,
        new_len: usize,
    ) -> *mut u8 {
        if new_len == 0 {
            return align as *mut u8;
        }
        let Ok(layout) = Layout::from_size_align(new_len, align) else {
            core::arch::wasm32::unreachable()
        };
        let ptr = if old_ptr.is_null() {
            // SAFETY: `layout` has a non-zero size.
            unsafe { alloc::alloc::alloc(layout) }
        } else {
            // SAFETY: the host passes back a block this function returned, with its size.
            unsafe {
                let old = Layout::from_size_align_unchecked(old_len, align);
                alloc::alloc::realloc(old_ptr, old, new_len)
            }
        };
        if ptr.is_null() {
            core::arch::wasm32::unreachable()
        }
        ptr
    }

    /// Compares `len` bytes, as C's `memcmp`. Without `std` nothing links the C library,
    /// whose `memcmp` the compiler calls for slice and string comparisons; left undefined it
    /// would become an import.
    #[unsafe(no_mangle)]
    unsafe extern "C" fn memcmp(left: *const u8, right: *const u8, len: usize) -> i32 {
        let mut i = 0;
        while i < len {
            // SAFETY: the caller passes two blocks of at least `len` readable bytes.
            let (a, b) = unsafe { (*left.add(i), *right.add(i)) };
            if a != b {
                return i32::from(a) - i32::from(b);
            }
            i += 1;
        }
        0
    }

    /// Whether `len` bytes are equal, as `memcmp` but with any non-zero answer for unequal.
    #[unsafe(no_mangle)]
    unsafe extern "C" fn bcmp(left: *const u8, right: *const u8, len: usize) -> i32 {
        // SAFETY: the same contract as `memcmp`.
        unsafe { memcmp(left, right, len) }
    }

    /// A panic traps, which the host reports as the policy failing, so the action is denied.
    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
        core::arch::wasm32::unreachable()
    }
}

//! The EL2 heap: a buddy allocator over the image's `.heap` section.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{NonNull, null_mut};

use buddy_system_allocator::Heap;
use spin::Mutex;

/// The global allocator: a buddy heap behind a spin lock (EL2 never takes interrupts, so a CPU
/// holding the lock cannot be re-entered).
pub struct LockedHeap(Mutex<Heap<32>>);

#[global_allocator]
static HEAP: LockedHeap = LockedHeap(Mutex::new(Heap::empty()));

// SAFETY: allocation and deallocation are serialised by the mutex and delegate to the buddy
// allocator, which returns blocks that satisfy the layout or fails.
unsafe impl GlobalAlloc for LockedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .alloc(layout)
            .map_or(null_mut(), |block| block.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(block) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc contract).
            unsafe { self.0.lock().dealloc(block, layout) };
        }
    }
}

unsafe extern "C" {
    static __heap_start: u8;
    static __heap_end: u8;
}

/// Hands the `.heap` section to the allocator. Called once by the boot CPU before any allocation.
pub fn init() {
    // SAFETY: the linker script reserves `__heap_start..__heap_end` for the heap and nothing else
    // uses it; `init` runs once on the boot CPU before other CPUs start.
    unsafe {
        let start = &raw const __heap_start as usize;
        let end = &raw const __heap_end as usize;
        HEAP.0.lock().init(start, end - start);
    }
}

/// Bytes currently allocated and the heap's total size.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.0.lock();
    (heap.stats_alloc_actual(), heap.stats_total_bytes())
}

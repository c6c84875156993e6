//! Data-cache maintenance by virtual address, for memory handed to a guest that starts with its
//! MMU and caches off.

use core::arch::asm;

use super::sysreg::{dsb_sy, read_sysreg};

fn dcache_line_size() -> usize {
    // CTR_EL0.DminLine, log2 of words.
    4 << ((read_sysreg!("ctr_el0") >> 16) & 0xf)
}

/// Cleans and invalidates `start..start + length` to the point of coherency.
pub fn clean_invalidate_to_poc(start: usize, length: usize) {
    let line = dcache_line_size();
    let mut address = start & !(line - 1);
    let end = start.saturating_add(length);
    while address < end {
        // SAFETY: DC CIVAC only writes back / invalidates cache lines; it does not change memory
        // contents as observed by a coherent observer.
        unsafe { asm!("dc civac, {}", in(reg) address, options(nostack, preserves_flags)) };
        address += line;
    }
    dsb_sy();
}

/// Invalidates the whole instruction cache (inner shareable).
pub fn invalidate_icache() {
    // SAFETY: IC IALLUIS only discards instruction-cache contents.
    unsafe {
        asm!(
            "ic ialluis",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

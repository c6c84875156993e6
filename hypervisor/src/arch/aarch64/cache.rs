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

/// A spin-wait hint: YIELD. Real cores treat it as a hint to a multithreaded core; QEMU's TCG
/// ends the vCPU's time slice on it, so a CPU waiting for a lock another emulated CPU holds lets
/// that CPU run and release it instead of spinning for the rest of its slice.
#[inline(always)]
pub fn spin_wait_hint() {
    // SAFETY: YIELD is a hint with no architectural effect on memory, registers or flags.
    unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) }
}

//! Bulk copies and zeroing of guest RAM: loading a cell's images, scrubbing and verifying its RAM.
//!
//! `core::ptr::copy_nonoverlapping` and `write_bytes` lower to compiler-builtins' generic
//! `memcpy`/`memset`, which on this strict-alignment target copy a source that is not 8-byte aligned
//! with shifts and masks, about 1.3 instructions a byte: loading the 27 MB Debian kernel from the
//! bundle (cpio aligns file data to 4 bytes only) took ~40 million instructions, most of cellvisor's
//! own boot. EL2 runs with SCTLR_EL2.A clear and RAM mapped Normal, so unaligned LDP/STP are allowed:
//! the loops here move 64 bytes in 13 instructions, and zeroing uses DC ZVA (one instruction a block,
//! usually 64 bytes).

use core::arch::asm;

use super::sysreg::read_sysreg;

/// Copies `length` bytes from `source` to `target`.
///
/// # Safety
/// Both ranges must be valid, non-overlapping and in Normal memory (EL2's identity map of RAM).
pub unsafe fn copy(target: *mut u8, source: *const u8, length: usize) {
    let mut target = target;
    let mut source = source;
    let mut left = length;
    if left >= 64 {
        // SAFETY: per the caller, [source, source + length) and [target, target + length) are
        // valid Normal memory; the loop touches only whole 64-byte steps inside them.
        unsafe {
            asm!(
                "2:",
                "ldp {a}, {b}, [{source}]",
                "ldp {c}, {d}, [{source}, #16]",
                "stp {a}, {b}, [{target}]",
                "stp {c}, {d}, [{target}, #16]",
                "ldp {a}, {b}, [{source}, #32]",
                "ldp {c}, {d}, [{source}, #48]",
                "stp {a}, {b}, [{target}, #32]",
                "stp {c}, {d}, [{target}, #48]",
                "add {source}, {source}, #64",
                "add {target}, {target}, #64",
                "sub {left}, {left}, #64",
                "cmp {left}, #64",
                "b.hs 2b",
                source = inout(reg) source,
                target = inout(reg) target,
                left = inout(reg) left,
                a = out(reg) _,
                b = out(reg) _,
                c = out(reg) _,
                d = out(reg) _,
                options(nostack),
            );
        }
    }
    // SAFETY: the remaining `left` (< 64) bytes of both ranges.
    unsafe { core::ptr::copy_nonoverlapping(source, target, left) };
}

/// Zeroes `length` bytes at `target`.
///
/// # Safety
/// The range must be valid Normal memory (EL2's identity map of RAM) that nothing else uses now.
pub unsafe fn zero(target: *mut u8, length: usize) {
    let dczid = read_sysreg!("dczid_el0");
    // DZP set: DC ZVA is prohibited; BS: log2 of the block size in words.
    let block = 4usize << (dczid & 0xf);
    let start = target as usize;
    let end = start.saturating_add(length);
    let first = start.next_multiple_of(block);
    let last = end & !(block - 1);
    if dczid & (1 << 4) != 0 || first >= last {
        // SAFETY: per the caller.
        unsafe { core::ptr::write_bytes(target, 0, length) };
        return;
    }
    // SAFETY: per the caller; the head, the whole blocks and the tail partition the range.
    unsafe {
        core::ptr::write_bytes(target, 0, first - start);
        let mut address = first;
        while address < last {
            asm!("dc zva, {}", in(reg) address, options(nostack, preserves_flags));
            address += block;
        }
        core::ptr::write_bytes(last as *mut u8, 0, end - last);
    }
}

/// The number of non-zero bytes in the `words` 64-bit words at `start`, checking 64 bytes at a
/// time and counting bytes only where a block is not all zero.
///
/// # Safety
/// The range must be valid, 8-byte aligned Normal memory that nothing writes while it is read.
pub unsafe fn count_nonzero(start: *const u64, words: usize) -> u64 {
    // SAFETY: per the caller.
    let memory = unsafe { core::slice::from_raw_parts(start, words) };
    let count = |block: &[u64]| -> u64 {
        block
            .iter()
            .map(|word| {
                u64::from(word.to_ne_bytes().iter().filter(|&&byte| byte != 0).count() as u8)
            })
            .sum()
    };
    let mut chunks = memory.chunks_exact(8);
    let mut total = 0;
    for block in &mut chunks {
        if block.iter().fold(0, |any, &word| any | word) != 0 {
            total += count(block);
        }
    }
    total + count(chunks.remainder())
}

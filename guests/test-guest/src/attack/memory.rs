//! Memory isolation: another cell's RAM, cellvisor's RAM and far IPAs, read, written and run.

use cellvisor_guest_support::println;
use core::arch::asm;

use super::probe::{Outcome, attempt, read32, read64, write64};
use super::{EC_INSTRUCTION_ABORT_SAME_EL, PREFIX, RAM_BASE, Verdict};

/// Addresses outside the attacker's IPA space: another cell's and its own physical RAM,
/// cellvisor's RAM (image, bundle, heap with the stage-2 tables), and IPAs up to and past the
/// 39-bit IPA size.
const FOREIGN_ADDRESSES: [u64; 14] = [
    0x9000_0000,      // corporate's RAM (PA)
    0x9100_0000,      // inside corporate's RAM
    0x6000_0000,      // the attacker's own RAM at its physical address
    0x0,              // IPA 0
    0x4400_0000,      // just past the attacker's RAM
    0x4800_0000,      // cellvisor's RAM: the guest bundle (PA)
    0x5000_0000,      // cellvisor's RAM: heap and page tables (PA)
    0x5FFF_F000,      // cellvisor's last page
    0x8000_0000,      // between cells
    0xC000_0000,      // past the end of the machine's RAM
    0x40_0000_0000,   // 256 GiB
    0x7F_FFFF_F000,   // the last page of the 39-bit IPA space
    0x80_0000_0000,   // past the IPA size
    0xFFFF_FFFF_F000, // past any PA size
];

pub(super) fn foreign_ram() -> Verdict {
    let mut ok = true;
    for address in FOREIGN_ADDRESSES {
        for write in [false, true] {
            let outcome = if write {
                write64(address, 0xBAD0_BAD0_BAD0_BAD0)
            } else {
                read64(address)
            };
            let access = if write { "write" } else { "read" };
            println!("{PREFIX}foreign-ram: {access} {address:#x} -> {outcome}");
            if !outcome.is_data_abort_at(address) {
                ok = false;
            }
        }
    }
    // Instruction fetch from another cell's RAM.
    let target = 0x9000_0000u64;
    let fetch = attempt(|| {
        // SAFETY: branches to memory outside the cell; the fetch aborts and the vector table
        // resumes at x30, the instruction after the `blr`.
        unsafe {
            asm!("blr {t}", t = in(reg) target, out("x30") _, clobber_abi("C"), options(nostack))
        };
        0
    });
    println!("{PREFIX}foreign-ram: execute {target:#x} -> {fetch}");
    ok &= fetch.class() == Some(EC_INSTRUCTION_ABORT_SAME_EL);
    // IPA 0x4020_0000 is the attacker's own RAM, not cellvisor's image at that physical address:
    // it must not hold cellvisor's arm64 Image header magic ("ARM\x64" at 0x38).
    let magic = read32(RAM_BASE + 0x20_0038);
    println!("{PREFIX}foreign-ram: read own ipa 0x40200038 -> {magic}");
    if matches!(magic, Outcome::Done(0x644D_5241)) {
        return Err("IPA 0x40200000 shows cellvisor's image");
    }
    if ok {
        Ok("every access aborted")
    } else {
        Err("an access did not abort")
    }
}

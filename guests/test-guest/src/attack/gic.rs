//! GIC attacks: the distributor's foreign SPIs, foreign redistributor frames and the ITS, SGIs.

use cellvisor_guest_support::println;
use core::arch::asm;

use super::probe::{Outcome, read32, read64, write32, write64};
use super::{GICD, GICR, GICR_FRAME, GICR_REGION_END, GITS, PREFIX, UART_INTID, Verdict};

pub(super) fn gic_distributor() -> Verdict {
    let typer = read32(GICD + 0x4);
    println!("{PREFIX}gic-distributor: GICD_TYPER -> {typer}");
    let mut leaks = 0u32;
    let mut aborted = 0u32;
    // Enable, set pending, activate, give priority to, configure and route every SPI the
    // register space can name (32..1019), then read the state back.
    for (base, stride_bits) in [
        (0x100u64, 1u64),
        (0x200, 1),
        (0x300, 1),
        (0x400, 8),
        (0xC00, 2),
    ] {
        let registers = 1024 * stride_bits / 32;
        for register in 32 * stride_bits / 32..registers {
            let address = GICD + base + 4 * register;
            if write32(address, u32::MAX).is_data_abort() {
                aborted += 1;
            }
        }
    }
    for intid in 32..1020u64 {
        if write64(GICD + 0x6000 + 8 * intid, 0xFF_00FF_FFFF).is_data_abort() {
            aborted += 1;
        }
    }
    // Read back: only the cell's own SPI (the vUART's) may show state.
    for (base, stride_bits) in [(0x100u64, 1u64), (0x200, 1), (0x300, 1)] {
        for register in 1..32u64 {
            let first_intid = register * 32 / stride_bits;
            let mut allowed = 0u64;
            let own = u64::from(UART_INTID);
            if (first_intid..first_intid + 32).contains(&own) {
                allowed = 1 << (own - first_intid);
            }
            match read32(GICD + base + 4 * register) {
                Outcome::Done(value) if value & !allowed != 0 => {
                    leaks += 1;
                    println!(
                        "{PREFIX}gic-distributor: {:#x} reads {value:#x} after the writes",
                        GICD + base + 4 * register
                    );
                }
                Outcome::Done(_) => {}
                Outcome::Trapped { .. } => aborted += 1,
            }
        }
    }
    for intid in (34..1020u64).step_by(7) {
        match read64(GICD + 0x6000 + 8 * intid) {
            Outcome::Done(0) | Outcome::Trapped { .. } => {}
            Outcome::Done(value) => {
                leaks += 1;
                println!("{PREFIX}gic-distributor: IROUTER{intid} reads {value:#x}");
            }
        }
    }
    let own_route = read64(GICD + 0x6000 + 8 * u64::from(UART_INTID));
    println!(
        "{PREFIX}gic-distributor: own SPI {UART_INTID} IROUTER after routing to 255.255.255.255 -> {own_route}"
    );
    // Read-only and odd registers: TYPER, IIDR, PIDR2, GICv2's SGIR, the last word.
    for (what, offset) in [
        ("TYPER", 0x4u64),
        ("IIDR", 0x8),
        ("SGIR", 0xF00),
        ("PIDR2", 0xFFE8),
        ("last word", 0xFFFC),
    ] {
        let write = write32(GICD + offset, 0xFFFF_FFFF);
        let read = read32(GICD + offset);
        println!("{PREFIX}gic-distributor: write {what} -> {write}, read -> {read}");
    }
    let typer_after = read32(GICD + 0x4);
    if let (Outcome::Done(before), Outcome::Done(after)) = (typer, typer_after)
        && before != after
    {
        return Err("GICD_TYPER changed after a write");
    }
    println!(
        "{PREFIX}gic-distributor: {aborted} accesses aborted, {leaks} foreign SPIs show state"
    );
    if leaks == 0 {
        Ok("foreign SPIs stay RAZ/WI")
    } else {
        Err("a foreign SPI kept state")
    }
}

pub(super) fn gic_redistributors() -> Verdict {
    let mut ok = true;
    for vcpu in 0..2u64 {
        let typer = read64(GICR + vcpu * GICR_FRAME + 0x8);
        println!("{PREFIX}gic-redistributors: own frame {vcpu} GICR_TYPER -> {typer}");
        if let Outcome::Done(value) = typer {
            let last = value >> 4 & 1 == 1;
            if (value >> 32) != vcpu || last != (vcpu == 1) {
                println!("{PREFIX}gic-redistributors: unexpected affinity or Last bit");
                ok = false;
            }
        }
    }
    // Every frame past the cell's two vCPUs, the ITS and the gap between GICD and the ITS.
    let mut frames = 0u32;
    let mut address = GICR + 2 * GICR_FRAME;
    while address < GICR_REGION_END {
        for offset in [0x0u64, 0x8, 0x1_0100] {
            let read = read32(address + offset);
            let write = write32(address + offset, u32::MAX);
            if !read.is_data_abort_at(address + offset) || !write.is_data_abort_at(address + offset)
            {
                println!(
                    "{PREFIX}gic-redistributors: frame {:#x}+{offset:#x}: read {read}, write {write}",
                    address
                );
                ok = false;
            }
        }
        frames += 1;
        address += GICR_FRAME;
    }
    for (what, address) in [
        ("ITS GITS_CTLR", GITS),
        ("ITS GITS_TRANSLATER", GITS + 0x1_0040),
        ("GICv2m gap", GICD + 0x1_0000),
    ] {
        let read = read32(address);
        let write = write32(address, u32::MAX);
        println!("{PREFIX}gic-redistributors: {what}: read {read}, write {write}");
        ok &= read.is_data_abort_at(address) && write.is_data_abort_at(address);
    }
    println!("{PREFIX}gic-redistributors: {frames} foreign frames probed");
    if ok {
        Ok("foreign redistributors and the ITS abort")
    } else {
        Err("a foreign GIC frame answered")
    }
}

pub(super) fn sgi1r(value: u64) {
    // SAFETY: ICC_SGI1R_EL1 is trapped by cellvisor and turned into virtual SGIs in this cell.
    unsafe { asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) value, options(nostack)) };
}

pub(super) fn gic_sgi() -> Verdict {
    let mut sent = 0u32;
    for intid in 0..16u64 {
        // IRM=1: every PE but self.
        sgi1r(1 << 40 | intid << 24);
        // Every affinity level non-zero, full target lists, every range selector.
        for aff in [0u64, 1, 0x55, 0xFF] {
            for range in [0u64, 1, 0xF] {
                sgi1r(aff << 48 | range << 44 | aff << 32 | intid << 24 | aff << 16 | 0xFFFF);
                sent += 1;
            }
        }
        sgi1r(intid << 24 | 0xFFFF);
        sent += 2;
    }
    // Reserved bits and an INTID field past 15.
    sgi1r(u64::MAX);
    sgi1r(0xF << 24 | 0xFFFF | 0xFFFF_0000_0000_0000);
    println!("{PREFIX}gic-sgi: sent {} SGI1R writes", sent + 2);
    Ok("SGIs to every affinity accepted; the victim keeps beating")
}

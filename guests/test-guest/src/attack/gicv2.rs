//! GICv2 attacks (run on `-M virt,gic-version=2`; not part of `all`): the GIC-400 distributor's
//! CPU targets and SGIR, and the frames around the cell's CPU interface (GICH, GICV, the rest of
//! GICC) that are cellvisor's or another CPU's.

use cellvisor_guest_support::println;

use super::probe::{Outcome, read32, write32};
use super::{GICD, PREFIX, UART_INTID, Verdict};

/// The GIC-400 frames as QEMU `virt,gic-version=2` places them: the guest's GICC (backed by the
/// hardware GICV, 8 KiB), and the physical GICH and GICV frames, which no cell may reach.
const GICC: u64 = 0x0801_0000;
const GICC_SIZE: u64 = 0x2000;
const GICH: u64 = 0x0803_0000;
const GICV: u64 = 0x0804_0000;
/// The cell's vCPUs as a GICv2 CPU-target mask (the test cell has two).
const OWN_CPUS: u32 = 0b11;

/// `GICD_ITARGETSR`: every SPI aimed at every CPU interface (0xFF), then read back. Only the
/// cell's own SPI keeps a target, and only its own vCPUs; SGI/PPI targets read as the caller's
/// own bit whatever is written.
pub(super) fn gicv2_targets() -> Verdict {
    let mut leaks = 0u32;
    for word in 0..255u64 {
        if write32(GICD + 0x800 + 4 * word, u32::MAX).is_data_abort() {
            return Err("an ITARGETSR write aborted");
        }
    }
    for word in 0..255u64 {
        let Outcome::Done(value) = read32(GICD + 0x800 + 4 * word) else {
            return Err("an ITARGETSR read aborted");
        };
        let value = value as u32;
        let first = (word * 4) as u32;
        let allowed = if first < 32 {
            // vCPU 0 reads its own bit in each byte.
            if value != 0x0101_0101 {
                leaks += 1;
                println!("{PREFIX}gicv2-targets: ITARGETSR{word} (private) reads {value:#x}");
            }
            continue;
        } else if (first..first + 4).contains(&UART_INTID) {
            OWN_CPUS << (8 * (UART_INTID - first))
        } else {
            0
        };
        if value & !allowed != 0 {
            leaks += 1;
            println!("{PREFIX}gicv2-targets: ITARGETSR{word} reads {value:#x}");
        }
    }
    // Put the vUART's SPI back on vCPU 0.
    let own = GICD + 0x800 + u64::from(UART_INTID & !3);
    let _ = write32(own, 1 << (8 * (UART_INTID & 3)));
    if leaks == 0 {
        Ok("foreign CPU bits dropped, foreign SPIs RAZ/WI, private targets read-only")
    } else {
        Err("a target outside the cell stuck")
    }
}

/// `GICD_SGIR`: every SGI in every filter mode with every CPU of the target list set. None may
/// abort or reach past the cell (the victim's heartbeat and the QEMU test check that side); the
/// self-targeted one must show as pending from vCPU 0 in `GICD_SPENDSGIR`.
pub(super) fn gicv2_sgir() -> Verdict {
    // Disable the SGIs so nothing is taken while the state is inspected.
    let _ = write32(GICD + 0x180, 0xFFFF);
    for filter in 0..4u32 {
        for sgi in 0..16u32 {
            if write32(GICD + 0xF00, filter << 24 | 0xFF << 16 | sgi).is_data_abort() {
                return Err("a GICD_SGIR write aborted");
            }
        }
    }
    // Filter 2 (self) pended every SGI from vCPU 0 (bit 0 of each SPENDSGIR byte).
    let mut shown = 0u32;
    for word in 0..4u64 {
        if let Outcome::Done(value) = read32(GICD + 0xF20 + 4 * word) {
            if value as u32 & !0x0303_0303 != 0 {
                return Err("SPENDSGIR names a source outside the cell");
            }
            shown |= value as u32;
        }
    }
    // Clear them again through CPENDSGIR.
    for word in 0..4u64 {
        let _ = write32(GICD + 0xF10 + 4 * word, u32::MAX);
    }
    let Outcome::Done(after) = read32(GICD + 0x200) else {
        return Err("ISPENDR0 read aborted");
    };
    let _ = write32(GICD + 0x100, 0xFFFF);
    if shown & 0x0101_0101 != 0x0101_0101 {
        return Err("a self-targeted SGI is not pending from vCPU 0");
    }
    if after & 0xFFFF != 0 {
        return Err("CPENDSGIR did not clear the SGIs");
    }
    Ok("every filter mode stays inside the cell; SPENDSGIR/CPENDSGIR by source")
}

/// The frames around the cell's CPU interface: GICH (the list registers of whichever CPU
/// accesses it), the physical GICV frame and the GICC frame past its 8 KiB must all abort; the
/// cell's own GICC (the hardware GICV) answers without a trap.
pub(super) fn gicv2_frames() -> Verdict {
    let mut reached = 0u32;
    for (what, address) in [
        ("GICH_HCR", GICH),
        ("GICH_VTR", GICH + 0x4),
        ("GICH_LR0", GICH + 0x100),
        ("GICH of another CPU", GICH + 0x1000),
        ("GICV_CTLR", GICV),
        ("GICV_IAR", GICV + 0xC),
        ("GICC past its 8 KiB", GICC + GICC_SIZE),
        ("GICC last page", GICC + 0xF000),
    ] {
        let read = read32(address);
        let write = write32(address, u32::MAX);
        if !read.is_injected_abort_at(address) || !write.is_injected_abort_at(address) {
            reached += 1;
            println!("{PREFIX}gicv2-frames: {what} at {address:#x}: read {read}, write {write}");
        }
    }
    // GICC_IIDR of the cell's own (virtual) CPU interface: a GIC-400's reads as 0x0202_143B.
    let iidr = read32(GICC + 0xFC);
    println!("{PREFIX}gicv2-frames: own GICC_IIDR -> {iidr}");
    if !matches!(iidr, Outcome::Done(value) if value != 0) {
        return Err("the cell's own GICC does not answer");
    }
    if reached == 0 {
        Ok("GICH, GICV and the rest of GICC abort; own GICC answers")
    } else {
        Err("a GIC frame outside the cell answered")
    }
}

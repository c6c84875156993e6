//! Forwarded device accesses that survive an abort.
//!
//! cellvisor forwards a cell's access to a passed-through device page that another cell's device
//! shares (see `dev::passthrough`) with a load or store of its own, at EL2. A device may answer
//! that access with a synchronous external abort (on real SoCs a clock-gated or powered-down block
//! does), which is taken at EL2. Each access below is one instruction at a known address; the EL2
//! vector for synchronous exceptions from EL2 (`cellvisor_el2_sync`) checks whether a data abort
//! came from one of them and, if so, resumes at `cellvisor_device_aborted`, which returns
//! "aborted" to the caller instead of halting the machine. The core then answers the guest's
//! access with an abort of its own (`MmioError::DeviceAbort`). Every other exception at EL2 is
//! still a cellvisor fault and halts with its registers.

use core::arch::global_asm;

use super::{STACK_SIZE, STACK_SLOT};
use crate::core::hardware::DeviceAbort;
use crate::dev::mmio::AccessWidth;
use crate::mem::addr::PhysAddr;

/// What an accessor returns in x0/x1: the value read (0 for writes) and whether it aborted.
#[repr(C)]
struct Access {
    value: u64,
    aborted: u64,
}

unsafe extern "C" {
    fn cellvisor_device_read8(address: usize) -> Access;
    fn cellvisor_device_read16(address: usize) -> Access;
    fn cellvisor_device_read32(address: usize) -> Access;
    fn cellvisor_device_read64(address: usize) -> Access;
    fn cellvisor_device_write8(address: usize, value: u64) -> Access;
    fn cellvisor_device_write16(address: usize, value: u64) -> Access;
    fn cellvisor_device_write32(address: usize, value: u64) -> Access;
    fn cellvisor_device_write64(address: usize, value: u64) -> Access;
}

// Each accessor is a leaf function whose access is one instruction labelled `.Ldevice_access_N`,
// listed in the compare chain of `cellvisor_el2_sync`. On an abort there the vector sets
// ELR_EL2 to `cellvisor_device_aborted`, which returns {0, 1} through the intact x30.
//
// `cellvisor_el2_sync` runs on the EL2 stack with every register live: it saves x9/x10, and on
// any other exception restores them and falls through to the same fault report the other EL2
// vectors make (x0 = vector number 4, then ESR/ELR/FAR/SPSR).
global_asm!(
    r#"
    .section .text.device_access, "ax"
    .global cellvisor_device_read8
cellvisor_device_read8:
    mov     x1, xzr
.Ldevice_access_0:
    ldrb    w0, [x0]
    ret
    .global cellvisor_device_read16
cellvisor_device_read16:
    mov     x1, xzr
.Ldevice_access_1:
    ldrh    w0, [x0]
    ret
    .global cellvisor_device_read32
cellvisor_device_read32:
    mov     x1, xzr
.Ldevice_access_2:
    ldr     w0, [x0]
    ret
    .global cellvisor_device_read64
cellvisor_device_read64:
    mov     x1, xzr
.Ldevice_access_3:
    ldr     x0, [x0]
    ret
    .global cellvisor_device_write8
cellvisor_device_write8:
.Ldevice_access_4:
    strb    w1, [x0]
    mov     x0, xzr
    mov     x1, xzr
    ret
    .global cellvisor_device_write16
cellvisor_device_write16:
.Ldevice_access_5:
    strh    w1, [x0]
    mov     x0, xzr
    mov     x1, xzr
    ret
    .global cellvisor_device_write32
cellvisor_device_write32:
.Ldevice_access_6:
    str     w1, [x0]
    mov     x0, xzr
    mov     x1, xzr
    ret
    .global cellvisor_device_write64
cellvisor_device_write64:
.Ldevice_access_7:
    str     x1, [x0]
    mov     x0, xzr
    mov     x1, xzr
    ret

cellvisor_device_aborted:
    mov     x0, xzr
    mov     x1, #1
    ret

    .global cellvisor_el2_sync
cellvisor_el2_sync:
    // A fault with SP in the lower (guard) half of its stack slot is a stack overflow: nothing
    // may be pushed. Test the half without a free register: x0 briefly holds SP, SP holds
    // SP + x0 (Linux's kernel_ventry check).
    add     sp, sp, x0
    sub     x0, sp, x0                  // x0 = SP
    tbz     x0, #{stack_bit}, 3f
    sub     x0, sp, x0                  // x0 = x0
    sub     sp, sp, x0                  // SP = SP
    stp     x9, x10, [sp, #-16]!
    mrs     x9, esr_el2
    lsr     x9, x9, #26
    cmp     x9, #0x25                   // data abort taken from EL2
    b.ne    1f
    mrs     x9, elr_el2
    adr     x10, .Ldevice_access_0
    cmp     x9, x10
    b.eq    2f
    adr     x10, .Ldevice_access_1
    cmp     x9, x10
    b.eq    2f
    adr     x10, .Ldevice_access_2
    cmp     x9, x10
    b.eq    2f
    adr     x10, .Ldevice_access_3
    cmp     x9, x10
    b.eq    2f
    adr     x10, .Ldevice_access_4
    cmp     x9, x10
    b.eq    2f
    adr     x10, .Ldevice_access_5
    cmp     x9, x10
    b.eq    2f
    adr     x10, .Ldevice_access_6
    cmp     x9, x10
    b.eq    2f
    adr     x10, .Ldevice_access_7
    cmp     x9, x10
    b.eq    2f
1:  ldp     x9, x10, [sp], #16
    mov     x0, #4
    mrs     x1, esr_el2
    mrs     x2, elr_el2
    mrs     x3, far_el2
    mrs     x4, spsr_el2
    bl      {hyp_fault}
2:  adr     x10, cellvisor_device_aborted
    msr     elr_el2, x10
    ldp     x9, x10, [sp], #16
    eret
3:  // Stack overflow: back to the top of this CPU's stack (the slot's end), report and halt.
    and     x0, x0, #~({stack_slot} - 1)
    add     x0, x0, #{stack_slot}
    mov     sp, x0
    mov     x0, #{stack_overflow}
    mrs     x1, esr_el2
    mrs     x2, elr_el2
    mrs     x3, far_el2
    mrs     x4, spsr_el2
    bl      {hyp_fault}
"#,
    hyp_fault = sym super::boot::hyp_fault,
    stack_bit = const STACK_SIZE.trailing_zeros(),
    stack_slot = const STACK_SLOT,
    stack_overflow = const STACK_OVERFLOW,
);

/// The `kind` `hyp_fault` reports for an EL2 stack overflow (the vectors use 0-7).
pub const STACK_OVERFLOW: u64 = 16;

/// Reads the device register at `address`.
///
/// # Safety
/// `address` is a naturally aligned register of a device the running cell owns, mapped as Device
/// memory in EL2's identity map.
pub unsafe fn read(address: PhysAddr, width: AccessWidth) -> Result<u64, DeviceAbort> {
    let pointer = address.to_virt().as_usize();
    // SAFETY: the caller's contract; an abort of the access returns `aborted` instead of halting.
    let access = unsafe {
        match width {
            AccessWidth::Byte => cellvisor_device_read8(pointer),
            AccessWidth::Halfword => cellvisor_device_read16(pointer),
            AccessWidth::Word => cellvisor_device_read32(pointer),
            AccessWidth::Doubleword => cellvisor_device_read64(pointer),
        }
    };
    if access.aborted != 0 {
        Err(DeviceAbort)
    } else {
        Ok(access.value)
    }
}

/// Writes `value` to the device register at `address`.
///
/// # Safety
/// As for [`read`].
pub unsafe fn write(address: PhysAddr, width: AccessWidth, value: u64) -> Result<(), DeviceAbort> {
    let pointer = address.to_virt().as_usize();
    // SAFETY: as in `read`.
    let access = unsafe {
        match width {
            AccessWidth::Byte => cellvisor_device_write8(pointer, value),
            AccessWidth::Halfword => cellvisor_device_write16(pointer, value),
            AccessWidth::Word => cellvisor_device_write32(pointer, value),
            AccessWidth::Doubleword => cellvisor_device_write64(pointer, value),
        }
    };
    if access.aborted != 0 {
        Err(DeviceAbort)
    } else {
        Ok(())
    }
}

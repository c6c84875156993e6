//! `test=sgis`: no lost interrupts. vCPU 0 sends [`ROUNDS`] SGIs to vCPU 1 one at a time, each
//! only after vCPU 1's IRQ handler counted the one before, first while vCPU 1 spins with IRQs
//! unmasked (it never exits to cellvisor, so it completes each SGI in its list register without
//! cellvisor seeing it), then while it waits in WFI between SGIs. A lost SGI stops that mode with
//! `test-guest: FAIL sgi-<mode>: SGI <index> did not arrive ...`; each mode ends with
//! `test-guest: sgi-<mode> <received>/<ROUNDS> in <N> ms` (see `lines`; the time is for
//! whoever reads the log, nothing checks it). The QEMU side is
//! tests/tests/foundation.rs `sgis_reach_a_spinning_and_an_idle_sibling`.
//!
//! Only vCPU 1 writes [`RECEIVED`] and [`IDLE_AT`], only vCPU 0 writes [`PHASE`]: plain loads and
//! stores, no exclusives.

use crate::gic::{self, SPURIOUS_INTID};
use crate::{lines, psci, timer};
use cellvisor_guest_support::println;
use core::sync::atomic::{AtomicU32, Ordering};

/// CPU_ON context id that makes vCPU 1 the receiver.
const CONTEXT_ID: u64 = 0xC0DE_5610;
/// SGIs per mode.
pub const ROUNDS: u32 = 10_000;
/// The SGI sent.
const SGI_INTID: u32 = 1;

/// What vCPU 1 does, set by vCPU 0.
static PHASE: AtomicU32 = AtomicU32::new(PHASE_STARTING);
const PHASE_STARTING: u32 = 0;
/// Busy loop with IRQs unmasked.
const PHASE_SPIN: u32 = 1;
/// WFI with IRQs masked, unmasking after each wake-up.
const PHASE_WFI: u32 = 2;

/// SGIs vCPU 1's handler took, in both modes together.
static RECEIVED: AtomicU32 = AtomicU32::new(0);
/// vCPU 1's GIC is set up and its IRQs are unmasked: it is in the phase loop.
static READY: AtomicU32 = AtomicU32::new(0);
/// [`RECEIVED`] as vCPU 1 saw it just before its last WFI (plus one, so 0 means "not yet").
static IDLE_AT: AtomicU32 = AtomicU32::new(0);

/// The IRQ vector's work: acknowledges and ends every pending interrupt, counting SGI
/// [`SGI_INTID`] after its EOI (so the next one is sent after a completion cellvisor did not see).
/// Returns whether the IRQ was expected: only vCPU 1 in this test takes IRQs.
pub fn handle_irq() -> bool {
    if READY.load(Ordering::SeqCst) == 0 {
        return false;
    }
    loop {
        let intid = gic::acknowledge();
        if intid == SPURIOUS_INTID {
            return true;
        }
        gic::end_of_interrupt(intid);
        if intid == SGI_INTID {
            RECEIVED.store(RECEIVED.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
        } else {
            println!("{}sgi: vcpu 1 took interrupt {intid}", lines::FAIL);
        }
    }
}

/// vCPU 1's job if `context_id` says so: the receiver loop (never returns).
pub fn secondary(context_id: u64, index: u64) {
    if context_id != CONTEXT_ID {
        return;
    }
    gic::init_this_cpu(index, 1 << SGI_INTID);
    READY.store(1, Ordering::SeqCst);
    gic::unmask_irq();
    loop {
        match PHASE.load(Ordering::SeqCst) {
            PHASE_WFI => {
                // Masked across the WFI so an SGI that lands between the store and the WFI stays
                // pending and makes the WFI return at once (as an OS idle loop does).
                gic::mask_irq();
                IDLE_AT.store(RECEIVED.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
                gic::wfi();
                gic::unmask_irq();
            }
            _ => core::hint::spin_loop(),
        }
    }
}

/// vCPU 0: starts vCPU 1 as the receiver, runs both modes and prints their lines.
pub fn run() {
    gic::enable_distributor();
    let entry = crate::entry::secondary_entry as *const () as u64;
    let result = psci::cpu_on(1, entry, CONTEXT_ID);
    if result != psci::SUCCESS {
        println!("{}sgi: cpu_on(1) returned {result}", lines::FAIL);
        return;
    }
    if !timer::wait_until(crate::WAIT_MS, || READY.load(Ordering::SeqCst) == 1) {
        println!("{}sgi: vcpu 1 did not come online", lines::FAIL);
        return;
    }
    for (phase, line, mode) in [
        (PHASE_SPIN, lines::SGI_SPIN, "spin"),
        (PHASE_WFI, lines::SGI_WFI, "wfi"),
    ] {
        PHASE.store(phase, Ordering::SeqCst);
        let start = timer::Instant::now();
        let received = send_all(phase, mode);
        println!("{line}{received}/{ROUNDS} in {} ms", start.elapsed_ms());
    }
}

/// Sends [`ROUNDS`] SGIs to vCPU 1, each once the previous one was counted; returns how many
/// arrived before the first that did not (within [`crate::WAIT_MS`]).
fn send_all(phase: u32, mode: &str) -> u32 {
    let base = RECEIVED.load(Ordering::SeqCst);
    for index in 0..ROUNDS {
        let before = base + index;
        if phase == PHASE_WFI
            && !timer::wait_until(crate::WAIT_MS, || {
                IDLE_AT.load(Ordering::SeqCst) == before + 1
            })
        {
            println!(
                "{}sgi-{mode}: vcpu 1 did not go back to WFI before SGI {index}",
                lines::FAIL
            );
            return index;
        }
        gic::send_sgi(SGI_INTID, 1);
        if !timer::wait_until(crate::WAIT_MS, || RECEIVED.load(Ordering::SeqCst) != before) {
            println!(
                "{}sgi-{mode}: SGI {index} did not arrive within {} ms ({} received in all)",
                lines::FAIL,
                crate::WAIT_MS,
                RECEIVED.load(Ordering::SeqCst)
            );
            return index;
        }
        let after = RECEIVED.load(Ordering::SeqCst);
        if after != before + 1 {
            println!(
                "{}sgi-{mode}: SGI {index} was taken {} times",
                lines::FAIL,
                after - before
            );
            return index;
        }
    }
    ROUNDS
}

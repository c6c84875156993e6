//! cellvisor's SMMUv3 at run time: the one driver instance (`drivers::smmuv3`) behind a lock, its
//! tables and queues in cellvisor's heap, and what the core's `Machine::dma_allow`/`dma_block`
//! and the SMMU's interrupts come to.

use alloc::alloc::{Layout, alloc_zeroed};
use core::sync::atomic::AtomicU64;

use spin::{Mutex, Once};

use super::cache;
use crate::drivers::smmuv3::{DeviceMmio, DmaRegion, Drained, SmmuV3, TableMemory};
use crate::mem::addr::PhysAddr;
use crate::smmu::{Event, GlobalErrors, OutputSize, Requirements, S2Config, SmmuError};

/// Table memory from cellvisor's heap: in its own region (no cell maps it), identity-mapped
/// Normal write-back, never freed.
struct HeapTables;

impl TableMemory for HeapTables {
    fn alloc_zeroed(&mut self, size: usize, align: usize) -> Option<DmaRegion> {
        let layout = Layout::from_size_align(size.max(8), align.max(8)).ok()?;
        // SAFETY: the layout has a non-zero size.
        let bytes = unsafe { alloc_zeroed(layout) };
        if bytes.is_null() {
            return None;
        }
        // SAFETY: `bytes` is a fresh, zeroed, 8-aligned allocation of `size` bytes that is never
        // freed (leaked for the SMMU's life), and `AtomicU64` has `u64`'s size and alignment.
        let words =
            unsafe { core::slice::from_raw_parts(bytes as *const AtomicU64, layout.size() / 8) };
        // EL2's identity map: the virtual address is the physical one.
        Some(DmaRegion {
            pa: PhysAddr::new(bytes as u64),
            words,
        })
    }

    fn clean_invalidate_to_poc(&self, pa: PhysAddr, len: usize) {
        cache::clean_invalidate_to_poc(pa.raw() as usize, len);
    }

    fn dma_barrier(&self) {
        // SAFETY: a barrier has no operands and no memory effects beyond ordering.
        unsafe { core::arch::asm!("dmb osh", options(nostack, preserves_flags)) };
    }
}

type Driver = SmmuV3<DeviceMmio, HeapTables>;

/// The SMMU, once `init` has enabled it, and the output size of the cells' tables.
static SMMU: Once<(Mutex<Driver>, OutputSize)> = Once::new();

/// Takes over the SMMUv3 at `base` (mapped Device-nGnRE in EL2, in no cell): every stream aborts
/// from now on until a cell's stream is allowed. `cpu_output_size` is the PS encoding of the
/// CPU's stage-2 tables (VTCR_EL2.PS).
pub fn init(base: u64, needed: &Requirements, cpu_output_size: u64) -> Result<(), SmmuError> {
    // SAFETY: the board names this frame as the SMMU, the platform DT has it there, EL2 maps it as
    // device memory, and this is its only owner (`init` runs once, on the boot CPU).
    let mut driver = unsafe { SmmuV3::at(PhysAddr::new(base), HeapTables) };
    driver.init(needed)?;
    let smmu = driver
        .features()
        .output_size
        .map_or(cpu_output_size, |size| size as u64);
    let output =
        OutputSize::from_field(cpu_output_size.min(smmu) as u8).unwrap_or(OutputSize::Bits40);
    SMMU.call_once(|| (Mutex::new(driver), output));
    Ok(())
}

/// Lets stream `stream` through the cell's stage-2 table (`vmid`, `root`).
pub fn allow(stream: u32, vmid: u16, root: PhysAddr) -> Result<(), SmmuError> {
    let (driver, output) = SMMU.get().ok_or(SmmuError::NotInitialised)?;
    driver
        .lock()
        .attach_stage2(stream, &S2Config::for_cell(vmid, root, *output))
}

/// Makes stream `stream` abort; when it returns `Ok`, none of its DMA reaches memory.
pub fn block(stream: u32) -> Result<(), SmmuError> {
    let (driver, _) = SMMU.get().ok_or(SmmuError::NotInitialised)?;
    driver.lock().block(stream)
}

/// Hands the SMMU's pending events to `sink` (at most one queue's worth) and returns what it
/// found, with the global errors it acknowledged. Nothing if there is no SMMU.
pub fn drain(sink: &mut dyn FnMut(Event)) -> (Drained, GlobalErrors) {
    match SMMU.get() {
        Some((driver, _)) => {
            let mut driver = driver.lock();
            let drained = driver.drain_events(sink);
            (drained, driver.global_errors())
        }
        None => (Drained::default(), GlobalErrors::default()),
    }
}

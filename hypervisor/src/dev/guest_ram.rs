//! A cell's RAM as its emulated devices reach it: guest-physical ranges checked against the
//! cell's RAM regions before a byte is read or written.
#![forbid(unsafe_code)]

use crate::core::hardware::Machine;
use crate::dev::virtio::{GuestMemory, OutsideRam};
use crate::mem::addr::GuestPhysAddr;
use crate::setup::partition::CellPlan;

/// The RAM of the cell of `plan`, through `machine`.
pub struct CellRam<'a, M: Machine + ?Sized> {
    plan: &'a CellPlan,
    machine: &'a mut M,
}

impl<'a, M: Machine + ?Sized> CellRam<'a, M> {
    /// The RAM of the cell of `plan`.
    pub fn new(plan: &'a CellPlan, machine: &'a mut M) -> Self {
        Self { plan, machine }
    }

    fn physical(&self, ipa: u64, length: usize) -> Result<crate::mem::addr::PhysAddr, OutsideRam> {
        // A range wholly inside one region: `phys_of` checks the end without overflow.
        self.plan
            .memory
            .iter()
            .find_map(|region| region.phys_of(GuestPhysAddr::new(ipa), length as u64))
            .ok_or(OutsideRam)
    }
}

impl<M: Machine + ?Sized> GuestMemory for CellRam<'_, M> {
    fn read(&mut self, ipa: u64, buffer: &mut [u8]) -> Result<(), OutsideRam> {
        if buffer.is_empty() {
            return Ok(());
        }
        let address = self.physical(ipa, buffer.len())?;
        self.machine.read_memory(address, buffer);
        Ok(())
    }

    fn write(&mut self, ipa: u64, bytes: &[u8]) -> Result<(), OutsideRam> {
        if bytes.is_empty() {
            return Ok(());
        }
        let address = self.physical(ipa, bytes.len())?;
        self.machine.write_memory(address, bytes);
        Ok(())
    }
}

#![allow(missing_docs, unused)]
use super::{GuestMemory, VirtioError, queue::Virtqueue};
use crate::dev::mmio::{AccessWidth, MmioError};
pub struct VirtioMmio<D> { d: D }
impl<D> VirtioMmio<D> {
    pub fn new(d: D) -> Self { Self { d } }
    pub fn read(&mut self, offset: u64, width: AccessWidth) -> Result<u32, MmioError> { Ok(0) }
    pub fn write(&mut self, offset: u64, width: AccessWidth, value: u32, memory: &mut dyn GuestMemory) -> Result<(), MmioError> { Ok(()) }
    pub fn interrupt_level(&self) -> bool { false }
    pub fn take_error(&mut self) -> Option<VirtioError> { None }
    pub fn reset(&mut self) {}
    pub fn device_mut(&mut self) -> &mut D { &mut self.d }
    pub fn run(&mut self, memory: &mut dyn GuestMemory, f: impl FnOnce(&mut D, &mut [Virtqueue], &mut dyn GuestMemory) -> Result<bool, VirtioError>) {}
}

//! TEMPORARY stub (replaced by the virtio branch at merge).
#![allow(missing_docs)]
pub mod input;
pub mod mmio;
pub mod queue;
pub trait GuestMemory { fn read(&mut self, ipa: u64, buffer: &mut [u8]) -> Result<(), OutsideRam>; fn write(&mut self, ipa: u64, bytes: &[u8]) -> Result<(), OutsideRam>; }
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutsideRam;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtioError { Bad }
impl core::fmt::Display for VirtioError { fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result { f.write_str("bad") } }
pub trait VirtioDevice {}

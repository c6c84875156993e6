//! The fake guest RAM of the virtio device tests (tests.rs, vsock_tests.rs): one window of
//! [`RAM_SIZE`] bytes that refuses every range not entirely inside it and records every write.

use alloc::vec;
use alloc::vec::Vec;

use super::{GuestMemory, OutsideRam};

/// Bytes in each fake RAM window.
pub const RAM_SIZE: u64 = 1 << 20;

/// A RAM window at guest-physical `base`.
pub struct Ram {
    /// Guest-physical address of the first byte.
    pub base: u64,
    /// Its contents.
    pub bytes: Vec<u8>,
    /// Every write the device made: its address and length, in order.
    pub writes: Vec<(u64, usize)>,
}

impl Ram {
    pub fn new(base: u64) -> Self {
        Self {
            base,
            bytes: vec![0; RAM_SIZE as usize],
            writes: Vec::new(),
        }
    }

    fn range(&self, ipa: u64, len: usize) -> Result<core::ops::Range<usize>, OutsideRam> {
        let start = ipa.checked_sub(self.base).ok_or(OutsideRam)?;
        let end = start.checked_add(len as u64).ok_or(OutsideRam)?;
        if end > RAM_SIZE {
            return Err(OutsideRam);
        }
        Ok(start as usize..end as usize)
    }

    /// Writes as the driver (not recorded).
    pub fn put(&mut self, ipa: u64, bytes: &[u8]) {
        let range = self.range(ipa, bytes.len()).unwrap();
        self.bytes[range].copy_from_slice(bytes);
    }

    pub fn get(&self, ipa: u64, len: usize) -> &[u8] {
        &self.bytes[self.range(ipa, len).unwrap()]
    }

    pub fn u16_at(&self, ipa: u64) -> u16 {
        u16::from_le_bytes(self.get(ipa, 2).try_into().unwrap())
    }

    pub fn u32_at(&self, ipa: u64) -> u32 {
        u32::from_le_bytes(self.get(ipa, 4).try_into().unwrap())
    }
}

impl GuestMemory for Ram {
    fn read(&mut self, ipa: u64, buffer: &mut [u8]) -> Result<(), OutsideRam> {
        let range = self.range(ipa, buffer.len())?;
        buffer.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn write(&mut self, ipa: u64, bytes: &[u8]) -> Result<(), OutsideRam> {
        let range = self.range(ipa, bytes.len())?;
        self.bytes[range].copy_from_slice(bytes);
        self.writes.push((ipa, bytes.len()));
        Ok(())
    }
}

//! The fake guest RAM of the virtio fuzz targets (`virtio`, `vsock`): a window that refuses every
//! range not entirely inside it and records the device's writes.

use cellvisor::dev::virtio::{GuestMemory, OutsideRam};

/// A RAM window at guest-physical `base`.
pub struct Ram {
    pub base: u64,
    pub bytes: Vec<u8>,
    /// Every write the device made: its address and length, in order.
    pub writes: Vec<(u64, usize)>,
}

impl Ram {
    pub fn new(base: u64, bytes: Vec<u8>) -> Self {
        Self {
            base,
            bytes,
            writes: Vec::new(),
        }
    }

    fn range(&self, ipa: u64, len: usize) -> Result<std::ops::Range<usize>, OutsideRam> {
        let start = usize::try_from(ipa.checked_sub(self.base).ok_or(OutsideRam)?)
            .map_err(|_| OutsideRam)?;
        let end = start.checked_add(len).ok_or(OutsideRam)?;
        if end > self.bytes.len() {
            return Err(OutsideRam);
        }
        Ok(start..end)
    }

    /// The driver writes its RAM (what does not fit is cut; not recorded).
    pub fn poke(&mut self, at: u64, bytes: &[u8]) {
        let Some(start) = at
            .checked_sub(self.base)
            .and_then(|start| usize::try_from(start).ok())
        else {
            return;
        };
        for (i, byte) in bytes.iter().enumerate() {
            if let Some(slot) = self.bytes.get_mut(start.wrapping_add(i)) {
                *slot = *byte;
            }
        }
    }

    /// `N` bytes at `at`, if all are inside.
    pub fn peek<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
        let range = self.range(at, N).ok()?;
        self.bytes.get(range)?.try_into().ok()
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

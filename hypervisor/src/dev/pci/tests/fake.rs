//! A fake ECAM: functions with byte-level write masks and write-1-to-clear masks (as QEMU's
//! `wmask`/`w1cmask`), real-looking virtio-pci and PCI Express configuration spaces, and a log
//! of every physical access.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::dev::pci::regs::*;
use crate::dev::pci::{Bdf, ConfigAccess, PciError};

/// One physical access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read32(Bdf, u16),
    Write32(Bdf, u16, u32),
    Write16(Bdf, u16, u16),
    Write8(Bdf, u16, u8),
}

/// What a virtio-pci capability points at.
#[derive(Clone, Copy)]
pub struct VirtioStructure {
    pub cfg_type: u8,
    pub bar: u8,
    pub offset: u32,
    pub length: u32,
}

const fn structure(cfg_type: u8, bar: u8, offset: u32, length: u32) -> VirtioStructure {
    VirtioStructure {
        cfg_type,
        bar,
        offset,
        length,
    }
}

/// One fake function's configuration space.
#[derive(Clone)]
pub struct FakeFunction {
    pub config: [u8; 4096],
    pub wmask: [u8; 4096],
    pub w1cmask: [u8; 4096],
}

impl FakeFunction {
    pub fn new() -> Self {
        Self {
            config: [0; 4096],
            wmask: [0; 4096],
            w1cmask: [0; 4096],
        }
    }

    pub fn set8(&mut self, offset: u16, value: u8) {
        self.config[usize::from(offset)] = value;
    }

    pub fn set16(&mut self, offset: u16, value: u16) {
        for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
            self.config[usize::from(offset) + i] = byte;
        }
    }

    pub fn set32(&mut self, offset: u16, value: u32) {
        for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
            self.config[usize::from(offset) + i] = byte;
        }
    }

    pub fn get16(&self, offset: u16) -> u16 {
        let o = usize::from(offset);
        u16::from_le_bytes([self.config[o], self.config[o + 1]])
    }

    pub fn get32(&self, offset: u16) -> u32 {
        let o = usize::from(offset);
        u32::from_le_bytes([
            self.config[o],
            self.config[o + 1],
            self.config[o + 2],
            self.config[o + 3],
        ])
    }

    pub fn writable16(&mut self, offset: u16, mask: u16) {
        for (i, byte) in mask.to_le_bytes().into_iter().enumerate() {
            self.wmask[usize::from(offset) + i] = byte;
        }
    }

    pub fn writable32(&mut self, offset: u16, mask: u32) {
        for (i, byte) in mask.to_le_bytes().into_iter().enumerate() {
            self.wmask[usize::from(offset) + i] = byte;
        }
    }

    pub fn clear_on_one16(&mut self, offset: u16, mask: u16) {
        for (i, byte) in mask.to_le_bytes().into_iter().enumerate() {
            self.w1cmask[usize::from(offset) + i] = byte;
        }
    }

    fn write_bytes(&mut self, offset: u16, bytes: &[u8]) {
        for (i, value) in bytes.iter().enumerate() {
            let o = usize::from(offset) + i;
            let old = self.config[o];
            let new = (old & !self.wmask[o]) | (value & self.wmask[o]);
            self.config[o] = new & !(value & self.w1cmask[o]);
        }
    }

    /// A capability header (ID, next) at `offset`.
    pub fn capability(&mut self, offset: u16, id: u8, next: u8) {
        self.set8(offset, id);
        self.set8(offset + 1, next);
    }

    /// A virtio-pci vendor capability (`struct virtio_pci_cap`) of `length` bytes.
    pub fn virtio_cap(&mut self, offset: u16, next: u8, length: u8, structure: VirtioStructure) {
        self.capability(offset, CAP_ID_VENDOR_SPECIFIC, next);
        self.set8(offset + 2, length);
        self.set8(offset + 3, structure.cfg_type);
        self.set8(offset + 4, structure.bar);
        self.set32(offset + 8, structure.offset);
        self.set32(offset + 12, structure.length);
    }

    /// A memory BAR of `size` bytes at `index` (both registers of a 64-bit one).
    pub fn memory_bar(&mut self, index: u16, size: u64, sixty_four: bool, prefetchable: bool) {
        let offset = BAR0 + 4 * index;
        let mut bits = if sixty_four { BAR_MEMORY_TYPE_64 } else { 0 };
        if prefetchable {
            bits |= BAR_MEMORY_PREFETCHABLE;
        }
        self.set32(offset, bits);
        let mask = !(size - 1);
        self.writable32(offset, mask as u32 & BAR_MEMORY_ADDRESS_MASK);
        if sixty_four {
            self.writable32(offset + 4, (mask >> 32) as u32);
        }
    }
}

/// QEMU's `virtio-*-pci,disable-legacy=on` on the root bus of virt: BAR1 32-bit 4 KiB (MSI-X),
/// BAR4 64-bit prefetchable 16 KiB (the modern structures), capabilities (as `lspci` shows them)
/// MSI-X at 0x98 → PCI cfg 0x84 → notify 0x70 → device 0x60 → ISR 0x50 → common 0x40.
pub fn virtio(device_id: u16, class_code: u32) -> FakeFunction {
    let mut f = FakeFunction::new();
    f.set16(VENDOR_ID, VIRTIO_VENDOR_ID);
    f.set16(DEVICE_ID, device_id);
    f.writable16(COMMAND, 0x0547);
    f.set16(STATUS, STATUS_CAPABILITIES_LIST);
    f.clear_on_one16(STATUS, STATUS_RW1C);
    f.set32(REVISION_ID, 0x01 | (class_code << 8));
    f.wmask[usize::from(CACHE_LINE_SIZE)] = 0xff;
    f.memory_bar(1, 0x1000, false, false);
    f.memory_bar(4, 0x4000, true, true);
    f.set16(SUBSYSTEM_VENDOR_ID, VIRTIO_VENDOR_ID);
    f.set16(SUBSYSTEM_ID, 0x1100);
    f.set8(CAPABILITY_POINTER, 0x98);
    f.wmask[usize::from(INTERRUPT_LINE)] = 0xff;
    f.set8(INTERRUPT_PIN, 1);
    f.virtio_cap(0x40, 0x00, 16, structure(1, 4, 0x0000, 0x1000));
    f.virtio_cap(0x50, 0x40, 16, structure(3, 4, 0x1000, 0x1000));
    f.virtio_cap(0x60, 0x50, 16, structure(4, 4, 0x2000, 0x1000));
    f.virtio_cap(0x70, 0x60, 20, structure(2, 4, 0x3000, 0x1000));
    f.set32(0x70 + 16, 4); // notify_off_multiplier
    f.virtio_cap(0x84, 0x70, 20, structure(5, 0, 0, 0));
    // VIRTIO_PCI_CAP_PCI_CFG: bar, offset, length and data are the driver's to write.
    f.wmask[0x84 + 4] = 0xff;
    f.writable32(0x84 + 8, u32::MAX);
    f.writable32(0x84 + 12, u32::MAX);
    f.writable32(0x84 + 16, u32::MAX);
    f.capability(0x98, CAP_ID_MSIX, 0x84);
    f.set16(0x98 + 2, 2); // three vectors
    f.writable16(0x98 + 2, 0xc000);
    f.set32(0x98 + 4, 1); // table in BAR1 at 0
    f.set32(0x98 + 8, 0x800 | 1); // PBA in BAR1 at 0x800
    f
}

/// A PCI Express endpoint (e1000e-like, not virtio): an I/O BAR, a 64-bit BAR, a ROM, and
/// PM 0x40 → MSI 0x50 → PCIe 0x60 (FLR capable) → MSI-X 0xa0 → vendor 0xb0; an extended
/// capability (SR-IOV) at 0x100.
pub fn express() -> FakeFunction {
    let mut f = FakeFunction::new();
    f.set16(VENDOR_ID, 0x8086);
    f.set16(DEVICE_ID, 0x10d3);
    f.writable16(COMMAND, 0x0547);
    f.set16(STATUS, STATUS_CAPABILITIES_LIST);
    f.clear_on_one16(STATUS, STATUS_RW1C);
    f.set32(REVISION_ID, 0x02_0000 << 8); // revision 0
    f.memory_bar(0, 0x2_0000, false, false);
    f.set32(BAR0 + 8, BAR_IO_SPACE);
    f.writable32(BAR0 + 8, 0xffff_ffe0); // 32 bytes of I/O
    f.memory_bar(3, 0x1_0000, true, false);
    f.set32(EXPANSION_ROM, 0);
    f.writable32(EXPANSION_ROM, 0xfffc_0001); // 256 KiB
    f.set16(SUBSYSTEM_VENDOR_ID, 0x8086);
    f.set16(SUBSYSTEM_ID, 0x0000);
    f.set8(CAPABILITY_POINTER, 0x40);
    f.wmask[usize::from(INTERRUPT_LINE)] = 0xff;
    f.set8(INTERRUPT_PIN, 2);
    f.capability(0x40, CAP_ID_POWER_MANAGEMENT, 0x50);
    f.set16(0x42, 0x0003);
    f.writable16(0x44, 0x0103);
    f.clear_on_one16(0x44, 0x8000);
    f.set16(0x44, 0x8000); // PME_Status pending
    f.capability(0x50, CAP_ID_MSI, 0x60);
    f.set16(0x52, MSI_FLAGS_64BIT | MSI_FLAGS_ENABLE);
    f.writable16(0x52, 0x0071);
    f.capability(0x60, CAP_ID_PCI_EXPRESS, 0xa0);
    f.set16(0x62, 0x0002); // version 2, endpoint
    f.set32(0x64, EXP_DEVICE_CAPABILITIES_FLR | 0x0000_0001);
    f.set16(0x68, 0x2030); // MRRS 512, MPS 256, relaxed ordering
    f.writable16(0x68, 0x7fff);
    f.set16(0x6a, 0x0004); // Unsupported Request Detected
    f.clear_on_one16(0x6a, 0x000f);
    f.set16(0x70, 0x0040); // Link Control: common clock
    f.writable16(0x70, 0x01fb);
    f.capability(0xa0, CAP_ID_MSIX, 0xb0);
    f.set16(0xa2, 0x8004); // MSI-X enabled
    f.writable16(0xa2, 0xc000);
    f.capability(0xb0, CAP_ID_VENDOR_SPECIFIC, 0x00);
    f.set8(0xb2, 8);
    f.set32(0xb4, 0x1234_5678);
    f.writable32(0xb4, u32::MAX);
    f.set32(0x100, 0x0001_0010); // SR-IOV, version 1, next 0
    f.set32(0x104, 0xdead_beef);
    f.writable32(0x108, u32::MAX);
    f
}

/// A fake ECAM holding some functions.
pub struct FakeEcam {
    pub functions: BTreeMap<Bdf, FakeFunction>,
    pub log: Vec<Op>,
    /// Accesses to this function fail.
    pub failing: Option<Bdf>,
}

impl FakeEcam {
    pub fn new() -> Self {
        Self {
            functions: BTreeMap::new(),
            log: Vec::new(),
            failing: None,
        }
    }

    pub fn with(mut self, bdf: Bdf, function: FakeFunction) -> Self {
        self.functions.insert(bdf, function);
        self
    }

    pub fn function(&self, bdf: Bdf) -> &FakeFunction {
        &self.functions[&bdf]
    }

    pub fn function_mut(&mut self, bdf: Bdf) -> &mut FakeFunction {
        self.functions.get_mut(&bdf).unwrap()
    }

    /// The writes logged so far.
    pub fn writes(&self) -> Vec<Op> {
        self.log
            .iter()
            .copied()
            .filter(|op| !matches!(op, Op::Read32(..)))
            .collect()
    }

    fn check(&self, bdf: Bdf, offset: u16, size: u16) -> Result<(), PciError> {
        assert!(offset.is_multiple_of(size), "misaligned access {offset:#x}");
        assert!(
            offset + size <= 4096,
            "access past the config space {offset:#x}"
        );
        if self.failing == Some(bdf) {
            return Err(PciError::Access { bdf, offset });
        }
        Ok(())
    }

    fn write(&mut self, bdf: Bdf, offset: u16, bytes: &[u8]) {
        if let Some(function) = self.functions.get_mut(&bdf) {
            function.write_bytes(offset, bytes);
        }
    }
}

impl ConfigAccess for FakeEcam {
    fn read32(&mut self, bdf: Bdf, offset: u16) -> Result<u32, PciError> {
        self.check(bdf, offset, 4)?;
        self.log.push(Op::Read32(bdf, offset));
        Ok(self
            .functions
            .get(&bdf)
            .map_or(u32::MAX, |function| function.get32(offset)))
    }

    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32) -> Result<(), PciError> {
        self.check(bdf, offset, 4)?;
        self.log.push(Op::Write32(bdf, offset, value));
        self.write(bdf, offset, &value.to_le_bytes());
        Ok(())
    }

    fn write16(&mut self, bdf: Bdf, offset: u16, value: u16) -> Result<(), PciError> {
        self.check(bdf, offset, 2)?;
        self.log.push(Op::Write16(bdf, offset, value));
        self.write(bdf, offset, &value.to_le_bytes());
        Ok(())
    }

    fn write8(&mut self, bdf: Bdf, offset: u16, value: u8) -> Result<(), PciError> {
        self.check(bdf, offset, 1)?;
        self.log.push(Op::Write8(bdf, offset, value));
        self.write(bdf, offset, &[value]);
        Ok(())
    }
}

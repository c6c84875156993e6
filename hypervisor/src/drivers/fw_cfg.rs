//! QEMU's firmware configuration device (fw_cfg), MMIO flavour, as far as cellvisor needs it: find
//! a file and write it through DMA. Its one use is QEMU's `ramfb` display, configured by writing
//! the [`RamfbConfig`] of the frame to show to the file `etc/ramfb`.
#![forbid(unsafe_code)]
//!
//! Interface (QEMU `docs/specs/fw_cfg.rst`, `hw/nvram/fw_cfg.c`): on the `virt` machine at
//! 0x0902_0000, the data register at +0 (reads stream the selected item, a byte at a time here),
//! the selector at +8 (16 bits, big-endian), the DMA address at +16 (64 bits, big-endian; written
//! as two big-endian halves, the low one at +20 starting the transfer, as Linux does; read as
//! 64 bits it is the signature "QEMU CFG"). A DMA transfer is described by a `FWCfgDmaAccess`
//! (be32 control, be32 length, be64 address) in RAM; the device clears the control word when done
//! or leaves its ERROR bit set. Writes to files are only possible through DMA (the data register
//! ignores writes on current machine types).
//!
//! Register access and the DMA's memory go through [`Machine`]: `device_read`/`device_write`
//! move native-endian values, so big-endian registers are byte-swapped here; the descriptor and
//! payload are written with `write_memory` into a 64-byte scratch area of cellvisor's RAM the
//! caller provides, and the completion is polled with `read_memory` a bounded number of times.
//!
//! Hand-written rather than a crate: `qemu-fw-cfg` (0.2, `no_std`) is the closest, but it
//! dereferences the register window through a raw pointer of its own (`unsafe`, which only
//! `arch::aarch64` may hold here, and not testable on the host with a fake [`Machine`]) and
//! places its DMA descriptors in its own memory by pointer; crosvm's `fw_cfg` is the device side
//! and needs `std`. The protocol this needs is a few registers and one descriptor.

use core::fmt;

use crate::core::hardware::Machine;
use crate::dev::mmio::AccessWidth;
use crate::mem::addr::PhysAddr;

/// Base of the fw_cfg registers on QEMU's `virt` machine.
pub const VIRT_BASE: u64 = 0x0902_0000;

/// Data register offset.
const DATA: u64 = 0;
/// Selector register offset (16 bits, big-endian).
const SELECTOR: u64 = 8;
/// DMA address register offset (64 bits, big-endian).
const DMA_ADDRESS: u64 = 16;
/// Low half of the DMA address register: writing it starts the transfer.
const DMA_ADDRESS_LOW: u64 = 20;

/// Item: the signature "QEMU".
const KEY_SIGNATURE: u16 = 0x0000;
/// Item: the interface revision and features (32 bits, little-endian).
const KEY_ID: u16 = 0x0001;
/// Item: the file directory.
const KEY_FILE_DIR: u16 = 0x0019;

/// Feature bit of [`KEY_ID`]: the DMA interface.
const FEATURE_DMA: u32 = 1 << 1;
/// What the DMA address register reads as.
const DMA_SIGNATURE: u64 = u64::from_be_bytes(*b"QEMU CFG");

/// DMA control bits.
const CONTROL_ERROR: u32 = 0x01;
const CONTROL_SELECT: u32 = 0x08;
const CONTROL_WRITE: u32 = 0x10;

/// Size of the DMA descriptor.
const DESCRIPTOR_SIZE: u64 = 16;
/// Size of the caller's scratch area: the descriptor, then the payload.
pub const SCRATCH_SIZE: u64 = 64;
/// The largest payload [`FwCfg::write_file`] can send through the scratch area.
pub const MAX_PAYLOAD: usize = (SCRATCH_SIZE - DESCRIPTOR_SIZE) as usize;
/// How often the DMA descriptor is read back before the transfer is given up (QEMU completes it
/// within the triggering write, so the first read sees it done).
pub const DMA_POLLS: u32 = 100_000;

/// Size of one file directory entry: be32 size, be16 select, be16 reserved, 56-byte name.
const FILE_ENTRY_SIZE: usize = 64;
/// Size of a file name field, NUL padding included.
const FILE_NAME_SIZE: usize = 56;
/// The most directory entries looked at (QEMU has a few dozen; the bound keeps a broken device
/// from holding EL2).
const MAX_FILES: u32 = 4096;

/// The name of the `ramfb` device's configuration file.
pub const RAMFB_FILE: &str = "etc/ramfb";

/// Why fw_cfg could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwCfgError {
    /// A register access was answered with an external abort.
    DeviceAbort,
    /// The signature item is not "QEMU": no fw_cfg there.
    NoSignature,
    /// The device does not offer DMA (feature bit 1 of item 1), or its DMA register does not
    /// read "QEMU CFG".
    NoDma,
    /// The scratch area is not 16-byte aligned, or wraps the address space.
    BadScratch,
    /// The payload is larger than the scratch area holds ([`MAX_PAYLOAD`]).
    PayloadTooLarge,
    /// The device reported an error for the DMA transfer (e.g. the file is not writable).
    DmaError,
    /// The DMA transfer did not complete within [`DMA_POLLS`] polls.
    Timeout,
}

impl fmt::Display for FwCfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DeviceAbort => "fw_cfg register access aborted: check the device's address",
            Self::NoSignature => "no QEMU fw_cfg signature: check the device's address",
            Self::NoDma => "fw_cfg has no DMA interface: use a newer QEMU machine type",
            Self::BadScratch => "fw_cfg scratch area is not 16-byte aligned: align it",
            Self::PayloadTooLarge => "fw_cfg payload too large for the scratch area",
            Self::DmaError => "fw_cfg DMA transfer failed: is the file writable?",
            Self::Timeout => "fw_cfg DMA transfer did not complete",
        })
    }
}

/// A probed fw_cfg device with its DMA interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FwCfg {
    base: PhysAddr,
    scratch: PhysAddr,
}

/// Bus value of a big-endian 16-bit register holding `value`.
fn be16(value: u16) -> u64 {
    u64::from(u16::from_ne_bytes(value.to_be_bytes()))
}

/// Bus value of a big-endian 32-bit register holding `value`.
fn be32(value: u32) -> u64 {
    u64::from(u32::from_ne_bytes(value.to_be_bytes()))
}

impl FwCfg {
    /// Probes the fw_cfg at `base`: its signature, its DMA feature and its DMA register's
    /// signature. `scratch` is the physical address of [`SCRATCH_SIZE`] bytes of cellvisor's
    /// RAM, 16-byte aligned, that the DMA descriptors and payloads are written to.
    pub fn probe<M: Machine + ?Sized>(
        machine: &mut M,
        base: PhysAddr,
        scratch: PhysAddr,
    ) -> Result<Self, FwCfgError> {
        if !scratch.is_aligned(16) || scratch.checked_add(SCRATCH_SIZE).is_none() {
            return Err(FwCfgError::BadScratch);
        }
        let device = Self { base, scratch };
        device.select(machine, KEY_SIGNATURE)?;
        let mut signature = [0u8; 4];
        device.read_data(machine, &mut signature)?;
        if &signature != b"QEMU" {
            return Err(FwCfgError::NoSignature);
        }
        device.select(machine, KEY_ID)?;
        let mut id = [0u8; 4];
        device.read_data(machine, &mut id)?;
        if u32::from_le_bytes(id) & FEATURE_DMA == 0 {
            return Err(FwCfgError::NoDma);
        }
        let raw = device.read(machine, DMA_ADDRESS, AccessWidth::Doubleword)?;
        if u64::from_be_bytes(raw.to_ne_bytes()) != DMA_SIGNATURE {
            return Err(FwCfgError::NoDma);
        }
        Ok(device)
    }

    /// The address of a register.
    fn register(&self, offset: u64) -> Result<PhysAddr, FwCfgError> {
        self.base.checked_add(offset).ok_or(FwCfgError::DeviceAbort)
    }

    fn read<M: Machine + ?Sized>(
        &self,
        machine: &mut M,
        offset: u64,
        width: AccessWidth,
    ) -> Result<u64, FwCfgError> {
        let address = self.register(offset)?;
        machine
            .device_read(address, width)
            .map_err(|_| FwCfgError::DeviceAbort)
    }

    fn write<M: Machine + ?Sized>(
        &self,
        machine: &mut M,
        offset: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), FwCfgError> {
        let address = self.register(offset)?;
        machine
            .device_write(address, width, value)
            .map_err(|_| FwCfgError::DeviceAbort)
    }

    /// Selects item `key` (and rewinds its data stream).
    fn select<M: Machine + ?Sized>(&self, machine: &mut M, key: u16) -> Result<(), FwCfgError> {
        self.write(machine, SELECTOR, AccessWidth::Halfword, be16(key))
    }

    /// Reads the next `buffer.len()` bytes of the selected item.
    fn read_data<M: Machine + ?Sized>(
        &self,
        machine: &mut M,
        buffer: &mut [u8],
    ) -> Result<(), FwCfgError> {
        for byte in buffer {
            *byte = self.read(machine, DATA, AccessWidth::Byte)? as u8;
        }
        Ok(())
    }

    /// Looks up file `name` in the directory: its item key and size, `None` if there is none.
    pub fn find_file<M: Machine + ?Sized>(
        &self,
        machine: &mut M,
        name: &str,
    ) -> Result<Option<(u16, u32)>, FwCfgError> {
        let wanted = name.as_bytes();
        if wanted.is_empty() || wanted.len() >= FILE_NAME_SIZE || wanted.contains(&0) {
            return Ok(None);
        }
        self.select(machine, KEY_FILE_DIR)?;
        let mut count = [0u8; 4];
        self.read_data(machine, &mut count)?;
        let count = u32::from_be_bytes(count).min(MAX_FILES);
        let mut entry = [0u8; FILE_ENTRY_SIZE];
        for _ in 0..count {
            self.read_data(machine, &mut entry)?;
            let [s0, s1, s2, s3, k0, k1, _, _, ref file_name @ ..] = entry;
            let length = file_name
                .iter()
                .position(|byte| *byte == 0)
                .unwrap_or(FILE_NAME_SIZE);
            if file_name.get(..length) == Some(wanted) {
                return Ok(Some((
                    u16::from_be_bytes([k0, k1]),
                    u32::from_be_bytes([s0, s1, s2, s3]),
                )));
            }
        }
        Ok(None)
    }

    /// Writes `bytes` (at most [`MAX_PAYLOAD`]) to the start of item `select` through DMA, and
    /// waits for the transfer to complete.
    pub fn write_file<M: Machine + ?Sized>(
        &self,
        machine: &mut M,
        select: u16,
        bytes: &[u8],
    ) -> Result<(), FwCfgError> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(FwCfgError::PayloadTooLarge);
        }
        let payload = self
            .scratch
            .checked_add(DESCRIPTOR_SIZE)
            .ok_or(FwCfgError::BadScratch)?;
        let control = (u32::from(select) << 16) | CONTROL_SELECT | CONTROL_WRITE;
        let mut descriptor = [0u8; DESCRIPTOR_SIZE as usize];
        let (control_field, rest) = descriptor.split_at_mut(4);
        let (length_field, address_field) = rest.split_at_mut(4);
        control_field.copy_from_slice(&control.to_be_bytes());
        length_field.copy_from_slice(&(bytes.len() as u32).to_be_bytes());
        address_field.copy_from_slice(&payload.raw().to_be_bytes());
        machine.write_memory(payload, bytes);
        machine.write_memory(self.scratch, &descriptor);
        let address = self.scratch.raw();
        self.write(
            machine,
            DMA_ADDRESS,
            AccessWidth::Word,
            be32((address >> 32) as u32),
        )?;
        self.write(
            machine,
            DMA_ADDRESS_LOW,
            AccessWidth::Word,
            be32(address as u32),
        )?;
        for _ in 0..DMA_POLLS {
            let mut status = [0u8; 4];
            machine.read_memory(self.scratch, &mut status);
            let status = u32::from_be_bytes(status);
            if status & CONTROL_ERROR != 0 {
                return Err(FwCfgError::DmaError);
            }
            if status == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(FwCfgError::Timeout)
    }
}

/// The configuration of QEMU's `ramfb` display (`struct RAMFBCfg` of `hw/display/ramfb.c`: be64
/// addr, be32 fourcc, be32 flags, be32 width, be32 height, be32 stride; packed, 28 bytes).
///
/// QEMU acts on every write of the whole file (`ramfb_fw_cfg_write`): it maps `stride * height`
/// bytes at `address` (a physical address: a cell's frame must be translated from its IPA) and
/// shows them, or keeps the previous surface when that fails. `XRGB8888` is in every QEMU's
/// DRM-to-pixman table; `XBGR8888` was added to it in 2023, so an older QEMU keeps the old
/// surface for a guest that cleared LCDControl.BGR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RamfbConfig {
    /// Physical address of the frame's first pixel.
    pub address: u64,
    /// DRM fourcc of its pixel format (e.g. [`crate::dev::pl111::PixelFormat::fourcc`]).
    pub fourcc: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in lines.
    pub height: u32,
    /// Bytes from one line to the next.
    pub stride: u32,
}

impl RamfbConfig {
    /// The size of the encoded configuration.
    pub const SIZE: usize = 28;

    /// The configuration that shows `frame` (a PL111 frame, [`crate::dev::pl111::Pl111::frame`])
    /// whose first pixel is at physical address `address`.
    pub fn for_frame(address: PhysAddr, frame: &crate::dev::pl111::FrameRequest) -> Self {
        Self {
            address: address.raw(),
            fourcc: frame.format.fourcc(),
            width: frame.width,
            height: frame.height,
            stride: frame.stride,
        }
    }

    /// The configuration as `etc/ramfb` takes it (flags 0).
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut bytes = [0u8; Self::SIZE];
        let fields = self
            .address
            .to_be_bytes()
            .into_iter()
            .chain(self.fourcc.to_be_bytes())
            .chain(0u32.to_be_bytes())
            .chain(self.width.to_be_bytes())
            .chain(self.height.to_be_bytes())
            .chain(self.stride.to_be_bytes());
        for (slot, byte) in bytes.iter_mut().zip(fields) {
            *slot = byte;
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hardware::{DeviceAbort, DmaControlError};
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use alloc::vec::Vec;

    const BASE: u64 = VIRT_BASE;
    const SCRATCH: u64 = 0x4000_1000;

    /// How the fake answers a DMA transfer.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Dma {
        Complete,
        Fail,
        Never,
    }

    /// QEMU's fw_cfg as a guest-visible device on a little-endian CPU, plus RAM.
    struct FakeQemu {
        memory: BTreeMap<u64, u8>,
        items: BTreeMap<u16, Vec<u8>>,
        selected: u16,
        position: usize,
        dma_high: u32,
        dma: Dma,
        features: u32,
        signature: [u8; 4],
        dma_signature: u64,
        writes: Vec<(u16, Vec<u8>)>,
    }

    impl FakeQemu {
        fn new(files: &[(&str, u16, u32)]) -> Self {
            let mut items = BTreeMap::new();
            items.insert(KEY_SIGNATURE, b"QEMU".to_vec());
            let mut directory = (files.len() as u32).to_be_bytes().to_vec();
            for (name, select, size) in files {
                directory.extend(size.to_be_bytes());
                directory.extend(select.to_be_bytes());
                directory.extend([0, 0]);
                let mut field = [0u8; FILE_NAME_SIZE];
                field[..name.len()].copy_from_slice(name.as_bytes());
                directory.extend(field);
                items.insert(*select, vec![0; *size as usize]);
            }
            items.insert(KEY_FILE_DIR, directory);
            Self {
                memory: BTreeMap::new(),
                items,
                selected: 0,
                position: 0,
                dma_high: 0,
                dma: Dma::Complete,
                features: 0b11,
                signature: *b"QEMU",
                dma_signature: DMA_SIGNATURE,
                writes: Vec::new(),
            }
        }

        fn load(&self, address: u64, length: usize) -> Vec<u8> {
            (0..length as u64)
                .map(|i| self.memory.get(&(address + i)).copied().unwrap_or(0))
                .collect()
        }

        fn store(&mut self, address: u64, bytes: &[u8]) {
            for (i, byte) in bytes.iter().enumerate() {
                self.memory.insert(address + i as u64, *byte);
            }
        }

        fn item(&self, key: u16) -> Vec<u8> {
            match key {
                KEY_SIGNATURE => self.signature.to_vec(),
                KEY_ID => self.features.to_le_bytes().to_vec(),
                _ => self.items.get(&key).cloned().unwrap_or_default(),
            }
        }

        /// `fw_cfg_dma_transfer`: select, write, then clear the control word.
        fn transfer(&mut self, address: u64) {
            let descriptor = self.load(address, 16);
            let control = u32::from_be_bytes(descriptor[0..4].try_into().unwrap());
            let length = u32::from_be_bytes(descriptor[4..8].try_into().unwrap()) as usize;
            let data = u64::from_be_bytes(descriptor[8..16].try_into().unwrap());
            match self.dma {
                Dma::Never => return,
                Dma::Fail => {
                    self.store(address, &(control | CONTROL_ERROR).to_be_bytes());
                    return;
                }
                Dma::Complete => {}
            }
            if control & CONTROL_SELECT != 0 {
                self.selected = (control >> 16) as u16;
                self.position = 0;
            }
            if control & CONTROL_WRITE != 0 {
                let bytes = self.load(data, length);
                self.writes.push((self.selected, bytes));
            }
            self.store(address, &0u32.to_be_bytes());
        }
    }

    impl Machine for FakeQemu {
        fn write_memory(&mut self, address: PhysAddr, bytes: &[u8]) {
            self.store(address.raw(), bytes);
        }
        fn read_memory(&mut self, address: PhysAddr, buffer: &mut [u8]) {
            let bytes = self.load(address.raw(), buffer.len());
            buffer.copy_from_slice(&bytes);
        }
        fn zero_memory(&mut self, _: PhysAddr, _: u64) {}
        fn clean_invalidate_memory(&mut self, _: PhysAddr, _: u64) {}
        fn spi_set_enabled(&mut self, _: u32, _: bool) {}
        fn spi_set_priority(&mut self, _: u32, _: u8) {}
        fn spi_set_edge_triggered(&mut self, _: u32, _: bool) {}
        fn spi_route(&mut self, _: u32, _: usize) {}
        fn deactivate_interrupt(&mut self, _: u32, _: usize) {}
        fn interrupt_line_asserted(&mut self, _: u32, _: usize) -> bool {
            false
        }
        fn device_read(
            &mut self,
            address: PhysAddr,
            width: AccessWidth,
        ) -> Result<u64, DeviceAbort> {
            match (address.raw().checked_sub(BASE), width) {
                (Some(DATA), AccessWidth::Byte) => {
                    let byte = self.item(self.selected).get(self.position).copied();
                    self.position += 1;
                    Ok(u64::from(byte.unwrap_or(0)))
                }
                (Some(DMA_ADDRESS), AccessWidth::Doubleword) => {
                    Ok(u64::from_ne_bytes(self.dma_signature.to_be_bytes()))
                }
                _ => Err(DeviceAbort),
            }
        }
        fn device_write(
            &mut self,
            address: PhysAddr,
            width: AccessWidth,
            value: u64,
        ) -> Result<(), DeviceAbort> {
            match (address.raw().checked_sub(BASE), width) {
                (Some(SELECTOR), AccessWidth::Halfword) => {
                    self.selected = u16::from_be_bytes((value as u16).to_ne_bytes());
                    self.position = 0;
                    Ok(())
                }
                (Some(DMA_ADDRESS), AccessWidth::Word) => {
                    self.dma_high = u32::from_be_bytes((value as u32).to_ne_bytes());
                    Ok(())
                }
                (Some(DMA_ADDRESS_LOW), AccessWidth::Word) => {
                    let low = u32::from_be_bytes((value as u32).to_ne_bytes());
                    self.transfer((u64::from(self.dma_high) << 32) | u64::from(low));
                    Ok(())
                }
                _ => Err(DeviceAbort),
            }
        }
        fn count_nonzero(&mut self, _: PhysAddr, _: u64) -> u64 {
            0
        }
        fn counter(&self) -> (u64, u64) {
            (0, 1)
        }
        fn dma_allow(&mut self, _: u32, _: u16, _: PhysAddr) -> Result<(), DmaControlError> {
            Ok(())
        }
        fn dma_block(&mut self, _: u32, _: u16) -> Result<(), DmaControlError> {
            Ok(())
        }
    }

    fn qemu() -> FakeQemu {
        FakeQemu::new(&[
            ("etc/acpi/tables", 0x20, 0x2000),
            ("etc/ramfb", 0x21, 28),
            (
                "opt/very/long/name/that/fills/all/of/the/fifty-five/b",
                0x22,
                4,
            ),
        ])
    }

    fn probe(fake: &mut FakeQemu) -> Result<FwCfg, FwCfgError> {
        FwCfg::probe(fake, PhysAddr::new(BASE), PhysAddr::new(SCRATCH))
    }

    #[test]
    fn probes_signature_and_dma() {
        let mut fake = qemu();
        assert!(probe(&mut fake).is_ok());
        fake.dma_signature = u64::from_be_bytes(*b"QEMU CFH");
        assert_eq!(probe(&mut fake), Err(FwCfgError::NoDma));
        fake.dma_signature = DMA_SIGNATURE;
        fake.features = 1;
        assert_eq!(probe(&mut fake), Err(FwCfgError::NoDma));
        fake.signature = *b"QEMV";
        assert_eq!(probe(&mut fake), Err(FwCfgError::NoSignature));
        let mut fake = qemu();
        assert_eq!(
            FwCfg::probe(
                &mut fake,
                PhysAddr::new(BASE + 0x100),
                PhysAddr::new(SCRATCH)
            ),
            Err(FwCfgError::DeviceAbort)
        );
        assert_eq!(
            FwCfg::probe(&mut fake, PhysAddr::new(BASE), PhysAddr::new(SCRATCH + 8)),
            Err(FwCfgError::BadScratch)
        );
    }

    #[test]
    fn finds_files_in_the_directory() {
        let mut fake = qemu();
        let fw_cfg = probe(&mut fake).unwrap();
        assert_eq!(
            fw_cfg.find_file(&mut fake, RAMFB_FILE),
            Ok(Some((0x21, 28)))
        );
        assert_eq!(
            fw_cfg.find_file(&mut fake, "etc/acpi/tables"),
            Ok(Some((0x20, 0x2000)))
        );
        assert_eq!(
            fw_cfg.find_file(
                &mut fake,
                "opt/very/long/name/that/fills/all/of/the/fifty-five/b"
            ),
            Ok(Some((0x22, 4)))
        );
        assert_eq!(fw_cfg.find_file(&mut fake, "etc/ramf"), Ok(None));
        assert_eq!(fw_cfg.find_file(&mut fake, "etc/ramfb2"), Ok(None));
        assert_eq!(fw_cfg.find_file(&mut fake, ""), Ok(None));
        let too_long: alloc::string::String = core::iter::repeat_n('a', 56).collect();
        assert_eq!(fw_cfg.find_file(&mut fake, &too_long), Ok(None));
        let mut empty = FakeQemu::new(&[]);
        let fw_cfg = probe(&mut empty).unwrap();
        assert_eq!(fw_cfg.find_file(&mut empty, RAMFB_FILE), Ok(None));
    }

    #[test]
    fn writes_the_ramfb_configuration_through_dma() {
        let mut fake = qemu();
        let fw_cfg = probe(&mut fake).unwrap();
        let (select, size) = fw_cfg.find_file(&mut fake, RAMFB_FILE).unwrap().unwrap();
        let config = RamfbConfig {
            address: 0x4800_0000,
            fourcc: 0x3432_5258,
            width: 640,
            height: 480,
            stride: 2560,
        };
        let bytes = config.to_bytes();
        assert_eq!(bytes.len() as u32, size);
        fw_cfg.write_file(&mut fake, select, &bytes).unwrap();
        assert_eq!(fake.writes, vec![(0x21, bytes.to_vec())]);
        // The descriptor QEMU read: SELECT | WRITE with the key, then cleared on completion.
        assert_eq!(fake.load(SCRATCH, 4), vec![0, 0, 0, 0]);
        assert_eq!(fake.load(SCRATCH + 4, 4), 28u32.to_be_bytes().to_vec());
        assert_eq!(
            fake.load(SCRATCH + 8, 8),
            (SCRATCH + 16).to_be_bytes().to_vec()
        );
    }

    #[test]
    fn dma_errors_timeouts_and_oversized_payloads() {
        let mut fake = qemu();
        let fw_cfg = probe(&mut fake).unwrap();
        fake.dma = Dma::Fail;
        assert_eq!(
            fw_cfg.write_file(&mut fake, 0x21, &[1; 28]),
            Err(FwCfgError::DmaError)
        );
        fake.dma = Dma::Never;
        assert_eq!(
            fw_cfg.write_file(&mut fake, 0x21, &[1; 28]),
            Err(FwCfgError::Timeout)
        );
        fake.dma = Dma::Complete;
        assert_eq!(
            fw_cfg.write_file(&mut fake, 0x21, &[0; MAX_PAYLOAD + 1]),
            Err(FwCfgError::PayloadTooLarge)
        );
        assert_eq!(
            fw_cfg.write_file(&mut fake, 0x21, &[7; MAX_PAYLOAD]),
            Ok(())
        );
        assert_eq!(fw_cfg.write_file(&mut fake, 0x21, &[]), Ok(()));
    }

    #[test]
    fn ramfb_configuration_layout() {
        let config = RamfbConfig {
            address: 0x0102_0304_0506_0708,
            fourcc: u32::from_le_bytes(*b"XR24"),
            width: 0x11,
            height: 0x22,
            stride: 0x33,
        };
        let bytes = config.to_bytes();
        assert_eq!(&bytes[0..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let frame = crate::dev::pl111::FrameRequest {
            base: 0x4800_0000,
            width: 640,
            height: 480,
            stride: 2560,
            format: crate::dev::pl111::PixelFormat::Xbgr8888,
        };
        assert_eq!(
            RamfbConfig::for_frame(PhysAddr::new(0x8_4800_0000), &frame),
            RamfbConfig {
                address: 0x8_4800_0000,
                fourcc: u32::from_le_bytes(*b"XB24"),
                width: 640,
                height: 480,
                stride: 2560,
            }
        );
        assert_eq!(&bytes[8..12], &[0x34, 0x32, 0x52, 0x58]);
        assert_eq!(&bytes[12..16], &[0; 4], "flags");
        assert_eq!(&bytes[16..20], &[0, 0, 0, 0x11]);
        assert_eq!(&bytes[20..24], &[0, 0, 0, 0x22]);
        assert_eq!(&bytes[24..28], &[0, 0, 0, 0x33]);
    }
}

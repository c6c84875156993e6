//! The split virtqueue, device side (virtio 1.2 §2.7).
#![forbid(unsafe_code)]
//!
//! The driver owns three areas of its RAM: the descriptor table (16 bytes per descriptor: le64
//! address, le32 length, le16 flags, le16 next), the driver area or available ring (le16 flags,
//! le16 idx, le16 ring\[size\]) and the device area or used ring (le16 flags, le16 idx, then
//! size elements of le32 id, le32 len). The device reads the available ring and the descriptors
//! and writes the used ring, all through [`GuestMemory`] and all bounds-checked: a guest that
//! lays out garbage gets a [`VirtioError`], never a panic or an access outside its RAM.
//!
//! Not supported (not offered by the transport): VIRTIO_F_EVENT_IDX, indirect descriptors, the
//! packed layout. The available ring's NO_INTERRUPT flag is not honoured (a SHOULD): every batch
//! of used buffers raises the interrupt.

use alloc::vec::Vec;

use super::{GuestMemory, VirtioError};

/// The largest queue size the specification allows.
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Descriptor flag: the chain continues at `next`.
pub const DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable (else device-readable).
pub const DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer holds an indirect descriptor table (refused).
pub const DESC_F_INDIRECT: u16 = 4;

/// Bytes per descriptor in the descriptor table.
const DESCRIPTOR_SIZE: u64 = 16;
/// Bytes per used-ring element.
const USED_ELEMENT_SIZE: u64 = 8;
/// Offset of the ring array in the available and used rings (after flags and idx).
const RING_OFFSET: u64 = 4;
/// Offset of idx in the available and used rings.
const IDX_OFFSET: u64 = 2;

/// One buffer of a descriptor chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address of the buffer.
    pub addr: u64,
    /// Length in bytes (never 0).
    pub len: u32,
    /// Device-writable (else device-readable).
    pub writable: bool,
}

/// A descriptor chain taken from the available ring: its head and its buffers, in order (the
/// readable ones first). Holds at most the queue size segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    head: u16,
    segments: Vec<Segment>,
}

impl Chain {
    /// The index of the chain's first descriptor (what [`Virtqueue::push_used`] returns).
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The chain's buffers, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Total length of the device-readable buffers (fits: a chain's total is checked to fit).
    pub fn readable_len(&self) -> u32 {
        self.total(false)
    }

    /// Total length of the device-writable buffers.
    pub fn writable_len(&self) -> u32 {
        self.total(true)
    }

    fn total(&self, writable: bool) -> u32 {
        self.segments
            .iter()
            .filter(|segment| segment.writable == writable)
            .fold(0u32, |sum, segment| sum.saturating_add(segment.len))
    }

    /// Copies the chain's device-readable bytes, in order, into `out` until either runs out.
    /// Returns how many bytes were copied.
    pub fn read_all(
        &self,
        memory: &mut dyn GuestMemory,
        out: &mut [u8],
    ) -> Result<usize, VirtioError> {
        let mut done = 0usize;
        for segment in self.segments.iter().filter(|segment| !segment.writable) {
            let Some(rest) = out.get_mut(done..) else {
                break;
            };
            if rest.is_empty() {
                break;
            }
            let count = rest.len().min(segment.len as usize);
            let target = rest.get_mut(..count).ok_or(VirtioError::OutsideRam)?;
            memory.read(segment.addr, target)?;
            done += count;
        }
        Ok(done)
    }

    /// Copies `bytes` into the chain's device-writable buffers, in order, never past their
    /// lengths. Returns how many bytes were written.
    pub fn write_all(
        &self,
        memory: &mut dyn GuestMemory,
        bytes: &[u8],
    ) -> Result<usize, VirtioError> {
        let mut done = 0usize;
        for segment in self.segments.iter().filter(|segment| segment.writable) {
            let Some(rest) = bytes.get(done..) else {
                break;
            };
            if rest.is_empty() {
                break;
            }
            let count = rest.len().min(segment.len as usize);
            let source = rest.get(..count).ok_or(VirtioError::OutsideRam)?;
            memory.write(segment.addr, source)?;
            done += count;
        }
        Ok(done)
    }
}

/// One split virtqueue as the device sees it: the driver's configuration (size, areas, ready)
/// and the device's position in the rings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Virtqueue {
    max_size: u16,
    size: u16,
    ready: bool,
    desc: u64,
    driver: u64,
    device: u64,
    last_avail: u16,
    next_used: u16,
}

impl Virtqueue {
    /// A queue in its reset state whose size may be at most `max_size` (rounded down to a power
    /// of two, at least 1, at most [`MAX_QUEUE_SIZE`]).
    pub fn new(max_size: u16) -> Self {
        let clamped = max_size.clamp(1, MAX_QUEUE_SIZE);
        // The highest set bit of a non-zero u16 is bit 15 - leading_zeros (0..=15).
        let max_size = 1u16 << (15 - clamped.leading_zeros());
        let mut queue = Self {
            max_size,
            size: max_size,
            ready: false,
            desc: 0,
            driver: 0,
            device: 0,
            last_avail: 0,
            next_used: 0,
        };
        queue.reset();
        queue
    }

    /// The largest size the driver may choose (QueueNumMax).
    pub fn max_size(&self) -> u16 {
        self.max_size
    }

    /// The size the driver chose (QueueNum).
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Whether the driver made the queue ready (QueueReady).
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Guest-physical address of the descriptor table.
    pub fn desc_table(&self) -> u64 {
        self.desc
    }

    /// Guest-physical address of the driver area (available ring).
    pub fn driver_area(&self) -> u64 {
        self.driver
    }

    /// Guest-physical address of the device area (used ring).
    pub fn device_area(&self) -> u64 {
        self.device
    }

    /// The available-ring index up to which chains were taken.
    pub fn last_avail(&self) -> u16 {
        self.last_avail
    }

    /// The used-ring index the next used element gets.
    pub fn next_used(&self) -> u16 {
        self.next_used
    }

    /// Sets the size (QueueNum); a value that does not fit 16 bits is stored as 0 (invalid).
    /// Ignored while the queue is ready.
    pub fn set_size(&mut self, size: u32) {
        if !self.ready {
            self.size = u16::try_from(size).unwrap_or(0);
        }
    }

    /// Sets the descriptor table's address. Ignored while the queue is ready.
    pub fn set_desc_table(&mut self, ipa: u64) {
        if !self.ready {
            self.desc = ipa;
        }
    }

    /// Sets the driver area's (available ring's) address. Ignored while the queue is ready.
    pub fn set_driver_area(&mut self, ipa: u64) {
        if !self.ready {
            self.driver = ipa;
        }
    }

    /// Sets the device area's (used ring's) address. Ignored while the queue is ready.
    pub fn set_device_area(&mut self, ipa: u64) {
        if !self.ready {
            self.device = ipa;
        }
    }

    /// Checks the driver's configuration: the size a non-zero power of two up to the maximum,
    /// the areas aligned (descriptor table 16, available ring 2, used ring 4 bytes).
    pub fn check_config(&self) -> Result<(), VirtioError> {
        if self.size == 0 || !self.size.is_power_of_two() || self.size > self.max_size {
            return Err(VirtioError::QueueSize);
        }
        if !self.desc.is_multiple_of(16)
            || !self.driver.is_multiple_of(2)
            || !self.device.is_multiple_of(4)
        {
            return Err(VirtioError::QueueMisaligned);
        }
        Ok(())
    }

    /// Makes the queue ready (`true`, after [`Virtqueue::check_config`]; the ring positions
    /// start at 0) or not ready (`false`, keeping the configuration).
    pub fn set_ready(&mut self, ready: bool) -> Result<(), VirtioError> {
        if ready {
            if self.ready {
                return Ok(());
            }
            self.check_config()?;
            self.last_avail = 0;
            self.next_used = 0;
        }
        self.ready = ready;
        Ok(())
    }

    /// Returns the queue to its reset state: not ready, size at the maximum, areas and ring
    /// positions zero.
    pub fn reset(&mut self) {
        self.size = self.max_size;
        self.ready = false;
        self.desc = 0;
        self.driver = 0;
        self.device = 0;
        self.last_avail = 0;
        self.next_used = 0;
    }

    fn check_live(&self) -> Result<(), VirtioError> {
        if !self.ready {
            return Err(VirtioError::QueueNotReady);
        }
        self.check_config()
    }

    /// How many chains the driver has made available and the device has not taken yet.
    pub fn available(&self, memory: &mut dyn GuestMemory) -> Result<u16, VirtioError> {
        self.check_live()?;
        let address = self
            .driver
            .checked_add(IDX_OFFSET)
            .ok_or(VirtioError::OutsideRam)?;
        let idx = read_u16(memory, address)?;
        let pending = idx.wrapping_sub(self.last_avail);
        if pending > self.size {
            return Err(VirtioError::AvailJump);
        }
        Ok(pending)
    }

    /// Takes the next available chain, walking and checking its descriptors; `None` when the
    /// driver has made none available.
    pub fn pop(&mut self, memory: &mut dyn GuestMemory) -> Result<Option<Chain>, VirtioError> {
        if self.available(memory)? == 0 {
            return Ok(None);
        }
        // The size is a power of two (checked above).
        let slot = u64::from(self.last_avail & (self.size - 1));
        let address = slot
            .checked_mul(2)
            .and_then(|offset| offset.checked_add(RING_OFFSET))
            .and_then(|offset| self.driver.checked_add(offset))
            .ok_or(VirtioError::OutsideRam)?;
        let head = read_u16(memory, address)?;
        let chain = self.walk(memory, head)?;
        self.last_avail = self.last_avail.wrapping_add(1);
        Ok(Some(chain))
    }

    fn walk(&self, memory: &mut dyn GuestMemory, head: u16) -> Result<Chain, VirtioError> {
        let mut segments = Vec::new();
        let mut index = head;
        let mut total = 0u32;
        let mut seen_writable = false;
        loop {
            if index >= self.size {
                return Err(VirtioError::DescriptorOutOfRange);
            }
            if segments.len() >= usize::from(self.size) {
                return Err(VirtioError::ChainTooLong);
            }
            let address = u64::from(index)
                .checked_mul(DESCRIPTOR_SIZE)
                .and_then(|offset| self.desc.checked_add(offset))
                .ok_or(VirtioError::OutsideRam)?;
            let mut raw = [0u8; 16];
            memory.read(address, &mut raw)?;
            let [
                a0,
                a1,
                a2,
                a3,
                a4,
                a5,
                a6,
                a7,
                l0,
                l1,
                l2,
                l3,
                f0,
                f1,
                n0,
                n1,
            ] = raw;
            let addr = u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
            let len = u32::from_le_bytes([l0, l1, l2, l3]);
            let flags = u16::from_le_bytes([f0, f1]);
            let next = u16::from_le_bytes([n0, n1]);
            if flags & DESC_F_INDIRECT != 0 {
                return Err(VirtioError::Indirect);
            }
            if len == 0 {
                return Err(VirtioError::ZeroLength);
            }
            let writable = flags & DESC_F_WRITE != 0;
            if !writable && seen_writable {
                return Err(VirtioError::ReadableAfterWritable);
            }
            seen_writable |= writable;
            if addr.checked_add(u64::from(len)).is_none() {
                return Err(VirtioError::OutsideRam);
            }
            total = total.checked_add(len).ok_or(VirtioError::ChainTooLarge)?;
            segments.push(Segment {
                addr,
                len,
                writable,
            });
            if flags & DESC_F_NEXT == 0 {
                break;
            }
            index = next;
        }
        Ok(Chain { head, segments })
    }

    /// Returns chain `head` to the driver with `written` bytes written into it: writes the used
    /// element, then the used ring's index.
    pub fn push_used(
        &mut self,
        memory: &mut dyn GuestMemory,
        head: u16,
        written: u32,
    ) -> Result<(), VirtioError> {
        self.check_live()?;
        if head >= self.size {
            return Err(VirtioError::DescriptorOutOfRange);
        }
        let slot = u64::from(self.next_used & (self.size - 1));
        let element = slot
            .checked_mul(USED_ELEMENT_SIZE)
            .and_then(|offset| offset.checked_add(RING_OFFSET))
            .and_then(|offset| self.device.checked_add(offset))
            .ok_or(VirtioError::OutsideRam)?;
        let mut bytes = [0u8; 8];
        let (id, len) = bytes.split_at_mut(4);
        id.copy_from_slice(&u32::from(head).to_le_bytes());
        len.copy_from_slice(&written.to_le_bytes());
        memory.write(element, &bytes)?;
        let next = self.next_used.wrapping_add(1);
        let idx = self
            .device
            .checked_add(IDX_OFFSET)
            .ok_or(VirtioError::OutsideRam)?;
        memory.write(idx, &next.to_le_bytes())?;
        self.next_used = next;
        Ok(())
    }
}

fn read_u16(memory: &mut dyn GuestMemory, ipa: u64) -> Result<u16, VirtioError> {
    let mut bytes = [0u8; 2];
    memory.read(ipa, &mut bytes)?;
    Ok(u16::from_le_bytes(bytes))
}

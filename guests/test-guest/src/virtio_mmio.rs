//! The virtio-mmio transport's register offsets (virtio 1.2 §4.2.2, and the legacy interface).

/// virtio-mmio transport registers (offsets in a transport's window), shared by the virtio-blk
/// driver and the display attacks.
pub(crate) const MAGIC_VALUE: u64 = 0x000;
pub(crate) const VERSION: u64 = 0x004;
pub(crate) const DEVICE_ID: u64 = 0x008;
pub(crate) const DEVICE_FEATURES: u64 = 0x010;
pub(crate) const DEVICE_FEATURES_SEL: u64 = 0x014;
pub(crate) const DRIVER_FEATURES: u64 = 0x020;
pub(crate) const DRIVER_FEATURES_SEL: u64 = 0x024;
/// Legacy only.
pub(crate) const GUEST_PAGE_SIZE: u64 = 0x028;
pub(crate) const QUEUE_SEL: u64 = 0x030;
pub(crate) const QUEUE_NUM_MAX: u64 = 0x034;
pub(crate) const QUEUE_NUM: u64 = 0x038;
/// Legacy only.
pub(crate) const QUEUE_ALIGN: u64 = 0x03C;
/// Legacy only.
pub(crate) const QUEUE_PFN: u64 = 0x040;
/// Modern only.
pub(crate) const QUEUE_READY: u64 = 0x044;
pub(crate) const QUEUE_NOTIFY: u64 = 0x050;
pub(crate) const INTERRUPT_STATUS: u64 = 0x060;
pub(crate) const INTERRUPT_ACK: u64 = 0x064;
pub(crate) const STATUS: u64 = 0x070;
/// Modern only: the three parts of the queue, low and high halves.
pub(crate) const QUEUE_DESC_LOW: u64 = 0x080;
pub(crate) const QUEUE_DESC_HIGH: u64 = 0x084;
pub(crate) const QUEUE_DRIVER_LOW: u64 = 0x090;
pub(crate) const QUEUE_DRIVER_HIGH: u64 = 0x094;
pub(crate) const QUEUE_DEVICE_LOW: u64 = 0x0A0;
pub(crate) const QUEUE_DEVICE_HIGH: u64 = 0x0A4;

//! PCI configuration-space layout: type 0 header offsets, register bits and capability IDs.
//!
//! Offsets and bits as in the PCI Local Bus Specification 3.0 (§6.2, §6.7, §6.8), the PCI Bus
//! Power Management Interface Specification 1.2 and the PCI Express Base Specification (§7.5.3),
//! with the names Linux uses in `include/uapi/linux/pci_regs.h` where it has one.
#![forbid(unsafe_code)]

/// Vendor ID (16 bits); 0xffff when no function answers.
pub const VENDOR_ID: u16 = 0x00;
/// Device ID (16 bits).
pub const DEVICE_ID: u16 = 0x02;
/// Command register (16 bits).
pub const COMMAND: u16 = 0x04;
/// Status register (16 bits).
pub const STATUS: u16 = 0x06;
/// Revision ID (8 bits).
pub const REVISION_ID: u16 = 0x08;
/// Class code: programming interface (0x09), subclass (0x0a), base class (0x0b).
pub const CLASS_CODE: u16 = 0x09;
/// Cache Line Size (8 bits).
pub const CACHE_LINE_SIZE: u16 = 0x0c;
/// Latency Timer (8 bits; hardwired to 0 on PCI Express).
pub const LATENCY_TIMER: u16 = 0x0d;
/// Header Type (8 bits): layout in bits 6:0, multi-function device in bit 7.
pub const HEADER_TYPE: u16 = 0x0e;
/// Built-in self test (8 bits).
pub const BIST: u16 = 0x0f;
/// Base Address Register 0; BAR n is at `BAR0 + 4 * n`, n in 0..6.
pub const BAR0: u16 = 0x10;
/// Number of Base Address Registers in a type 0 header.
pub const BAR_COUNT: usize = 6;
/// CardBus CIS Pointer (32 bits).
pub const CARDBUS_CIS: u16 = 0x28;
/// Subsystem Vendor ID (16 bits).
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x2c;
/// Subsystem ID (16 bits).
pub const SUBSYSTEM_ID: u16 = 0x2e;
/// Expansion ROM Base Address (32 bits).
pub const EXPANSION_ROM: u16 = 0x30;
/// Capabilities Pointer (8 bits, low two bits reserved).
pub const CAPABILITY_POINTER: u16 = 0x34;
/// Interrupt Line (8 bits): scratch for software.
pub const INTERRUPT_LINE: u16 = 0x3c;
/// Interrupt Pin (8 bits): 0 none, 1..=4 INTA#..INTD#.
pub const INTERRUPT_PIN: u16 = 0x3d;
/// Min_Gnt (8 bits; 0 on PCI Express).
pub const MIN_GNT: u16 = 0x3e;
/// Max_Lat (8 bits; 0 on PCI Express).
pub const MAX_LAT: u16 = 0x3f;
/// End of the type 0 header: capabilities live in `HEADER_END..CONFIG_SPACE_SIZE`.
pub const HEADER_END: u16 = 0x40;
/// Size of conventional configuration space.
pub const CONFIG_SPACE_SIZE: u16 = 0x100;
/// Size of PCI Express extended configuration space (one ECAM page).
pub const EXTENDED_CONFIG_SPACE_SIZE: u16 = 0x1000;

/// Command: I/O Space enable.
pub const COMMAND_IO_SPACE: u16 = 1 << 0;
/// Command: Memory Space enable.
pub const COMMAND_MEMORY_SPACE: u16 = 1 << 1;
/// Command: Bus Master enable.
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command: Special Cycles (hardwired 0 on PCI Express).
pub const COMMAND_SPECIAL_CYCLES: u16 = 1 << 3;
/// Command: Memory Write and Invalidate enable (hardwired 0 on PCI Express).
pub const COMMAND_MEMORY_WRITE_INVALIDATE: u16 = 1 << 4;
/// Command: VGA palette snoop (hardwired 0 on PCI Express).
pub const COMMAND_VGA_PALETTE_SNOOP: u16 = 1 << 5;
/// Command: Parity Error Response.
pub const COMMAND_PARITY_ERROR_RESPONSE: u16 = 1 << 6;
/// Command: SERR# enable (on PCI Express: report fatal and non-fatal errors to the root complex).
pub const COMMAND_SERR: u16 = 1 << 8;
/// Command: fast back-to-back enable (hardwired 0 on PCI Express).
pub const COMMAND_FAST_BACK_TO_BACK: u16 = 1 << 9;
/// Command: INTx Emulation Disable.
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// Status: INTx Status (read-only).
pub const STATUS_INTERRUPT: u16 = 1 << 3;
/// Status: Capabilities List (read-only).
pub const STATUS_CAPABILITIES_LIST: u16 = 1 << 4;
/// Status: the write-1-to-clear error bits (Master Data Parity Error, Signaled Target Abort,
/// Received Target Abort, Received Master Abort, Signaled System Error, Detected Parity Error).
pub const STATUS_RW1C: u16 = (1 << 8) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 15);

/// Header Type: multi-function device.
pub const HEADER_TYPE_MULTI_FUNCTION: u8 = 0x80;
/// Header Type: the layout field.
pub const HEADER_TYPE_LAYOUT: u8 = 0x7f;
/// Header layout 0: an endpoint.
pub const HEADER_LAYOUT_ENDPOINT: u8 = 0;
/// Header layout 1: a PCI-to-PCI bridge.
pub const HEADER_LAYOUT_BRIDGE: u8 = 1;
/// Header layout 2: a CardBus bridge.
pub const HEADER_LAYOUT_CARDBUS: u8 = 2;

/// BAR bit 0: an I/O space BAR.
pub const BAR_IO_SPACE: u32 = 1 << 0;
/// Memory BAR bits 2:1: the type field.
pub const BAR_MEMORY_TYPE: u32 = 0b11 << 1;
/// Memory BAR type: 32-bit.
pub const BAR_MEMORY_TYPE_32: u32 = 0b00 << 1;
/// Memory BAR type: below 1 MiB (legacy; sized and placed like a 32-bit BAR).
pub const BAR_MEMORY_TYPE_1M: u32 = 0b01 << 1;
/// Memory BAR type: 64-bit (this BAR and the next form one).
pub const BAR_MEMORY_TYPE_64: u32 = 0b10 << 1;
/// Memory BAR bit 3: prefetchable.
pub const BAR_MEMORY_PREFETCHABLE: u32 = 1 << 3;
/// Memory BAR: the address bits of the low dword.
pub const BAR_MEMORY_ADDRESS_MASK: u32 = !0xf;
/// I/O BAR: the address bits.
pub const BAR_IO_ADDRESS_MASK: u32 = !0x3;
/// Expansion ROM BAR: ROM address decode enable.
pub const EXPANSION_ROM_ENABLE: u32 = 1 << 0;
/// Expansion ROM BAR: the address bits.
pub const EXPANSION_ROM_ADDRESS_MASK: u32 = !0x7ff;

/// Capability ID: PCI Power Management.
pub const CAP_ID_POWER_MANAGEMENT: u8 = 0x01;
/// Capability ID: AGP.
pub const CAP_ID_AGP: u8 = 0x02;
/// Capability ID: Vital Product Data.
pub const CAP_ID_VPD: u8 = 0x03;
/// Capability ID: Slot Identification.
pub const CAP_ID_SLOT_ID: u8 = 0x04;
/// Capability ID: Message Signalled Interrupts.
pub const CAP_ID_MSI: u8 = 0x05;
/// Capability ID: CompactPCI Hot Swap.
pub const CAP_ID_HOT_SWAP: u8 = 0x06;
/// Capability ID: PCI-X.
pub const CAP_ID_PCIX: u8 = 0x07;
/// Capability ID: HyperTransport.
pub const CAP_ID_HYPERTRANSPORT: u8 = 0x08;
/// Capability ID: Vendor-Specific (virtio-pci puts its structure locations here).
pub const CAP_ID_VENDOR_SPECIFIC: u8 = 0x09;
/// Capability ID: Debug port.
pub const CAP_ID_DEBUG_PORT: u8 = 0x0a;
/// Capability ID: CompactPCI central resource control.
pub const CAP_ID_COMPACT_PCI_CRC: u8 = 0x0b;
/// Capability ID: PCI Standard Hot-Plug Controller.
pub const CAP_ID_HOT_PLUG: u8 = 0x0c;
/// Capability ID: Bridge subsystem vendor/device ID.
pub const CAP_ID_BRIDGE_SUBSYSTEM: u8 = 0x0d;
/// Capability ID: AGP 8x.
pub const CAP_ID_AGP3: u8 = 0x0e;
/// Capability ID: Secure Device.
pub const CAP_ID_SECURE_DEVICE: u8 = 0x0f;
/// Capability ID: PCI Express.
pub const CAP_ID_PCI_EXPRESS: u8 = 0x10;
/// Capability ID: MSI-X.
pub const CAP_ID_MSIX: u8 = 0x11;
/// Capability ID: Serial ATA data/index configuration.
pub const CAP_ID_SATA: u8 = 0x12;
/// Capability ID: Advanced Features (conventional PCI FLR).
pub const CAP_ID_ADVANCED_FEATURES: u8 = 0x13;
/// Capability ID: Enhanced Allocation.
pub const CAP_ID_ENHANCED_ALLOCATION: u8 = 0x14;
/// Capability ID: Flattening Portal Bridge.
pub const CAP_ID_FLATTENING_PORTAL_BRIDGE: u8 = 0x15;

/// Offset of a capability's ID byte.
pub const CAP_ID: u16 = 0;
/// Offset of a capability's next-pointer byte.
pub const CAP_NEXT: u16 = 1;
/// Mask of the next pointer (the low two bits are reserved).
pub const CAP_POINTER_MASK: u8 = 0xfc;
/// Offset of a vendor-specific capability's length byte (the length includes the header).
pub const CAP_VENDOR_LENGTH: u16 = 2;

/// Power Management capability: its length.
pub const PM_LENGTH: u16 = 8;
/// Power Management capability: Power Management Control/Status (16 bits).
pub const PM_CONTROL_STATUS: u16 = 4;
/// PMCSR: the PowerState field (D0..D3hot).
pub const PM_CONTROL_POWER_STATE: u16 = 0b11;
/// PMCSR: PME_En.
pub const PM_CONTROL_PME_ENABLE: u16 = 1 << 8;
/// PMCSR: PME_Status (write 1 to clear).
pub const PM_CONTROL_PME_STATUS: u16 = 1 << 15;

/// MSI capability: Message Control (16 bits).
pub const MSI_FLAGS: u16 = 2;
/// MSI Message Control: MSI Enable.
pub const MSI_FLAGS_ENABLE: u16 = 1 << 0;
/// MSI Message Control: 64-bit address capable.
pub const MSI_FLAGS_64BIT: u16 = 1 << 7;
/// MSI Message Control: per-vector masking capable.
pub const MSI_FLAGS_MASKBIT: u16 = 1 << 8;
/// MSI-X capability: Message Control (16 bits).
pub const MSIX_FLAGS: u16 = 2;
/// MSI-X Message Control: MSI-X Enable.
pub const MSIX_FLAGS_ENABLE: u16 = 1 << 15;
/// MSI-X capability: its length.
pub const MSIX_LENGTH: u16 = 12;

/// PCI Express capability: its length (capability version 2; version 1 ends at 0x24).
pub const EXP_LENGTH: u16 = 0x3c;
/// PCI Express capability, version 1: its length.
pub const EXP_LENGTH_V1: u16 = 0x24;
/// PCI Express Capabilities register (16 bits): version in bits 3:0, port type in 7:4.
pub const EXP_FLAGS: u16 = 0x02;
/// PCI Express Capabilities: the capability version field.
pub const EXP_FLAGS_VERSION: u16 = 0xf;
/// Device Capabilities (32 bits).
pub const EXP_DEVICE_CAPABILITIES: u16 = 0x04;
/// Device Capabilities: Function Level Reset capability.
pub const EXP_DEVICE_CAPABILITIES_FLR: u32 = 1 << 28;
/// Device Control (16 bits).
pub const EXP_DEVICE_CONTROL: u16 = 0x08;
/// Device Control: Correctable, Non-Fatal, Fatal and Unsupported Request reporting enables.
pub const EXP_DEVICE_CONTROL_ERROR_REPORTING: u16 = 0xf;
/// Device Control: Enable Relaxed Ordering.
pub const EXP_DEVICE_CONTROL_RELAXED_ORDERING: u16 = 1 << 4;
/// Device Control: Max_Payload_Size.
pub const EXP_DEVICE_CONTROL_PAYLOAD: u16 = 0b111 << 5;
/// Device Control: Extended Tag Field Enable.
pub const EXP_DEVICE_CONTROL_EXTENDED_TAG: u16 = 1 << 8;
/// Device Control: Phantom Functions Enable.
pub const EXP_DEVICE_CONTROL_PHANTOM: u16 = 1 << 9;
/// Device Control: Aux Power PM Enable.
pub const EXP_DEVICE_CONTROL_AUX_POWER: u16 = 1 << 10;
/// Device Control: Enable No Snoop.
pub const EXP_DEVICE_CONTROL_NO_SNOOP: u16 = 1 << 11;
/// Device Control: Max_Read_Request_Size.
pub const EXP_DEVICE_CONTROL_READ_REQUEST: u16 = 0b111 << 12;
/// Device Control: Initiate Function Level Reset (reads 0).
pub const EXP_DEVICE_CONTROL_FLR: u16 = 1 << 15;
/// Device Status (16 bits).
pub const EXP_DEVICE_STATUS: u16 = 0x0a;
/// Device Status: the write-1-to-clear error-detected bits.
pub const EXP_DEVICE_STATUS_RW1C: u16 = 0xf;
/// Link Control (16 bits).
pub const EXP_LINK_CONTROL: u16 = 0x10;
/// Slot Control (16 bits).
pub const EXP_SLOT_CONTROL: u16 = 0x18;
/// Root Control (16 bits).
pub const EXP_ROOT_CONTROL: u16 = 0x1c;
/// Device Control 2 (16 bits).
pub const EXP_DEVICE_CONTROL_2: u16 = 0x28;

/// Advanced Features capability: its length.
pub const AF_LENGTH: u16 = 6;
/// Advanced Features: AF Capabilities (8 bits).
pub const AF_CAPABILITIES: u16 = 3;
/// AF Capabilities: Transactions Pending capability.
pub const AF_CAPABILITIES_TP: u8 = 1 << 0;
/// AF Capabilities: Function Level Reset capability.
pub const AF_CAPABILITIES_FLR: u8 = 1 << 1;
/// Advanced Features: AF Control (8 bits).
pub const AF_CONTROL: u16 = 4;
/// AF Control: Initiate FLR.
pub const AF_CONTROL_FLR: u8 = 1 << 0;

/// The PCI vendor ID of virtio devices (Red Hat, Inc.).
pub const VIRTIO_VENDOR_ID: u16 = 0x1af4;
/// First device ID of a modern (virtio 1.0) virtio-pci device: 0x1040 + virtio device type.
pub const VIRTIO_MODERN_DEVICE_FIRST: u16 = 0x1040;
/// Last device ID of a modern virtio-pci device.
pub const VIRTIO_MODERN_DEVICE_LAST: u16 = 0x107f;
/// virtio-pci capability: `cfg_type` byte.
pub const VIRTIO_CAP_CFG_TYPE: u16 = 3;
/// virtio-pci capability: `bar` byte.
pub const VIRTIO_CAP_BAR: u16 = 4;
/// virtio-pci capability: `offset` (32 bits) into the BAR.
pub const VIRTIO_CAP_OFFSET: u16 = 8;
/// virtio-pci capability: `length` (32 bits) of the structure.
pub const VIRTIO_CAP_LENGTH: u16 = 12;
/// virtio-pci `cfg_type`: common configuration.
pub const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;
/// Offset of `device_status` (8 bits) in the virtio-pci common configuration structure;
/// writing 0 resets the device.
pub const VIRTIO_COMMON_DEVICE_STATUS: u64 = 0x14;

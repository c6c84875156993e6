//! Board description types shared by every board crate: the hardware a board promises and its cell layouts.
//!
//! A board crate is data: one `const` [`Board`] value. The hypervisor cross-checks it against the
//! platform device tree at boot (`cellvisor::setup::partition::validate`) and refuses any layout that
//! overlaps, double-assigns or leaves the hardware.
#![no_std]
#![forbid(unsafe_code)]

/// A contiguous range of physical addresses: `base .. base + size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRange {
    /// First byte of the range.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl MemRange {
    /// A range of `size` bytes starting at `base`.
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// One past the last byte, or `None` if the range wraps the 64-bit address space.
    pub const fn end(&self) -> Option<u64> {
        self.base.checked_add(self.size)
    }

    /// Whether the two ranges share at least one byte (empty ranges share nothing).
    pub fn overlaps(&self, other: &MemRange) -> bool {
        if self.size == 0 || other.size == 0 {
            return false;
        }
        let self_end = self.end().unwrap_or(u64::MAX);
        let other_end = other.end().unwrap_or(u64::MAX);
        self.base < other_end && other.base < self_end
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains_range(&self, other: &MemRange) -> bool {
        match (self.end(), other.end()) {
            (Some(self_end), Some(other_end)) => other.base >= self.base && other_end <= self_end,
            _ => false,
        }
    }

    /// Whether `address` lies inside the range.
    pub fn contains(&self, address: u64) -> bool {
        address >= self.base && self.end().is_none_or(|end| address < end)
    }
}

/// Where a cell's RAM region appears in the cell's guest-physical (IPA) space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestPlacement {
    /// Guest physical address = physical address. Required for cells that own DMA-capable devices.
    Identity,
    /// The region appears at this guest physical address.
    At(u64),
}

/// One RAM region given to a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellMemory {
    /// The physical RAM the cell owns exclusively.
    pub physical: MemRange,
    /// Where the cell sees it.
    pub placement: GuestPlacement,
}

impl CellMemory {
    /// The guest physical address of the first byte of this region.
    pub const fn guest_base(&self) -> u64 {
        match self.placement {
            GuestPlacement::Identity => self.physical.base,
            GuestPlacement::At(ipa) => ipa,
        }
    }
}

/// A platform device that can be given to one cell (passthrough).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Device {
    /// Name used by cell layouts to refer to the device.
    pub name: &'static str,
    /// MMIO windows of the device. Windows smaller than a page may share a page with other devices.
    pub mmio: &'static [MemRange],
    /// Shared peripheral interrupts (GIC INTIDs, 32 and up) the device raises.
    pub interrupts: &'static [u32],
    /// The device can master DMA with physical addresses and no SMMU stands in its way: it may
    /// only go to a cell that is [`CellConfig::trusted_with_all_memory`], whose RAM is
    /// identity-mapped.
    pub dma_capable: bool,
    /// How cellvisor stops the device when its cell stops, before the cell's RAM is scrubbed,
    /// reloaded or wiped (docs/architecture.md, "Lifecycle").
    pub reset: DeviceReset,
}

/// A PCI function's address on its host bridge: bus, device (slot, 0..32) and function (0..8).
/// Its requester ID `bus << 8 | device << 3 | function` is also its SMMU StreamID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciAddress {
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, below 32.
    pub device: u8,
    /// Function number, below 8.
    pub function: u8,
}

impl PciAddress {
    /// Bus `bus`, device `device`, function `function`.
    pub const fn new(bus: u8, device: u8, function: u8) -> Self {
        Self {
            bus,
            device,
            function,
        }
    }

    /// The PCI requester ID (and SMMU StreamID): `bus << 8 | device << 3 | function`.
    pub const fn requester_id(&self) -> u32 {
        ((self.bus as u32) << 8) | (((self.device & 0x1f) as u32) << 3) | (self.function & 7) as u32
    }
}

/// A PCI function a cell may own, on the board's [`PciHost`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciFunction {
    /// Name used by cell layouts to refer to the function (like a [`Device`]'s).
    pub name: &'static str,
    /// Where the function sits on the host bridge (physical; the cell sees the same address).
    pub address: PciAddress,
    /// The window of the host's memory window that cellvisor packs this function's memory BARs
    /// into at boot (page-aligned, this function's alone). The BARs stay there: the cell's device
    /// tree says `linux,pci-probe-only`, and the cell's BAR writes other than size probes are
    /// ignored.
    pub bar_window: MemRange,
    /// The legacy interrupt pin the function uses, as its Interrupt Pin register reads (1 = INTA
    /// .. 4 = INTD; checked at boot). Its interrupt is the host's `intx` entry for this slot and pin.
    pub interrupt_pin: u8,
    /// How cellvisor stops the function when its cell stops, after its SMMU stream is blocked and
    /// before the cell's RAM is scrubbed.
    pub reset: PciReset,
}

impl PciFunction {
    /// The GIC INTID of the function's legacy interrupt on `host` (the standard swizzle: slot `s`,
    /// pin `p` uses `intx[(s + p - 1) % 4]`), or `None` for a pin outside 1..=4.
    pub const fn intx_intid(&self, host: &PciHost) -> Option<u32> {
        if self.interrupt_pin == 0 || self.interrupt_pin > 4 {
            return None;
        }
        let index = (self.address.device as usize + self.interrupt_pin as usize - 1) % 4;
        Some(host.intx[index])
    }
}

/// How a passed-through PCI function is reset when its cell stops (after Bus Master is cleared).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciReset {
    /// Function Level Reset (the function must advertise it; checked at boot).
    FunctionLevel,
    /// A virtio-pci device: write 0 to `device_status` in its common configuration structure,
    /// then read it until it reads 0 (virtio 1.2, 4.1.4.3), within a time limit.
    Virtio,
}

/// The board's PCI Express host bridge with generic ECAM configuration space
/// (`pci-host-ecam-generic`), whose functions cells may own one by one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciHost {
    /// The ECAM window of bus 0 and up (bus `n` at `base + (n << 20)`).
    pub ecam: MemRange,
    /// The host's 32-bit memory window: every function's `bar_window` lies inside it.
    pub memory_window: MemRange,
    /// GIC INTIDs of INTA, INTB, INTC and INTD of slot 0; slot `s` pin `p` (1 = INTA) uses
    /// `intx[(s + p - 1) % 4]` (the standard swizzle of the host's `interrupt-map`).
    /// Level-sensitive.
    pub intx: [u32; 4],
    /// The functions cells may own.
    pub functions: &'static [PciFunction],
    /// Whether the board's SMMU ([`Board::smmu`]) translates the host's requesters (StreamID =
    /// requester ID). Without it, every function's DMA reaches all memory.
    pub behind_smmu: bool,
}

impl PciHost {
    /// The function with this name.
    pub fn function(&self, name: &str) -> Option<&'static PciFunction> {
        self.functions.iter().find(|function| function.name == name)
    }
}

/// An Arm SMMUv3 that cellvisor owns: it is mapped into no cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Smmu {
    /// The SMMU's register frames (page 0 and page 1).
    pub registers: MemRange,
    /// The event queue's wired interrupt (GIC INTID, edge).
    pub event_intid: u32,
    /// The global error interrupt (GIC INTID, edge).
    pub gerror_intid: u32,
}

/// How a passed-through device is quiesced when its cell stops: after the reset the device
/// neither reads nor writes memory nor raises its interrupts until a driver sets it up again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceReset {
    /// A virtio-mmio transport: in each MMIO window, write 0 to the Status register (offset
    /// 0x70), then read it until it reads 0 (virtio 1.2, 2.4 and 4.2.2.1), within a time limit.
    VirtioMmio,
    /// A reset register of the device: write `value` (32 bits) at `offset` into MMIO window
    /// `window`, then, if `settled` says so, read until the device reports the reset done.
    RegisterWrite {
        /// Index into the device's `mmio` windows.
        window: usize,
        /// Offset of the reset register in that window (4-byte aligned).
        offset: u64,
        /// What is written.
        value: u32,
        /// The register that shows the reset has taken effect, if the device has one.
        settled: Option<RegisterMatch>,
    },
    /// The device has no reset cellvisor can trust: it may go on writing memory after its cell
    /// stopped. `restart`, `start` and `wipe` of its cell are refused (a guest's own reset
    /// leaves the cell off), because the cell's RAM could not be made clean.
    None,
    /// The device has no safe reset, and the board accepts the risk that it writes the cell's
    /// RAM after a restart or wipe: they go ahead, each with a WARN line naming the device.
    UnsafeAccepted,
    /// Not for board devices: the BAR window of a [`PciFunction`], which cellvisor stops through
    /// the SMMU and the function's configuration space as its [`PciReset`] says.
    PciFunction,
}

/// A 32-bit register value to wait for: `(read & mask) == value` at `offset` into the same
/// window as the reset register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterMatch {
    /// Offset of the register in the window (4-byte aligned).
    pub offset: u64,
    /// The bits compared.
    pub mask: u32,
    /// What they read once the reset has taken effect.
    pub value: u32,
}

/// What the console management prompt may do to a cell, and what the cell's PMU may count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellPolicy {
    /// `restart CELL` is allowed.
    pub may_restart: bool,
    /// `stop CELL` / `start CELL` are allowed.
    pub may_stop: bool,
    /// `wipe CELL` is allowed.
    pub may_wipe: bool,
    /// Whether the cell's PMU may count what EL2 runs for it.
    pub el2_counting: El2Counting,
}

impl CellPolicy {
    /// Every management command is allowed; the PMU counts only the guest
    /// ([`El2Counting::Prohibited`]).
    pub const ALL: CellPolicy = CellPolicy {
        may_restart: true,
        may_stop: true,
        may_wipe: true,
        el2_counting: El2Counting::Prohibited,
    };
}

/// Whether a cell's performance monitors may count events at EL2 (MDCR_EL2.HPMD/HCCD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum El2Counting {
    /// The cell's event counters and cycle counter never count at EL2, whatever its filters
    /// say: a guest cannot time cellvisor's work with its PMU. Every production cell.
    Prohibited,
    /// A deliberate, measurement-only exception: the cell's PMU counts at EL2 when its filters
    /// ask to (PMEVTYPER<n>_EL0/PMCCFILTR_EL0.NSH), so a benchmark guest can count the EL2
    /// instructions spent on its exits. Such a cell can time cellvisor; give it only to a
    /// measurement guest on a board or layout that runs nothing else worth protecting.
    AllowedForMeasurement,
}

/// One cell: an isolated guest with its own CPUs, RAM and devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellConfig {
    /// Short name, used in console prefixes and management commands.
    pub name: &'static str,
    /// Physical CPU indices (position in the platform device tree's `/cpus`), one vCPU each.
    /// vCPU `n` of the cell runs on `cpus[n]` and sees MPIDR affinity 0 = `n`.
    pub cpus: &'static [usize],
    /// RAM regions; the first one receives the kernel image, device tree and initrd.
    pub memory: &'static [CellMemory],
    /// Names of board [`Device`]s passed through to this cell.
    pub devices: &'static [&'static str],
    /// Name of the kernel image entry in the guest bundle.
    pub kernel: &'static str,
    /// Name of the initrd entry in the guest bundle, if the cell has one.
    pub initrd: Option<&'static str>,
    /// Kernel command line placed in the cell's `/chosen/bootargs`.
    pub bootargs: &'static str,
    /// What the management prompt may do to the cell.
    pub policy: CellPolicy,
    /// The board trusts this cell with all of the machine's memory: it may own a DMA-capable
    /// device that no SMMU confines ([`Device::dma_capable`], or a PCI function of a host not
    /// behind an SMMU), which can read and write any physical address, the other cells' RAM and
    /// cellvisor's included. cellvisor says so in one WARN line at boot.
    pub trusted_with_all_memory: bool,
}

/// A named set of cells that run together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Name selected with `cellvisor.layout=NAME` on the hypervisor's command line.
    pub name: &'static str,
    /// The cells; each is started at boot.
    pub cells: &'static [CellConfig],
    /// Whether cells of this layout may time-share physical CPUs, and how. `None`: static
    /// partitioning, every physical CPU runs at most one vCPU (no CPU in two cells' `cpus`).
    pub cpu_sharing: Option<CpuSharing>,
    /// The flows the channel between this layout's cells allows (docs/channel.md); everything
    /// else is refused. Empty: no cell of the layout gets a channel device.
    pub channel: &'static [Flow],
}

/// How the cells of a layout time-share the physical CPUs they have in common: vCPU `n` of each
/// cell runs on that cell's `cpus[n]`, and each shared CPU has its own run queue. The cell in
/// front (the console's focus, unless [`CpuSharing::fixed`] says otherwise) runs whenever it
/// can; every other cell is guaranteed `budget_us` of every `period_us` on each of its CPUs, and
/// gets whatever the cell in front leaves idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuSharing {
    /// The accounting period, in microseconds (e.g. 100 ms).
    pub period_us: u32,
    /// What each background vCPU is guaranteed in every period, in microseconds (e.g. 10 ms).
    /// The budgets of all background vCPUs of one CPU must leave part of the period over.
    pub budget_us: u32,
    /// The longest a vCPU runs before another runnable one of its class gets its turn, in
    /// microseconds (e.g. 5 ms).
    pub slice_us: u32,
    /// Cells whose priority does not follow the focus.
    pub fixed: &'static [FixedPriority],
}

/// A cell whose scheduling class the board fixes, whatever the console's focus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedPriority {
    /// The cell's name.
    pub cell: &'static str,
    /// Its class.
    pub class: CpuClass,
}

/// How a vCPU ranks on a time-shared physical CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuClass {
    /// Runs whenever it is runnable.
    Foreground,
    /// Runs for its guaranteed budget in every period, and when nothing in front is runnable.
    Background,
}

/// A whole board: the hardware it promises and the layouts it offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Board {
    /// Board name, printed at boot.
    pub name: &'static str,
    /// RAM reserved for cellvisor itself: its image, heap, page tables, the guest bundle and the
    /// platform device tree must all lie inside it, and no cell may use it.
    pub hypervisor_memory: MemRange,
    /// Devices that cells may own.
    pub devices: &'static [Device],
    /// The PCI Express host bridge, if the board has one whose functions cells may own.
    pub pci: Option<PciHost>,
    /// The SMMUv3 that confines the DMA of passed-through devices, if the board has one.
    pub smmu: Option<Smmu>,
    /// Cell layouts; the first is the default.
    pub layouts: &'static [Layout],
    /// What cellvisor does once every cell has stopped.
    pub when_all_cells_off: AllCellsOff,
    /// Whether a cell may boot a raw binary: a kernel without an arm64 `Image` header, loaded at
    /// the 2 MiB-aligned start of the cell's RAM and entered at its first byte. A board whose cells
    /// only ever run Linux says `false`, so that anything but an arm64 `Image` is refused at boot.
    pub raw_binaries: bool,
    /// What cellvisor does with a vCPU that faults again and again without making progress.
    pub fault_loop: FaultLoop,
    /// The phone's screen and input devices, which cellvisor owns and gives to the cell in front;
    /// `None`: the board has none (cells then see neither).
    pub display: Option<Display>,
    /// The channel between cells (an emulated virtio-vsock device in every cell that has a
    /// CID here, when the layout allows flows); `None`: the board has none.
    pub channel: Option<Channel>,
}

/// The channel between cells: every cell with a CID sees an emulated virtio-vsock device, and
/// cellvisor moves stream packets between them under the layout's [`Layout::channel`] flows
/// (docs/channel.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    /// Where every connected cell sees its virtio-mmio socket device (guest-physical, at least
    /// 0x200 bytes).
    pub cell_window: MemRange,
    /// The device's interrupt (a virtual SPI no cell owns physically).
    pub intid: u32,
    /// The cells' guest CIDs, by cell name: 3 or more, unique, below 0xFFFF_FFFF.
    pub cids: &'static [CellCid],
}

/// A cell's guest CID on the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellCid {
    /// The cell's name.
    pub cell: &'static str,
    /// Its CID.
    pub cid: u32,
}

impl Channel {
    /// The CID of cell `name`, if it is on the channel.
    pub fn cid_of(&self, name: &str) -> Option<u32> {
        self.cids
            .iter()
            .find(|entry| entry.cell == name)
            .map(|entry| entry.cid)
    }
}

/// Whether a flow holds only while one of its cells is the focused (front) one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FocusRule {
    /// Always.
    None,
    /// Only while the connecting cell (`from`) is focused.
    Source,
    /// Only while the listening cell (`to`) is focused.
    Destination,
}

/// One allowed flow: cell `from` may connect to port `port` of cell `to`; data then goes both
/// ways on the connection, under the flow's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The connecting cell's name.
    pub from: &'static str,
    /// The listening cell's name.
    pub to: &'static str,
    /// The listening port.
    pub port: u32,
    /// The largest data packet (one message) in either direction, in bytes (1 to 65536; Linux
    /// sends one write of up to 64 KiB as one packet, so this limits the writes a guest makes).
    pub max_message: u32,
    /// Messages (connection requests and data packets, both directions, all connections of the
    /// flow together) per second; bursts up to one second's worth.
    pub rate_per_second: u32,
    /// The focus rule.
    pub only_while_focused: FocusRule,
}

/// The phone's screen, keys and touch panel: cellvisor drives them itself and shows the cell in
/// front (docs/architecture.md "Display and input"). Each cell sees an emulated PL111 CLCD
/// controller whose framebuffer lies in its own RAM, and one emulated virtio-input device per
/// physical input device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Display {
    /// The registers of QEMU's fw_cfg, through whose DMA interface cellvisor configures the
    /// `ramfb` scanout (the file `etc/ramfb`). Without a `ramfb` the screen is left out.
    pub fw_cfg: MemRange,
    /// The screen's width in pixels (the cells' panel has exactly this size).
    pub width: u32,
    /// The screen's height in pixels.
    pub height: u32,
    /// Where every cell sees its emulated PL111 (guest-physical; 4 KiB).
    pub cell_display: MemRange,
    /// The virtio-mmio transports cellvisor probes for input devices (virtio device ID 18), except
    /// those a cell of the running layout owns.
    pub input_transports: VirtioMmioSlots,
    /// Where every cell sees its emulated virtio-input devices (guest-physical): the one for the
    /// `n`-th physical input device at `base + n * 0x200`, so at most `size / 0x200` of them.
    pub cell_input: MemRange,
    /// The INTID of the `n`-th emulated input device is `cell_input_intid + n` (virtual SPIs no
    /// cell owns physically).
    pub cell_input_intid: u32,
    /// The Linux key code (`KEY_*`) that brings the next cell to the front; it never reaches a
    /// cell.
    pub switch_key: u16,
    /// How long cellvisor's banner naming the cell coming to the front is shown before that
    /// cell's screen, in milliseconds (the hypervisor command line's `banner_ms=` overrides it).
    pub banner_ms: u32,
    /// The banner's colour for each cell, by name, as 0xRRGGBB; a cell not listed gets grey.
    pub colours: &'static [CellColour],
}

/// A cell's colour on cellvisor's switch banner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellColour {
    /// The cell's name.
    pub cell: &'static str,
    /// 0xRRGGBB.
    pub rgb: u32,
}

/// A row of virtio-mmio transports: `count` windows of `stride` bytes from `base`, the `n`-th
/// one's interrupt INTID `first_intid + n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmioSlots {
    /// The first transport's registers.
    pub base: u64,
    /// How many transports.
    pub count: u32,
    /// Bytes from one transport to the next (its window size).
    pub stride: u64,
    /// The first transport's SPI INTID.
    pub first_intid: u32,
}

impl VirtioMmioSlots {
    /// Transport `n`'s registers and INTID.
    pub fn slot(&self, n: u32) -> Option<(MemRange, u32)> {
        (n < self.count).then(|| {
            (
                MemRange::new(self.base + u64::from(n) * self.stride, self.stride),
                self.first_intid + n,
            )
        })
    }

    /// The whole row.
    pub fn range(&self) -> MemRange {
        MemRange::new(self.base, u64::from(self.count) * self.stride)
    }
}

impl Display {
    /// The banner colour of cell `name`.
    pub fn colour_of(&self, name: &str) -> u32 {
        self.colours
            .iter()
            .find(|colour| colour.cell == name)
            .map_or(0x606060, |colour| colour.rgb)
    }
}

/// What cellvisor does once every cell of the layout has stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllCellsOff {
    /// Power the machine off through the platform firmware (PSCI SYSTEM_OFF).
    PowerOff,
    /// Say so on the console and halt: for a board that cannot switch itself off (no PSCI
    /// firmware, as QEMU's `raspi4b` and a Raspberry Pi 4 with its stock boot firmware). Whoever
    /// runs the machine (the user, a test harness) switches it off.
    Halt,
    /// Keep running: the management prompt stays, and a cell can be started again from it.
    KeepRunning,
}

/// What cellvisor does with a vCPU caught in a fault loop: a fault it injected made the guest
/// fault again, identically, at the very exception vector it was sent to, so the guest cannot run
/// a single instruction of its handler (a raw image whose first instruction faults, with no vector
/// table, loops like this for ever).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultLoop {
    /// Stop the cell (as if it had called SYSTEM_OFF) once `after` identical faults came in a row,
    /// each at the vector the previous one was injected to, and say so on the console.
    Stop {
        /// Identical faults in a row that stop the cell (at least 2).
        after: u32,
    },
    /// Keep injecting, as the hardware would: the vCPU loops until the cell is stopped from the
    /// management prompt (its fault log stays rate-limited).
    KeepInjecting,
}

impl Board {
    /// The layout with this name.
    pub fn layout(&self, name: &str) -> Option<&'static Layout> {
        self.layouts.iter().find(|layout| layout.name == name)
    }

    /// The default layout (the first one), if the board has any.
    pub fn default_layout(&self) -> Option<&'static Layout> {
        self.layouts.first()
    }

    /// The device with this name.
    pub fn device(&self, name: &str) -> Option<&'static Device> {
        self.devices.iter().find(|device| device.name == name)
    }

    /// The PCI function with this name.
    pub fn pci_function(&self, name: &str) -> Option<&'static PciFunction> {
        self.pci.as_ref().and_then(|host| host.function(name))
    }

    /// The PCI functions `cell` owns, in its `devices` order.
    pub fn pci_functions_of<'a>(
        &'a self,
        cell: &'a CellConfig,
    ) -> impl Iterator<Item = &'static PciFunction> + 'a {
        cell.devices
            .iter()
            .filter_map(|name| self.pci_function(name))
    }

    /// Whether the board's SMMU translates the DMA of its PCI host's functions.
    pub fn pci_behind_smmu(&self) -> bool {
        self.smmu.is_some() && self.pci.as_ref().is_some_and(|host| host.behind_smmu)
    }

    /// Whether the device or PCI function `name` can DMA to all memory: a DMA-capable platform
    /// device, or a PCI function no SMMU confines. `None` if the board has no such device.
    pub fn dma_unconfined(&self, name: &str) -> Option<bool> {
        match (self.device(name), self.pci_function(name)) {
            (Some(device), _) => Some(device.dma_capable),
            (None, Some(_)) => Some(!self.pci_behind_smmu()),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_symmetric_and_ignores_empty_ranges() {
        let a = MemRange::new(0x1000, 0x1000);
        let b = MemRange::new(0x1fff, 0x10);
        let c = MemRange::new(0x2000, 0x1000);
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&a));
        assert!(!a.overlaps(&MemRange::new(0x1800, 0)));
    }

    #[test]
    fn requester_id_packs_bus_device_function() {
        assert_eq!(PciAddress::new(0, 2, 0).requester_id(), 0x10);
        assert_eq!(PciAddress::new(1, 31, 7).requester_id(), 0x1ff);
    }

    #[test]
    fn intx_swizzle_matches_qemu_virt_interrupt_map() {
        // QEMU virt's pcie node: slot s pin p raises SPI 3 + (s + p - 1) % 4, INTID 32 more.
        const fn function(device: u8, interrupt_pin: u8) -> PciFunction {
            PciFunction {
                name: "f",
                address: PciAddress::new(0, device, 0),
                bar_window: MemRange::new(0x1000_0000, 0x1000),
                interrupt_pin,
                reset: PciReset::Virtio,
            }
        }
        let host = PciHost {
            ecam: MemRange::new(0x40_1000_0000, 0x1000_0000),
            memory_window: MemRange::new(0x1000_0000, 0x2eff_0000),
            intx: [35, 36, 37, 38],
            functions: &[],
            behind_smmu: true,
        };
        let expected = [
            [35, 36, 37, 38],
            [36, 37, 38, 35],
            [37, 38, 35, 36],
            [38, 35, 36, 37],
        ];
        for slot in 0..32u8 {
            for pin in 1..=4u8 {
                assert_eq!(
                    function(slot, pin).intx_intid(&host),
                    Some(expected[usize::from(slot % 4)][usize::from(pin - 1)]),
                    "slot {slot} pin {pin}"
                );
            }
        }
        assert_eq!(function(2, 0).intx_intid(&host), None, "no pin");
        assert_eq!(function(2, 5).intx_intid(&host), None, "reserved pin");
    }

    #[test]
    fn containment_rejects_wrapping_ranges() {
        let ram = MemRange::new(0x4000_0000, 0x8000_0000);
        assert!(ram.contains_range(&MemRange::new(0x4000_0000, 0x1000)));
        assert!(!ram.contains_range(&MemRange::new(0x3fff_f000, 0x2000)));
        assert!(!ram.contains_range(&MemRange::new(u64::MAX - 1, 4)));
        assert!(ram.contains(0xbfff_ffff) && !ram.contains(0xc000_0000));
    }
}

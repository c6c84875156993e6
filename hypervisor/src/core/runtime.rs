//! The whole partition at run time: the cells built from the validated layout, which cell and
//! vCPU each physical CPU runs, and which cell owns each passthrough SPI.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::board::{Board, CpuSharing, El2Counting};
use crate::console::ratelimit::RateLimiter;
use crate::core::cell::Cell;
use crate::core::hardware::{Machine, VcpuHardware};
use crate::core::lifecycle::CellState;
use crate::dev::passthrough::{PassthroughError, PassthroughPlan, interrupt_owners};
use crate::dev::pci::PciBus;
use crate::dev::pl111::Pl111;
use crate::dev::vgic::{SpiAssignment, SpiKind, Vgic, VgicConfig, VgicConfigError};
use crate::dev::virtio::input::VirtioInput;
use crate::dev::virtio::mmio::VirtioMmio;
use crate::dev::virtio::vsock::VsockDevice;
use crate::dev::{CellPciHost, DeviceBus, EmulatedDisplay, EmulatedInput, EmulatedVsock, Windows};
use crate::mem::addr::{GuestPhysAddr, PhysAddr};
use crate::mem::range::{IpaRange, PhysRange};
use crate::mem::stage2::{Stage2, Stage2Error};
use crate::setup::bundle::{Bundle, BundleError};
use crate::setup::guest_fdt::{self, GuestPci};
use crate::setup::image::ImageError;
use crate::setup::partition::Partition;
use crate::setup::platform::{GuestGicFrames, Platform};

/// What cellvisor knows about the physical GIC when it builds the cells.
#[derive(Clone, Copy, Debug)]
pub struct GicInfo {
    /// `GICD_TYPER.ITLinesNumber` of the physical distributor.
    pub spi_lines: u32,
    /// Implemented list registers (`ICH_VTR_EL2.ListRegs` + 1).
    pub list_register_count: usize,
}

/// Why a cell could not be built or reloaded.
#[derive(Debug)]
pub enum CellError {
    /// A guest image is missing or malformed in the bundle.
    Bundle(BundleError),
    /// The kernel/initrd/DT do not fit the cell's RAM.
    Image(ImageError),
    /// The generated device tree could not be written.
    DeviceTree(guest_fdt::GuestFdtError),
    /// The stage-2 table could not be built.
    Stage2(Stage2Error),
    /// The vGIC could not be configured.
    Vgic(VgicConfigError),
    /// The cell's passthrough devices cannot be set up as the board says.
    Passthrough(PassthroughError),
    /// An address of the load plan lies outside the cell's RAM (a bug in the plan).
    OutsideRam(GuestPhysAddr),
    /// A PCI function could not be set up for the cell.
    Pci(crate::core::pci::PciSetupError),
    /// The SMMU did not let the stream of one of the cell's devices through.
    Dma {
        /// The stream (PCI requester ID).
        stream: u32,
    },
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bundle(error) => write!(f, "{error}"),
            Self::Image(error) => write!(f, "{error}"),
            Self::DeviceTree(error) => write!(f, "device tree: {error}"),
            Self::Stage2(error) => write!(f, "stage-2 table: {error}"),
            Self::Vgic(error) => write!(f, "virtual GIC: {error}"),
            Self::Passthrough(error) => write!(f, "passthrough: {error}"),
            Self::OutsideRam(address) => {
                write!(f, "load address {address} is outside the cell's RAM")
            }
            Self::Pci(error) => write!(f, "{error}"),
            Self::Dma { stream } => write!(
                f,
                "the SMMU did not take the translation of stream {stream:#x}: its device stays \
                 blocked"
            ),
        }
    }
}

/// [`Runtime::loaded_on`] of a CPU whose registers hold no vCPU.
const NO_VCPU: u32 = u32::MAX;
/// The guest-physical window of one emulated virtio-input device (a virtio-mmio transport).
const INPUT_WINDOW: u64 = 0x200;

/// A `(cell, vCPU)` in one word: the cell in the high half, the vCPU in the low one (cells and
/// vCPUs are far fewer than 65,535).
fn pack_vcpu(cell: usize, vcpu: usize) -> u32 {
    ((cell as u32 & 0xffff) << 16) | (vcpu as u32 & 0xffff)
}

fn unpack_vcpu(packed: u32) -> Option<(usize, usize)> {
    (packed != NO_VCPU).then_some(((packed >> 16) as usize, (packed & 0xffff) as usize))
}

/// The whole partition at run time.
pub struct Runtime {
    /// The board this image was built for.
    pub board: &'static Board,
    /// What the platform device tree said.
    pub platform: Platform,
    /// The cells, in layout order.
    pub cells: Vec<Cell>,
    /// Per physical CPU, the `(cell, vCPU)`s pinned to it, in layout order.
    cpu_vcpus: Vec<Vec<(usize, usize)>>,
    /// Per physical CPU, the `(cell, vCPU)` whose state its registers hold, packed by
    /// [`pack_vcpu`] ([`NO_VCPU`]: none). Fixed where a CPU runs one vCPU; the CPU's run queue
    /// changes it where it is time-shared.
    loaded: Vec<AtomicU32>,
    /// How the cells time-share CPUs, if the layout lets them.
    pub cpu_sharing: Option<CpuSharing>,
    /// The cell in front: the console's focus, which time-shared CPUs run first.
    foreground: AtomicUsize,
    /// Which cell owns each passthrough SPI: `(INTID, cell index)`, sorted.
    spi_owners: Vec<(u32, usize)>,
    /// The phone's screen and input devices, if the board has them.
    pub screen: Option<crate::core::screen::Screen>,
    /// The physical input devices' interrupts, in probe order.
    input_intids: Vec<u32>,
    /// The channel between the cells, if the layout allows flows.
    pub channel: Option<crate::core::channel::Channel>,
}

impl Runtime {
    /// Builds every cell of the validated partition: stage-2 tables, emulated devices, and loads
    /// their images. Nothing runs yet.
    pub fn build(
        board: &'static Board,
        platform: Platform,
        partition: Partition,
        bundle: Bundle<'static>,
        gic: GicInfo,
        peripherals: &crate::core::screen::Peripherals,
        machine: &mut dyn Machine,
    ) -> Result<Self, (usize, CellError)> {
        let cpu_vcpus: Vec<Vec<(usize, usize)>> = (0..platform.cpus.len())
            .map(|cpu| partition.vcpus_of_cpu(cpu).collect())
            .collect();
        let loaded = cpu_vcpus
            .iter()
            .map(|vcpus| {
                AtomicU32::new(match vcpus.as_slice() {
                    &[(cell, vcpu)] => pack_vcpu(cell, vcpu),
                    _ => NO_VCPU,
                })
            })
            .collect();
        let cpu_sharing = partition.cpu_sharing;
        let cell_count = partition.cells.len();
        let channel_plan = partition.channel.clone();
        let cell_names: Vec<&'static str> = partition.cells.iter().map(|plan| plan.name).collect();
        let mut cells = Vec::new();
        let mut passthrough_plans = Vec::new();
        for plan in &partition.cells {
            let passthrough = PassthroughPlan::for_cell(board, &partition, plan)
                .map_err(|error| (plan.index, CellError::Passthrough(error)))?;
            let nodes = passthrough
                .device_nodes(&platform)
                .map_err(|error| (plan.index, CellError::Passthrough(error)))?;
            passthrough_plans.push((passthrough, nodes));
        }
        let spi_owners = interrupt_owners(board, &partition)
            .map_err(|error| (0, CellError::Passthrough(error)))?;
        for ((index, plan), (passthrough, passthrough_nodes)) in partition
            .cells
            .into_iter()
            .enumerate()
            .zip(passthrough_plans)
        {
            let mut stage2 =
                Stage2::new(plan.vmid).map_err(|error| (index, CellError::Stage2(error)))?;
            for region in &plan.memory {
                stage2
                    .map_ram(
                        region.guest_base,
                        region.physical.base(),
                        region.physical.size(),
                    )
                    .map_err(|error| (index, CellError::Stage2(error)))?;
            }
            // Pages wholly the cell's devices' are mapped (no trap on the data path); shared
            // pages stay unmapped and are forwarded byte-exactly.
            for page in passthrough.direct_pages() {
                stage2
                    .map_device(
                        GuestPhysAddr::new(page.base),
                        PhysAddr::new(page.base),
                        page.size,
                    )
                    .map_err(|error| (index, CellError::Stage2(error)))?;
            }
            let vcpu_count = plan.vcpus.len();
            let gic_frames = platform.gic.guest_frames(vcpu_count).ok_or((
                index,
                CellError::DeviceTree(guest_fdt::GuestFdtError::NoRedistributors),
            ))?;
            if let GuestGicFrames::V2 {
                cpu_interface,
                virtual_cpu_interface,
                ..
            } = gic_frames
            {
                // The guest's GICC is the hardware virtual CPU interface: acknowledge, EOI and
                // deactivation never trap. Banked per CPU, so each vCPU reaches its own.
                stage2
                    .map_device(
                        GuestPhysAddr::new(cpu_interface.base),
                        PhysAddr::new(virtual_cpu_interface),
                        cpu_interface.size,
                    )
                    .map_err(|error| (index, CellError::Stage2(error)))?;
            }
            let uart_intid = platform.console.intid;
            let vsock = channel_plan.as_ref().and_then(|channel| {
                let &(_, cid) = channel
                    .members
                    .iter()
                    .find(|&&(member, _)| member == index)?;
                Some((channel, cid))
            });
            let display = board.display.as_ref().filter(|_| peripherals.screen);
            let inputs: Vec<(IpaRange, u32)> = board
                .display
                .as_ref()
                .map(|display| {
                    (0..peripherals.inputs.len())
                        .map_while(|n| {
                            let offset = n as u64 * INPUT_WINDOW;
                            (offset + INPUT_WINDOW <= display.cell_input.size).then(|| {
                                (
                                    IpaRange::new(
                                        GuestPhysAddr::new(display.cell_input.base + offset),
                                        INPUT_WINDOW,
                                    ),
                                    display.cell_input_intid + n as u32,
                                )
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let vgic_config = VgicConfig {
                vcpu_count,
                owned_spis: core::iter::once(SpiAssignment {
                    intid: uart_intid,
                    kind: SpiKind::Virtual,
                })
                .chain(inputs.iter().map(|&(_, intid)| SpiAssignment {
                    intid,
                    kind: SpiKind::Virtual,
                }))
                .chain(vsock.map(|(channel, _)| SpiAssignment {
                    intid: channel.intid,
                    kind: SpiKind::Virtual,
                }))
                .chain(passthrough.interrupts().iter().map(|&intid| SpiAssignment {
                    intid,
                    kind: SpiKind::Hardware,
                }))
                .collect(),
                spi_lines: gic.spi_lines,
                list_register_count: gic.list_register_count,
            };
            let vgic = Vgic::new(&vgic_config).map_err(|error| (index, CellError::Vgic(error)))?;
            // The emulated devices appear where the platform has the real ones.
            let windows = Windows {
                uart: PhysRange::from_board(platform.console.registers).identity_ipa(),
                distributor: PhysRange::from_board(match gic_frames {
                    GuestGicFrames::V3 { distributor, .. }
                    | GuestGicFrames::V2 { distributor, .. } => distributor,
                })
                .identity_ipa(),
                redistributors: match gic_frames {
                    GuestGicFrames::V3 { redistributors, .. } => {
                        Some(PhysRange::from_board(redistributors).identity_ipa())
                    }
                    GuestGicFrames::V2 { .. } => None,
                },
            };
            let mut devices = DeviceBus::new(windows, uart_intid, vgic, passthrough);
            if let Some(display) = display.or(board.display.as_ref().filter(|_| !inputs.is_empty()))
            {
                devices = devices.with_display(
                    EmulatedDisplay {
                        window: IpaRange::new(
                            GuestPhysAddr::new(display.cell_display.base),
                            display.cell_display.size,
                        ),
                        width: display.width,
                        height: display.height,
                        pl111: spin::Mutex::new(Pl111::new(display.width, display.height)),
                    },
                    inputs
                        .iter()
                        .zip(&peripherals.inputs)
                        .map(|(&(window, intid), physical)| EmulatedInput {
                            window,
                            intid,
                            device: spin::Mutex::new(VirtioMmio::new(VirtioInput::new(
                                physical.config.clone(),
                            ))),
                            broken: RateLimiter::new(),
                        })
                        .collect(),
                );
            }
            if let Some((channel, cid)) = vsock {
                devices = devices.with_vsock(EmulatedVsock {
                    window: IpaRange::new(
                        GuestPhysAddr::new(channel.window.base),
                        crate::setup::partition::CHANNEL_WINDOW,
                    ),
                    intid: channel.intid,
                    device: crate::arch::RelaxedMutex::new(VirtioMmio::new(VsockDevice::new(
                        u64::from(cid),
                    ))),
                    cells: channel
                        .members
                        .iter()
                        .filter_map(|&(member, cid)| {
                            cell_names.get(member).map(|&name| (name, cid))
                        })
                        .collect(),
                    broken: RateLimiter::new(),
                });
            }
            let guest_pci = GuestPci::for_cell(board, &plan);
            let functions: Vec<_> = board.pci_functions_of(plan.config).collect();
            if let (Some(host), Some(view)) = (&board.pci, &guest_pci) {
                let prepared = crate::core::pci::prepare(host, &functions, machine)
                    .map_err(|error| (index, CellError::Pci(error)))?;
                let bus = PciBus::new(prepared.clone()).map_err(|error| {
                    (
                        index,
                        CellError::Pci(crate::core::pci::PciSetupError::Pci {
                            function: plan.name,
                            error,
                        }),
                    )
                })?;
                devices = devices.with_pci(CellPciHost {
                    window: PhysRange::from_board(view.ecam).identity_ipa(),
                    physical_ecam: host.ecam.base,
                    bus: spin::Mutex::new(bus),
                    functions: prepared
                        .into_iter()
                        .zip(functions.iter().map(|function| function.reset))
                        .collect(),
                });
            }
            for name in plan.config.devices {
                if board.dma_unconfined(name) == Some(true) {
                    log::warn!(
                        "cell {}: device {name} can DMA to all memory (no SMMU confines it): the \
                         board trusts this cell with all memory",
                        plan.name
                    );
                }
            }
            if plan.config.policy.el2_counting == El2Counting::AllowedForMeasurement {
                log::info!(
                    "cell {}: its PMU may count at EL2 (the board's measurement-only \
                     el2_counting policy): it can time cellvisor",
                    plan.name
                );
            }
            // Streams of the cell's PCI functions the SMMU translates (StreamID = requester ID).
            let dma_streams = if board.pci_behind_smmu() {
                functions
                    .iter()
                    .map(|function| function.address.requester_id())
                    .collect()
            } else {
                Vec::new()
            };
            let cell = Cell::new(
                plan,
                bundle.clone(),
                stage2,
                devices,
                passthrough_nodes,
                guest_pci,
                dma_streams,
            );
            cell.load(&platform, machine)
                .map_err(|error| (index, error))?;
            cell.mark_started(machine.counter().0);
            cells.push(cell);
        }
        Ok(Self {
            board,
            platform,
            cells,
            cpu_vcpus,
            loaded,
            cpu_sharing,
            foreground: AtomicUsize::new(0),
            spi_owners,
            screen: board
                .display
                .as_ref()
                .map(|display| crate::core::screen::Screen::new(display, peripherals, cell_count)),
            input_intids: peripherals.inputs.iter().map(|input| input.intid).collect(),
            channel: channel_plan.as_ref().map(|plan| {
                let channel = crate::core::channel::Channel::new(plan, &cell_names);
                // The first cell starts in front.
                channel.set_focus(0);
                channel
            }),
        })
    }

    /// The cell and vCPU that physical CPU `cpu` runs, where it runs exactly one (a CPU that is
    /// time-shared has none: see [`Runtime::loaded_on`]).
    pub fn owner_of_cpu(&self, cpu: usize) -> Option<(usize, usize)> {
        match self.cpu_vcpus.get(cpu)?.as_slice() {
            &[only] => Some(only),
            _ => None,
        }
    }

    /// Every cell and vCPU pinned to physical CPU `cpu`, in layout order.
    pub fn vcpus_of_cpu(&self, cpu: usize) -> &[(usize, usize)] {
        self.cpu_vcpus.get(cpu).map_or(&[], Vec::as_slice)
    }

    /// Whether physical CPU `cpu` is time-shared between vCPUs of several cells.
    pub fn is_time_shared(&self, cpu: usize) -> bool {
        self.vcpus_of_cpu(cpu).len() > 1
    }

    /// The cell and vCPU whose state physical CPU `cpu`'s registers hold now (its timers raise
    /// their interrupts for it), if any.
    pub fn loaded_on(&self, cpu: usize) -> Option<(usize, usize)> {
        unpack_vcpu(self.loaded.get(cpu)?.load(Ordering::Acquire))
    }

    /// Records which vCPU physical CPU `cpu`'s registers hold (the time-sharing run loop).
    pub fn set_loaded(&self, cpu: usize, vcpu: Option<(usize, usize)>) {
        if let Some(slot) = self.loaded.get(cpu) {
            slot.store(
                vcpu.map_or(NO_VCPU, |(cell, vcpu)| pack_vcpu(cell, vcpu)),
                Ordering::Release,
            );
        }
    }

    /// The cell in front (the console's focus).
    pub fn foreground(&self) -> usize {
        self.foreground.load(Ordering::Acquire)
    }

    /// Brings `cell` to the front: the time-shared CPUs run its vCPUs first from their next
    /// decision on, which each makes at once (they are kicked); the screen shows cellvisor's
    /// banner for it and then its frame, and the input devices' events go to it.
    pub fn set_foreground<H: VcpuHardware + ?Sized>(&self, cell: usize, hardware: &mut H) {
        if cell >= self.cells.len() {
            return;
        }
        let old = self.foreground.swap(cell, Ordering::AcqRel);
        if old == cell {
            return;
        }
        if let Some(screen) = &self.screen {
            screen.release_keys(&self.cells, old, hardware);
            screen.bring_to_front(&self.cells, cell, hardware);
        }
        if let Some(channel) = &self.channel {
            channel.set_focus(cell);
        }
        for cpu in 0..self.cpu_vcpus.len() {
            if self.is_time_shared(cpu) {
                hardware.kick(cpu);
            }
        }
    }

    /// Which physical input device raises `intid`, if one does.
    pub fn input_device_of(&self, intid: u32) -> Option<usize> {
        self.input_intids.iter().position(|&owned| owned == intid)
    }

    /// The cell that owns passthrough SPI `intid`, if any.
    pub fn owner_of_spi(&self, intid: u32) -> Option<&Cell> {
        let found = self
            .spi_owners
            .binary_search_by_key(&intid, |&(owned, _)| owned)
            .ok()?;
        let &(_, cell) = self.spi_owners.get(found)?;
        self.cells.get(cell)
    }

    /// Whether every cell is off.
    pub fn all_cells_off(&self) -> bool {
        self.cells.iter().all(|cell| cell.state() == CellState::Off)
    }
}

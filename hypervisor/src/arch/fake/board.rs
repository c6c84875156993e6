//! [`FakeBoard`]: the fake machine its CPUs share (RAM, GIC, device registers) and the effect log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;
use std::vec::Vec;

use crate::board::MemRange;
use crate::core::inject::Injection;
use crate::dev::mmio::AccessWidth;
use crate::mem::addr::PhysAddr;

use super::WAIT_LIMIT;
use super::cpu::FakeCpu;
use super::gic::{FakeGic, Spi};
use super::ram::FakeRam;

/// Who deactivated a physical interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deactivator {
    /// The hypervisor on the interrupt's CPU (`VcpuHardware::deactivate`, ICC_DIR_EL1).
    Hypervisor,
    /// The hypervisor through the distributor (`Machine::deactivate_interrupt`).
    Distributor,
    /// The guest's deactivation of the hardware-linked virtual interrupt.
    Guest,
}

/// One effect of the core on the fake hardware.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `Machine::write_memory`.
    MemoryWritten {
        /// Where.
        address: PhysAddr,
        /// How many bytes.
        length: u64,
    },
    /// `Machine::zero_memory`.
    MemoryZeroed {
        /// Where.
        address: PhysAddr,
        /// How many bytes.
        length: u64,
    },
    /// `Machine::clean_invalidate_memory`.
    MemoryCleaned {
        /// Where.
        address: PhysAddr,
        /// How many bytes.
        length: u64,
    },
    /// `Machine::count_nonzero`.
    MemoryVerified {
        /// Where.
        address: PhysAddr,
        /// How many bytes.
        length: u64,
        /// The answer.
        nonzero: u64,
    },
    /// `Machine::spi_set_enabled`.
    SpiEnabled {
        /// The SPI.
        intid: u32,
        /// Enabled or disabled.
        enabled: bool,
    },
    /// `Machine::spi_set_priority`.
    SpiPriority {
        /// The SPI.
        intid: u32,
        /// Its priority.
        priority: u8,
    },
    /// `Machine::spi_set_edge_triggered`.
    SpiTrigger {
        /// The SPI.
        intid: u32,
        /// Edge-triggered.
        edge: bool,
    },
    /// `Machine::spi_route`.
    SpiRouted {
        /// The SPI.
        intid: u32,
        /// The physical CPU.
        cpu: usize,
    },
    /// `Machine::device_read`.
    DeviceRead {
        /// Where.
        address: PhysAddr,
        /// How wide.
        width: AccessWidth,
    },
    /// `Machine::device_write`.
    DeviceWritten {
        /// Where.
        address: PhysAddr,
        /// How wide.
        width: AccessWidth,
        /// What.
        value: u64,
    },
    /// `Machine::dma_allow`.
    DmaAllowed {
        /// The stream.
        stream: u32,
        /// The cell's VMID.
        vmid: u16,
    },
    /// `Machine::dma_block`.
    DmaBlocked {
        /// The stream.
        stream: u32,
    },
    /// `VcpuHardware::prepare`.
    Prepared {
        /// The cell's index.
        cell: usize,
        /// The vCPU.
        vcpu: usize,
    },
    /// `VcpuHardware::enter`: the guest runs (what it saw is in [`FakeCpu::entries`]).
    Entered,
    /// `VcpuHardware::quiesce`: the vCPU left its guest for good.
    Quiesced,
    /// `VcpuHardware::save_vcpu`: the loaded vCPU's state was saved (the CPU holds none).
    Saved,
    /// `VcpuHardware::restore_vcpu`: `vcpu` of `cell` is loaded again.
    Restored {
        /// The cell's index.
        cell: usize,
        /// The vCPU.
        vcpu: usize,
    },
    /// `VcpuHardware::set_slice_timer`.
    SliceTimer(Option<u64>),
    /// The screen's banner timer was armed (`Some(deadline)`) or disarmed.
    ScreenTimer(Option<u64>),
    /// The screen's scanout was pointed at a frame.
    Scanout(crate::core::hardware::ScanoutFrame),
    /// `VcpuHardware::write_injection`.
    Injected(Injection),
    /// A kick to CPU `to` that [`FakeBoard::lose_kicks_to`] lost.
    KickLost {
        /// The CPU it was sent to.
        to: usize,
    },
    /// `VcpuHardware::inject_serror` with this syndrome.
    VirtualSError {
        /// ESR for the guest.
        esr: u64,
    },
    /// `VcpuHardware::acknowledge_interrupt` returned `intid`.
    Acknowledged {
        /// The INTID.
        intid: u32,
    },
    /// A physical interrupt was deactivated.
    Deactivated {
        /// The INTID.
        intid: u32,
        /// Whose (for SGIs and PPIs).
        cpu: usize,
        /// By whom.
        by: Deactivator,
    },
    /// `VcpuHardware::wait_for_interrupt`.
    WaitedForInterrupt,
    /// `VcpuHardware::console_receive` read this many bytes.
    ConsoleReceived {
        /// How many.
        bytes: usize,
    },
    /// `VcpuHardware::kick` of another CPU.
    Kick {
        /// The kicked CPU.
        to: usize,
    },
    /// `VcpuHardware::sync_guest_memory`.
    GuestMemorySynced {
        /// The cell's index.
        cell: usize,
    },
}

/// An [`Event`] and the CPU whose fake caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The physical CPU.
    pub cpu: usize,
    /// The effect.
    pub event: Event,
}

/// The fake machine's state, behind [`FakeBoard`]'s lock.
pub(super) struct State {
    pub(super) ram: FakeRam,
    pub(super) gic: FakeGic,
    pub(super) events: Vec<Record>,
    /// Per CPU: inside `enter` (its guest runs).
    pub(super) running: Vec<bool>,
    pub(super) device_registers: BTreeMap<u64, u64>,
    /// Per CPU: how many of the next kicks to it are lost on the way.
    pub(super) lost_kicks: Vec<u32>,
    /// Device register addresses whose accesses end in an external abort.
    pub(super) aborting_devices: BTreeSet<u64>,
    /// Device register addresses that ignore writes (a device stuck out of reset).
    pub(super) stuck_devices: BTreeSet<u64>,
    /// DMA faults the fake SMMU has recorded, for `VcpuHardware::dma_faults`.
    pub(super) dma_faults: alloc::vec::Vec<crate::core::hardware::DmaFault>,
    /// A PCI host's ECAM (bus 0 at this address, 256 buses) and the functions on it.
    pub(super) ecam: Option<(u64, crate::dev::pci::tests::fake::FakeEcam)>,
    /// Per (CPU, virtual INTID): how often that CPU's guest completed it.
    pub(super) completed: BTreeMap<(usize, u32), u32>,
    /// Whether the fake screen takes scanouts.
    pub(super) screen: bool,
    /// Per physical input device, the events it has for `VcpuHardware::input_events`.
    pub(super) input_events: Vec<Vec<crate::core::hardware::InputEvent>>,
}

/// What the CPUs of one [`FakeBoard`] share.
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) changed: Condvar,
    pub(super) counter: AtomicU64,
}

/// The machine the fake CPUs share: RAM, the physical GIC, device registers, the event log.
#[derive(Clone)]
pub struct FakeBoard {
    pub(super) shared: Arc<Shared>,
}

impl FakeBoard {
    /// A machine with `cpu_count` CPUs whose RAM exists only in `ram` (the cells' ranges).
    pub fn new(cpu_count: usize, ram: Vec<MemRange>) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    ram: FakeRam::new(ram),
                    gic: FakeGic::new(cpu_count),
                    events: Vec::new(),
                    running: vec![false; cpu_count],
                    device_registers: BTreeMap::new(),
                    lost_kicks: vec![0; cpu_count],
                    aborting_devices: BTreeSet::new(),
                    stuck_devices: BTreeSet::new(),
                    dma_faults: alloc::vec::Vec::new(),
                    ecam: None,
                    completed: BTreeMap::new(),
                    screen: true,
                    input_events: Vec::new(),
                }),
                changed: Condvar::new(),
                counter: AtomicU64::new(0),
            }),
        }
    }

    /// Fake CPU `index` of this machine.
    pub fn cpu(&self, index: usize) -> FakeCpu {
        assert!(index < self.lock().running.len(), "no CPU {index}");
        FakeCpu::new(index, self.clone())
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the state and wakes every waiting CPU.
    pub(super) fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let result = change(&mut self.lock());
        self.shared.changed.notify_all();
        result
    }

    /// Blocks until `ready` holds; panics after [`WAIT_LIMIT`], naming `what` was awaited.
    pub(super) fn wait_until(&self, what: &str, mut ready: impl FnMut(&State) -> bool) {
        let deadline = Instant::now() + WAIT_LIMIT;
        let mut state = self.lock();
        while !ready(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "fake: waited {WAIT_LIMIT:?} for {what}");
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    pub(super) fn record(&self, cpu: usize, event: Event) {
        self.update(|state| state.events.push(Record { cpu, event }));
    }

    /// Every effect so far, in order.
    pub fn events(&self) -> Vec<Record> {
        self.lock().events.clone()
    }

    /// Forgets the effects so far (e.g. those of building the runtime).
    pub fn clear_events(&self) {
        self.lock().events.clear();
    }

    /// Queues `events` on fake physical input device `device` (its interrupt is raised separately).
    pub fn queue_input(&self, device: usize, events: &[crate::core::hardware::InputEvent]) {
        let mut state = self.lock();
        if state.input_events.len() <= device {
            state.input_events.resize(device + 1, Vec::new());
        }
        if let Some(queue) = state.input_events.get_mut(device) {
            queue.extend_from_slice(events);
        }
    }

    /// Makes the fake screen refuse (`false`) or take scanouts.
    pub fn set_screen(&self, takes: bool) {
        self.lock().screen = takes;
    }

    /// Reads fake RAM.
    pub fn read_memory(&self, address: PhysAddr, length: u64) -> Vec<u8> {
        self.lock().ram.read(address, length)
    }

    /// Writes fake RAM as a guest's store would (not an effect of the core, so not recorded).
    pub fn guest_writes_memory(&self, address: PhysAddr, bytes: &[u8]) {
        self.lock().ram.write(address, bytes);
    }

    /// Counts the non-zero bytes of fake RAM in a range.
    pub fn nonzero_bytes(&self, address: PhysAddr, length: u64) -> u64 {
        self.lock().ram.count_nonzero(address, length)
    }

    /// SPI `intid` as the core configured it.
    pub fn spi(&self, intid: u32) -> Spi {
        self.lock().gic.spi(intid)
    }

    /// Whether interrupt `intid` (for SGIs/PPIs: CPU `cpu`'s) is active at the physical GIC.
    pub fn is_active(&self, cpu: usize, intid: u32) -> bool {
        self.lock().gic.is_active(cpu, intid)
    }

    /// The interrupt CPU `cpu` would be signalled now.
    pub fn highest_pending(&self, cpu: usize) -> Option<u32> {
        self.lock().gic.highest_pending(cpu)
    }

    /// A device raises physical interrupt `intid` (an SGI/PPI of `cpu`, or an SPI) as an edge.
    pub fn raise(&self, cpu: usize, intid: u32) {
        self.update(|state| state.gic.raise(cpu, intid));
    }

    /// Loses the next `count` kicks sent to `cpu` (as if the SGI never arrived).
    pub fn lose_kicks_to(&self, cpu: usize, count: u32) {
        self.lock().lost_kicks[cpu] = count;
    }

    /// Whether the next kick to `cpu` is lost (and counts it).
    pub(super) fn kick_is_lost(&self, cpu: usize) -> bool {
        let mut state = self.lock();
        match state.lost_kicks.get_mut(cpu) {
            Some(lost) if *lost > 0 => {
                *lost -= 1;
                true
            }
            _ => false,
        }
    }

    /// A level-sensitive source (a timer of `cpu`, a device) drives the line of `intid`.
    pub fn set_line(&self, cpu: usize, intid: u32, asserted: bool) {
        self.update(|state| state.gic.set_line(cpu, intid, asserted));
    }

    /// Whether interrupt `intid` (for SGIs/PPIs: CPU `cpu`'s) is pending at the physical GIC.
    pub fn is_pending(&self, cpu: usize, intid: u32) -> bool {
        self.lock().gic.is_pending(cpu, intid)
    }

    /// Makes every access to the device register at `address` end in an external abort (a
    /// clock-gated block).
    /// Puts QEMU virt's two virtio PCI functions (virtio-blk at 00:02.0, virtio-net at 00:03.0,
    /// as QEMU lays out their configuration space) on an ECAM whose bus 0 is at `base`.
    pub fn install_virtio_pci(&self, base: u64) {
        use crate::dev::pci::Bdf;
        use crate::dev::pci::tests::fake::{FakeEcam, virtio};
        let (Some(blk), Some(net)) = (Bdf::new(0, 2, 0), Bdf::new(0, 3, 0)) else {
            return;
        };
        let ecam = FakeEcam::new()
            .with(blk, virtio(0x1042, 0x01_0000))
            .with(net, virtio(0x1041, 0x02_0000));
        self.lock().ecam = Some((base, ecam));
    }

    pub fn make_device_abort(&self, address: PhysAddr) {
        self.lock().aborting_devices.insert(address.raw());
    }

    /// How often the guest on CPU `cpu` completed virtual interrupt `intid` so far.
    pub fn completions(&self, cpu: usize, intid: u32) -> u32 {
        self.lock()
            .completed
            .get(&(cpu, intid))
            .copied()
            .unwrap_or(0)
    }

    /// Sets the value a passthrough device register reads as.
    pub fn set_device_register(&self, address: PhysAddr, value: u64) {
        self.lock().device_registers.insert(address.raw(), value);
    }

    /// Makes the device register at `address` read `value` for ever, ignoring writes (a device
    /// whose reset never takes effect).
    pub fn stick_device_register(&self, address: PhysAddr, value: u64) {
        let mut state = self.lock();
        state.device_registers.insert(address.raw(), value);
        state.stuck_devices.insert(address.raw());
    }

    /// Lets the device register at `address` take writes again.
    pub fn unstick_device_register(&self, address: PhysAddr) {
        self.lock().stuck_devices.remove(&address.raw());
    }
}

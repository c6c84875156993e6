//! The fake arch for host tests: [`FakeCpu`] implements [`Machine`] and [`VcpuHardware`] in plain
//! Rust, so the real run loop (`core::run::step`) runs on the host through scripted exits.
//!
//! In the spirit of Hafnium's `src/arch/fake`: the CPUs of one [`FakeBoard`] share fake RAM
//! ([`ram::FakeRam`]) and a fake physical GIC ([`gic::FakeGic`]); each CPU has fake list
//! registers ([`lists::FakeListRegisters`]), a script of guest exits ([`script::GuestExit`]) that
//! `enter` plays one by one, and fake EL1 registers. Every effect the core has on the hardware
//! (kicks, acknowledges and deactivations, SPI configuration, injected exceptions, memory writes
//! and scrubs, entries into the guest) is recorded, in order, so tests assert on effects.
//!
//! The fake keeps its own representations (decoded list registers, sets of INTIDs, sparse pages)
//! and panics on what real hardware would silently get wrong: a list register value with bits
//! outside its fields, deactivating an inactive interrupt, memory outside the cells' RAM.
//!
//! Compiled only for tests (`cfg(test)` in `arch/mod.rs`): it is never part of an image. CPUs of
//! one board may run on separate threads; a CPU that waits for an interrupt blocks until another
//! thread raises one, and panics after [`WAIT_LIMIT`] so a test that would hang fails instead.
#![forbid(unsafe_code)]

pub mod gic;
pub mod lists;
pub mod ram;
pub mod script;

use std::boxed::Box;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use std::vec::Vec;

use crate::board::MemRange;
use crate::core::cell::Cell;
use crate::core::exit::RunningVcpu;
use crate::core::fast::{self, Fast};
use crate::core::hardware::{ExitKind, GuestRegs, Machine, Syndrome, VcpuHardware};
use crate::core::inject::Injection;
use crate::core::runtime::GicInfo;
use crate::dev::mmio::AccessWidth;
use crate::dev::vgic::ListRegisters;
use crate::mem::addr::PhysAddr;
use gic::{FakeGic, KICK_SGI, Spi};
use lists::{EntryState, FakeListRegisters, LIST_REGISTER_COUNT, ListEntry};
use ram::FakeRam;
use script::{GuestAction, GuestExit, Trap};

/// How long a fake CPU waits for an interrupt (or for another CPU) before the test fails.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);
/// Frequency of the fake system counter (QEMU virt's 62.5 MHz).
pub const COUNTER_FREQUENCY: u64 = 62_500_000;
/// Ticks the fake system counter advances per reading.
const TICKS_PER_READING: u64 = 1_000;
/// SCTLR_EL1 after `prepare`: RES1 bits only, as the aarch64 glue resets it.
pub const SCTLR_EL1_RESET: u64 = 0x30D0_0800;

/// What the core's `Runtime::build` is told about the fake GIC.
pub const GIC_INFO: GicInfo = GicInfo {
    spi_lines: gic::IT_LINES_NUMBER,
    list_register_count: LIST_REGISTER_COUNT,
};

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
    /// `VcpuHardware::write_injection`.
    Injected(Injection),
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

/// What the guest saw at one entry: its registers and the list registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The registers `enter` was given.
    pub regs: GuestRegs,
    /// The list registers holding something.
    pub lists: Vec<ListEntry>,
    /// ICH_HCR_EL2.
    pub hcr: u64,
}

/// The fake EL1 registers of the guest running on a fake CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct El1 {
    /// VBAR_EL1.
    pub vbar: u64,
    /// SCTLR_EL1.
    pub sctlr: u64,
    /// ESR_EL1.
    pub esr: u64,
    /// FAR_EL1.
    pub far: u64,
    /// ELR_EL1.
    pub elr: u64,
    /// SPSR_EL1.
    pub spsr: u64,
}

struct State {
    ram: FakeRam,
    gic: FakeGic,
    events: Vec<Record>,
    /// Per CPU: inside `enter` (its guest runs).
    running: Vec<bool>,
    device_registers: BTreeMap<u64, u64>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    counter: AtomicU64,
}

/// The machine the fake CPUs share: RAM, the physical GIC, device registers, the event log.
#[derive(Clone)]
pub struct FakeBoard {
    shared: Arc<Shared>,
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
                }),
                changed: Condvar::new(),
                counter: AtomicU64::new(0),
            }),
        }
    }

    /// Fake CPU `index` of this machine.
    pub fn cpu(&self, index: usize) -> FakeCpu {
        assert!(index < self.lock().running.len(), "no CPU {index}");
        FakeCpu {
            index,
            board: self.clone(),
            lists: FakeListRegisters::default(),
            script: VecDeque::new(),
            entries: Vec::new(),
            syndrome: Syndrome::default(),
            el1: El1::default(),
            exit_latency: Duration::ZERO,
            arrivals: VecDeque::new(),
            on_scrub: None,
            deferred: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the state and wakes every waiting CPU.
    fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let result = change(&mut self.lock());
        self.shared.changed.notify_all();
        result
    }

    /// Blocks until `ready` holds; panics after [`WAIT_LIMIT`], naming `what` was awaited.
    fn wait_until(&self, what: &str, mut ready: impl FnMut(&State) -> bool) {
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

    fn record(&self, cpu: usize, event: Event) {
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

    /// A device raises physical interrupt `intid` (an SGI/PPI of `cpu`, or an SPI).
    pub fn raise(&self, cpu: usize, intid: u32) {
        self.update(|state| state.gic.raise(cpu, intid));
    }

    /// Sets the value a passthrough device register reads as.
    pub fn set_device_register(&self, address: PhysAddr, value: u64) {
        self.lock().device_registers.insert(address.raw(), value);
    }
}

/// One fake physical CPU.
pub struct FakeCpu {
    index: usize,
    board: FakeBoard,
    lists: FakeListRegisters,
    script: VecDeque<GuestExit>,
    entries: Vec<Entry>,
    syndrome: Syndrome,
    el1: El1,
    exit_latency: Duration,
    arrivals: VecDeque<u32>,
    on_scrub: Option<Box<dyn FnOnce() + Send>>,
    /// An interrupt the fast path acknowledged and handed back to the run loop.
    deferred: Option<u32>,
}

impl FakeCpu {
    /// Appends exits to the script `enter` plays. Once it is used up, the guest spins until a
    /// physical interrupt arrives.
    pub fn script(&mut self, exits: impl IntoIterator<Item = GuestExit>) {
        self.script.extend(exits);
    }

    /// What the guest saw at each entry so far.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// This CPU's effects so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.board
            .events()
            .into_iter()
            .filter(|record| record.cpu == self.index)
            .map(|record| record.event)
            .collect()
    }

    /// The CPUs this one kicked, in order.
    pub fn kicks(&self) -> Vec<usize> {
        self.events()
            .into_iter()
            .filter_map(|event| match event {
                Event::Kick { to } => Some(to),
                _ => None,
            })
            .collect()
    }

    /// The exceptions injected on this CPU, in order.
    pub fn injections(&self) -> Vec<Injection> {
        self.events()
            .into_iter()
            .filter_map(|event| match event {
                Event::Injected(injection) => Some(injection),
                _ => None,
            })
            .collect()
    }

    /// The list registers.
    pub fn lists(&self) -> &FakeListRegisters {
        &self.lists
    }

    /// The guest's EL1 registers.
    pub fn el1(&self) -> El1 {
        self.el1
    }

    /// `intid` arrives (is raised on this CPU) the next time it waits with nothing pending.
    pub fn arrive_while_waiting(&mut self, intid: u32) {
        self.arrivals.push_back(intid);
    }

    /// Makes every exit take `latency` to reach EL2 (a slow guest, for tests of waiting).
    pub fn set_exit_latency(&mut self, latency: Duration) {
        self.exit_latency = latency;
    }

    /// Runs `hook` when this CPU first zeroes memory (e.g. another CPU's request that arrives in
    /// the middle of a scrub).
    pub fn on_scrub(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.on_scrub = Some(Box::new(hook));
    }

    fn record(&self, event: Event) {
        self.board.record(self.index, event);
    }

    fn wait_for_pending(&self, what: &str) {
        let cpu = self.index;
        self.board
            .wait_until(what, |state| state.gic.highest_pending(cpu).is_some());
    }

    fn set_running(&self, running: bool) {
        let cpu = self.index;
        self.board.update(|state| state.running[cpu] = running);
    }

    /// Carries out what the guest does before a scripted exit.
    fn act(&mut self, action: GuestAction, regs: &mut GuestRegs) {
        match action {
            GuestAction::SetRegister { n, value } => regs.set(n, value),
            GuestAction::SetVbar(vbar) => self.el1.vbar = vbar,
            GuestAction::TakeVirtual(intid) => {
                let entry = self.guest_entry(intid);
                assert_eq!(
                    entry.state,
                    EntryState::Pending,
                    "the guest acknowledges INTID {intid}, which is not pending"
                );
                entry.state = EntryState::Active;
            }
            GuestAction::CompleteVirtual(intid) => {
                let entry = self.guest_entry(intid);
                entry.state = match entry.state {
                    EntryState::Active => EntryState::Invalid,
                    EntryState::PendingActive => EntryState::Pending,
                    state => panic!("the guest deactivates INTID {intid} in state {state:?}"),
                };
                // With EOI maintenance requested the CPU would take a maintenance interrupt;
                // the entry is then empty either way.
                entry.eoi_maintenance = false;
                if let Some(physical) = entry.physical_intid {
                    let cpu = self.index;
                    self.board
                        .update(|state| state.gic.deactivate(cpu, physical));
                    self.record(Event::Deactivated {
                        intid: physical,
                        cpu,
                        by: Deactivator::Guest,
                    });
                }
            }
            GuestAction::RaisePhysical(intid) => self.board.raise(self.index, intid),
            GuestAction::AwaitGuestOn(cpu) => self
                .board
                .wait_until(&format!("CPU {cpu} to run its guest"), |state| {
                    state.running.get(cpu).copied().unwrap_or(false)
                }),
        }
    }

    fn guest_entry(&mut self, intid: u32) -> &mut ListEntry {
        let index = self.index;
        self.lists.entry_mut(intid).unwrap_or_else(|| {
            panic!("CPU {index}: no list register holds INTID {intid} for the guest")
        })
    }

    /// Plays the next exit of the script.
    fn run_guest(&mut self, regs: &mut GuestRegs) -> ExitKind {
        // A pending physical interrupt takes the CPU back to EL2 at once (HCR_EL2.IMO).
        if self.board.highest_pending(self.index).is_some() {
            return ExitKind::Irq;
        }
        let Some(exit) = self.script.pop_front() else {
            self.wait_for_pending("an interrupt: the script is used up and the guest spins");
            return ExitKind::Irq;
        };
        let pc = regs.elr;
        for action in exit.actions {
            self.act(action, regs);
        }
        regs.elr = pc;
        match exit.trap {
            Trap::Synchronous { syndrome, past } => {
                if past {
                    regs.elr = pc.wrapping_add(4);
                }
                self.syndrome = syndrome;
                ExitKind::Synchronous
            }
            Trap::Interrupt => {
                self.wait_for_pending("the interrupt the script waits for");
                ExitKind::Irq
            }
        }
    }
}

impl Machine for FakeCpu {
    fn write_memory(&mut self, address: PhysAddr, bytes: &[u8]) {
        self.board.lock().ram.write(address, bytes);
        self.record(Event::MemoryWritten {
            address,
            length: bytes.len() as u64,
        });
    }

    fn zero_memory(&mut self, address: PhysAddr, length: u64) {
        if let Some(hook) = self.on_scrub.take() {
            hook();
        }
        self.board.lock().ram.zero(address, length);
        self.record(Event::MemoryZeroed { address, length });
    }

    fn spi_set_enabled(&mut self, intid: u32, enabled: bool) {
        self.board
            .update(|state| state.gic.spi_mut(intid).enabled = enabled);
        self.record(Event::SpiEnabled { intid, enabled });
    }

    fn spi_set_priority(&mut self, intid: u32, priority: u8) {
        self.board
            .update(|state| state.gic.spi_mut(intid).priority = priority);
        self.record(Event::SpiPriority { intid, priority });
    }

    fn spi_set_edge_triggered(&mut self, intid: u32, edge: bool) {
        self.board
            .update(|state| state.gic.spi_mut(intid).edge = edge);
        self.record(Event::SpiTrigger { intid, edge });
    }

    fn spi_route(&mut self, intid: u32, cpu: usize) {
        self.board.update(|state| {
            assert!(
                cpu < state.running.len(),
                "SPI {intid} routed to no CPU ({cpu})"
            );
            state.gic.spi_mut(intid).route = Some(cpu);
        });
        self.record(Event::SpiRouted { intid, cpu });
    }

    fn deactivate_interrupt(&mut self, intid: u32, cpu: usize) {
        self.board.update(|state| state.gic.deactivate(cpu, intid));
        self.record(Event::Deactivated {
            intid,
            cpu,
            by: Deactivator::Distributor,
        });
    }

    fn device_read(&mut self, address: PhysAddr, width: AccessWidth) -> u64 {
        self.record(Event::DeviceRead { address, width });
        let value = self
            .board
            .lock()
            .device_registers
            .get(&address.raw())
            .copied()
            .unwrap_or(0);
        value & width.mask()
    }

    fn device_write(&mut self, address: PhysAddr, width: AccessWidth, value: u64) {
        self.board
            .lock()
            .device_registers
            .insert(address.raw(), value & width.mask());
        self.record(Event::DeviceWritten {
            address,
            width,
            value,
        });
    }

    fn count_nonzero(&mut self, address: PhysAddr, length: u64) -> u64 {
        let nonzero = self.board.lock().ram.count_nonzero(address, length);
        self.record(Event::MemoryVerified {
            address,
            length,
            nonzero,
        });
        nonzero
    }

    fn counter(&self) -> (u64, u64) {
        let now = self
            .board
            .shared
            .counter
            .fetch_add(TICKS_PER_READING, Ordering::Relaxed);
        (now, COUNTER_FREQUENCY)
    }
}

impl VcpuHardware for FakeCpu {
    type Lists = FakeListRegisters;

    fn cpu(&self) -> usize {
        self.index
    }

    fn list_registers(&mut self) -> &mut FakeListRegisters {
        &mut self.lists
    }

    fn quiesce(&mut self) {
        self.lists.clear();
        self.record(Event::Quiesced);
    }

    fn prepare(&mut self, cell: &Cell, vcpu: usize) {
        self.lists.clear();
        self.el1 = El1 {
            sctlr: SCTLR_EL1_RESET,
            ..El1::default()
        };
        self.record(Event::Prepared {
            cell: cell.index(),
            vcpu,
        });
    }

    fn enter(&mut self, running: &mut RunningVcpu<'_>) -> ExitKind {
        // As the real exception vector does: every exit goes to the fast path first, and only
        // the ones it leaves to the run loop end the call.
        loop {
            self.entries.push(Entry {
                regs: running.regs.clone(),
                lists: self.lists.in_use(),
                hcr: self.lists.hcr(),
            });
            self.record(Event::Entered);
            self.set_running(true);
            let kind = self.run_guest(&mut running.regs);
            if !self.exit_latency.is_zero() {
                std::thread::sleep(self.exit_latency);
            }
            self.set_running(false);
            match fast::exit(running, kind, self) {
                Fast::Resume => {}
                Fast::Slow => return kind,
                Fast::Leave => return ExitKind::Leave,
            }
        }
    }

    fn syndrome(&self) -> Syndrome {
        self.syndrome
    }

    fn vbar_el1(&self) -> u64 {
        self.el1.vbar
    }

    fn sctlr_el1(&self) -> u64 {
        self.el1.sctlr
    }

    fn write_injection(&mut self, injection: &Injection) {
        self.el1.esr = injection.esr_el1;
        if let Some(far) = injection.far_el1 {
            self.el1.far = far;
        }
        self.el1.elr = injection.elr_el1;
        self.el1.spsr = injection.spsr_el1;
        self.record(Event::Injected(*injection));
    }

    fn acknowledge_interrupt(&mut self) -> Option<u32> {
        if let Some(intid) = self.deferred.take() {
            return Some(intid);
        }
        let cpu = self.index;
        let intid = self.board.update(|state| state.gic.acknowledge(cpu))?;
        self.record(Event::Acknowledged { intid });
        Some(intid)
    }

    fn defer_interrupt(&mut self, intid: u32) {
        assert!(
            self.deferred.is_none(),
            "fake CPU {}: a second deferred interrupt",
            self.index
        );
        self.deferred = Some(intid);
    }

    fn deactivate(&mut self, intid: u32) {
        let cpu = self.index;
        self.board.update(|state| state.gic.deactivate(cpu, intid));
        self.record(Event::Deactivated {
            intid,
            cpu,
            by: Deactivator::Hypervisor,
        });
    }

    fn console_receive(&mut self, _buffer: &mut [u8]) -> usize {
        0
    }

    fn wait_for_interrupt(&mut self) {
        self.record(Event::WaitedForInterrupt);
        if self.board.highest_pending(self.index).is_none()
            && let Some(intid) = self.arrivals.pop_front()
        {
            self.board.raise(self.index, intid);
        }
        self.wait_for_pending("an interrupt to end a wait (WFI at EL2)");
    }

    fn kick(&mut self, cpu: usize) {
        if cpu == self.index {
            return;
        }
        self.record(Event::Kick { to: cpu });
        self.board.raise(cpu, KICK_SGI);
    }

    fn power_off(&mut self) -> ! {
        panic!("fake CPU {}: the core powered the machine off", self.index);
    }

    fn sync_guest_memory(&mut self, cell: &Cell) {
        self.record(Event::GuestMemorySynced { cell: cell.index() });
    }
}

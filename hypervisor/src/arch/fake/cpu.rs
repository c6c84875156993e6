//! [`FakeCpu`]: one fake CPU playing its guest's script, with its [`Machine`] and [`VcpuHardware`].

use std::boxed::Box;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::vec::Vec;

use crate::core::cell::Cell;
use crate::core::exit::RunningVcpu;
use crate::core::fast::{self, Fast};
use crate::core::hardware::{
    InputEvent, ScanoutFrame,
    DeviceAbort, DmaControlError, ExitKind, GuestRegs, Machine, Syndrome, VcpuHardware,
};
use crate::core::inject::Injection;
use crate::dev::mmio::AccessWidth;
use crate::dev::vgic::ListRegisters;
use crate::mem::addr::PhysAddr;

use super::board::{Deactivator, Event, FakeBoard};
use super::gic::KICK_SGI;
use super::lists::{EntryState, FakeListRegisters, ListEntry};
use super::script::{GuestAction, GuestExit, Trap};
use super::{COUNTER_FREQUENCY, SCTLR_EL1_RESET, TICKS_PER_READING};

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
    /// PMCR_EL0.
    pub pmcr: u64,
}

/// What a vCPU switch saves of a fake CPU: the fake EL1 registers, the list registers and the
/// guest timer's deadline.
#[derive(Clone, Debug, Default)]
pub struct FakeSaved {
    el1: El1,
    lists: (Vec<ListEntry>, u64),
    timer_deadline: Option<u64>,
}

/// One fake physical CPU.
pub struct FakeCpu {
    /// When the loaded guest's timer fires (a test sets it; saved and restored with the vCPU).
    timer_deadline: Option<u64>,
    index: usize,
    board: FakeBoard,
    lists: FakeListRegisters,
    script: VecDeque<GuestExit>,
    entries: Vec<Entry>,
    syndrome: Syndrome,
    el1: El1,
    exit_latency: Duration,
    arrivals: VecDeque<u32>,
    /// Bytes typed on the console, read by `console_receive`.
    typed: VecDeque<u8>,
    on_scrub: Option<Box<dyn FnOnce() + Send>>,
    /// An interrupt the fast path acknowledged and handed back to the run loop.
    deferred: Option<u32>,
}

impl FakeCpu {
    /// CPU `index` of `board`, with an empty script and reset registers.
    pub(super) fn new(index: usize, board: FakeBoard) -> Self {
        Self {
            timer_deadline: None,
            index,
            lists: FakeListRegisters::new(board.clone(), index),
            board,
            script: VecDeque::new(),
            entries: Vec::new(),
            syndrome: Syndrome::default(),
            el1: El1::default(),
            exit_latency: Duration::ZERO,
            arrivals: VecDeque::new(),
            typed: VecDeque::new(),
            on_scrub: None,
            deferred: None,
        }
    }

    /// Arms (or disarms) the loaded guest's timer: a vCPU switch saves it, and the run queue of
    /// a time-shared CPU wakes the vCPU at `deadline` once it is saved.
    pub fn set_timer_deadline(&mut self, deadline: Option<u64>) {
        self.timer_deadline = deadline;
    }

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

    /// `bytes` are typed on the console: the next `console_receive` on this CPU reads them (raise
    /// the console UART's SPI to make the core look).
    pub fn type_on_console(&mut self, bytes: &[u8]) {
        self.typed.extend(bytes.iter().copied());
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
            // `run_guest` moves the PC.
            GuestAction::RunTo(_) => {}
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
                let physical_intid = entry.physical_intid;
                let cpu = self.index;
                self.board.update(|state| {
                    *state.completed.entry((cpu, intid)).or_default() += 1;
                });
                if let Some(physical) = physical_intid {
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
            GuestAction::LoseKicksTo { cpu, count } => self.board.lose_kicks_to(cpu, count),
            GuestAction::SetLine { intid, asserted } => {
                self.board.set_line(self.index, intid, asserted);
            }
            GuestAction::AwaitGuestOn(cpu) => self
                .board
                .wait_until(&format!("CPU {cpu} to run its guest"), |state| {
                    state.running.get(cpu).copied().unwrap_or(false)
                }),
            GuestAction::AwaitAcknowledged { cpu, intid } => self.board.wait_until(
                &format!("CPU {cpu} to acknowledge INTID {intid}"),
                |state| {
                    state.events.iter().any(|record| {
                        record.cpu == cpu && record.event == Event::Acknowledged { intid }
                    })
                },
            ),
            GuestAction::AwaitCompleted { cpu, intid, count } => self.board.wait_until(
                &format!("CPU {cpu}'s guest to complete INTID {intid} {count} times"),
                |state| state.completed.get(&(cpu, intid)).copied().unwrap_or(0) >= count,
            ),
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
        let Some(next) = self.script.front() else {
            self.wait_for_pending("an interrupt: the script is used up and the guest spins");
            return ExitKind::Irq;
        };
        if let Some(intid) = next.once_listed
            && !self.lists.holds_pending(intid)
        {
            self.wait_for_pending(&format!(
                "an interrupt: the guest spins until virtual INTID {intid} is in a list register"
            ));
            return ExitKind::Irq;
        }
        let Some(exit) = self.script.pop_front() else {
            return ExitKind::Irq;
        };
        let mut pc = regs.elr;
        for action in exit.actions {
            if let GuestAction::RunTo(target) = action {
                pc = target;
            }
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
            Trap::SError { esr } => {
                self.syndrome = Syndrome {
                    esr,
                    ..Syndrome::default()
                };
                ExitKind::SError
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

    fn read_memory(&mut self, address: PhysAddr, buffer: &mut [u8]) {
        let bytes = self.board.lock().ram.read(address, buffer.len() as u64);
        buffer.copy_from_slice(&bytes);
    }

    fn zero_memory(&mut self, address: PhysAddr, length: u64) {
        if let Some(hook) = self.on_scrub.take() {
            hook();
        }
        self.board.lock().ram.zero(address, length);
        self.record(Event::MemoryZeroed { address, length });
    }

    fn clean_invalidate_memory(&mut self, address: PhysAddr, length: u64) {
        self.record(Event::MemoryCleaned { address, length });
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

    fn interrupt_line_asserted(&mut self, intid: u32, cpu: usize) -> bool {
        self.board.is_pending(cpu, intid)
    }

    fn device_read(&mut self, address: PhysAddr, width: AccessWidth) -> Result<u64, DeviceAbort> {
        self.record(Event::DeviceRead { address, width });
        let mut state = self.board.lock();
        if let Some(value) = ecam_read(&mut state, address, width) {
            return value;
        }
        if state.aborting_devices.contains(&address.raw()) {
            return Err(DeviceAbort);
        }
        let value = state
            .device_registers
            .get(&address.raw())
            .copied()
            .unwrap_or(0);
        Ok(value & width.mask())
    }

    fn device_write(
        &mut self,
        address: PhysAddr,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), DeviceAbort> {
        self.record(Event::DeviceWritten {
            address,
            width,
            value,
        });
        let mut state = self.board.lock();
        if let Some(result) = ecam_write(&mut state, address, width, value) {
            return result;
        }
        if state.aborting_devices.contains(&address.raw()) {
            return Err(DeviceAbort);
        }
        if state.stuck_devices.contains(&address.raw()) {
            return Ok(());
        }
        state
            .device_registers
            .insert(address.raw(), value & width.mask());
        Ok(())
    }

    fn dma_allow(
        &mut self,
        stream: u32,
        vmid: u16,
        _root: PhysAddr,
    ) -> Result<(), DmaControlError> {
        self.record(Event::DmaAllowed { stream, vmid });
        Ok(())
    }

    fn dma_block(&mut self, stream: u32, _vmid: u16) -> Result<(), DmaControlError> {
        self.record(Event::DmaBlocked { stream });
        Ok(())
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

    fn pmcr_el0(&self) -> u64 {
        self.el1.pmcr
    }

    fn set_pmcr_el0(&mut self, value: u64) {
        self.el1.pmcr = value;
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

    fn inject_serror(&mut self, syndrome: u64) {
        self.record(Event::VirtualSError { esr: syndrome });
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

    fn dma_faults(&mut self, sink: &mut dyn FnMut(crate::core::hardware::DmaFault)) {
        let faults: alloc::vec::Vec<_> = self.board.lock().dma_faults.drain(..).collect();
        for fault in faults {
            sink(fault);
        }
    }

    fn console_receive(&mut self, buffer: &mut [u8]) -> usize {
        let mut count = 0;
        for slot in buffer.iter_mut() {
            let Some(byte) = self.typed.pop_front() else {
                break;
            };
            *slot = byte;
            count += 1;
        }
        self.record(Event::ConsoleReceived { bytes: count });
        count
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
        if self.board.kick_is_lost(cpu) {
            self.record(Event::KickLost { to: cpu });
            return;
        }
        self.record(Event::Kick { to: cpu });
        self.board.raise(cpu, KICK_SGI);
    }

    fn power_off(&mut self) -> ! {
        panic!("fake CPU {}: the core powered the machine off", self.index);
    }

    fn halt(&mut self) -> ! {
        panic!("fake CPU {}: the core halted", self.index);
    }

    type Saved = FakeSaved;

    fn save_vcpu(&mut self, saved: &mut FakeSaved) {
        saved.el1 = core::mem::take(&mut self.el1);
        saved.lists = self.lists.save();
        saved.timer_deadline = self.timer_deadline.take();
        self.lists.clear();
        self.record(Event::Saved);
    }

    fn restore_vcpu(&mut self, cell: &Cell, vcpu: usize, saved: &FakeSaved) {
        self.el1 = saved.el1;
        self.lists.restore(&saved.lists);
        self.timer_deadline = saved.timer_deadline;
        self.record(Event::Restored {
            cell: cell.index(),
            vcpu,
        });
    }

    fn saved_timer_deadline(&self, saved: &FakeSaved) -> Option<u64> {
        saved.timer_deadline
    }

    fn set_slice_timer(&mut self, deadline: Option<u64>) {
        self.record(Event::SliceTimer(deadline));
    }

    fn set_screen_timer(&mut self, deadline: Option<u64>) {
        self.record(Event::ScreenTimer(deadline));
    }

    fn scanout(&mut self, frame: &ScanoutFrame) -> bool {
        self.record(Event::Scanout(*frame));
        self.board.lock().screen
    }

    fn input_events(&mut self, device: usize, sink: &mut dyn FnMut(InputEvent)) {
        let events = core::mem::take(
            self.board
                .lock()
                .input_events
                .get_mut(device)
                .unwrap_or(&mut Vec::new()),
        );
        for event in events {
            sink(event);
        }
    }

    fn sync_guest_memory(&mut self, cell: &Cell) {
        self.record(Event::GuestMemorySynced { cell: cell.index() });
    }
}

/// The function and register of an ECAM address of the fake PCI host, if it is one.
fn ecam_target(
    state: &super::board::State,
    address: PhysAddr,
) -> Option<(crate::dev::pci::Bdf, u16)> {
    let (base, _) = state.ecam.as_ref()?;
    let offset = address.raw().checked_sub(*base)?;
    (offset < 1 << 28)
        .then(|| crate::dev::pci::Bdf::from_ecam_offset(0, offset))
        .flatten()
}

/// A read of the fake PCI host's ECAM (configuration reads are whole words).
fn ecam_read(
    state: &mut super::board::State,
    address: PhysAddr,
    width: AccessWidth,
) -> Option<Result<u64, DeviceAbort>> {
    use crate::dev::pci::ConfigAccess;
    let (bdf, offset) = ecam_target(state, address)?;
    let (_, ecam) = state.ecam.as_mut()?;
    let word = ecam.read32(bdf, offset & !3).map_err(|_| DeviceAbort);
    Some(word.map(|word| (u64::from(word) >> (8 * u64::from(offset & 3))) & width.mask()))
}

/// A write to the fake PCI host's ECAM, of the access's own width.
fn ecam_write(
    state: &mut super::board::State,
    address: PhysAddr,
    width: AccessWidth,
    value: u64,
) -> Option<Result<(), DeviceAbort>> {
    use crate::dev::pci::ConfigAccess;
    let (bdf, offset) = ecam_target(state, address)?;
    let (_, ecam) = state.ecam.as_mut()?;
    let result = match width {
        AccessWidth::Byte => ecam.write8(bdf, offset, value as u8),
        AccessWidth::Halfword => ecam.write16(bdf, offset, value as u16),
        _ => ecam.write32(bdf, offset, value as u32),
    };
    Some(result.map_err(|_| DeviceAbort))
}

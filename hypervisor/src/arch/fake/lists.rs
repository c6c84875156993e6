//! Fake vCPU interface: list registers kept decoded, written and read in the real `ICH_LR<n>_EL2`
//! encoding, plus `ICH_HCR_EL2`, and the physical interrupts of its CPU that hardware-linked
//! entries stand for (on the fake GIC of its board).
//!
//! The fake stores each list register as a [`ListEntry`], not as the raw value: a write is decoded
//! with the real field layout and must encode back to exactly the value written, so a value with
//! reserved bits set, or with a `pINTID` but no `HW`, panics at the write that made it.
#![forbid(unsafe_code)]

use std::vec::Vec;

use tock_registers::LocalRegisterCopy;

use crate::dev::vgic::{ICH_LR_EL2, ListRegisters};

use super::board::{Deactivator, Event, FakeBoard};

/// Number of list registers the fake implements (as Cortex-A cores do).
pub const LIST_REGISTER_COUNT: usize = 4;

/// State of a list-register entry (`ICH_LR<n>_EL2.State`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EntryState {
    /// Empty.
    #[default]
    Invalid,
    /// Pending, not yet acknowledged by the guest.
    Pending,
    /// Acknowledged, not yet deactivated.
    Active,
    /// Active and pending again.
    PendingActive,
}

/// One list register, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListEntry {
    /// The virtual INTID the guest sees.
    pub virtual_intid: u32,
    /// `HW` = 1 and this `pINTID`: the guest's deactivation deactivates the physical interrupt.
    pub physical_intid: Option<u32>,
    /// The entry's state.
    pub state: EntryState,
    /// Its priority.
    pub priority: u8,
    /// Group 1 (virtual IRQ) rather than Group 0 (virtual FIQ).
    pub group1: bool,
    /// A maintenance interrupt is requested at EOI (`EOI`, only without `HW`).
    pub eoi_maintenance: bool,
}

type Lr = LocalRegisterCopy<u64, ICH_LR_EL2::Register>;

impl ListEntry {
    /// Decodes `value`, or `None` if it holds bits the architecture gives no meaning here.
    pub fn decode(value: u64) -> Option<Self> {
        let lr = Lr::new(value);
        let hardware = lr.is_set(ICH_LR_EL2::HW);
        let state = match lr.read(ICH_LR_EL2::State) {
            0b00 => EntryState::Invalid,
            0b01 => EntryState::Pending,
            0b10 => EntryState::Active,
            _ => EntryState::PendingActive,
        };
        let entry = Self {
            virtual_intid: lr.read(ICH_LR_EL2::vINTID) as u32,
            physical_intid: hardware.then(|| lr.read(ICH_LR_EL2::pINTID) as u32),
            state,
            priority: lr.read(ICH_LR_EL2::Priority) as u8,
            group1: lr.is_set(ICH_LR_EL2::Group),
            eoi_maintenance: !hardware && lr.is_set(ICH_LR_EL2::EOI),
        };
        (entry.encode() == value).then_some(entry)
    }

    /// The `ICH_LR<n>_EL2` value of this entry.
    pub fn encode(&self) -> u64 {
        let state = match self.state {
            EntryState::Invalid => ICH_LR_EL2::State::Invalid,
            EntryState::Pending => ICH_LR_EL2::State::Pending,
            EntryState::Active => ICH_LR_EL2::State::Active,
            EntryState::PendingActive => ICH_LR_EL2::State::PendingActive,
        };
        let mut lr = Lr::new(0);
        lr.modify(
            ICH_LR_EL2::vINTID.val(u64::from(self.virtual_intid))
                + ICH_LR_EL2::Priority.val(u64::from(self.priority))
                + ICH_LR_EL2::Group.val(u64::from(self.group1))
                + state,
        );
        match self.physical_intid {
            Some(physical) => {
                lr.modify(ICH_LR_EL2::HW::SET + ICH_LR_EL2::pINTID.val(u64::from(physical)))
            }
            None if self.eoi_maintenance => lr.modify(ICH_LR_EL2::EOI::SET),
            None => {}
        }
        lr.get()
    }

    /// Whether `ICH_ELRSR_EL2` reports the register empty: invalid, and no EOI maintenance due.
    fn is_empty(&self) -> bool {
        self.state == EntryState::Invalid && !self.eoi_maintenance
    }
}

/// The list registers and `ICH_HCR_EL2` of one fake CPU, with every write recorded.
pub struct FakeListRegisters {
    entries: Vec<ListEntry>,
    hcr: u64,
    writes: Vec<(usize, u64)>,
    /// The machine whose GIC holds this CPU's physical interrupts.
    board: FakeBoard,
    /// This CPU's index.
    cpu: usize,
}

impl FakeListRegisters {
    /// The empty list registers of CPU `cpu` of `board`.
    pub(super) fn new(board: FakeBoard, cpu: usize) -> Self {
        Self {
            entries: vec![ListEntry::default(); LIST_REGISTER_COUNT],
            hcr: 0,
            writes: Vec::new(),
            board,
            cpu,
        }
    }

    /// The decoded entries.
    pub fn entries(&self) -> &[ListEntry] {
        &self.entries
    }

    /// The entries that are not empty.
    pub fn in_use(&self) -> Vec<ListEntry> {
        self.entries
            .iter()
            .copied()
            .filter(|entry| entry.state != EntryState::Invalid)
            .collect()
    }

    /// Whether an entry holds virtual interrupt `intid` pending (for the guest to take).
    pub fn holds_pending(&self, intid: u32) -> bool {
        self.entries.iter().any(|entry| {
            entry.virtual_intid == intid
                && matches!(entry.state, EntryState::Pending | EntryState::PendingActive)
        })
    }

    /// Every `ICH_LR<n>_EL2` write so far, as `(n, value)`.
    pub fn writes(&self) -> &[(usize, u64)] {
        &self.writes
    }

    /// The entry holding `virtual_intid`, for the guest's side of the interface.
    pub(super) fn entry_mut(&mut self, virtual_intid: u32) -> Option<&mut ListEntry> {
        self.entries.iter_mut().find(|entry| {
            entry.state != EntryState::Invalid && entry.virtual_intid == virtual_intid
        })
    }

    /// Empties every list register without recording a write (the hardware's reset).
    pub(super) fn clear(&mut self) {
        self.entries.fill(ListEntry::default());
    }

    /// The entries and `ICH_HCR_EL2`, as a vCPU switch saves them.
    pub(super) fn save(&self) -> (Vec<ListEntry>, u64) {
        (self.entries.clone(), self.hcr)
    }

    /// Puts back what [`FakeListRegisters::save`] returned, without recording writes.
    pub(super) fn restore(&mut self, (entries, hcr): &(Vec<ListEntry>, u64)) {
        self.entries.clone_from(entries);
        self.hcr = *hcr;
    }
}

impl ListRegisters for FakeListRegisters {
    fn count(&self) -> usize {
        self.entries.len()
    }

    fn read(&self, n: usize) -> u64 {
        match self.entries.get(n) {
            Some(entry) => entry.encode(),
            None => panic!("read of unimplemented ICH_LR{n}_EL2"),
        }
    }

    fn write(&mut self, n: usize, value: u64) {
        let Some(slot) = self.entries.get_mut(n) else {
            panic!("write of unimplemented ICH_LR{n}_EL2");
        };
        let Some(entry) = ListEntry::decode(value) else {
            panic!("ICH_LR{n}_EL2 written with bits outside its fields: {value:#018x}");
        };
        *slot = entry;
        self.writes.push((n, value));
    }

    fn empty_list_registers(&self) -> u16 {
        (0..).zip(&self.entries).fold(0, |bits, (n, entry)| {
            bits | u16::from(entry.is_empty()) << n
        })
    }

    fn hcr(&self) -> u64 {
        self.hcr
    }

    fn set_hcr(&mut self, value: u64) {
        self.hcr = value;
    }

    fn line_asserted(&mut self, physical_intid: u32) -> bool {
        self.board.is_pending(self.cpu, physical_intid)
    }

    fn deactivate_physical(&mut self, physical_intid: u32) {
        let cpu = self.cpu;
        self.board
            .update(|state| state.gic.deactivate(cpu, physical_intid));
        self.board.record(
            cpu,
            Event::Deactivated {
                intid: physical_intid,
                cpu,
                by: Deactivator::Hypervisor,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_the_real_encoding() {
        let hardware = ListEntry {
            virtual_intid: 78,
            physical_intid: Some(78),
            state: EntryState::Pending,
            priority: 0xa0,
            group1: true,
            eoi_maintenance: false,
        };
        // vINTID 78, pINTID 78 << 32, priority 0xa0 << 48, Group (60), HW (61), Pending (62).
        assert_eq!(hardware.encode(), 0x70a0_004e_0000_004e);
        assert_eq!(ListEntry::decode(hardware.encode()), Some(hardware));
        let level = ListEntry {
            virtual_intid: 33,
            eoi_maintenance: true,
            state: EntryState::Active,
            ..ListEntry::default()
        };
        assert_eq!(ListEntry::decode(level.encode()), Some(level));
    }

    #[test]
    #[should_panic(expected = "outside its fields")]
    fn a_physical_intid_without_hw_is_refused() {
        FakeListRegisters::new(FakeBoard::new(1, Vec::new()), 0)
            .write(0, (1 << 62) | (5 << 32) | 40);
    }
}

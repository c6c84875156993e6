//! The Arm SMMUv3 (MMIO): brings the SMMU up with every stream aborted, points streams at cells'
//! stage-2 tables, blocks them again, invalidates a cell's TLB entries and drains the event queue.
//! The formats it writes and reads are the pure `smmu` module; docs/smmu.md is the design.
//!
//! The driver is generic over [`Mmio`] (the register frame) and [`TableMemory`] (where the stream
//! table and queues live and how the SMMU is made to see them), so the whole register sequence
//! runs in host tests against a fake SMMU. The only `unsafe` is [`DeviceMmio`]'s volatile
//! accesses. Table memory is shared with the SMMU as `AtomicU64` words: every STE word is written
//! with one 64-bit single-copy-atomic store, so the SMMU never sees a torn word, and the SMMU's
//! own writes (events) are read without assuming exclusive access.
//!
//! Use: [`SmmuV3::at`] (or [`SmmuV3::new`] with another [`Mmio`]), [`SmmuV3::features`] to
//! decide, [`SmmuV3::init`] once, then [`SmmuV3::attach_stage2`] / [`SmmuV3::block`] per stream,
//! [`SmmuV3::invalidate_vmid`] after a cell's stage-2 table changed, and from the `eventq` and
//! `gerror` interrupts [`SmmuV3::drain_events`] and [`SmmuV3::global_errors`].
//!
//! Every wait is bounded ([`SPIN_LIMIT`] polls) and fails with [`SmmuError::Timeout`]; nothing a
//! device or guest does can panic this driver or make it loop forever. Methods take `&mut self`:
//! the caller serialises (one lock around the driver), and the command queue has one producer.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use tock_registers::LocalRegisterCopy;

use crate::mem::addr::PhysAddr;
use crate::smmu::command::Command;
use crate::smmu::event::{Event, GlobalErrors};
use crate::smmu::queue::Queue;
use crate::smmu::regs::{
    self, CMDQ_CONS, CR0, CR1, CR2, EVENTQ_INDEX, Features, GBPA, IRQ_CTRL, QUEUE_BASE,
    Requirements, STRTAB_BASE, STRTAB_BASE_CFG,
};
use crate::smmu::ste::{S2Config, Ste};
use crate::smmu::{CommandError, SmmuError};

/// Polls of a register before a wait gives up.
pub const SPIN_LIMIT: u32 = 1_000_000;
/// log2 of the command queue cellvisor allocates (256 entries, 4 KiB), capped by `IDR1.CMDQS`.
pub const COMMAND_QUEUE_LOG2: u8 = 8;
/// log2 of the event queue (128 entries, 4 KiB), capped by `IDR1.EVENTQS`.
pub const EVENT_QUEUE_LOG2: u8 = 7;

/// Access to the SMMU's register frame (page 0 at offset 0, page 1 at 0x1_0000).
pub trait Mmio {
    /// Reads the 32-bit register at `offset`.
    fn read32(&mut self, offset: usize) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write32(&mut self, offset: usize, value: u32);
    /// Writes the 64-bit register at `offset` (one access).
    fn write64(&mut self, offset: usize, value: u64);
}

/// The real register frame: volatile accesses at `base + offset`.
#[derive(Debug)]
pub struct DeviceMmio {
    base: usize,
}

impl DeviceMmio {
    /// The register frame at `base`.
    ///
    /// # Safety
    /// `base` must be the virtual address of an SMMUv3's two 64 KiB register pages, mapped
    /// Device-nGnRE in EL2's translation and reachable by nothing but this value (no cell maps
    /// them, no other `DeviceMmio` exists for them).
    pub unsafe fn new(base: PhysAddr) -> Self {
        Self {
            base: base.to_virt().as_usize(),
        }
    }
}

impl Mmio for DeviceMmio {
    fn read32(&mut self, offset: usize) -> u32 {
        // SAFETY: `new`'s contract: `base` maps the SMMU's register pages as device memory, and
        // the driver only passes offsets of registers inside them, 4-byte aligned.
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write32(&mut self, offset: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn write64(&mut self, offset: usize, value: u64) {
        // SAFETY: as in `read32`; the driver uses this only for the 64-bit (8-byte aligned)
        // base registers, which the architecture allows to be written in one access.
        unsafe { write_volatile((self.base + offset) as *mut u64, value) }
    }
}

/// A block of table memory shared with the SMMU.
#[derive(Clone, Copy, Debug)]
pub struct DmaRegion {
    /// Its physical address (the SMMU's view).
    pub pa: PhysAddr,
    /// Its contents (cellvisor's view: the identity map, so at `pa`).
    pub words: &'static [AtomicU64],
}

/// Where the driver's tables and queues live and how the SMMU comes to see them.
pub trait TableMemory {
    /// `size` bytes, zeroed, physically contiguous, aligned to `align` (a power of two), never
    /// freed, mapped Normal write-back in EL2 and in no cell. `None` when out of memory.
    fn alloc_zeroed(&mut self, size: usize, align: usize) -> Option<DmaRegion>;
    /// Cleans and invalidates `len` bytes at `pa` to the point of coherency (`DC CIVAC`): the
    /// driver calls it only when the SMMU is not coherent (`SMMU_IDR0.COHACC = 0`), after
    /// writing table memory and before reading what the SMMU wrote.
    fn clean_invalidate_to_poc(&self, pa: PhysAddr, len: usize);
    /// Orders every earlier access to table memory before every later register access and vice
    /// versa, as the SMMU observes them (`DMB OSH` or stronger; a compiler barrier too).
    fn dma_barrier(&self);
}

/// What [`SmmuV3::drain_events`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Events handed to the sink.
    pub events: usize,
    /// The SMMU had to drop events since the last drain (`EVENTQ_PROD.OVFLG` toggled); it is
    /// acknowledged now.
    pub overflowed: bool,
}

/// The tables the driver set up in `init`.
#[derive(Clone, Copy, Debug)]
struct Tables {
    stream_table: DmaRegion,
    stream_table_log2: u8,
    command_queue: DmaRegion,
    commands: Queue,
    event_queue: DmaRegion,
    events: Queue,
}

/// One SMMUv3.
#[derive(Debug)]
pub struct SmmuV3<M: Mmio, T: TableMemory> {
    mmio: M,
    memory: T,
    base: PhysAddr,
    features: Features,
    tables: Option<Tables>,
    command_prod: u32,
}

impl<T: TableMemory> SmmuV3<DeviceMmio, T> {
    /// The SMMU whose register frame is at `base`, its tables in `memory`.
    ///
    /// # Safety
    /// As [`DeviceMmio::new`]: `base` is an SMMUv3's register frame, mapped Device-nGnRE and
    /// owned by this value alone.
    pub unsafe fn at(base: PhysAddr, memory: T) -> Self {
        // SAFETY: our caller's contract is `DeviceMmio::new`'s.
        let mmio = unsafe { DeviceMmio::new(base) };
        Self::new(base, mmio, memory)
    }
}

impl<M: Mmio, T: TableMemory> SmmuV3<M, T> {
    /// The SMMU at `base` (for messages) behind `mmio`, its tables in `memory`. Only reads the
    /// ID registers; nothing is programmed before [`init`](Self::init).
    pub fn new(base: PhysAddr, mut mmio: M, memory: T) -> Self {
        let features = read_features(&mut mmio, base);
        Self {
            mmio,
            memory,
            base,
            features,
            tables: None,
            command_prod: 0,
        }
    }

    /// What the SMMU implements (its ID registers).
    pub fn features(&self) -> Features {
        self.features
    }

    /// Brings the SMMU up so that nothing reaches memory unless an STE says so: checks
    /// `needed`, disables the SMMU, sets `SMMU_GBPA` to abort, builds a linear stream table
    /// covering `needed.max_stream_id` with every entry abort, sets up the command and event
    /// queues, wired interrupts for events and global errors, invalidates every cached
    /// configuration and TLB entry, and enables translation. On an error the SMMU is left
    /// disabled with `GBPA` aborting (once that step ran); memory already allocated stays
    /// allocated.
    pub fn init(&mut self, needed: &Requirements) -> Result<(), SmmuError> {
        self.features = read_features(&mut self.mmio, self.base);
        regs::check(&self.features, needed)?;
        self.tables = None;

        self.set_cr0(0)?;
        self.set_gbpa_abort()?;
        self.mmio.write32(regs::IRQ_CTRL, 0);
        self.wait(regs::IRQ_CTRLACK, "IRQ_CTRLACK", |value| value == 0)?;
        let gerror = self.mmio.read32(regs::GERROR);
        self.mmio.write32(regs::GERRORN, gerror);

        let stream_table_log2 = (32 - needed.max_stream_id.leading_zeros()) as u8;
        let stream_table = self.allocate(
            "stream table",
            Ste::SIZE << stream_table_log2,
            Ste::SIZE << stream_table_log2,
        )?;
        let abort = Ste::abort();
        for stream in 0..1usize << stream_table_log2 {
            for (index, word) in abort.words.iter().enumerate() {
                store(stream_table, stream * Ste::WORDS + index, *word);
            }
        }
        let commands = Queue::clamped(COMMAND_QUEUE_LOG2.min(self.features.command_queue_log2));
        let command_bytes = Command::SIZE << commands.log2_entries();
        let command_queue = self.allocate("command queue", command_bytes, command_bytes.max(32))?;
        let events = Queue::clamped(EVENT_QUEUE_LOG2.min(self.features.event_queue_log2));
        let event_bytes = Event::SIZE << events.log2_entries();
        let event_queue = self.allocate("event queue", event_bytes, event_bytes.max(32))?;
        if !self.features.coherent {
            // Also drops the allocator's dirty zero lines, which could otherwise be written back
            // over events later.
            for region in [stream_table, command_queue, event_queue] {
                self.memory
                    .clean_invalidate_to_poc(region.pa, region.words.len() * 8);
            }
        }
        self.memory.dma_barrier();

        // Write-back inner shareable when the SMMU snoops the caches, else non-cacheable (and
        // the driver cleans to PoC).
        let (cacheability, shareability) = if self.features.coherent {
            (1, 0b11)
        } else {
            (0, 0b10)
        };
        let cr1 = CR1::QUEUE_IC.val(cacheability)
            + CR1::QUEUE_OC.val(cacheability)
            + CR1::QUEUE_SH.val(shareability)
            + CR1::TABLE_IC.val(cacheability)
            + CR1::TABLE_OC.val(cacheability)
            + CR1::TABLE_SH.val(shareability);
        self.mmio.write32(regs::CR1, cr1.value);
        // Bad StreamIDs are recorded; cellvisor's TLB maintenance is by command only (PTM), so it
        // does not depend on broadcast TLBI support.
        self.mmio.write32(
            regs::CR2,
            (CR2::RECINVSID::SET + CR2::PTM::SET + CR2::E2H::CLEAR).value,
        );

        self.mmio.write64(
            regs::STRTAB_BASE,
            (STRTAB_BASE::ADDR.val(stream_table.pa.raw() >> 6) + STRTAB_BASE::RA::SET).value,
        );
        self.mmio.write32(
            regs::STRTAB_BASE_CFG,
            (STRTAB_BASE_CFG::FMT::Linear
                + STRTAB_BASE_CFG::LOG2SIZE.val(stream_table_log2.into()))
            .value,
        );
        self.mmio.write64(
            regs::CMDQ_BASE,
            queue_base(command_queue.pa, commands.log2_entries()),
        );
        self.mmio.write32(regs::CMDQ_PROD, 0);
        self.mmio.write32(regs::CMDQ_CONS, 0);
        self.mmio.write64(
            regs::EVENTQ_BASE,
            queue_base(event_queue.pa, events.log2_entries()),
        );
        self.mmio.write32(regs::EVENTQ_PROD, 0);
        self.mmio.write32(regs::EVENTQ_CONS, 0);
        // Wired interrupts (eventq, gerror SPIs), no MSIs.
        self.mmio.write64(regs::GERROR_IRQ_CFG0, 0);
        self.mmio.write64(regs::EVENTQ_IRQ_CFG0, 0);
        self.command_prod = 0;
        self.tables = Some(Tables {
            stream_table,
            stream_table_log2,
            command_queue,
            commands,
            event_queue,
            events,
        });

        self.set_cr0(CR0::CMDQEN::SET.value)?;
        let hyp_invalidation = if self.features.hyp {
            Command::TlbiEl2All
        } else {
            // TLBI_EL2_* is illegal without SMMU_IDR0.HYP; a second SYNC keeps the batch one
            // shape.
            Command::Sync
        };
        self.submit(&[
            Command::CfgiAll,
            Command::TlbiNsnhAll,
            hyp_invalidation,
            Command::Sync,
        ])?;
        self.set_cr0((CR0::CMDQEN::SET + CR0::EVENTQEN::SET).value)?;
        let irqs = (IRQ_CTRL::GERROR_IRQEN::SET + IRQ_CTRL::EVENTQ_IRQEN::SET).value;
        self.mmio.write32(regs::IRQ_CTRL, irqs);
        self.wait(regs::IRQ_CTRLACK, "IRQ_CTRLACK", |value| value == irqs)?;
        self.set_cr0((CR0::CMDQEN::SET + CR0::EVENTQEN::SET + CR0::SMMUEN::SET).value)
    }

    /// Points `stream_id` at a cell's stage-2 table. The cell's VMID is invalidated first (no
    /// stale translations from an earlier user of the VMID); a stream attached elsewhere is
    /// blocked first. The STE body is written before word 0 (which holds `V` and `Config`),
    /// then `CMD_CFGI_STE` + `CMD_SYNC`: the SMMU sees either the old abort entry or the whole
    /// new one.
    pub fn attach_stage2(&mut self, stream_id: u32, config: &S2Config) -> Result<(), SmmuError> {
        let tables = self.tables_for(stream_id)?;
        let ste = Ste::stage2(config, &self.features)?;
        if !self
            .stream_table_entry(stream_id)
            .is_some_and(|current| current.is_abort())
        {
            self.block(stream_id)?;
        }
        self.submit(&[Command::TlbiS12Vmall { vmid: config.vmid }, Command::Sync])?;
        let first = stream_id as usize * Ste::WORDS;
        for (index, word) in ste.words.iter().enumerate().skip(1) {
            store(tables.stream_table, first + index, *word);
        }
        self.publish_ste(tables, stream_id);
        store(tables.stream_table, first, ste.words[0]);
        self.publish_ste(tables, stream_id);
        self.submit(&[Command::CfgiSte { stream_id }, Command::Sync])
    }

    /// Points `stream_id` back at abort: when this returns `Ok`, no DMA of the stream reaches
    /// memory (word 0 is rewritten in one store, then `CMD_CFGI_STE`, `CMD_TLBI_S12_VMALL` of
    /// the VMID it had, `CMD_SYNC`).
    pub fn block(&mut self, stream_id: u32) -> Result<(), SmmuError> {
        let tables = self.tables_for(stream_id)?;
        let old_vmid = self
            .stream_table_entry(stream_id)
            .and_then(|current| current.stage2_vmid());
        let first = stream_id as usize * Ste::WORDS;
        let abort = Ste::abort();
        store(tables.stream_table, first, abort.words[0]);
        self.publish_ste(tables, stream_id);
        match old_vmid {
            Some(vmid) => self.submit(&[
                Command::CfgiSte { stream_id },
                Command::TlbiS12Vmall { vmid },
                Command::Sync,
            ])?,
            None => self.submit(&[Command::CfgiSte { stream_id }, Command::Sync])?,
        }
        // The SMMU now uses the abort entry, which ignores the other words: clear them.
        for (index, word) in abort.words.iter().enumerate().skip(1) {
            store(tables.stream_table, first + index, *word);
        }
        self.publish_ste(tables, stream_id);
        Ok(())
    }

    /// Drops the SMMU's TLB entries of `vmid`, after a change to that cell's stage-2 table
    /// (`CMD_TLBI_S12_VMALL` + `CMD_SYNC`).
    pub fn invalidate_vmid(&mut self, vmid: u16) -> Result<(), SmmuError> {
        let vmid_bits = self.features.vmid_bits();
        if u32::from(vmid) >> vmid_bits != 0 {
            return Err(SmmuError::VmidTooWide {
                base: self.base,
                vmid_bits,
                max_vmid: vmid,
            });
        }
        self.submit(&[Command::TlbiS12Vmall { vmid }, Command::Sync])
    }

    /// The STE of `stream_id` as the table holds it, `None` before `init` or beyond the table.
    pub fn stream_table_entry(&self, stream_id: u32) -> Option<Ste> {
        let tables = self.tables?;
        if stream_id >> tables.stream_table_log2 != 0 {
            return None;
        }
        let first = stream_id as usize * Ste::WORDS;
        let mut words = [0; Ste::WORDS];
        for (index, word) in words.iter_mut().enumerate() {
            *word = tables
                .stream_table
                .words
                .get(first + index)?
                .load(Ordering::Relaxed);
        }
        Some(Ste { words })
    }

    /// Hands every event recorded since the last call to `sink` (at most one queue's worth, so
    /// the call is bounded even while a device keeps faulting), frees their slots and
    /// acknowledges an overflow.
    pub fn drain_events(&mut self, sink: &mut dyn FnMut(Event)) -> Drained {
        let Some(tables) = self.tables else {
            return Drained::default();
        };
        let events = tables.events;
        let prod_register = self.mmio.read32(regs::EVENTQ_PROD);
        let cons_register = self.mmio.read32(regs::EVENTQ_CONS);
        let overflow = |value| {
            LocalRegisterCopy::<u32, EVENTQ_INDEX::Register>::new(value)
                .is_set(EVENTQ_INDEX::OVERFLOW)
        };
        let overflowed = overflow(prod_register) != overflow(cons_register);
        self.memory.dma_barrier();
        let mut cons = cons_register & events.pointer_mask();
        let mut drained = 0;
        while drained < events.entries() && !events.is_empty(prod_register, cons) {
            let first = events.index(cons) as usize * Event::WORDS;
            if !self.features.coherent {
                self.memory
                    .clean_invalidate_to_poc(offset(tables.event_queue.pa, first * 8), Event::SIZE);
            }
            let mut raw = [0; Event::WORDS];
            for (index, word) in raw.iter_mut().enumerate() {
                *word = load(tables.event_queue, first + index);
            }
            sink(Event::decode(raw));
            cons = events.next(cons);
            drained += 1;
        }
        self.memory.dma_barrier();
        let acknowledge = prod_register & EVENTQ_INDEX::OVERFLOW::SET.value;
        self.mmio.write32(regs::EVENTQ_CONS, cons | acknowledge);
        Drained {
            events: drained as usize,
            overflowed,
        }
    }

    /// The active global errors (`SMMU_GERROR` vs `SMMU_GERRORN`), acknowledged. A command queue
    /// error is reported but left to the command path, which must skip the bad command before
    /// acknowledging it.
    pub fn global_errors(&mut self) -> GlobalErrors {
        let gerror = self.mmio.read32(regs::GERROR);
        let gerrorn = self.mmio.read32(regs::GERRORN);
        let active = GlobalErrors::active(gerror, gerrorn);
        let acknowledge = active.bits & !GERROR_CMDQ_ERR;
        if acknowledge != 0 {
            self.mmio.write32(regs::GERRORN, gerrorn ^ acknowledge);
        }
        active
    }

    /// Issues `commands` and waits until the SMMU consumed them all (the batch ends with a
    /// `CMD_SYNC`, so they are complete). A command the SMMU refuses is replaced by a
    /// `CMD_SYNC`, the error acknowledged so the queue goes on, and reported.
    fn submit(&mut self, commands: &[Command]) -> Result<(), SmmuError> {
        let tables = self.tables.ok_or(SmmuError::NotInitialised)?;
        let queue = tables.commands;
        let mut first_error = None;
        for command in commands {
            let mut polls = 0;
            loop {
                let cons = self.command_consumer(tables, &mut first_error);
                if !queue.is_full(self.command_prod, cons) {
                    break;
                }
                polls += 1;
                if polls >= SPIN_LIMIT {
                    return Err(self.timeout("command queue space"));
                }
                core::hint::spin_loop();
            }
            let first = queue.index(self.command_prod) as usize * 2;
            let [word0, word1] = command.encode();
            store(tables.command_queue, first, word0);
            store(tables.command_queue, first + 1, word1);
            if !self.features.coherent {
                self.memory.clean_invalidate_to_poc(
                    offset(tables.command_queue.pa, first * 8),
                    Command::SIZE,
                );
            }
            self.memory.dma_barrier();
            self.command_prod = queue.next(self.command_prod);
            self.mmio.write32(regs::CMDQ_PROD, self.command_prod);
        }
        let mut polls = 0;
        loop {
            let cons = self.command_consumer(tables, &mut first_error);
            if queue.is_empty(self.command_prod, cons) {
                break;
            }
            polls += 1;
            if polls >= SPIN_LIMIT {
                return Err(self.timeout("CMD_SYNC"));
            }
            core::hint::spin_loop();
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// `SMMU_CMDQ_CONS` (index and wrap). If the queue stopped on an error, the failing command
    /// is overwritten with a `CMD_SYNC` and `GERROR.CMDQ_ERR` acknowledged, so the SMMU resumes;
    /// the first error is kept in `first_error`.
    fn command_consumer(&mut self, tables: Tables, first_error: &mut Option<SmmuError>) -> u32 {
        let cons_register = self.mmio.read32(regs::CMDQ_CONS);
        let gerror = self.mmio.read32(regs::GERROR);
        let gerrorn = self.mmio.read32(regs::GERRORN);
        let cons = cons_register & tables.commands.pointer_mask();
        if (gerror ^ gerrorn) & GERROR_CMDQ_ERR == 0 {
            return cons;
        }
        let code = LocalRegisterCopy::<u32, CMDQ_CONS::Register>::new(cons_register)
            .read(CMDQ_CONS::ERR) as u8;
        let first = tables.commands.index(cons) as usize * 2;
        let opcode = (load(tables.command_queue, first) & 0xff) as u8;
        let [word0, word1] = Command::Sync.encode();
        store(tables.command_queue, first, word0);
        store(tables.command_queue, first + 1, word1);
        if !self.features.coherent {
            self.memory
                .clean_invalidate_to_poc(offset(tables.command_queue.pa, first * 8), Command::SIZE);
        }
        self.memory.dma_barrier();
        first_error.get_or_insert(SmmuError::Command {
            base: self.base,
            opcode,
            error: CommandError::from_field(code),
        });
        self.mmio.write32(regs::GERRORN, gerrorn ^ GERROR_CMDQ_ERR);
        cons
    }

    /// Makes the stores to `stream_id`'s STE visible to the SMMU.
    fn publish_ste(&mut self, tables: Tables, stream_id: u32) {
        if !self.features.coherent {
            self.memory.clean_invalidate_to_poc(
                offset(tables.stream_table.pa, stream_id as usize * Ste::SIZE),
                Ste::SIZE,
            );
        }
        self.memory.dma_barrier();
    }

    fn tables_for(&self, stream_id: u32) -> Result<Tables, SmmuError> {
        let tables = self.tables.ok_or(SmmuError::NotInitialised)?;
        if stream_id >> tables.stream_table_log2 != 0 {
            return Err(SmmuError::StreamIdOutOfRange {
                stream_id,
                entries: 1 << tables.stream_table_log2,
            });
        }
        Ok(tables)
    }

    fn allocate(
        &mut self,
        what: &'static str,
        size: usize,
        align: usize,
    ) -> Result<DmaRegion, SmmuError> {
        match self.memory.alloc_zeroed(size, align) {
            Some(region)
                if region.words.len() * 8 >= size && region.pa.is_aligned(align as u64) =>
            {
                Ok(region)
            }
            _ => Err(SmmuError::OutOfMemory { what, size }),
        }
    }

    fn set_cr0(&mut self, value: u32) -> Result<(), SmmuError> {
        self.mmio.write32(regs::CR0, value);
        self.wait(regs::CR0ACK, "CR0ACK", |ack| ack == value)
    }

    fn set_gbpa_abort(&mut self) -> Result<(), SmmuError> {
        let updating =
            |value| LocalRegisterCopy::<u32, GBPA::Register>::new(value).is_set(GBPA::UPDATE);
        self.wait(regs::GBPA, "GBPA.UPDATE", |value| !updating(value))?;
        let gbpa = self.mmio.read32(regs::GBPA);
        self.mmio.write32(
            regs::GBPA,
            gbpa | (GBPA::ABORT::SET + GBPA::UPDATE::SET).value,
        );
        self.wait(regs::GBPA, "GBPA.UPDATE", |value| !updating(value))
    }

    fn wait(
        &mut self,
        offset: usize,
        what: &'static str,
        done: impl Fn(u32) -> bool,
    ) -> Result<(), SmmuError> {
        for _ in 0..SPIN_LIMIT {
            if done(self.mmio.read32(offset)) {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(self.timeout(what))
    }

    fn timeout(&self, what: &'static str) -> SmmuError {
        SmmuError::Timeout {
            base: self.base,
            what,
        }
    }
}

/// `SMMU_GERROR.CMDQ_ERR`.
const GERROR_CMDQ_ERR: u32 = 1 << 0;

fn read_features(mmio: &mut impl Mmio, base: PhysAddr) -> Features {
    let idr0 = mmio.read32(regs::IDR0);
    let idr1 = mmio.read32(regs::IDR1);
    let idr5 = mmio.read32(regs::IDR5);
    Features::decode(base, idr0, idr1, idr5)
}

fn queue_base(pa: PhysAddr, log2_entries: u8) -> u64 {
    (QUEUE_BASE::ADDR.val(pa.raw() >> 5)
        + QUEUE_BASE::ALLOCATE::SET
        + QUEUE_BASE::LOG2SIZE.val(log2_entries.into()))
    .value
}

fn offset(pa: PhysAddr, bytes: usize) -> PhysAddr {
    PhysAddr::new(pa.raw() + bytes as u64)
}

fn store(region: DmaRegion, index: usize, value: u64) {
    if let Some(word) = region.words.get(index) {
        word.store(value, Ordering::Relaxed);
    }
}

fn load(region: DmaRegion, index: usize) -> u64 {
    region
        .words
        .get(index)
        .map_or(0, |word| word.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;
    use std::vec::Vec;

    use super::*;
    use crate::smmu::event::{Access, EventKind, GlobalError};
    use crate::smmu::ste::OutputSize;

    const BASE: PhysAddr = PhysAddr::new(0x905_0000);
    /// QEMU's stage-2 SMMU (see `smmu::regs` tests), IDR1.EVENTQS lowered to 2 (4 entries) so
    /// tests wrap and overflow the event queue.
    const IDR0: u32 = 1 | (2 << 2) | (1 << 4) | (1 << 12) | (1 << 18) | (2 << 21) | (1 << 27);
    const IDR1: u32 = 16 | (2 << 16) | (19 << 21);
    const IDR5: u32 = 4 | (1 << 4);

    /// Enough of an SMMUv3 for the driver: registers, CR0ACK/IRQ_CTRLACK/GBPA handshakes, a
    /// command queue consumed on every PROD write (refusing `illegal` opcodes like QEMU:
    /// `CMDQ_ERR` toggled, CONS.ERR = CERROR_ILL, stopped until GERRORN is written), and an event
    /// queue it fills on request (with the spec's overflow flag).
    #[derive(Default)]
    struct Fake {
        registers: HashMap<usize, u64>,
        /// Every register write, in order.
        writes: Vec<(usize, u64)>,
        /// Commands executed, in order.
        executed: Vec<[u64; 2]>,
        illegal: Vec<u8>,
        regions: Vec<DmaRegion>,
        /// The stream table (words) at each `dma_barrier`.
        snapshots: Vec<Vec<u64>>,
        cleans: usize,
        ack_stuck: bool,
    }

    impl Fake {
        fn new(idr0: u32) -> Rc<RefCell<Self>> {
            let mut fake = Self::default();
            fake.registers.insert(regs::IDR0, idr0.into());
            fake.registers.insert(regs::IDR1, IDR1.into());
            fake.registers.insert(regs::IDR5, IDR5.into());
            Rc::new(RefCell::new(fake))
        }

        fn register(&self, offset: usize) -> u32 {
            self.registers.get(&offset).copied().unwrap_or(0) as u32
        }

        fn region_word(&self, pa: u64) -> Option<&'static AtomicU64> {
            self.regions.iter().find_map(|region| {
                let offset = pa.checked_sub(region.pa.raw())?;
                region.words.get(offset as usize / 8)
            })
        }

        fn queue_of(&self, base_register: usize) -> (u64, Queue) {
            let base = self.registers.get(&base_register).copied().unwrap_or(0);
            (
                base & 0x000f_ffff_ffff_ffe0,
                Queue::clamped((base & 0x1f) as u8),
            )
        }

        fn consume_commands(&mut self) {
            if self.register(regs::CR0) & CR0::CMDQEN::SET.value == 0 {
                return;
            }
            let (base, queue) = self.queue_of(regs::CMDQ_BASE);
            loop {
                if (self.register(regs::GERROR) ^ self.register(regs::GERRORN)) & 1 != 0 {
                    return;
                }
                let prod = self.register(regs::CMDQ_PROD);
                let cons = self.register(regs::CMDQ_CONS) & queue.pointer_mask();
                if queue.is_empty(prod, cons) {
                    return;
                }
                let address = base + u64::from(queue.index(cons)) * 16;
                let command = [0, 8].map(|byte| {
                    self.region_word(address + byte)
                        .map_or(0, |word| word.load(Ordering::Relaxed))
                });
                if self.illegal.contains(&((command[0] & 0xff) as u8)) {
                    let gerror = self.register(regs::GERROR) ^ 1;
                    self.registers.insert(regs::GERROR, gerror.into());
                    self.registers
                        .insert(regs::CMDQ_CONS, u64::from(cons | (1 << 24)));
                    return;
                }
                self.executed.push(command);
                self.registers
                    .insert(regs::CMDQ_CONS, u64::from(queue.next(cons)));
            }
        }

        /// Records an event as the SMMU would; on a full queue the event is lost and
        /// `EVENTQ_PROD.OVFLG` toggled, unless an overflow is already unacknowledged.
        fn record_event(&mut self, raw: [u64; 4]) {
            let (base, queue) = self.queue_of(regs::EVENTQ_BASE);
            let prod = self.register(regs::EVENTQ_PROD);
            let cons = self.register(regs::EVENTQ_CONS);
            if queue.is_full(prod, cons) {
                if (prod ^ cons) & (1 << 31) == 0 {
                    self.registers
                        .insert(regs::EVENTQ_PROD, u64::from(prod ^ (1 << 31)));
                }
                return;
            }
            let address = base + u64::from(queue.index(prod)) * 32;
            for (index, word) in raw.iter().enumerate() {
                if let Some(slot) = self.region_word(address + index as u64 * 8) {
                    slot.store(*word, Ordering::Relaxed);
                }
            }
            let next = queue.next(prod) | (prod & (1 << 31));
            self.registers.insert(regs::EVENTQ_PROD, next.into());
        }

        fn stream_table(&self) -> Vec<u64> {
            let base = self.registers.get(&regs::STRTAB_BASE).copied().unwrap_or(0);
            let log2 = self.register(regs::STRTAB_BASE_CFG) & 0x3f;
            let base = base & 0x000f_ffff_ffff_ffc0;
            (0..(8u64 << log2))
                .map(|index| {
                    self.region_word(base + index * 8)
                        .map_or(0, |word| word.load(Ordering::Relaxed))
                })
                .collect()
        }

        fn ste(&self, stream_id: usize) -> Vec<u64> {
            self.stream_table()[stream_id * 8..stream_id * 8 + 8].to_vec()
        }

        fn index_of_write(&self, offset: usize, matches: impl Fn(u64) -> bool) -> Option<usize> {
            self.writes
                .iter()
                .position(|&(written, value)| written == offset && matches(value))
        }
    }

    struct FakeMmio(Rc<RefCell<Fake>>);

    impl Mmio for FakeMmio {
        fn read32(&mut self, offset: usize) -> u32 {
            self.0.borrow().register(offset)
        }

        fn write32(&mut self, offset: usize, value: u32) {
            self.write64(offset, value.into());
        }

        fn write64(&mut self, offset: usize, value: u64) {
            let mut fake = self.0.borrow_mut();
            fake.writes.push((offset, value));
            match offset {
                regs::CR0 => {
                    fake.registers.insert(regs::CR0, value);
                    if !fake.ack_stuck {
                        fake.registers.insert(regs::CR0ACK, value);
                    }
                    fake.consume_commands();
                }
                regs::IRQ_CTRL => {
                    fake.registers.insert(regs::IRQ_CTRL, value);
                    fake.registers.insert(regs::IRQ_CTRLACK, value);
                }
                regs::GBPA => {
                    if value & (1 << 31) != 0 {
                        fake.registers.insert(regs::GBPA, value & !(1 << 31));
                    }
                }
                regs::CMDQ_PROD | regs::GERRORN => {
                    fake.registers.insert(offset, value);
                    fake.consume_commands();
                }
                regs::CR0ACK | regs::IRQ_CTRLACK | regs::GERROR => {}
                _ => {
                    fake.registers.insert(offset, value);
                }
            }
        }
    }

    struct FakeMemory(Rc<RefCell<Fake>>);

    impl TableMemory for FakeMemory {
        fn alloc_zeroed(&mut self, size: usize, align: usize) -> Option<DmaRegion> {
            let words: &'static [AtomicU64] = Vec::from_iter(
                core::iter::repeat_with(|| AtomicU64::new(0)).take((size + align) / 8),
            )
            .leak();
            let skip = words
                .iter()
                .position(|word| (word as *const AtomicU64).addr().is_multiple_of(align))?;
            let words = &words[skip..skip + size / 8];
            let region = DmaRegion {
                pa: PhysAddr::new(words.as_ptr().addr() as u64),
                words,
            };
            self.0.borrow_mut().regions.push(region);
            Some(region)
        }

        fn clean_invalidate_to_poc(&self, _pa: PhysAddr, _len: usize) {
            self.0.borrow_mut().cleans += 1;
        }

        fn dma_barrier(&self) {
            let mut fake = self.0.borrow_mut();
            let snapshot = fake.stream_table();
            fake.snapshots.push(snapshot);
        }
    }

    fn needed() -> Requirements {
        Requirements {
            max_stream_id: 0x10,
            highest_output_address: PhysAddr::new(0x1_3fff_ffff),
            max_vmid: 2,
        }
    }

    fn smmu_with(idr0: u32) -> (SmmuV3<FakeMmio, FakeMemory>, Rc<RefCell<Fake>>) {
        let fake = Fake::new(idr0);
        let smmu = SmmuV3::new(BASE, FakeMmio(fake.clone()), FakeMemory(fake.clone()));
        (smmu, fake)
    }

    fn initialised() -> (SmmuV3<FakeMmio, FakeMemory>, Rc<RefCell<Fake>>) {
        let (mut smmu, fake) = smmu_with(IDR0);
        smmu.init(&needed()).unwrap();
        fake.borrow_mut().executed.clear();
        (smmu, fake)
    }

    fn cell(vmid: u16) -> S2Config {
        S2Config::for_cell(vmid, PhysAddr::new(0x4010_0000), OutputSize::Bits40)
    }

    #[test]
    fn init_aborts_everything_before_enabling() {
        let (mut smmu, fake) = smmu_with(IDR0);
        smmu.init(&needed()).unwrap();
        let fake = fake.borrow();
        let disable = fake.index_of_write(regs::CR0, |value| value == 0).unwrap();
        let abort = fake
            .index_of_write(regs::GBPA, |value| {
                value & (1 << 20 | 1 << 31) == 1 << 20 | 1 << 31
            })
            .unwrap();
        let enable = fake
            .index_of_write(regs::CR0, |value| value & 1 != 0)
            .unwrap();
        assert!(
            disable < abort && abort < enable,
            "CR0=0, GBPA.ABORT, then SMMUEN"
        );
        assert_eq!(
            fake.writes.last(),
            Some(&(regs::CR0, 0b1101)),
            "SMMUEN last"
        );
        assert_eq!(fake.register(regs::GBPA) & (1 << 20), 1 << 20);
        // A linear 32-entry table (StreamIDs 0..=0x10), every entry abort.
        assert_eq!(fake.register(regs::STRTAB_BASE_CFG), 5);
        let table = fake.stream_table();
        assert_eq!(table.len(), 32 * 8);
        for ste in table.chunks(8) {
            assert_eq!(ste, Ste::abort().words);
        }
        let strtab = fake.registers[&regs::STRTAB_BASE];
        assert_eq!(strtab & (1 << 62), 1 << 62, "RA");
        assert_eq!(strtab & 0x7ff, 0, "aligned to the 2 KiB table");
        let cmdq = fake.registers[&regs::CMDQ_BASE];
        assert_eq!(cmdq & 0x1f, 8, "256 commands");
        assert_eq!(
            fake.registers[&regs::EVENTQ_BASE] & 0x1f,
            2,
            "capped by IDR1.EVENTQS"
        );
        assert_eq!(
            fake.register(regs::IRQ_CTRL),
            0b101,
            "eventq + gerror interrupts"
        );
        assert_eq!(fake.register(regs::CR2), 0b110, "RECINVSID, PTM, E2H=0");
        assert_eq!(
            fake.register(regs::CR1),
            0xd75,
            "WB, inner shareable tables and queues"
        );
        let executed: Vec<u8> = fake.executed.iter().map(|c| c[0] as u8).collect();
        assert_eq!(
            executed,
            [0x04, 0x30, 0x46, 0x46],
            "CFGI_ALL, TLBI_NSNH_ALL, SYNC"
        );
        assert_eq!(fake.executed[0][1], 31, "CFGI_ALL range");
        // Queues enabled before translation.
        let queues = fake
            .index_of_write(regs::CR0, |value| value == 0b1100)
            .unwrap();
        assert!(queues < enable);
        assert_eq!(fake.cleans, 0, "coherent SMMU: no cache maintenance");
    }

    #[test]
    fn init_invalidates_el2_only_with_hyp() {
        let (mut smmu, fake) = smmu_with(IDR0 | (1 << 9));
        smmu.init(&needed()).unwrap();
        let executed: Vec<u8> = fake.borrow().executed.iter().map(|c| c[0] as u8).collect();
        assert_eq!(executed, [0x04, 0x30, 0x20, 0x46]);
    }

    #[test]
    fn init_refuses_stage1_only_smmu_untouched() {
        let (mut smmu, fake) = smmu_with((IDR0 & !1) | 2);
        assert_eq!(
            smmu.init(&needed()),
            Err(SmmuError::NoStage2 { base: BASE })
        );
        assert!(fake.borrow().writes.is_empty());
        assert_eq!(
            smmu.attach_stage2(0x10, &cell(1)),
            Err(SmmuError::NotInitialised)
        );
        assert_eq!(smmu.drain_events(&mut |_| {}), Drained::default());
    }

    #[test]
    fn init_times_out_on_a_dead_smmu() {
        let (mut smmu, fake) = smmu_with(IDR0);
        fake.borrow_mut().registers.insert(regs::CR0ACK, 0xff);
        fake.borrow_mut().ack_stuck = true;
        assert_eq!(
            smmu.init(&needed()),
            Err(SmmuError::Timeout {
                base: BASE,
                what: "CR0ACK"
            })
        );
    }

    #[test]
    fn init_reports_out_of_memory() {
        struct NoMemory;
        impl TableMemory for NoMemory {
            fn alloc_zeroed(&mut self, _: usize, _: usize) -> Option<DmaRegion> {
                None
            }
            fn clean_invalidate_to_poc(&self, _: PhysAddr, _: usize) {}
            fn dma_barrier(&self) {}
        }
        let fake = Fake::new(IDR0);
        let mut smmu = SmmuV3::new(BASE, FakeMmio(fake.clone()), NoMemory);
        assert_eq!(
            smmu.init(&needed()),
            Err(SmmuError::OutOfMemory {
                what: "stream table",
                size: 2048
            })
        );
        assert_eq!(fake.borrow().register(regs::CR0), 0, "left disabled");
        assert_eq!(
            fake.borrow().register(regs::GBPA) & (1 << 20),
            1 << 20,
            "aborting"
        );
    }

    #[test]
    fn attach_writes_the_stage2_entry_body_first() {
        let (mut smmu, fake) = initialised();
        fake.borrow_mut().snapshots.clear();
        smmu.attach_stage2(0x10, &cell(2)).unwrap();
        let expected = Ste::stage2(&cell(2), &smmu.features()).unwrap();
        let fake = fake.borrow();
        assert_eq!(fake.ste(0x10), expected.words);
        assert_eq!(smmu.stream_table_entry(0x10), Some(expected));
        // Invalidate the VMID while still aborting, then publish, then CFGI_STE.
        assert_eq!(
            fake.executed,
            [
                Command::TlbiS12Vmall { vmid: 2 }.encode(),
                Command::Sync.encode(),
                Command::CfgiSte { stream_id: 0x10 }.encode(),
                Command::Sync.encode(),
            ]
        );
        // The SMMU could only ever have seen the abort entry or the whole new one.
        let seen: Vec<Vec<u64>> = fake
            .snapshots
            .iter()
            .map(|table| table[0x10 * 8..0x11 * 8].to_vec())
            .collect();
        let intermediate = seen
            .iter()
            .position(|ste| ste[0] == 1 && ste[2] == expected.words[2])
            .expect("body written while word 0 still aborted");
        let live = seen
            .iter()
            .position(|ste| ste[0] == expected.words[0])
            .unwrap();
        assert!(intermediate < live);
        for ste in &seen {
            if ste[0] == expected.words[0] {
                assert_eq!(ste, &expected.words);
            }
        }
        // Nothing else changed.
        for (stream, ste) in fake.stream_table().chunks(8).enumerate() {
            if stream != 0x10 {
                assert_eq!(ste, Ste::abort().words);
            }
        }
    }

    #[test]
    fn block_aborts_then_invalidates_the_old_vmid() {
        let (mut smmu, fake) = initialised();
        smmu.attach_stage2(3, &cell(2)).unwrap();
        fake.borrow_mut().executed.clear();
        fake.borrow_mut().snapshots.clear();
        smmu.block(3).unwrap();
        let fake = fake.borrow();
        assert_eq!(fake.ste(3), Ste::abort().words);
        assert_eq!(
            fake.executed,
            [
                Command::CfgiSte { stream_id: 3 }.encode(),
                Command::TlbiS12Vmall { vmid: 2 }.encode(),
                Command::Sync.encode(),
            ]
        );
        // Word 0 went to abort first, in one store, before the commands.
        let first = &fake.snapshots[0][3 * 8..4 * 8];
        assert_eq!(first[0], 1);
        assert_ne!(first[2], 0, "body still there when word 0 already aborted");
    }

    #[test]
    fn reattach_blocks_first() {
        let (mut smmu, fake) = initialised();
        smmu.attach_stage2(3, &cell(1)).unwrap();
        fake.borrow_mut().executed.clear();
        smmu.attach_stage2(3, &cell(2)).unwrap();
        let fake = fake.borrow();
        assert_eq!(fake.executed[0], Command::CfgiSte { stream_id: 3 }.encode());
        assert_eq!(fake.executed[1], Command::TlbiS12Vmall { vmid: 1 }.encode());
        assert_eq!(fake.ste(3)[2] & 0xffff, 2);
    }

    #[test]
    fn refuses_streams_beyond_the_table_and_bad_configs() {
        let (mut smmu, fake) = initialised();
        assert_eq!(
            smmu.attach_stage2(0x20, &cell(1)),
            Err(SmmuError::StreamIdOutOfRange {
                stream_id: 0x20,
                entries: 32
            })
        );
        assert_eq!(
            smmu.block(0x1_0000),
            Err(SmmuError::StreamIdOutOfRange {
                stream_id: 0x1_0000,
                entries: 32
            })
        );
        let mut misaligned = cell(1);
        misaligned.root = PhysAddr::new(0x4010_0800);
        assert!(matches!(
            smmu.attach_stage2(1, &misaligned),
            Err(SmmuError::RootMisaligned { .. })
        ));
        assert!(fake.borrow().executed.is_empty());
        assert_eq!(smmu.stream_table_entry(1), Some(Ste::abort()));
        assert_eq!(smmu.stream_table_entry(0x20), None);
    }

    #[test]
    fn invalidate_vmid() {
        let (mut smmu, fake) = initialised();
        smmu.invalidate_vmid(7).unwrap();
        assert_eq!(
            fake.borrow().executed,
            [
                Command::TlbiS12Vmall { vmid: 7 }.encode(),
                Command::Sync.encode()
            ]
        );
    }

    #[test]
    fn refused_command_is_skipped_and_reported() {
        let (mut smmu, fake) = initialised();
        fake.borrow_mut().illegal.push(0x28);
        assert_eq!(
            smmu.invalidate_vmid(1),
            Err(SmmuError::Command {
                base: BASE,
                opcode: 0x28,
                error: CommandError::Illegal
            })
        );
        {
            let fake = fake.borrow();
            assert_eq!(fake.register(regs::GERROR), fake.register(regs::GERRORN));
            // The bad command was replaced by a SYNC; the real SYNC after it ran too.
            assert_eq!(
                fake.executed,
                [Command::Sync.encode(), Command::Sync.encode()]
            );
        }
        // An attach whose first batch fails leaves the stream aborted.
        assert!(matches!(
            smmu.attach_stage2(4, &cell(1)),
            Err(SmmuError::Command { opcode: 0x28, .. })
        ));
        assert_eq!(smmu.stream_table_entry(4), Some(Ste::abort()));
        // The queue works again once the SMMU accepts the command.
        fake.borrow_mut().illegal.clear();
        smmu.attach_stage2(4, &cell(1)).unwrap();
        assert_eq!(smmu.stream_table_entry(4).unwrap().stage2_vmid(), Some(1));
    }

    #[test]
    fn command_queue_wraps() {
        let (mut smmu, fake) = initialised();
        for vmid in 0..200 {
            smmu.invalidate_vmid(vmid).unwrap();
        }
        let fake = fake.borrow();
        assert_eq!(fake.executed.len(), 400);
        assert_eq!(
            fake.executed[398],
            Command::TlbiS12Vmall { vmid: 199 }.encode()
        );
        let prod = fake.register(regs::CMDQ_PROD);
        assert_eq!(prod, 4 + 400, "index and wrap bit after 404 commands");
    }

    fn fault(stream_id: u32, address: u64) -> [u64; 4] {
        [0x10 | (u64::from(stream_id) << 32), 1 << 39, address, 0]
    }

    #[test]
    fn drains_events_across_the_wrap() {
        let (mut smmu, fake) = initialised();
        let mut seen = Vec::new();
        for round in 0..3u64 {
            for n in 0..3 {
                fake.borrow_mut()
                    .record_event(fault(0x10, 0x1000 * (round * 3 + n)));
            }
            let drained = smmu.drain_events(&mut |event| seen.push(event));
            assert_eq!(
                drained,
                Drained {
                    events: 3,
                    overflowed: false
                }
            );
        }
        assert_eq!(seen.len(), 9);
        for (n, event) in seen.iter().enumerate() {
            assert_eq!(event.kind, EventKind::Translation);
            assert_eq!(event.stream_id, 0x10);
            assert_eq!(event.input_address, Some(0x1000 * n as u64));
            assert_eq!(event.access, Some(Access::Write));
        }
        {
            let fake = fake.borrow();
            assert_eq!(
                fake.register(regs::EVENTQ_CONS),
                fake.register(regs::EVENTQ_PROD)
            );
            assert_eq!(
                fake.register(regs::EVENTQ_CONS),
                9 % 8,
                "4 entries: index 1, wrap 0"
            );
        }
        assert_eq!(
            smmu.drain_events(&mut |_| panic!("empty")),
            Drained::default()
        );
    }

    #[test]
    fn drains_a_full_queue_and_acknowledges_overflow() {
        let (mut smmu, fake) = initialised();
        for n in 0..6 {
            fake.borrow_mut().record_event(fault(n, 0));
        }
        let mut streams = Vec::new();
        let drained = smmu.drain_events(&mut |event| streams.push(event.stream_id));
        assert_eq!(
            drained,
            Drained {
                events: 4,
                overflowed: true
            }
        );
        assert_eq!(streams, [0, 1, 2, 3], "the events that fit, oldest first");
        {
            let fake = fake.borrow();
            let prod = fake.register(regs::EVENTQ_PROD);
            let cons = fake.register(regs::EVENTQ_CONS);
            assert_eq!(
                cons & (1 << 31),
                prod & (1 << 31),
                "OVACKFLG copied from OVFLG"
            );
            assert_eq!(cons & 7, prod & 7);
        }
        fake.borrow_mut().record_event(fault(9, 0));
        let drained = smmu.drain_events(&mut |event| assert_eq!(event.stream_id, 9));
        assert_eq!(
            drained,
            Drained {
                events: 1,
                overflowed: false
            }
        );
    }

    #[test]
    fn drains_at_most_one_queue_per_call() {
        let (mut smmu, fake) = initialised();
        // A broken SMMU claiming more entries than the queue holds (PROD index 0, wrap 1 while
        // CONS says 0, wrap 0 is "full"; the driver must not loop beyond 4).
        fake.borrow_mut()
            .registers
            .insert(regs::EVENTQ_PROD, 0b100 | 0x00ff_0000);
        let drained = smmu.drain_events(&mut |_| {});
        assert_eq!(drained.events, 4);
    }

    #[test]
    fn global_errors_are_reported_and_acknowledged() {
        let (mut smmu, fake) = initialised();
        assert!(smmu.global_errors().is_empty());
        let gerrorn = fake.borrow().register(regs::GERRORN);
        fake.borrow_mut()
            .registers
            .insert(regs::GERROR, u64::from(gerrorn ^ 0b100 ^ (1 << 8)));
        let errors = smmu.global_errors();
        let list: Vec<GlobalError> = errors.iter().collect();
        assert_eq!(
            list,
            [GlobalError::EventQueueAbort, GlobalError::ServiceFailure]
        );
        assert!(smmu.global_errors().is_empty(), "acknowledged");
    }

    #[test]
    fn non_coherent_smmu_gets_cache_maintenance() {
        let (mut smmu, fake) = smmu_with(IDR0 & !(1 << 4));
        smmu.init(&needed()).unwrap();
        assert_eq!(
            fake.borrow().register(regs::CR1),
            0x820,
            "non-cacheable, outer shareable"
        );
        let before = fake.borrow().cleans;
        assert!(before >= 3, "tables and queues cleaned at init");
        smmu.attach_stage2(1, &cell(1)).unwrap();
        assert!(fake.borrow().cleans > before);
        fake.borrow_mut().record_event(fault(1, 0));
        let before = fake.borrow().cleans;
        smmu.drain_events(&mut |_| {});
        assert_eq!(fake.borrow().cleans, before + 1);
    }
}

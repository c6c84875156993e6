//! `test=display-attack`: a hostile cell against its emulated display and input devices
//! (docs/architecture.md, "Display and input"; the QEMU side is tests/tests/display_hostile.rs).
//!
//! **PL111** (at [`PL111`]): the PeriphID, then frames the hypervisor must refuse (LCDUPBASE in
//! the other cell's RAM, at the personal cell's physical RAM address, which is no guest-physical
//! one, in cellvisor's memory, straddling the end of this cell's RAM, 0 and 0xFFFF_FFF0), each
//! programmed with the controller disabled and then enabled at 640x480 24 bpp TFT, powered, each
//! write an abort probe: a write that aborts is a FAIL. Then a valid frame in its own RAM, filled
//! with magenta.
//!
//! **virtio-input** (the first transport at [`INPUT`], virtio-mmio version 2): identity, the
//! handshake, a baseline (a valid device-readable buffer on the status queue is used), then
//! malformed queues, each on a freshly reset device and followed by a notification: the status
//! queue's buffers are used on notification, so there the device must report DEVICE_NEEDS_RESET
//! for the structural errors (descriptor table outside RAM, a chain loop, a NEXT index out of
//! range; for the available index jumped by 0x8000, NEEDS_RESET or no more than a queue's worth
//! of used entries) and either NEEDS_RESET or a used buffer for a buffer's own address or
//! length; the event queue's buffers are only used when an
//! event comes (none do during the attacks), so there its answer is printed, not judged. Then a
//! notification flood, a sweep of reads and writes of all-ones over the transport's registers,
//! and last a proper event queue with its SPI routed to vCPU 0, whose events are printed as they
//! come, the buffers re-posted, for up to [`EVENT_WAIT_MS`].
//!
//! Every device register access is an abort probe ([`crate::exception::probe_read32`]), so an
//! access the hypervisor refuses with an abort is counted and printed rather than fatal. Lines:
//! `test-guest: display-attack: PASS <step>: <what happened>` or
//! `test-guest: FAIL display-attack <step>: <what happened>`, and the plain
//! `test-guest: display-attack: ...` lines named in `lines`.

use crate::exception::{probe_read32, probe_write32};
use crate::gic::{self, SPURIOUS_INTID, Trigger};
use crate::virtio_mmio::*;
use crate::{OTHER_CELL_RAM, RAM_SIZE, image_end, lines, ram_base, timer};
use cellvisor_guest_support::println;
use core::cell::UnsafeCell;
use core::fmt::Display;
use core::mem::size_of;
use core::ptr::{addr_of, addr_of_mut};

/// The cell's emulated PL111 CLCD (boards/qemu-virt `DISPLAY.cell_display`).
const PL111: u64 = 0x0C00_0000;
const TIMING0: u64 = 0x000;
const TIMING1: u64 = 0x004;
const TIMING2: u64 = 0x008;
const UPBASE: u64 = 0x010;
const CONTROL: u64 = 0x018;
const PERIPH_ID: u64 = 0xFE0;
/// PeriphID0..3 of a PL111.
const PERIPH_ID_BYTES: [u32; 4] = [0x11, 0x11, 0x24, 0x00];
/// The panel.
const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
/// Bytes per line at 24 bpp (one 32-bit word per pixel).
const STRIDE: u64 = 2560;
const FRAME_BYTES: u64 = STRIDE * HEIGHT as u64;
/// Timing0 PPL (bits 7:2): pixels per line / 16 - 1.
const TIMING0_PANEL: u32 = (WIDTH / 16 - 1) << 2;
/// Timing1 LPP (bits 9:0): lines per panel - 1.
const TIMING1_PANEL: u32 = HEIGHT - 1;
/// Timing2 CPL (bits 25:16): clocks per line - 1, as Linux's driver programs it.
const TIMING2_PANEL: u32 = (WIDTH - 1) << 16;
/// LCDControl: LCDEN, BPP = 0b101 (24 bpp), TFT, LCDPWR.
const CONTROL_ON: u32 = 1 | 0b101 << 1 | 1 << 5 | 1 << 11;
/// XRGB magenta.
const MAGENTA: u32 = 0x00FF_00FF;
/// Where the valid frame goes: this far into the cell's RAM (past the image, below the device
/// tree in the last 2 MiB).
const VALID_FRAME_OFFSET: u64 = 32 * 1024 * 1024;
/// Where the personal cell's RAM physically is in `test-guests` (it sees it at 0x4000_0000): not
/// a guest-physical address of either cell's RAM, so a frame there is refused unless the check
/// confused guest-physical and physical addresses.
const PERSONAL_PHYSICAL_RAM: u64 = 0x6000_0000;
/// cellvisor's own memory on qemu-virt (0x4000_0000..0x6000_0000), where it is not this cell's.
const CELLVISOR_MEMORY: [u64; 2] = [0x5000_0000, 0x4000_0000];

/// The first emulated virtio-input transport (`DISPLAY.cell_input`) and its INTID; device `n`
/// is [`TRANSPORT_BYTES`] × `n` further on, with INTID + `n`.
const INPUT: u64 = 0x0C01_0000;
const INPUT_INTID: u32 = 144;
/// The transport's window.
const TRANSPORT_BYTES: u64 = 0x200;
/// "virt".
const MAGIC: u32 = 0x7472_6976;
const DEVICE_ID_INPUT: u32 = 18;
/// Device status bits.
const ACKNOWLEDGE: u32 = 1;
const DRIVER: u32 = 2;
const DRIVER_OK: u32 = 4;
const FEATURES_OK: u32 = 8;
const NEEDS_RESET: u32 = 0x40;
/// Feature word 1, bit 0: VIRTIO_F_VERSION_1.
const VERSION_1: u32 = 1;
/// Descriptor flags.
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
/// The queues of a virtio-input device.
const EVENTQ: u32 = 0;
const STATUSQ: u32 = 1;
/// Descriptors per queue this guest has room for.
const MAX_QUEUE: u16 = 64;
/// Bytes of a `virtio_input_event`.
const EVENT_BYTES: u32 = 8;
/// How long the device gets to answer one notification.
const ANSWER_MS: u64 = 1000;
/// QueueNotify writes of the flood.
const FLOOD: u32 = 1_000_000;
/// How long the guest waits for key events, and how many it takes.
const EVENT_WAIT_MS: u64 = 60_000;
const EVENTS_WANTED: u32 = 8;
/// `test=input` (the bench's key reader) waits this long for events, and takes any number.
const ECHO_WAIT_MS: u64 = 3_600_000;
/// `EV_LED`, what a driver puts on the status queue.
const EV_LED: u16 = 0x11;

#[repr(C)]
#[derive(Clone, Copy)]
struct Descriptor {
    address: u64,
    length: u32,
    flags: u16,
    next: u16,
}

#[repr(C)]
struct Available {
    flags: u16,
    index: u16,
    ring: [u16; MAX_QUEUE as usize],
    used_event: u16,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct UsedElement {
    id: u32,
    length: u32,
}

#[repr(C, align(4))]
struct Used {
    flags: u16,
    index: u16,
    ring: [UsedElement; MAX_QUEUE as usize],
    avail_event: u16,
}

#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Event {
    kind: u16,
    code: u16,
    value: u32,
}

/// One queue's rings and buffers, in this cell's RAM.
#[repr(C, align(4096))]
struct QueueArea {
    descriptors: [Descriptor; MAX_QUEUE as usize],
    available: Available,
    used: Used,
    events: [Event; MAX_QUEUE as usize],
}

/// Memory the device reaches: only accessed through raw pointers, volatile.
struct DmaCell<T>(UnsafeCell<T>);

// SAFETY: only vCPU 0 runs this mode; the contents are accessed through volatile raw-pointer
// reads and writes only, never through references.
unsafe impl<T> Sync for DmaCell<T> {}

const EMPTY_AREA: QueueArea = QueueArea {
    descriptors: [Descriptor {
        address: 0,
        length: 0,
        flags: 0,
        next: 0,
    }; MAX_QUEUE as usize],
    available: Available {
        flags: 0,
        index: 0,
        ring: [0; MAX_QUEUE as usize],
        used_event: 0,
    },
    used: Used {
        flags: 0,
        index: 0,
        ring: [UsedElement { id: 0, length: 0 }; MAX_QUEUE as usize],
        avail_event: 0,
    },
    events: [Event {
        kind: 0,
        code: 0,
        value: 0,
    }; MAX_QUEUE as usize],
};

/// Transports this guest looks for input devices in (the window of `DISPLAY.cell_input`).
const MAX_INPUTS: usize = 8;
/// The queues' memory, by ring number: ring 0 is the first device's status queue, ring `1 + n`
/// device `n`'s event queue.
static AREAS: DmaCell<[QueueArea; 1 + MAX_INPUTS]> =
    DmaCell(UnsafeCell::new([EMPTY_AREA; 1 + MAX_INPUTS]));

fn area(ring: usize) -> *mut QueueArea {
    // SAFETY: only the address of an element of the static is computed.
    unsafe { addr_of_mut!((*AREAS.0.get())[ring.min(MAX_INPUTS)]) }
}

/// Guest-physical addresses of a queue's three parts.
#[derive(Clone, Copy)]
struct Rings {
    descriptors: u64,
    driver: u64,
    device: u64,
}

fn rings(ring: usize) -> Rings {
    let area = area(ring);
    // SAFETY: only addresses of fields of the static are computed.
    unsafe {
        Rings {
            descriptors: addr_of!((*area).descriptors) as u64,
            driver: addr_of!((*area).available) as u64,
            device: addr_of!((*area).used) as u64,
        }
    }
}

/// The address of buffer `index` of `ring`.
fn buffer(ring: usize, index: u16) -> u64 {
    // SAFETY: only the address of a field of the static is computed.
    unsafe { addr_of!((*area(ring)).events[usize::from(index % MAX_QUEUE)]) as u64 }
}

/// Zeroes `ring`'s memory: call it only while its device is reset.
fn clear_area(ring: usize) {
    let words = area(ring) as *mut u64;
    for index in 0..size_of::<QueueArea>() / 8 {
        // SAFETY: inside the static (page-aligned, so a multiple of 8 bytes); the device is reset.
        unsafe { words.add(index).write_volatile(0) };
    }
}

fn set_descriptor(ring: usize, index: u16, address: u64, length: u32, flags: u16, next: u16) {
    // SAFETY: a volatile write of an element of the static (index reduced into range).
    unsafe {
        addr_of_mut!((*area(ring)).descriptors[usize::from(index % MAX_QUEUE)]).write_volatile(
            Descriptor {
                address,
                length,
                flags,
                next,
            },
        )
    };
}

/// The available ring's index as the driver last published it.
fn available_index(ring: usize) -> u16 {
    // SAFETY: a volatile read of a field of the static.
    unsafe { addr_of!((*area(ring)).available.index).read_volatile() }
}

/// Publishes `head` in the available ring of a queue of `size` and moves its index on by `step`
/// (1 for an honest driver).
fn publish(ring: usize, size: u16, head: u16, step: u16) {
    let index = available_index(ring);
    // SAFETY: volatile writes of fields of the static; the barriers order the ring entry before
    // the index that publishes it, both before the notification.
    unsafe {
        addr_of_mut!((*area(ring)).available.ring[usize::from(index % size)]).write_volatile(head);
        core::arch::asm!("dsb sy", options(nostack));
        addr_of_mut!((*area(ring)).available.index).write_volatile(index.wrapping_add(step));
        core::arch::asm!("dsb sy", options(nostack));
    }
}

fn used_index(ring: usize) -> u16 {
    // SAFETY: a volatile read of a field of the static the device writes.
    unsafe { addr_of!((*area(ring)).used.index).read_volatile() }
}

fn used_entry(ring: usize, index: u16) -> UsedElement {
    let slot = usize::from(index % MAX_QUEUE);
    // SAFETY: volatile reads of fields of the static the device writes.
    unsafe {
        UsedElement {
            id: addr_of!((*area(ring)).used.ring[slot].id).read_volatile(),
            length: addr_of!((*area(ring)).used.ring[slot].length).read_volatile(),
        }
    }
}

fn event(ring: usize, index: u16) -> Event {
    let slot = usize::from(index % MAX_QUEUE);
    // SAFETY: volatile reads of fields of the static the device writes.
    unsafe {
        let event = addr_of!((*area(ring)).events[slot]);
        Event {
            kind: addr_of!((*event).kind).read_volatile(),
            code: addr_of!((*event).code).read_volatile(),
            value: addr_of!((*event).value).read_volatile(),
        }
    }
}

fn set_event(ring: usize, index: u16, kind: u16, code: u16, value: u32) {
    let slot = usize::from(index % MAX_QUEUE);
    // SAFETY: a volatile write of an element of the static.
    unsafe { addr_of_mut!((*area(ring)).events[slot]).write_volatile(Event { kind, code, value }) };
}

/// The step's outcome line.
fn report(pass: bool, step: impl Display, what: impl Display) {
    if pass {
        println!("{}PASS {step}: {what}", lines::DISPLAY_ATTACK);
    } else {
        println!("{}display-attack {step}: {what}", lines::FAIL);
    }
}

/// Register accesses to the transport, each an abort probe; aborts are counted.
#[derive(Clone, Copy)]
struct Transport {
    base: u64,
    aborts: u32,
    sizes: [u16; 2],
    /// The rings ([`AREAS`]) of its event and status queues.
    rings: [usize; 2],
}

/// What the device did after a notification.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Status has DEVICE_NEEDS_RESET.
    NeedsReset,
    /// The used index moved.
    Used,
    /// Neither, within [`ANSWER_MS`].
    Nothing,
}

impl Transport {
    /// Input transport `n` (below [`MAX_INPUTS`]); only the first has a status queue ring.
    fn new(n: usize) -> Self {
        Self {
            base: INPUT + n as u64 * TRANSPORT_BYTES,
            aborts: 0,
            sizes: [0; 2],
            rings: if n == 0 { [1, 0] } else { [1 + n, 1 + n] },
        }
    }

    /// The ring of `queue`.
    fn ring(&self, queue: u32) -> usize {
        self.rings[queue as usize & 1]
    }

    fn get(&mut self, offset: u64) -> u32 {
        match probe_read32(self.base + offset) {
            Ok(_) => {
                self.aborts += 1;
                0
            }
            Err(value) => value,
        }
    }

    fn set(&mut self, offset: u64, value: u32) {
        if probe_write32(self.base + offset, value).is_some() {
            self.aborts += 1;
        }
    }

    fn status(&mut self) -> u32 {
        self.get(STATUS)
    }

    fn notify(&mut self, queue: u32) {
        self.set(QUEUE_NOTIFY, queue);
    }

    /// Resets the device and waits for Status to read 0.
    fn reset(&mut self) -> bool {
        self.set(STATUS, 0);
        let base = self.base;
        timer::wait_until(ANSWER_MS, || matches!(probe_read32(base + STATUS), Err(0)))
    }

    /// Reset, ACKNOWLEDGE, DRIVER, VERSION_1, FEATURES_OK (read back); the queues' memory zeroed.
    fn handshake(&mut self) -> Result<(), &'static str> {
        if !self.reset() {
            return Err("Status did not read 0 after the reset");
        }
        for ring in self.rings {
            clear_area(ring);
        }
        self.set(STATUS, ACKNOWLEDGE);
        self.set(STATUS, ACKNOWLEDGE | DRIVER);
        self.set(DEVICE_FEATURES_SEL, 1);
        if self.get(DEVICE_FEATURES) & VERSION_1 == 0 {
            return Err("the device does not offer VIRTIO_F_VERSION_1");
        }
        self.set(DRIVER_FEATURES_SEL, 0);
        self.set(DRIVER_FEATURES, 0);
        self.set(DRIVER_FEATURES_SEL, 1);
        self.set(DRIVER_FEATURES, VERSION_1);
        self.set(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        if self.status() & FEATURES_OK == 0 {
            return Err("FEATURES_OK did not stick");
        }
        Ok(())
    }

    /// Hands `queue` its rings at `rings` with `size` descriptors and sets QueueReady; returns
    /// QueueReady as read back.
    fn configure(&mut self, queue: u32, size: u16, rings: Rings) -> u32 {
        self.set(QUEUE_SEL, queue);
        self.set(QUEUE_NUM, u32::from(size));
        for (low, high, address) in [
            (QUEUE_DESC_LOW, QUEUE_DESC_HIGH, rings.descriptors),
            (QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH, rings.driver),
            (QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH, rings.device),
        ] {
            self.set(low, address as u32);
            self.set(high, (address >> 32) as u32);
        }
        self.set(QUEUE_READY, 1);
        self.get(QUEUE_READY)
    }

    fn driver_ok(&mut self) {
        self.set(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    }

    /// Notifies `queue` and waits for NEEDS_RESET or a used-ring entry.
    fn answer(&mut self, queue: u32) -> Answer {
        let ring = self.ring(queue);
        let before = used_index(ring);
        self.notify(queue);
        let base = self.base;
        let mut answer = Answer::Nothing;
        timer::wait_until(ANSWER_MS, || {
            if let Err(status) = probe_read32(base + STATUS)
                && status & NEEDS_RESET != 0
            {
                answer = Answer::NeedsReset;
            } else if used_index(ring) != before {
                answer = Answer::Used;
            }
            answer != Answer::Nothing
        });
        answer
    }

    /// A valid device-readable `EV_LED` buffer on the status queue: whether the device used it.
    fn statusq_works(&mut self) -> Result<u32, &'static str> {
        self.handshake()?;
        let size = self.sizes[STATUSQ as usize];
        let ring = self.ring(STATUSQ);
        if self.configure(STATUSQ, size, rings(ring)) != 1 {
            return Err("QueueReady did not read back 1");
        }
        self.driver_ok();
        set_event(ring, 0, EV_LED, 0, 0);
        set_descriptor(ring, 0, buffer(ring, 0), EVENT_BYTES, 0, 0);
        publish(ring, size, 0, 1);
        match self.answer(STATUSQ) {
            Answer::Used => Ok(self.status()),
            Answer::NeedsReset => Err("the device needs reset after a valid buffer"),
            Answer::Nothing => Err("the device did not use a valid status buffer"),
        }
    }
}

/// vCPU 0: the PL111 attacks, then the virtio-input ones, then the events.
pub fn run() {
    pl111();
    input();
}

/// `test=input`, for the bench: no attack; the input devices' event queues are set up and their
/// events printed as they come, for up to [`ECHO_WAIT_MS`].
pub fn echo() {
    let mut transport = Transport::new(0);
    if !identify(&mut transport).0 || !open(&mut transport).0 {
        report(
            false,
            "input-id",
            "no virtio-input device at the first window",
        );
        return;
    }
    events(transport, u32::MAX, ECHO_WAIT_MS);
}

/// Writes a PL111 register (an abort probe); returns whether it did not abort.
fn pl111_write(offset: u64, value: u32) -> bool {
    probe_write32(PL111 + offset, value).is_none()
}

fn pl111_read(offset: u64) -> Option<u32> {
    probe_read32(PL111 + offset).err()
}

/// A register's value as read, or the abort the read took.
struct ReadBack(Option<u32>);

impl Display for ReadBack {
    fn fmt(&self, formatter: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self.0 {
            Some(value) => write!(formatter, "{value:#x}"),
            None => formatter.write_str("an abort"),
        }
    }
}

/// Programs the panel and a frame at `base`: disabled, the base, then enabled. Returns whether
/// every write went through without an abort, and LCDUPBASE as read back.
fn program_frame(base: u32) -> (bool, Option<u32>) {
    let mut ok = pl111_write(CONTROL, 0);
    ok &= pl111_write(TIMING0, TIMING0_PANEL);
    ok &= pl111_write(TIMING1, TIMING1_PANEL);
    ok &= pl111_write(TIMING2, TIMING2_PANEL);
    ok &= pl111_write(UPBASE, base);
    ok &= pl111_write(CONTROL, CONTROL_ON);
    (ok, pl111_read(UPBASE))
}

fn pl111() {
    let id: [Option<u32>; 4] = core::array::from_fn(|n| pl111_read(PERIPH_ID + 4 * n as u64));
    let bytes = id.map(|word| word.map(|word| word & 0xFF));
    report(
        bytes == PERIPH_ID_BYTES.map(Some),
        "pl111-id",
        format_args!("PeriphID {id:x?}, expected {PERIPH_ID_BYTES:x?}"),
    );
    let (start, end) = (ram_base(), ram_base() + RAM_SIZE);
    let outside = |base: u64| base + FRAME_BYTES <= start || base >= end;
    let cellvisor = CELLVISOR_MEMORY.into_iter().find(|&base| outside(base));
    let bad: [(&str, Option<u64>); 6] = [
        ("other-cell-ram", Some(OTHER_CELL_RAM)),
        (
            "personal-physical-ram",
            Some(PERSONAL_PHYSICAL_RAM).filter(|&base| outside(base)),
        ),
        ("cellvisor-memory", cellvisor),
        ("straddling-ram-end", Some(end - 0x1000)),
        ("zero", Some(0).filter(|&base| outside(base))),
        ("top-of-4g", Some(0xFFFF_FFF0)),
    ];
    let mut programmed = 0;
    for (name, base) in bad {
        let Some(base) = base.and_then(|base| u32::try_from(base).ok()) else {
            println!(
                "{}skipped pl111-base {name}: no such address here",
                lines::DISPLAY_ATTACK
            );
            continue;
        };
        let (ok, read_back) = program_frame(base);
        programmed += 1;
        report(
            ok,
            format_args!("pl111-base {name}"),
            format_args!(
                "LCDUPBASE {base:#x} written {}, reads back {}",
                if ok {
                    "without an abort"
                } else {
                    "with an ABORT"
                },
                ReadBack(read_back)
            ),
        );
    }
    println!(
        "{}pl111: {programmed} bad frames programmed",
        lines::DISPLAY_ATTACK
    );

    let frame = ram_base() + VALID_FRAME_OFFSET;
    if frame < image_end() || frame + FRAME_BYTES > end - 2 * 1024 * 1024 {
        report(
            false,
            "pl111-valid-frame",
            format_args!("no room for a frame at {frame:#x}"),
        );
        return;
    }
    let pixels = frame as *mut u32;
    for index in 0..(FRAME_BYTES / 4) as usize {
        // SAFETY: [frame, frame + FRAME_BYTES) is this cell's free RAM (checked above: past the
        // image, below the device tree's block); no Rust object lives there.
        unsafe { pixels.add(index).write_volatile(MAGENTA) };
    }
    let (ok, read_back) = program_frame(frame as u32);
    println!("{}valid frame at {frame:#x}", lines::DISPLAY_ATTACK);
    report(
        ok && read_back == Some(frame as u32),
        "pl111-valid-frame",
        format_args!(
            "{WIDTH}x{HEIGHT} magenta at {frame:#x}, LCDUPBASE reads back {}",
            ReadBack(read_back)
        ),
    );
}

/// One malformed-queue attack: what it does to the queue before the notification.
#[derive(Clone, Copy)]
enum Attack {
    /// The descriptor table outside the cell's RAM.
    TableOutside,
    /// One buffer at this address.
    BufferAt(u64),
    /// One buffer of length 0xFFFF_FFFF in the cell's RAM.
    LengthMax,
    /// Descriptor 0 NEXT→1, 1 NEXT→0.
    Loop,
    /// Descriptor 0 NEXT→ the queue size.
    NextOutOfRange,
    /// The available index moved on by 0x8000.
    AvailableJump,
    /// A device-readable buffer (no WRITE flag).
    Readable,
}

/// `<queue> <attack>`.
struct StepName(&'static str, &'static str);

impl Display for StepName {
    fn fmt(&self, formatter: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(formatter, "{} {}", self.0, self.1)
    }
}

/// Runs `attack` on `queue` of a freshly set-up device; returns whether the step passed.
fn attack(transport: &mut Transport, queue: u32, name: &'static str, attack: Attack) {
    let queue_name = if queue == EVENTQ { "eventq" } else { "statusq" };
    let step = StepName(queue_name, name);
    if let Err(why) = transport.handshake() {
        report(
            false,
            &step,
            format_args!("handshake before the attack: {why}"),
        );
        return;
    }
    let aborts = transport.aborts;
    let size = transport.sizes[queue as usize];
    // Device-writable on the event queue, device-readable on the status queue.
    let flags = if queue == EVENTQ { F_WRITE } else { 0 };
    let ring = transport.ring(queue);
    let mut queue_rings = rings(ring);
    let own = buffer(ring, 0);
    let mut step_by = 1;
    match attack {
        Attack::TableOutside => queue_rings.descriptors = OTHER_CELL_RAM,
        Attack::BufferAt(address) => set_descriptor(ring, 0, address, EVENT_BYTES, flags, 0),
        Attack::LengthMax => set_descriptor(ring, 0, own, u32::MAX, flags, 0),
        Attack::Loop => {
            set_descriptor(ring, 0, own, EVENT_BYTES, flags | F_NEXT, 1);
            set_descriptor(ring, 1, buffer(ring, 1), EVENT_BYTES, flags | F_NEXT, 0);
        }
        Attack::NextOutOfRange => {
            set_descriptor(ring, 0, own, EVENT_BYTES, flags | F_NEXT, size);
        }
        Attack::AvailableJump => {
            set_descriptor(ring, 0, own, EVENT_BYTES, flags, 0);
            step_by = 0x8000;
        }
        Attack::Readable => set_descriptor(ring, 0, own, EVENT_BYTES, 0, 0),
    }
    let ready = transport.configure(queue, size, queue_rings);
    transport.driver_ok();
    publish(ring, size, 0, step_by);
    let answer = transport.answer(queue);
    let status = transport.status();
    let aborts = transport.aborts - aborts;
    let what = match answer {
        Answer::NeedsReset => "the device needs reset",
        Answer::Used => "the device used the buffer",
        Answer::Nothing => "the device did nothing",
    };
    // The status queue's buffers are used on notification: a structural error must be seen
    // there; a buffer's own address or length may be refused or (if the device reads none of
    // it) simply used. The event queue's are used only when an event comes: any answer.
    let pass = queue == EVENTQ
        || match attack {
            Attack::TableOutside | Attack::Loop | Attack::NextOutOfRange => {
                answer == Answer::NeedsReset || ready == 0
            }
            // Refused, or at most a queue's worth of work for the one notification (QEMU's own
            // virtio-input walks all 0x8000 entries).
            Attack::AvailableJump => {
                answer == Answer::NeedsReset || ready == 0 || used_index(ring) <= size
            }
            Attack::BufferAt(_) | Attack::LengthMax | Attack::Readable => answer != Answer::Nothing,
        };
    report(
        pass,
        &step,
        format_args!(
            "{what} (status {status:#x}, QueueReady {ready}, used index {}, {aborts} aborts), \
             guest running",
            used_index(ring)
        ),
    );
}

/// Whether `transport` holds a modern virtio-input device: MagicValue, Version and DeviceID.
fn identify(transport: &mut Transport) -> (bool, [u32; 3]) {
    let magic = transport.get(MAGIC_VALUE);
    let version = transport.get(VERSION);
    let device = transport.get(DEVICE_ID);
    (
        magic == MAGIC && version == 2 && device == DEVICE_ID_INPUT,
        [magic, version, device],
    )
}

/// The handshake, then both queues' QueueNumMax, and the sizes used (a power of two no larger
/// than the room here); whether all went well.
fn open(transport: &mut Transport) -> (bool, Result<(), &'static str>, [u32; 2]) {
    let handshake = transport.handshake();
    let mut maxima = [0; 2];
    for queue in [EVENTQ, STATUSQ] {
        transport.set(QUEUE_SEL, queue);
        maxima[queue as usize] = transport.get(QUEUE_NUM_MAX);
    }
    transport.sizes = maxima.map(|maximum| {
        let size = maximum.min(u32::from(MAX_QUEUE));
        if size == 0 { 0 } else { 1 << size.ilog2() }
    });
    let ok = handshake.is_ok() && transport.sizes.iter().all(|&size| size > 0);
    (ok, handshake, maxima)
}

fn input() {
    let mut transport = Transport::new(0);
    let (identified, [magic, version, device]) = identify(&mut transport);
    report(
        identified,
        "input-id",
        format_args!("magic {magic:#x} version {version} device {device}"),
    );
    if !identified {
        return;
    }
    let (ready, handshake, maxima) = open(&mut transport);
    report(
        ready,
        "input-handshake",
        format_args!(
            "{handshake:?}, status {:#x}, QueueNumMax {maxima:?}, using {:?}",
            transport.status(),
            transport.sizes
        ),
    );
    if !ready {
        return;
    }
    let baseline = transport.statusq_works();
    report(
        baseline.is_ok(),
        "statusq-baseline",
        format_args!("a valid status buffer: {baseline:x?}"),
    );

    let end = ram_base() + RAM_SIZE;
    let attacks: [(&str, Attack); 8] = [
        ("desc-table-outside-ram", Attack::TableOutside),
        ("buffer-outside-ram", Attack::BufferAt(end)),
        ("buffer-in-other-cell", Attack::BufferAt(OTHER_CELL_RAM)),
        ("length-max", Attack::LengthMax),
        ("chain-loop", Attack::Loop),
        ("next-out-of-range", Attack::NextOutOfRange),
        ("avail-jump", Attack::AvailableJump),
        ("device-readable-buffer", Attack::Readable),
    ];
    for queue in [STATUSQ, EVENTQ] {
        for (name, kind) in attacks {
            // A device-readable buffer is only wrong on the event queue.
            if queue == STATUSQ && matches!(kind, Attack::Readable) {
                continue;
            }
            attack(&mut transport, queue, name, kind);
        }
    }
    flood(&mut transport);
    sweep(&mut transport);
    events(transport, EVENTS_WANTED, EVENT_WAIT_MS);
}

/// Sets up the event queue with all its buffers posted (device-writable), DRIVER_OK.
fn eventq_up(transport: &mut Transport) -> Result<u16, &'static str> {
    transport.handshake()?;
    let size = transport.sizes[EVENTQ as usize];
    let ring = transport.ring(EVENTQ);
    for index in 0..size {
        set_descriptor(ring, index, buffer(ring, index), EVENT_BYTES, F_WRITE, 0);
        publish(ring, size, index, 1);
    }
    if transport.configure(EVENTQ, size, rings(ring)) != 1 {
        return Err("QueueReady did not read back 1");
    }
    transport.driver_ok();
    if transport.status() & NEEDS_RESET != 0 {
        return Err("the device needs reset after a valid event queue");
    }
    Ok(size)
}

fn flood(transport: &mut Transport) {
    if let Err(why) = eventq_up(transport) {
        report(false, "notify-flood", format_args!("setup: {why}"));
        return;
    }
    println!(
        "{}notify-flood: {FLOOD} notifications",
        lines::DISPLAY_ATTACK
    );
    let aborts = transport.aborts;
    let start = timer::Instant::now();
    for _ in 0..FLOOD {
        transport.notify(EVENTQ);
    }
    let elapsed = start.elapsed_ms();
    let aborts = transport.aborts - aborts;
    let status = transport.status();
    let after = transport.statusq_works();
    report(
        status & NEEDS_RESET == 0 && after.is_ok(),
        "notify-flood",
        format_args!(
            "{FLOOD} notifications in {elapsed} ms ({aborts} aborts), status {status:#x} after, \
             then a valid status buffer: {after:x?}"
        ),
    );
}

fn sweep(transport: &mut Transport) {
    if let Err(why) = eventq_up(transport) {
        report(false, "register-sweep", format_args!("setup: {why}"));
        return;
    }
    let base = transport.base;
    let (mut reads, mut read_aborts, mut writes, mut write_aborts) = (0, 0, 0, 0);
    for offset in (0..TRANSPORT_BYTES).step_by(4) {
        reads += 1;
        if probe_read32(base + offset).is_ok() {
            read_aborts += 1;
        }
        if offset == STATUS || offset == QUEUE_NOTIFY {
            continue;
        }
        writes += 1;
        if probe_write32(base + offset, u32::MAX).is_some() {
            write_aborts += 1;
        }
    }
    println!("{}register-sweep done", lines::DISPLAY_ATTACK);
    let after = transport.statusq_works();
    report(
        after.is_ok(),
        "register-sweep",
        format_args!(
            "{reads} reads ({read_aborts} aborted), {writes} writes of 0xffffffff \
             ({write_aborts} aborted); after a reset a valid status buffer: {after:x?}"
        ),
    );
}

/// An input device whose event queue is up, and the used-ring entries taken from it.
#[derive(Clone, Copy)]
struct Input {
    transport: Transport,
    size: u16,
    seen: u16,
}

/// Sets up the event queue of every input device found (the first one's after its attacks; the
/// keys come from whichever is the keyboard), routes their SPIs to vCPU 0 and prints their
/// events as they come, re-posting the buffers, until `wanted` events or `wait_ms`.
fn events(first: Transport, wanted: u32, wait_ms: u64) {
    gic::mask_irq();
    gic::enable_distributor();
    gic::init_this_cpu(0, 0);
    let mut inputs: [Option<Input>; MAX_INPUTS] = [None; MAX_INPUTS];
    for (n, slot) in inputs.iter_mut().enumerate() {
        let mut transport = if n == 0 { first } else { Transport::new(n) };
        let intid = INPUT_INTID + n as u32;
        if n > 0 {
            if !identify(&mut transport).0 {
                continue;
            }
            let (ok, handshake, maxima) = open(&mut transport);
            if !ok {
                println!(
                    "{}input {n}: {handshake:?}, QueueNumMax {maxima:?}: not used",
                    lines::DISPLAY_ATTACK
                );
                continue;
            }
        }
        match eventq_up(&mut transport) {
            Ok(size) => {
                gic::route_spi(intid, Trigger::Level, 0);
                let status = transport.status();
                println!(
                    "{}input {n} at {:#x}: {size} device-writable buffers posted, status {:#x}, \
                     INTID {intid} routed to vcpu 0",
                    lines::DISPLAY_ATTACK,
                    transport.base,
                    status
                );
                *slot = Some(Input {
                    transport,
                    size,
                    seen: 0,
                });
            }
            Err(why) => println!("{}input {n}: {why}: not used", lines::DISPLAY_ATTACK),
        }
    }
    let found = inputs.iter().flatten().count();
    report(
        inputs[0].is_some(),
        "eventq-ready",
        format_args!("{found} input devices with their event queues up"),
    );
    println!("{}ready for keys", lines::DISPLAY_ATTACK);
    let deadline = timer::Instant::now().after_ms(wait_ms);
    let (mut received, mut interrupts) = (0, 0);
    while received < wanted && !deadline.has_passed() {
        for (n, input) in inputs.iter_mut().enumerate() {
            let Some(input) = input else {
                continue;
            };
            let ring = input.transport.ring(EVENTQ);
            while used_index(ring) != input.seen && received < wanted {
                let entry = used_entry(ring, input.seen);
                input.seen = input.seen.wrapping_add(1);
                let Some(id) = u16::try_from(entry.id).ok().filter(|&id| id < input.size) else {
                    report(
                        false,
                        "events",
                        format_args!("input {n}: used id {} is no buffer of its queue", entry.id),
                    );
                    return;
                };
                let event = event(ring, id);
                println!(
                    "{}event type={} code={} value={} (input {n})",
                    lines::DISPLAY_ATTACK,
                    event.kind,
                    event.code,
                    event.value as i32
                );
                if entry.length != EVENT_BYTES {
                    println!(
                        "{}(used length {} for that event)",
                        lines::DISPLAY_ATTACK,
                        entry.length
                    );
                }
                received += 1;
                publish(ring, input.size, id, 1);
                input.transport.notify(EVENTQ);
            }
        }
        // The SPI (IRQs stay masked: it is acknowledged here), then the devices' causes, then
        // the end of the interrupt, as a handler would.
        let intid = gic::acknowledge();
        for input in inputs.iter_mut().flatten() {
            let causes = input.transport.get(INTERRUPT_STATUS);
            if causes != 0 {
                input.transport.set(INTERRUPT_ACK, causes);
            }
        }
        if intid != SPURIOUS_INTID {
            if (INPUT_INTID..INPUT_INTID + MAX_INPUTS as u32).contains(&intid) {
                interrupts += 1;
            }
            gic::end_of_interrupt(intid);
        }
    }
    let aborts: u32 = inputs
        .iter()
        .flatten()
        .map(|input| input.transport.aborts)
        .sum();
    if received == 0 {
        println!("{}no events", lines::DISPLAY_ATTACK);
    } else {
        println!(
            "{}got events ({received}, {interrupts} input interrupts taken, {aborts} aborts in \
             all)",
            lines::DISPLAY_ATTACK
        );
    }
}

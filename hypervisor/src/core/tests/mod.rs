//! Host tests of the real run loop: `core::run::step` on `arch::fake` CPUs, scripted exits in,
//! recorded effects out. One file per area: hypercalls, trapped accesses, interrupts, lifecycle,
//! trapped system registers.
//!
//! They live in `core/tests/` rather than beside `run.rs` because each one crosses several core
//! modules at once (the run loop, the exit handlers, physical interrupts, the lifecycle and the
//! device bus) and all of them share the fixture below, which builds a runtime of the real QEMU
//! virt board from its DTB fixture.

mod aborts;
mod channel;
mod hypercalls;
mod interrupts;
mod lifecycle;
mod screen;
mod sysregs;
mod timeshare;

use std::boxed::Box;
use std::sync::{Mutex, Once};
use std::vec::Vec;

use crate::arch::fake::{Event, FakeBoard, FakeCpu, GIC_INFO};
use crate::board::Board;
use crate::core::cell::Cell;
use crate::core::runtime::Runtime;
use crate::setup::bundle::{Bundle, tests::archive};
use crate::setup::partition::{qemu_virt, validate};
use crate::setup::platform;

/// The kernel of every fake cell: a raw image, loaded at the start of the cell's RAM.
pub(super) const KERNEL: &[u8] = b"cellvisor fake guest: a raw image entered at its first byte";
/// The initrd of the `linux` layout's cells.
const INITRD: &[u8] = b"fake initrd";
const DTB: &[u8] = include_bytes!("../../../tests/data/qemu-virt-gicv3.dtb");
static BOARD: Board = qemu_virt::BOARD;

/// A runtime of the QEMU virt board built on fake CPUs. The runtime is leaked so hooks and
/// threads may hold it for `'static`.
pub(super) struct Fixture {
    /// The partition, built by `Runtime::build` with `cpu0` as the machine.
    pub runtime: &'static Runtime,
    /// The fake machine (RAM, GIC, event log), with the events of the build forgotten.
    pub board: FakeBoard,
    /// Physical CPU 0: vCPU 0 of the first cell.
    pub cpu0: FakeCpu,
}

/// Builds layout `layout` of the QEMU virt board with tiny fake images.
pub(super) fn fixture(layout: &str) -> Fixture {
    build(&BOARD, layout, KERNEL).unwrap_or_else(|(cell, error)| panic!("cell {cell}: {error}"))
}

/// Builds layout `layout` of `board` (the QEMU virt board's hardware, perhaps with other
/// policies) with `kernel` as every cell's kernel; the error is the cell that failed and why.
pub(super) fn build(
    board_data: &'static Board,
    layout: &str,
    kernel: &'static [u8],
) -> Result<Fixture, (String, String)> {
    build_with(
        board_data,
        layout,
        kernel,
        &crate::core::screen::Peripherals::default(),
    )
}

/// As [`build`], with the screen and input hardware of `peripherals`.
pub(super) fn build_with(
    board_data: &'static Board,
    layout: &str,
    kernel: &'static [u8],
    peripherals: &crate::core::screen::Peripherals,
) -> Result<Fixture, (String, String)> {
    let platform = platform::parse(DTB).expect("the DTB fixture parses");
    let partition =
        validate(board_data, Some(layout), &platform, &[]).expect("the layout is valid");
    let ram = partition
        .cells
        .iter()
        .flat_map(|cell| cell.memory.iter().map(|region| region.physical.to_board()))
        .collect();
    let board = FakeBoard::new(platform.cpus.len(), ram);
    if let Some(host) = &board_data.pci {
        board.install_virtio_pci(host.ecam.base);
    }
    let files: [(&str, &[u8]); 4] = [
        ("test-guest", kernel),
        ("linux", kernel),
        ("initrd-personal", INITRD),
        ("initrd-corporate", INITRD),
    ];
    let archive: &'static [u8] = Box::leak(archive(&files).into_boxed_slice());
    let bundle = Bundle::parse(archive).expect("the bundle parses");
    let mut cpu0 = board.cpu(0);
    let runtime = Runtime::build(
        board_data,
        platform,
        partition,
        bundle,
        GIC_INFO,
        peripherals,
        &mut cpu0,
    )
    .map_err(|(cell, error)| (cell.to_string(), error.to_string()))?;
    board.clear_events();
    Ok(Fixture {
        runtime: Box::leak(Box::new(runtime)),
        board,
        cpu0,
    })
}

impl Fixture {
    /// The cell named `name`.
    pub fn cell(&self, name: &str) -> &'static Cell {
        let runtime = self.runtime;
        runtime
            .cells
            .iter()
            .find(|cell| cell.name() == name)
            .unwrap_or_else(|| panic!("no cell {name}"))
    }
}

/// The events of `events` that `keep` selects, for assertions on one kind of effect.
pub(super) fn only(events: Vec<Event>, keep: impl Fn(&Event) -> bool) -> Vec<Event> {
    events.into_iter().filter(|event| keep(event)).collect()
}

/// `events` with runs of memory work on contiguous chunks (the lifecycle works in
/// `lifecycle::LIFECYCLE_CHUNK`s) merged into one event each, for assertions on what was zeroed,
/// written or verified rather than how it was cut.
pub(super) fn merged(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for event in events {
        let joined = match (out.last_mut(), &event) {
            (
                Some(Event::MemoryZeroed { address, length }),
                Event::MemoryZeroed {
                    address: next,
                    length: more,
                },
            )
            | (
                Some(Event::MemoryWritten { address, length }),
                Event::MemoryWritten {
                    address: next,
                    length: more,
                },
            ) if address.raw() + *length == next.raw() => {
                *length += more;
                true
            }
            (
                Some(Event::MemoryVerified {
                    address,
                    length,
                    nonzero,
                }),
                Event::MemoryVerified {
                    address: next,
                    length: more,
                    nonzero: found,
                },
            ) if address.raw() + *length == next.raw() => {
                *length += more;
                *nonzero += found;
                true
            }
            _ => false,
        };
        if !joined {
            out.push(event);
        }
    }
    out
}

/// What the test console (see [`console`]) printed so far.
static CONSOLE_TEXT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// The terminal of the tests that type at the console: an instant UART collecting everything.
struct TestConsole;

impl crate::console::logger::ConsoleOutput for TestConsole {
    fn try_write(&mut self, bytes: &[u8]) -> usize {
        self.write_bytes(bytes);
        bytes.len()
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        CONSOLE_TEXT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
    }

    fn set_transmit_interrupt(&mut self, _enabled: bool) {}
}

/// Installs cellvisor's global logger and terminal (once per test process) for the QEMU virt
/// board's two cells, and returns what it printed so far. The terminal is global like the real
/// one: tests that type at it must not expect to be alone on it (other tests log there too).
pub(super) fn console() -> String {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        crate::console::logger::init(Box::new(TestConsole), || 0, log::LevelFilter::Info);
        crate::console::logger::set_cells(
            &["personal", "corporate"],
            vec![Some(0), Some(0), Some(1), Some(1)],
            false,
        );
    });
    let text = CONSOLE_TEXT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    String::from_utf8_lossy(&text).into_owned()
}

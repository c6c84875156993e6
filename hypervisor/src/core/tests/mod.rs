//! Host tests of the real run loop: `core::run::step` on `arch::fake` CPUs, scripted exits in,
//! recorded effects out. One file per area: hypercalls, trapped accesses, interrupts, lifecycle,
//! trapped system registers.
//!
//! They live in `core/tests/` rather than beside `run.rs` because each one crosses several core
//! modules at once (the run loop, the exit handlers, physical interrupts, the lifecycle and the
//! device bus) and all of them share the fixture below, which builds a runtime of the real QEMU
//! virt board from its DTB fixture.

mod aborts;
mod hypercalls;
mod interrupts;
mod lifecycle;
mod sysregs;

use std::boxed::Box;
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
    let platform = platform::parse(DTB).expect("the DTB fixture parses");
    let partition =
        validate(board_data, Some(layout), &platform, &[]).expect("the layout is valid");
    let ram = partition
        .cells
        .iter()
        .flat_map(|cell| cell.memory.iter().map(|region| region.physical.to_board()))
        .collect();
    let board = FakeBoard::new(platform.cpus.len(), ram);
    let files: [(&str, &[u8]); 4] = [
        ("test-guest", kernel),
        ("linux", kernel),
        ("initrd-personal", INITRD),
        ("initrd-corporate", INITRD),
    ];
    let archive: &'static [u8] = Box::leak(archive(&files).into_boxed_slice());
    let bundle = Bundle::parse(archive).expect("the bundle parses");
    let mut cpu0 = board.cpu(0);
    let runtime = Runtime::build(board_data, platform, partition, bundle, GIC_INFO, &mut cpu0)
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

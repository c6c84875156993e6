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
//!
//! [`Machine`]: crate::core::hardware::Machine
//! [`VcpuHardware`]: crate::core::hardware::VcpuHardware
#![forbid(unsafe_code)]

pub mod gic;
pub mod lists;
pub mod ram;
pub mod script;

mod board;
mod cpu;

use std::time::Duration;

use crate::core::runtime::GicInfo;
use lists::LIST_REGISTER_COUNT;

pub use board::{Deactivator, Event, FakeBoard, Record};
pub use cpu::{El1, Entry, FakeCpu, FakeSaved};

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

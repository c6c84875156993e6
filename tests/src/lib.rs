//! QEMU harness for the integration tests: boot a cellvisor image, read and drive its serial console.
//!
//! The tests in `tests/tests/*.rs` are `#[ignore]`d by default; `cargo xtask test` builds the images and
//! runs them with `--include-ignored`, passing where the images are through `CELLVISOR_OUT` and which QEMU
//! to use through `CELLVISOR_QEMU`.
//!
//! A [`Machine`] is one running QEMU whose serial port is on piped stdio. A reader thread appends every
//! byte QEMU prints to a shared transcript, with ANSI escape sequences and carriage returns removed, so
//! tests can wait for plain text. Transcript positions are byte offsets into that cleaned text: take a
//! [`Machine::mark`] before an action and wait for its effect with [`Machine::wait_for_after`].
//! Every machine's transcript is saved to `<CELLVISOR_OUT>/transcripts/<test name>.log` when it is
//! dropped.
//!
//! Timeouts given to the harness are multiplied by `CELLVISOR_TIMEOUT_SCALE` (a float, default 1) so a
//! slow host can be given more time without editing tests.
#![forbid(unsafe_code)]

pub mod bundle;
mod config;
mod error;
mod machine;
pub mod qmp;
pub mod shell;
mod transcript;

pub use config::{
    Artifacts, BOARD_IMAGE, CORPORATE_DISK, DISPLAY_DEVICE_ARGS, GicVersion, HEADLESS_SERIAL_ARGS,
    MACHINE, MACHINE_GICV2, MMIO_LAYOUTS, NEWEST_KERNEL, NEWEST_KERNEL_LAYOUTS, PCI_DISK_DEVICE,
    PCI_LAYOUTS, PassthroughDevices, QemuBoard, QemuConfig, RASPI4B_DTB, SMMU_ARGS, machine_cpus,
    mmio_device_args, pci_device_args, pci_disk_args, pci_disk_device_args, qmp_args, scaled,
    unique_qmp_socket,
};
pub use error::HarnessError;
pub use machine::{CONSOLE_ESCAPE, Machine};
pub use qmp::{Image, Qmp};
pub use transcript::{
    ConsoleFilter, Match, cellvisor_warnings, disasters, find_line, finished_lines, last_lines,
    strip_cell_prefix,
};

//! [`PlatformError`]: why the platform device tree could not be read, with a one-line fix.

use alloc::string::{String, ToString};
use core::fmt;

/// Why the platform device tree could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// The blob is not a flattened device tree or its header is inconsistent.
    BadHeader(&'static str),
    /// The `fdt` parser refused the structure block.
    Malformed(String),
    /// No `memory` node with a non-empty range.
    NoMemory,
    /// No `cpu` node under `/cpus`.
    NoCpus,
    /// No interrupt controller node with a known GIC `compatible`.
    NoGic,
    /// A GICv2 whose node does not name the GICH and GICV frames (no virtualization extensions).
    NoGicVirtualization,
    /// `/chosen/stdout-path` is missing or does not name a node.
    NoConsole,
    /// The console named by `/chosen/stdout-path` is not an Arm PL011.
    UnsupportedConsole(String),
    /// No `/psci` node, or its `method` is neither `smc` nor `hvc`.
    NoPsci,
    /// No `arm,armv8-timer` node with at least four interrupts.
    NoTimer,
    /// A property has the wrong size or encoding.
    BadProperty {
        /// Node name.
        node: String,
        /// Property name.
        property: &'static str,
    },
    /// A node sits under a bus whose `ranges` translate addresses; cellvisor does not translate.
    TranslatedAddress(String),
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadHeader(what) => write!(
                f,
                "platform device tree: {what}: pass a valid DTB address in x0 (QEMU -M virt does this)"
            ),
            Self::Malformed(what) => write!(
                f,
                "platform device tree is malformed ({what}): check the DTB with `dtc -I dtb -O dts`"
            ),
            Self::NoMemory => write!(
                f,
                "platform device tree has no memory node: give the machine RAM (QEMU -m)"
            ),
            Self::NoCpus => write!(
                f,
                "platform device tree has no cpu nodes under /cpus: fix the boot loader's DTB"
            ),
            Self::NoGic => write!(
                f,
                "platform device tree has no GIC node (compatible \"arm,gic-v3\"): fix the boot loader's DTB"
            ),
            Self::NoGicVirtualization => write!(
                f,
                "platform GICv2 has no virtualization extensions (its reg lacks GICH and GICV): run QEMU with -M virt,virtualization=on or use a GIC-400 board"
            ),
            Self::NoConsole => write!(
                f,
                "platform device tree has no usable /chosen/stdout-path: point it at the PL011 console"
            ),
            Self::UnsupportedConsole(node) => write!(
                f,
                "console {node} is not an Arm PL011: point /chosen/stdout-path at a PL011 UART"
            ),
            Self::NoPsci => write!(
                f,
                "platform device tree has no /psci node with method \"smc\" or \"hvc\": enable PSCI firmware"
            ),
            Self::NoTimer => write!(
                f,
                "platform device tree has no arm,armv8-timer node with four interrupts: fix the boot loader's DTB"
            ),
            Self::BadProperty { node, property } => write!(
                f,
                "platform device tree node {node} has a malformed {property} property: fix the boot loader's DTB"
            ),
            Self::TranslatedAddress(node) => write!(
                f,
                "platform device tree node {node} is behind a bus with address translation: move it to the root"
            ),
        }
    }
}

impl From<fdt::FdtError> for PlatformError {
    fn from(error: fdt::FdtError) -> Self {
        Self::Malformed(error.to_string())
    }
}

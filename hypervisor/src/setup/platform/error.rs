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
    /// The console named by `/chosen/stdout-path` is neither an Arm PL011 nor a 16550.
    UnsupportedConsole(String),
    /// A CPU starts through PSCI but there is no `/psci` node, or its `method` is neither `smc`
    /// nor `hvc`.
    NoPsci,
    /// A CPU's `enable-method` is neither `psci` nor `spin-table`.
    UnsupportedEnableMethod {
        /// The CPU node's name.
        cpu: String,
        /// Its `enable-method`.
        method: String,
    },
    /// No `arm,armv8-timer` node with at least four interrupts.
    NoTimer,
    /// A property has the wrong size or encoding.
    BadProperty {
        /// Node name.
        node: String,
        /// Property name.
        property: &'static str,
    },
    /// A node sits under a bus (this one) without `ranges`: its addresses reach no CPU address.
    TranslatedAddress(String),
    /// A `reg` address of a node under a bus that no entry of the bus's `ranges` covers.
    UntranslatableAddress {
        /// The node whose `reg` it is.
        node: String,
        /// The address, on `bus`'s child side.
        address: u64,
        /// The bus whose `ranges` miss it.
        bus: String,
    },
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
                "platform device tree has no usable /chosen/stdout-path (or the cellvisor.console= bootarg names no UART): point it at the PL011 or 16550 console"
            ),
            Self::UnsupportedConsole(node) => write!(
                f,
                "console {node} is neither an Arm PL011 (arm,pl011) nor a 16550 (snps,dw-apb-uart, ns16550a): point /chosen/stdout-path at one of those UARTs or name one with the cellvisor.console=ALIAS bootarg"
            ),
            Self::NoPsci => write!(
                f,
                "platform device tree has no /psci node with method \"smc\" or \"hvc\", but a CPU starts through PSCI: enable PSCI firmware"
            ),
            Self::UnsupportedEnableMethod { cpu, method } => write!(
                f,
                "platform CPU {cpu} has enable-method {method:?}: cellvisor starts CPUs only through \"psci\" or \"spin-table\"; use firmware that offers one of them"
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
                "platform device tree node {node} has no ranges property, so addresses behind it reach no CPU address: fix the boot loader's DTB"
            ),
            Self::UntranslatableAddress { node, address, bus } => write!(
                f,
                "platform device tree node {node}: reg address {address:#x} is outside every ranges entry of bus {bus}: fix the boot loader's DTB"
            ),
        }
    }
}

impl From<fdt::FdtError> for PlatformError {
    fn from(error: fdt::FdtError) -> Self {
        Self::Malformed(error.to_string())
    }
}

//! Boot path: the boot CPU reads the platform, validates the layout, builds the cells and starts
//! the secondaries; every CPU then runs `vcpu::run`. Also the EL2 fault and panic stops, and the
//! `VcpuHardware` implementation for this CPU.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

use spin::{Mutex, Once};

use super::cpu::Cpu;
use super::entry::{cellvisor_secondary_entry, cellvisor_spin_table_entry};
use super::gic;
use super::mmu::{self, El2Layout};
use super::psci::{self, Conduit};
use super::sysreg::{self, write_sysreg};
use super::{MAX_CPUS, cache, heap, timer};
use crate::board::{Board, MemRange};
use crate::console::logger::{self, ConsoleOutput};
use crate::console::pace::{self, Paced};
use crate::core::cell::Cell;
use crate::core::hardware::Machine;
use crate::core::run;
use crate::core::runtime::{GicInfo, Runtime};
use crate::core::screen::{Peripherals, PhysicalInput};
use crate::drivers::gicv2::GicV2;
use crate::drivers::gicv3::GicV3;
use crate::drivers::ns16550::Ns16550;
use crate::drivers::pl011::Pl011;
use crate::drivers::{ConsoleUart, InterruptController};
use crate::mem::addr::PhysAddr;
use crate::setup::bundle::Bundle;
use crate::setup::partition::{self, Partition, Reserved, ReservedKind};
use crate::setup::platform::{self, EnableMethod, Platform, PsciMethod, Uart, UartKind};

unsafe extern "Rust" {
    /// The board this image was built for (defined by `cellvisor::image!` in the board crate).
    safe fn cellvisor_board() -> &'static Board;
}

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __text_end: u8;
    static __stacks_start: u8;
    static __stacks_end: u8;
}

/// The SGI cellvisor uses to make another physical CPU re-check its state.
pub(super) const KICK_SGI: u32 = 0;

static RUNTIME: Once<Runtime> = Once::new();
pub(super) static FIRMWARE: Once<Conduit> = Once::new();
/// The physical interrupt controller's distributor side.
pub(super) static GIC: Once<&'static dyn InterruptController> = Once::new();
pub(super) static CPU_MPIDRS: Once<Vec<u64>> = Once::new();
/// Per CPU index, the MPIDR affinity of a CPU being released from a spin table (`u64::MAX`, which
/// no affinity equals: none). `cellvisor_spin_table_entry` reads it with the MMU and caches off,
/// so the boot CPU cleans each entry to the point of coherency before the release.
pub(super) static SPIN_TABLE_MPIDRS: [AtomicU64; MAX_CPUS] =
    [const { AtomicU64::new(u64::MAX) }; MAX_CPUS];
/// The console UART.
pub(super) static UART: Once<Mutex<Box<dyn ConsoleUart>>> = Once::new();
/// The console UART, for last-resort messages that bypass every lock.
static EMERGENCY_UART: Once<Uart> = Once::new();

/// Writes terminal output to the physical UART.
struct UartOutput;

impl ConsoleOutput for UartOutput {
    fn try_write(&mut self, bytes: &[u8]) -> usize {
        UART.get()
            .map_or(bytes.len(), |uart| uart.lock().try_write_bytes(bytes))
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        if let Some(uart) = UART.get() {
            uart.lock().write_bytes(bytes);
        }
    }

    fn set_transmit_interrupt(&mut self, enabled: bool) {
        if let Some(uart) = UART.get() {
            uart.lock().set_transmit_interrupt(enabled);
        }
    }
}

/// The system counter and its frequency, for the paced console.
fn system_counter() -> (u64, u64) {
    (timer::counter(), timer::frequency())
}

/// A formatter over the physical UART that takes no lock, for fault and panic messages.
struct EmergencyWriter<U: ConsoleUart>(U);

impl<U: ConsoleUart> fmt::Write for EmergencyWriter<U> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for byte in text.bytes() {
            if byte == b'\n' {
                self.0.write_bytes(b"\r");
            }
            self.0.write_bytes(&[byte]);
        }
        Ok(())
    }
}

fn emergency_message(args: fmt::Arguments<'_>) {
    let Some(console) = EMERGENCY_UART.get() else {
        return;
    };
    let base = console.registers.base;
    match console.kind {
        UartKind::Pl011 => {
            // SAFETY: the console UART's frame is device memory mapped at its physical address
            // (or the MMU is still off); this writer bypasses the UART lock only on the way to
            // stopping the machine.
            if let Some(uart) = unsafe { Pl011::new(base) } {
                write_emergency(uart, args);
            }
        }
        UartKind::Ns16550 {
            reg_shift,
            reg_io_width,
        } => {
            // SAFETY: as for the PL011.
            if let Ok(uart) = unsafe { Ns16550::new(base, reg_shift, reg_io_width) } {
                write_emergency(uart, args);
            }
        }
    }
}

/// Writes `args` and a line break to `uart`, taking no lock.
fn write_emergency<U: ConsoleUart>(uart: U, args: fmt::Arguments<'_>) {
    let mut writer = EmergencyWriter(uart);
    let _ = writer.write_fmt(args);
    let _ = writer.write_str("\n");
}

/// The driver of the console UART `console`, or what is wrong with it.
///
/// # Safety
/// `console` is the platform's console UART, mapped as device memory (or the MMU is off), and
/// this is the only driver made for it outside the emergency path.
unsafe fn console_driver(console: &Uart) -> Result<Box<dyn ConsoleUart>, String> {
    let base = console.registers.base;
    match console.kind {
        UartKind::Pl011 => {
            // SAFETY: the caller's contract.
            match unsafe { Pl011::new(base) } {
                Some(uart) => Ok(Box::new(uart)),
                None => Err(
                    "the console UART is at address 0: fix its reg in the platform device tree"
                        .into(),
                ),
            }
        }
        UartKind::Ns16550 {
            reg_shift,
            reg_io_width,
        } => {
            // SAFETY: the caller's contract.
            match unsafe { Ns16550::new(base, reg_shift, reg_io_width) } {
                Ok(uart) => Ok(Box::new(uart)),
                Err(error) => Err(error.to_string()),
            }
        }
    }
}

/// Prints `args` without taking any lock and powers the machine off (or spins if firmware refuses).
pub fn halt_with_message(args: fmt::Arguments<'_>) -> ! {
    emergency_message(args);
    match FIRMWARE.get() {
        Some(&conduit) => psci::system_off(conduit),
        None => loop {
            sysreg::wfi();
        },
    }
}

/// A fatal boot error: one line saying what is wrong and how to fix it, then power off.
pub(super) fn fatal(args: fmt::Arguments<'_>) -> ! {
    halt_with_message(format_args!("cellvisor: fatal: {args}"))
}

/// Called from the EL2 vectors for an exception taken at EL2 itself: a cellvisor bug.
pub extern "C" fn hyp_fault(kind: u64, esr: u64, elr: u64, far: u64, spsr: u64) -> ! {
    if kind == super::device::STACK_OVERFLOW {
        halt_with_message(format_args!(
            "cellvisor: EL2 stack overflow on cpu{} (into its guard page): ESR_EL2={esr:#x} ELR_EL2={elr:#x} FAR_EL2={far:#x}",
            current_cpu()
        ))
    }
    halt_with_message(format_args!(
        "cellvisor: EL2 exception (vector {kind}) on cpu{}: ESR_EL2={esr:#x} ELR_EL2={elr:#x} FAR_EL2={far:#x} SPSR_EL2={spsr:#x}",
        current_cpu()
    ))
}

/// Index of the running physical CPU in the platform's `/cpus` order.
pub fn current_cpu() -> usize {
    let mpidr = sysreg::mpidr();
    CPU_MPIDRS
        .get()
        .and_then(|mpidrs| mpidrs.iter().position(|&candidate| candidate == mpidr))
        .unwrap_or(0)
}

fn conduit_of(method: PsciMethod) -> Conduit {
    match method {
        PsciMethod::Smc => Conduit::Smc,
        PsciMethod::Hvc => Conduit::Hvc,
    }
}

/// Points the emergency writer at the console and the power-off path at the PSCI firmware, if
/// the platform has them.
fn set_up_emergency_paths(platform: &Platform) {
    EMERGENCY_UART.call_once(|| platform.console);
    if let Some(method) = platform.psci_method {
        FIRMWARE.call_once(|| conduit_of(method));
    }
}

/// [`set_up_emergency_paths`] for a platform DT that cannot be read as a whole: the console and
/// the PSCI conduit alone, each if it can be read, so the fatal line is seen and the machine
/// powers off (a CI run ends) instead of waiting in silence.
fn set_up_emergency_paths_of_unreadable(blob: &[u8]) {
    if let Ok(console) = platform::parse_console(blob) {
        EMERGENCY_UART.call_once(|| console);
    }
    if let Ok(Some(method)) = platform::parse_psci_method(blob) {
        FIRMWARE.call_once(|| conduit_of(method));
    }
}

/// The platform device tree at `address`, using its header's `totalsize`.
fn device_tree(address: u64) -> Option<&'static [u8]> {
    if address == 0 || !address.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the boot loader passes the device tree's physical address in x0; we read its 40-byte
    // header (RAM, identity-mapped or MMU off) and then exactly `totalsize` bytes.
    let header = unsafe { core::slice::from_raw_parts(address as *const u8, 40) };
    if header[0..4] != [0xd0, 0x0d, 0xfe, 0xed] {
        return None;
    }
    let total = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    // SAFETY: as above; the blob is `total` bytes long and stays untouched for cellvisor's lifetime
    // (validation keeps cells out of it).
    Some(unsafe { core::slice::from_raw_parts(address as *const u8, total) })
}

fn symbol_address(symbol: &u8) -> u64 {
    symbol as *const u8 as u64
}

fn image_range() -> MemRange {
    // SAFETY: linker-script symbols; only their addresses are taken.
    let (start, end) = unsafe { (symbol_address(&__image_start), symbol_address(&__image_end)) };
    MemRange::new(start, end - start)
}

fn text_range() -> MemRange {
    // SAFETY: linker-script symbols; only their addresses are taken.
    let (start, end) = unsafe { (symbol_address(&__image_start), symbol_address(&__text_end)) };
    MemRange::new(start, end - start)
}

/// Every CPU's stack slot (guard, then stack; see image.ld).
fn stack_slots() -> MemRange {
    // SAFETY: linker-script symbols; only their addresses are taken.
    let (start, end) = unsafe {
        (
            symbol_address(&__stacks_start),
            symbol_address(&__stacks_end),
        )
    };
    MemRange::new(start, end - start)
}

/// Entered at any EL other than EL2: say so on the console and power off.
fn wrong_exception_level(el: u64, dtb: u64) -> ! {
    heap::init();
    if let Some(blob) = device_tree(dtb) {
        match platform::parse(blob) {
            Ok(platform) => set_up_emergency_paths(&platform),
            Err(_) => set_up_emergency_paths_of_unreadable(blob),
        }
    }
    halt_with_message(format_args!(
        "cellvisor: fatal: entered at EL{el}, but cellvisor must be entered at EL2: start QEMU with -M virt,virtualization=on, or make the boot loader enter the image at EL2"
    ))
}

/// The boot CPU's Rust entry (from `entry.rs`): x0 = device tree, x1 = CurrentEL.EL.
pub extern "C" fn primary_main(dtb: u64, el: u64) -> ! {
    if el != 2 {
        wrong_exception_level(el, dtb);
    }
    let board = cellvisor_board();
    heap::init();
    let Some(blob) = device_tree(dtb) else {
        halt_with_message(format_args!(
            "cellvisor: fatal: x0 ({dtb:#x}) does not point to a device tree: boot cellvisor as a Linux Image (QEMU -kernel, U-Boot booti)"
        ))
    };
    let platform = match platform::parse(blob) {
        Ok(platform) => platform,
        Err(error) => {
            set_up_emergency_paths_of_unreadable(blob);
            halt_with_message(format_args!(
                "cellvisor: fatal: platform device tree: {error}"
            ))
        }
    };
    set_up_emergency_paths(&platform);
    timer::set_counter_erratum(platform.timer.counter_erratum);
    CPU_MPIDRS.call_once(|| platform.cpus.iter().map(|cpu| cpu.mpidr).collect());
    // SAFETY: the platform's console UART belongs to cellvisor alone; this is its only owner.
    let uart = match unsafe { console_driver(&platform.console) } {
        Ok(uart) => uart,
        Err(error) => halt_with_message(format_args!("cellvisor: fatal: {error}")),
    };
    UART.call_once(|| Mutex::new(uart));
    let output: Box<dyn ConsoleOutput> = match pace::baud_from_bootargs(&platform.bootargs) {
        Some(baud) => Box::new(Paced::new(UartOutput, baud, system_counter)),
        None => Box::new(UartOutput),
    };
    logger::init(output, current_cpu, log::LevelFilter::Info);
    log::info!(
        "cellvisor {} on board {}: {} CPUs, {} RAM regions",
        env!("CARGO_PKG_VERSION"),
        board.name,
        platform.cpus.len(),
        platform.memory.len()
    );

    enable_mmu(board, &platform);

    let dtb_range = MemRange::new(dtb, blob.len() as u64);
    let mut reserved = alloc::vec![
        Reserved {
            what: ReservedKind::HypervisorImage,
            range: image_range()
        },
        Reserved {
            what: ReservedKind::PlatformDeviceTree,
            range: dtb_range
        },
    ];
    reserved.extend(
        platform
            .cpus
            .iter()
            .filter_map(|cpu| match cpu.enable_method {
                // The page of the release address: the boot loader's waiting loop is usually beside it.
                EnableMethod::SpinTable { release_address } => Some(Reserved {
                    what: ReservedKind::SpinTable,
                    range: MemRange::new(release_address & !0xfff, 0x1000),
                }),
                EnableMethod::Psci => None,
            }),
    );
    if let Some(initrd) = platform.initrd {
        reserved.push(Reserved {
            what: ReservedKind::GuestBundle,
            range: initrd,
        });
    }
    let partition = match partition::validate(board, platform.layout_name(), &platform, &reserved) {
        Ok(partition) => partition,
        Err(error) => fatal(format_args!("{error}")),
    };
    let Some(bundle_range) = platform.initrd else {
        fatal(format_args!(
            "no guest bundle: pass the cells' images as the initrd (`cargo xtask build --board {}` makes bundle-<layout>.cpio under target/cellvisor/; QEMU -initrd, or booti's second argument; `cargo xtask run` does this)",
            board.name
        ))
    };
    // SAFETY: the boot loader placed the bundle at this range, validation checked it lies inside
    // cellvisor's own memory (so no cell can write it), and it is never written.
    let bundle_bytes = unsafe {
        core::slice::from_raw_parts(bundle_range.base as *const u8, bundle_range.size as usize)
    };
    let bundle = match Bundle::parse(bundle_bytes) {
        Ok(bundle) => bundle,
        Err(error) => fatal(format_args!("guest bundle: {error}")),
    };
    log::info!(
        "layout {}: {} cells",
        partition.layout,
        partition.cells.len()
    );

    let gic: &'static dyn InterruptController = match platform.gic.v2 {
        Some(frames) => {
            // SAFETY: the GIC frames come from the platform DT and are mapped as device memory
            // (enable_mmu); cellvisor alone programs them (no cell maps GICD, GICC or GICH).
            let gicv2 = unsafe {
                GicV2::new(
                    platform.gic.distributor.base,
                    frames.cpu_interface.base,
                    frames.hypervisor_interface.base,
                )
            };
            // The driver lives for the rest of the hypervisor's life.
            let gicv2: &'static GicV2 = Box::leak(Box::new(gicv2));
            gic::use_gicv2(gicv2);
            gicv2
        }
        None => {
            // SAFETY: the GIC frames come from the platform DT and are mapped as device memory.
            let gicv3 = unsafe {
                GicV3::new(
                    platform.gic.distributor.base,
                    platform
                        .gic
                        .redistributor_regions
                        .first()
                        .map_or(0, |region| region.base),
                    platform
                        .gic
                        .redistributor_regions
                        .first()
                        .map_or(0, |region| region.size),
                )
            };
            // The driver lives for the rest of the hypervisor's life.
            Box::leak(Box::new(gicv3))
        }
    };
    GIC.call_once(|| gic);
    gic.init();

    init_smmu(board, &platform, &partition, gic);

    let gic_info = GicInfo {
        spi_lines: gic.it_lines_number(),
        list_register_count: gic::list_register_count(),
    };
    // Building the cells uses only the Machine half of `Cpu`; it is still built with the
    // platform's own CPU interface, so no GICv3 system register is ever touched on a GICv2.
    let (mut gicv2_machine, mut gicv3_machine);
    let machine: &mut dyn Machine = match gic::gicv2_interface() {
        Some(interface) => {
            gicv2_machine = Cpu::new(current_cpu(), interface, &platform.timer);
            &mut gicv2_machine
        }
        None => {
            gicv3_machine = Cpu::new(current_cpu(), gic::SystemRegisters, &platform.timer);
            &mut gicv3_machine
        }
    };
    let names: Vec<&'static str> = partition.cells.iter().map(|cell| cell.name).collect();
    let peripherals = probe_peripherals(board, &platform, &partition, machine);
    let runtime = match Runtime::build(
        board,
        platform,
        partition,
        bundle,
        gic_info,
        &peripherals,
        machine,
    ) {
        Ok(runtime) => runtime,
        Err((index, error)) => fatal(format_args!(
            "cell {}: {error}",
            names.get(index).copied().unwrap_or("?")
        )),
    };
    cache::invalidate_icache();
    let cell_names: Vec<&str> = runtime.cells.iter().map(Cell::name).collect();
    let cpu_cells = (0..runtime.platform.cpus.len())
        .map(|cpu| runtime.owner_of_cpu(cpu).map(|(cell, _)| cell))
        .collect();
    logger::set_cells(
        &cell_names,
        cpu_cells,
        runtime.platform.bootargs.contains("cellvisor.color=on"),
    );
    for cell in &runtime.cells {
        log::info!(
            "cell {}: CPUs {:?}, {} MiB RAM, VMID {}",
            cell.name(),
            cell.plan().physical_cpus().collect::<Vec<_>>(),
            cell.plan()
                .memory
                .iter()
                .map(|region| region.physical.size())
                .sum::<u64>()
                >> 20,
            cell.plan().vmid
        );
    }
    let (heap_used, heap_size) = heap::usage();
    log::info!(
        "heap: {} KiB of {} KiB in use after building the cells",
        heap_used >> 10,
        heap_size >> 10
    );
    let runtime = RUNTIME.call_once(|| runtime);

    let boot_mpidr = sysreg::mpidr();
    init_cpu_interrupts(gic, &runtime.platform, boot_mpidr);
    gic.route_spi(runtime.platform.console.intid, boot_mpidr);
    gic.set_spi_enabled(runtime.platform.console.intid, true);
    if let Some(uart) = UART.get() {
        uart.lock().enable_receive_interrupt();
    }
    // The input devices interrupt the boot CPU, like the console.
    for input in &peripherals.inputs {
        gic.set_spi_edge_triggered(input.intid, false);
        gic.route_spi(input.intid, boot_mpidr);
        gic.set_spi_enabled(input.intid, true);
    }
    start_secondaries(runtime);
    run_this_cpu(runtime, current_cpu(), true)
}

/// Finds the screen and the input devices of the board's display, if it has one: the `ramfb`
/// behind fw_cfg, and the virtio-input devices on the virtio-mmio transports no cell of the
/// layout owns.
fn probe_peripherals(
    board: &Board,
    platform: &Platform,
    partition: &crate::setup::partition::Partition,
    machine: &mut dyn Machine,
) -> Peripherals {
    let Some(display) = &board.display else {
        return Peripherals::default();
    };
    let owned = |base: u64| owned_by_a_cell(board, partition, base);
    // Only transports the platform DT lists with the board's interrupt, and no cell owns.
    let usable = |base: u64, intid: u32| {
        platform
            .virtio_mmio
            .iter()
            .any(|slot| slot.registers.base == base && slot.intid == intid)
            && !owned(base)
    };
    let screen = if platform.has_node_at(display.fw_cfg.base, "qemu,fw-cfg-mmio") {
        super::screen::probe(display, machine)
    } else {
        log::info!(
            "screen: the platform DT has no fw_cfg at {:#x}: no screen",
            display.fw_cfg.base
        );
        false
    };
    let inputs = super::input::probe(&display.input_transports, &usable)
        .into_iter()
        .map(|found| PhysicalInput {
            intid: found.intid,
            config: found.config,
        })
        .collect();
    Peripherals {
        screen,
        inputs,
        banner_ms: crate::core::screen::banner_ms_from_bootargs(&platform.bootargs),
    }
}

/// Whether a cell of `partition` owns the board device whose window starts at `base`.
fn owned_by_a_cell(
    board: &Board,
    partition: &crate::setup::partition::Partition,
    base: u64,
) -> bool {
    {
        partition.cells.iter().any(|cell| {
            cell.config.devices.iter().any(|name| {
                board.devices.iter().any(|device| {
                    device.name == *name && device.mmio.iter().any(|window| window.base == base)
                })
            })
        })
    }
}

/// Runs this CPU (index `cpu` in the platform's `/cpus` order) for the rest of its life, with the
/// run loop compiled for the platform's GIC. The boot CPU (`boot`) first puts the cell in front
/// on the screen.
fn run_this_cpu(runtime: &'static Runtime, cpu: usize, boot: bool) -> ! {
    let timers = &runtime.platform.timer;
    match gic::gicv2_interface() {
        Some(interface) => {
            let mut hardware = Cpu::new(cpu, interface, timers);
            if boot {
                first_screen(runtime, &mut hardware);
            }
            run::run(runtime, &mut hardware)
        }
        None => {
            let mut hardware = Cpu::new(cpu, gic::SystemRegisters, timers);
            if boot {
                first_screen(runtime, &mut hardware);
            }
            run::run(runtime, &mut hardware)
        }
    }
}

/// Shows the banner of the cell in front, then its screen.
fn first_screen<I: gic::CpuInterface>(runtime: &Runtime, hardware: &mut Cpu<I>) {
    if let Some(screen) = &runtime.screen {
        screen.bring_to_front(&runtime.cells, runtime.foreground(), hardware);
    }
}

/// Takes over the board's SMMUv3, if the platform has it: every stream aborts until a cell's
/// device is allowed through its stage 2 (when the cell is loaded), and its event and global
/// error interrupts come to the boot CPU.
fn init_smmu(
    board: &Board,
    platform: &Platform,
    partition: &Partition,
    gic: &dyn InterruptController,
) {
    let Some(smmu) = &board.smmu else {
        return;
    };
    if !platform.has_node_at(smmu.registers.base, "arm,smmu-v3") {
        // Validation refused every layout that needs it; nothing is behind it then.
        log::info!(
            "SMMU: the board's SMMUv3 at {:#x} is not in the platform device tree",
            smmu.registers.base
        );
        return;
    }
    let max_stream_id = board
        .pci
        .iter()
        .flat_map(|host| host.functions.iter())
        .map(|function| function.address.requester_id())
        .max()
        .unwrap_or(0);
    let highest = platform
        .memory
        .iter()
        .chain(board.pci.iter().map(|host| &host.memory_window))
        .filter_map(|range| range.end())
        .max()
        .unwrap_or(0)
        .saturating_sub(1);
    let needed = crate::smmu::Requirements {
        max_stream_id,
        highest_output_address: crate::mem::addr::PhysAddr::new(highest),
        max_vmid: u16::try_from(partition.cells.len()).unwrap_or(u16::MAX),
    };
    if let Err(error) =
        super::smmu::init(smmu.registers.base, &needed, mmu::physical_address_size())
    {
        fatal(format_args!("{error}"));
    }
    let boot_mpidr = sysreg::mpidr();
    for intid in [smmu.event_intid, smmu.gerror_intid] {
        gic.set_spi_edge_triggered(intid, true);
        gic.route_spi(intid, boot_mpidr);
        gic.set_spi_enabled(intid, true);
    }
    log::info!(
        "SMMU: SMMUv3 at {:#x} owns DMA: streams abort unless a cell's device is given its stage 2",
        smmu.registers.base
    );
}

/// Per-CPU GIC setup: the redistributor (GICv3) or banked distributor registers and CPU interface
/// (GICv2) through the driver, then the CPU interface. The PPIs
/// cellvisor takes on every CPU are the vGIC maintenance interrupt, the guest's two EL1 timers
/// (forwarded as hardware-linked virtual interrupts) and EL2's own timer (time-sharing slices).
fn init_cpu_interrupts(gic: &dyn InterruptController, platform: &Platform, mpidr: u64) {
    // EL2's own timer (CNTHP) is off until a time-shared CPU arms it for a slice.
    // SAFETY: CNTHP is EL2's; disabling it only silences its PPI.
    unsafe { write_sysreg!("cnthp_ctl_el2", super::cpu::CNTHP_OFF) };
    let ppis = [
        platform.gic.maintenance_intid.unwrap_or(25),
        platform.timer.virtual_timer,
        platform.timer.nonsecure_physical,
        platform.timer.hypervisor_physical,
    ];
    if !gic.init_cpu(mpidr, &ppis) {
        fatal(format_args!(
            "no GIC redistributor (GICv3) or CPU interface number (GICv2) for CPU with MPIDR {mpidr:#x}"
        ));
    }
    gic::init_cpu_interface();
}

fn enable_mmu(board: &Board, platform: &Platform) {
    let mut devices = alloc::vec![platform.gic.distributor, platform.console.registers];
    devices.extend(platform.gic.redistributor_regions.iter().copied());
    // A GICv2's CPU interface and virtual interface control are EL2's (the GICV frame is the
    // cells', mapped in their stage 2 only).
    if let Some(frames) = platform.gic.v2 {
        devices.extend([frames.cpu_interface, frames.hypervisor_interface]);
    }
    // Passthrough devices, for forwarding accesses to pages several cells share.
    devices.extend(
        board
            .devices
            .iter()
            .flat_map(|device| device.mmio.iter().copied()),
    );
    // The PCI host's ECAM (cellvisor probes, assigns and filters the functions' configuration
    // space) and the functions' BAR windows (a virtio reset is a BAR write); the SMMU's registers.
    if let Some(host) = &board.pci {
        devices.push(host.ecam);
        devices.extend(host.functions.iter().map(|function| function.bar_window));
    }
    if let Some(smmu) = &board.smmu {
        devices.push(smmu.registers);
    }
    // The display's fw_cfg (the screen's scanout) and the transports probed for input devices.
    if let Some(display) = &board.display {
        devices.push(display.fw_cfg);
        devices.push(display.input_transports.range());
    }
    let layout = El2Layout {
        hypervisor: board.hypervisor_memory,
        text: text_range(),
        ram: &platform.memory,
        devices: &devices,
        stack_guards: stack_slots(),
    };
    // SAFETY: runs once on the boot CPU with the MMU off; the map covers cellvisor's memory
    // (image, stacks, heap, bundle, device tree), all RAM and the devices it drives.
    if let Err(error) = unsafe { mmu::enable_boot_cpu(&layout) } {
        fatal(format_args!("building the EL2 page table: {error}"));
    }
}

/// Starts every other CPU a cell runs on, each the way the platform DT says: PSCI CPU_ON, or a
/// release from its spin table.
fn start_secondaries(runtime: &Runtime) {
    let boot = current_cpu();
    for (index, cpu) in runtime.platform.cpus.iter().enumerate() {
        // A CPU no vCPU runs on stays off; a time-shared one has no single owner but runs.
        if index == boot || runtime.vcpus_of_cpu(index).is_empty() {
            continue;
        }
        if index >= MAX_CPUS {
            log::warn!("CPU {index} is beyond the {MAX_CPUS} CPUs this build supports: left off");
            continue;
        }
        match cpu.enable_method {
            EnableMethod::Psci => start_through_psci(index, cpu.mpidr),
            EnableMethod::SpinTable { release_address } => {
                release_from_spin_table(index, cpu.mpidr, release_address);
            }
        }
    }
}

/// Starts CPU `index` (affinity `mpidr`) with PSCI CPU_ON at `cellvisor_secondary_entry`.
fn start_through_psci(index: usize, mpidr: u64) {
    let Some(&conduit) = FIRMWARE.get() else {
        log::error!(
            "CPU {index} (MPIDR {mpidr:#x}) starts through PSCI, but the platform DT has no /psci node: left off"
        );
        return;
    };
    let entry = cellvisor_secondary_entry as *const () as u64;
    let status = psci::cpu_on(conduit, mpidr, entry, index as u64);
    if status != 0 {
        log::error!("PSCI CPU_ON of CPU {index} (MPIDR {mpidr:#x}) failed: {status}");
    }
}

/// Releases CPU `index` (affinity `mpidr`), which waits in its boot loader's spin table for a
/// non-zero entry address at `release_address` (validation reserved that page for cellvisor):
/// writes `cellvisor_spin_table_entry` there, makes it and the CPU's MPIDR visible to a CPU
/// whose caches are off, and wakes it with SEV.
fn release_from_spin_table(index: usize, mpidr: u64, release_address: u64) {
    if !release_address.is_multiple_of(8) {
        log::error!(
            "CPU {index} (MPIDR {mpidr:#x}): its cpu-release-addr {release_address:#x} is not 8-byte aligned: left off"
        );
        return;
    }
    let Some(slot) = SPIN_TABLE_MPIDRS.get(index) else {
        return;
    };
    slot.store(mpidr, Ordering::Release);
    cache::clean_invalidate_to_poc(slot.as_ptr() as usize, 8);
    let release = PhysAddr::new(release_address).to_virt().as_usize();
    let entry = cellvisor_spin_table_entry as *const () as u64;
    // SAFETY: the release address is an aligned word of RAM inside cellvisor's own memory
    // (validation reserved its page), mapped normal in EL2's identity map; only this CPU's boot
    // loader reads it, waiting for exactly this write.
    unsafe { core::ptr::write_volatile(release as *mut u64, entry) };
    cache::clean_invalidate_to_poc(release, 8);
    sysreg::dsb_sy();
    sysreg::sev();
}

/// A secondary CPU's Rust entry: x0 = its CPU index.
pub extern "C" fn secondary_main(cpu: u64) -> ! {
    // SAFETY: the boot CPU built the EL2 map before starting this CPU; our MMU is still off.
    unsafe { mmu::enable_this_cpu() };
    let (Some(runtime), Some(&gic)) = (RUNTIME.get(), GIC.get()) else {
        halt_with_message(format_args!(
            "cellvisor: secondary CPU started before the runtime"
        ))
    };
    init_cpu_interrupts(gic, &runtime.platform, sysreg::mpidr());
    // `cpu` is this CPU's index in the platform's `/cpus` order (start_secondaries passes it).
    run_this_cpu(runtime, cpu as usize, false)
}

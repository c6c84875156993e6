//! The test guest: a bare-metal EL1 program that checks what cellvisor gives a cell (console,
//! PSCI, SMP, isolation; `test=all`), prints heartbeats (`test=heartbeat`), proves that no
//! interrupt is lost to a spinning or an idle vCPU (`test=sgis`: a sibling's SGIs, `sgis`;
//! `test=spis`: a passed-through virtio-blk disk's SPIs, `spis` and `virtio_blk`), keeps that
//! disk's reads in flight into its own RAM for a wipe to meet (`test=dma-flood`), aims a
//! passed-through virtio-blk PCI disk's DMA at addresses outside its RAM (`test=dma-attack`,
//! `dma_attack` over `pci` and `virtio_pci`), watches a pattern in its RAM as that attack's victim
//! (`test=pattern`), checks that its registers keep their values while it time-shares a CPU with
//! another cell (`test=switch`, `switch`), attacks its emulated display and input devices
//! (`test=display-attack`, `display_attack`), or runs the hostile-guest attacks (`attack`), and reports each result as one
//! console line (see `lines`).
//!
//! Loaded at the start of the cell's RAM (0x4000_0000 in the remapped test cells, the physical
//! base in an identity-mapped one) and entered at its first byte at EL1h with MMU and caches off
//! and x0 = the cell's device tree, whose `/chosen/bootargs` selects what to run (see `options`).
//! It is linked at 0x4000_0000 as a position-independent executable and relocates itself at entry
//! (build.rs). The image starts with an arm64 Image header (`text_offset` 0, see `entry`), which
//! cellvisor reads to place it exactly where it placed the headerless binary.
//!
//! Without cellvisor it runs on plain QEMU, PSCI then answered by QEMU itself:
//! `qemu-system-aarch64 -M virt,gic-version=3 -cpu max -smp 2 -m 2G -nographic -kernel
//! target/cellvisor/test-guest.bin -append "test=..."`. QEMU boots the raw image as a Linux Image:
//! at RAM base + 2 MiB (0x4020_0000: it keeps the first 2 MiB for its boot stub when `text_offset`
//! is below 4 KiB), with x0 = its own device tree (128 MiB into RAM from 256 MiB of RAM on, halfway
//! into a smaller one) whose `/chosen/bootargs` is the `-append` text. Given the ELF instead
//! (`-kernel <ELF>`) QEMU loads it where it is linked and passes no device tree (x0 = 0): the
//! bootargs are then empty. Natively QEMU does not check CPU_ON entry points, so the
//! INVALID_ADDRESS check fails, and nothing is isolated (`skip=invalid-address,isolation`).
#![no_std]
#![no_main]

mod attack;
mod display_attack;
mod dma_attack;
mod dma_flood;
mod entry;
mod exception;
mod gic;
mod lines;
mod options;
mod pattern;
mod psci;
mod residue;
mod sgis;
mod spis;
mod switch;
mod timer_levels;
mod virtio_blk;
mod virtio_mmio;
mod vsock_attack;

use cellvisor_guest_support::{fdt, pci, println, timer, virtio_pci, virtqueue};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use exception::{Access, DFSC_SYNC_EXTERNAL_ABORT, EC_DATA_ABORT_SAME_EL};
use options::{Mode, Options};

/// RAM a test cell has (plain QEMU: `-m 64M`), from where the image was loaded.
const RAM_SIZE: u64 = 64 * 1024 * 1024;
/// Physical base of the corporate cell's RAM: no cell maps this guest-physical address.
const OTHER_CELL_RAM: u64 = 0x9000_0000;
/// A CPU_ON entry point outside the cell's RAM.
const ENTRY_OUTSIDE_RAM: u64 = 0x1000_0000;
/// MPIDR of a vCPU the cell does not have.
const ABSENT_MPIDR: u64 = 7;
/// Context id handed to vCPU 1 through CPU_ON.
const CONTEXT_ID: u64 = 0xC0DE_0001;
/// SMCCC function IDs nobody implements: a fast SiP call, SMC32 and SMC64.
const UNKNOWN_SMCCC_CALLS: [u32; 2] = [0x8200_1234, 0xC200_1234];
/// Upper bound for waiting on another vCPU (generous: the machine may be slow and shared).
const WAIT_MS: u64 = 10_000;

/// vCPUs that reached Rust code (vCPU 0 counts itself).
static VCPUS_ONLINE: AtomicU32 = AtomicU32::new(1);
/// Set by vCPU 0 when vCPU 1 may call CPU_OFF.
static RELEASE_SECONDARY: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    /// The image's first byte: the start of the cell's RAM; from the linker script.
    static __image_start: u8;
    /// End of everything the guest uses (image, .bss, stacks); from the linker script.
    static __image_end: u8;
}

/// Guest-physical base of the cell's RAM, where the image runs (plain QEMU `virt`: 0x4000_0000).
fn ram_base() -> u64 {
    (&raw const __image_start) as u64
}

/// One past the last byte the image uses (code, data, .bss, stacks).
fn image_end() -> u64 {
    (&raw const __image_end) as u64
}

/// vCPU 0's Rust entry, with x0 as the cell was entered.
pub extern "C" fn primary_main(device_tree: u64) -> ! {
    println!("{} (mpidr {:#x})", lines::HELLO, mpidr());
    let device_tree = device_tree_at(device_tree);
    let bootargs = device_tree.and_then(fdt::chosen_bootargs).unwrap_or("");
    println!("{}\"{bootargs}\"", lines::BOOTARGS);
    if let Some(attacks) = attack::requested(bootargs) {
        attack::run(attacks);
    }
    let options = Options::parse(bootargs, |word| {
        println!("{}\"{word}\"", lines::IGNORED_BOOTARG)
    });
    match options.mode {
        Mode::All => {
            check_psci_version();
            check_unknown_smccc_calls();
            check_smp_and_psci_errors(&options);
            if options.skips(lines::CHECK_ISOLATION) {
                println!("{}{}", lines::SKIPPED, lines::CHECK_ISOLATION);
            } else {
                check_isolation();
            }
        }
        Mode::Heartbeat => heartbeat(&options),
        Mode::Sgis => sgis::run(),
        Mode::Residue => residue::run(|| heartbeat(&options)),
        Mode::TimerLevels => timer_levels::run(),
        Mode::Spis => spis::run(device_tree),
        Mode::DmaFlood => dma_flood::run(device_tree),
        Mode::DmaAttack => dma_attack::run(device_tree, &options),
        Mode::Pattern => pattern::run(device_tree, &options),
        Mode::Switch => switch::run(
            options.seed,
            options.check_seed.unwrap_or(options.seed),
            options.rounds,
        ),
        Mode::DisplayAttack => display_attack::run(),
        Mode::Input => display_attack::echo(),
        Mode::VsockAttack => vsock_attack::run(),
    }
    println!("{}", lines::DONE);
    psci::system_off()
}

/// A secondary vCPU's Rust entry: `context_id` from CPU_ON, `index` = MPIDR_EL1.Aff0.
extern "C" fn secondary_main(context_id: u64, index: u64) -> ! {
    attack::secondary(context_id);
    sgis::secondary(context_id, index);
    spis::secondary(context_id, index);
    if index == 1 && context_id == CONTEXT_ID {
        println!("{}", lines::VCPU1_ONLINE);
    } else {
        println!(
            "{}vcpu {index} started with context id {context_id:#x}",
            lines::FAIL
        );
    }
    // Exclusives with the MMU off work on QEMU, which is all this guest runs on.
    VCPUS_ONLINE.fetch_add(1, Ordering::SeqCst);
    while !RELEASE_SECONDARY.load(Ordering::SeqCst) {
        core::hint::spin_loop();
    }
    psci::cpu_off()
}

fn mpidr() -> u64 {
    let value: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) value, options(nomem, nostack)) };
    value
}

/// How far past the image's start a device tree may lie: cellvisor puts it in the last 2 MiB
/// block of the cell's RAM (62 MiB in for the 64 MiB test cells), plain QEMU 128 MiB into RAM
/// (0x4800_0000, 126 MiB past the image it loads at 0x4020_0000) from 256 MiB of RAM on.
const DEVICE_TREE_REACH: u64 = 256 * 1024 * 1024;
/// The largest device tree accepted (cellvisor's and Linux's limit).
const MAX_DEVICE_TREE: usize = 2 * 1024 * 1024;

/// The device tree at `address`, which must lie in RAM after the image, within
/// [`DEVICE_TREE_REACH`] of its start; its first and last words are read with an abort probe
/// first, so that a bad x0 makes a FAIL line rather than an unexpected exception.
fn device_tree_at(address: u64) -> Option<&'static [u8]> {
    let image_end = (&raw const __image_end) as u64;
    let reach = ram_base() + DEVICE_TREE_REACH;
    if address == 0 {
        println!("{} (x0=0x0)", lines::NO_DEVICE_TREE);
        return None;
    }
    if !(image_end..reach).contains(&address) || !address.is_multiple_of(8) {
        println!(
            "{}device tree at {address:#x} is not in free RAM ({image_end:#x}..{reach:#x})",
            lines::FAIL
        );
        return None;
    }
    let readable = |at: u64| exception::probe(at, Access::Read).is_err();
    if !readable(address) {
        println!("{}device tree at {address:#x} is not readable", lines::FAIL);
        return None;
    }
    // SAFETY: [address, address + 8) is readable RAM of this cell (just probed) above everything
    // the guest writes, so it is not mutated while the 'static slice lives.
    let header = unsafe { core::slice::from_raw_parts(address as *const u8, 8) };
    let Some(size) = fdt::total_size(header).filter(|&size| {
        (8..=MAX_DEVICE_TREE).contains(&size)
            && readable((address + size as u64 - 8) & !7)
            && address + size as u64 <= reach
    }) else {
        println!("{}no device tree at {address:#x}", lines::FAIL);
        return None;
    };
    // SAFETY: as above: its first and last words are readable RAM, and a device tree is one
    // contiguous blob in the RAM the loader (cellvisor, QEMU) put it in.
    Some(unsafe { core::slice::from_raw_parts(address as *const u8, size) })
}

fn check_psci_version() {
    let version = psci::hvc(psci::PSCI_VERSION, 0, 0, 0);
    let (major, minor) = ((version >> 16) & 0x7FFF, version & 0xFFFF);
    println!("{}{major}.{minor}", lines::PSCI_VERSION);
    if version < 0 || major < 1 {
        println!("{}psci version {version:#x} is below 1.0", lines::FAIL);
    }
}

fn check_unknown_smccc_calls() {
    let mut ok = true;
    for function in UNKNOWN_SMCCC_CALLS {
        let result = psci::hvc(function, 0, 0, 0);
        if result != psci::NOT_SUPPORTED {
            println!(
                "{}smccc {function:#x} returned {result}, expected -1",
                lines::FAIL
            );
            ok = false;
        }
    }
    if ok {
        println!("{}", lines::SMCCC_UNKNOWN_OK);
    }
}

/// Checks a PSCI result, printing a FAIL line if it is not `expected`.
fn expect(what: &str, result: i64, expected: i64) -> bool {
    if result != expected {
        println!(
            "{}{what} returned {result}, expected {expected}",
            lines::FAIL
        );
    }
    result == expected
}

fn check_smp_and_psci_errors(options: &Options) {
    let entry = entry::secondary_entry as *const () as u64;
    if !expect(
        "cpu_on(1)",
        psci::cpu_on(1, entry, CONTEXT_ID),
        psci::SUCCESS,
    ) {
        return;
    }
    if !timer::wait_until(WAIT_MS, || VCPUS_ONLINE.load(Ordering::SeqCst) == 2) {
        println!("{}vcpu 1 did not come online", lines::FAIL);
        return;
    }
    println!("{}", lines::SMP_OK);

    let mut ok = expect(
        "cpu_on(1) again",
        psci::cpu_on(1, entry, 0),
        psci::ALREADY_ON,
    );
    ok &= expect(
        "cpu_on(7)",
        psci::cpu_on(ABSENT_MPIDR, entry, 0),
        psci::INVALID_PARAMETERS,
    );

    RELEASE_SECONDARY.store(true, Ordering::SeqCst);
    if !timer::wait_until(WAIT_MS, || psci::affinity_info(1) == psci::AFFINITY_OFF) {
        println!("{}affinity_info(1) never reported OFF", lines::FAIL);
        return;
    }
    println!("{}", lines::VCPU1_OFF);

    // vCPU 1 is off, so a bad entry point is the only thing wrong with this call.
    if options.skips(lines::CHECK_INVALID_ADDRESS) {
        println!("{}{}", lines::SKIPPED, lines::CHECK_INVALID_ADDRESS);
    } else {
        ok &= expect(
            "cpu_on(1) with entry outside RAM",
            psci::cpu_on(1, ENTRY_OUTSIDE_RAM, 0),
            psci::INVALID_ADDRESS,
        );
    }
    if ok {
        println!("{}", lines::PSCI_ERRORS_OK);
    }
}

fn check_isolation() {
    let probes = [
        (OTHER_CELL_RAM, Access::Read),
        (OTHER_CELL_RAM, Access::Write),
        (ram_base() + RAM_SIZE, Access::Read),
    ];
    let mut ok = true;
    for (address, access) in probes {
        match exception::probe(address, access) {
            Ok(abort) => {
                println!(
                    "{} esr={:#x} far={:#x}",
                    lines::ABORT_INJECTED,
                    abort.esr,
                    abort.far
                );
                if abort.exception_class() != EC_DATA_ABORT_SAME_EL
                    || abort.fault_status() != DFSC_SYNC_EXTERNAL_ABORT
                    || abort.far != address
                {
                    println!(
                        "{}: wrong abort syndrome for {address:#x}",
                        lines::FAIL_ISOLATION
                    );
                    ok = false;
                }
            }
            Err(value) => {
                println!(
                    "{}: access to {address:#x} did not abort (read {value:#x})",
                    lines::FAIL_ISOLATION
                );
                ok = false;
            }
        }
    }
    if ok {
        println!("{}", lines::ISOLATION_OK);
    }
}

fn heartbeat(options: &Options) {
    let start = timer::Instant::now();
    let mut previous = start;
    for beat in 1..=options.beats {
        let due = start.after_ms(u64::from(beat) * u64::from(options.period_ms));
        while !due.has_passed() {
            core::hint::spin_loop();
        }
        if options.gaps {
            // From the previous line's start to this one's: its printing plus the wait.
            let now = timer::Instant::now();
            let gap = previous.elapsed_us();
            previous = now;
            println!("{}{beat}/{} gap_us={gap}", lines::HEARTBEAT, options.beats);
        } else {
            println!("{}{beat}/{}", lines::HEARTBEAT, options.beats);
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("{}panic: {info}", lines::FAIL);
    psci::system_off()
}

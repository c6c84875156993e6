//! Guest fidelity: Debian's newest cloud kernel for the host's release (bookworm-backports' 6.12,
//! pinned in xtask/src/debian.rs, next to the default 6.1 that tests/tests/linux.rs boots) runs
//! unmodified in *both* cells of the `linux` layout, with initramfs built with its own modules, on
//! QEMU's full `-cpu max` (SVE and SME on, unlike the other tests' `max,sve=off,sme=off`).
//!
//! One boot checks, in each cell: the kernel release, two CPUs, timer ticks on both, the
//! passthrough driver modules loaded from the cell's initramfs, SVE usable from user space (a small
//! static program executes RDVL; RDSVL too, for SME, when the kernel advertises it), and the channel
//! between the cells through the kernel's own vsock modules (a paste and a badge). Then the shells
//! idle for a while, and the whole transcript must hold no warning or error from cellvisor and the
//! kernel logs no splat: everything an unmodified Debian kernel does while it boots and idles must
//! work without cellvisor complaining.

use std::time::Duration;

use cellvisor_tests::{
    Artifacts, HarnessError, Machine, NEWEST_KERNEL, QemuConfig, bundle, cellvisor_warnings,
    disasters, shell,
};

/// Generous: the machine running the tests is shared and slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// For one shell command or one console reaction.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long both shells sit idle before the transcript is checked.
const IDLE: Duration = Duration::from_secs(5);

const LAYOUT: &str = "linux";
const PERSONAL: &str = "personal";
const CORPORATE: &str = "corporate";
/// The cells in console order: Ctrl-A `1` focuses the first, Ctrl-A `2` the second.
const CELLS: [&str; 2] = [PERSONAL, CORPORATE];

/// The oldest kernel series the newest-kernel bundle may hold.
const NEWEST_AT_LEAST: (u32, u32) = (6, 12);

/// What each cell's `etc/cellvisor-devices` prints once its driver modules are loaded, and one of
/// those modules (guests/linux/<cell>/modules).
const DEVICE_LINES: [(&str, &str, &str); 2] = [
    (PERSONAL, "cellvisor-net: eth0 10.0.2.15", "virtio_net"),
    (
        CORPORATE,
        "cellvisor-disk: mounted /dev/vda at /mnt/disk",
        "virtio_blk",
    ),
];

/// Kernel messages that mean something went wrong in the guest, looked for in `dmesg` (the console
/// shows only errors once the shell runs).
const KERNEL_SPLATS: &str = "WARNING:|BUG:|Oops|Internal error|Call trace|rcu.*stall|soft lockup";

fn fail(error: HarnessError) -> ! {
    panic!("{error}")
}

/// The kernel release (`uname -r`) the `linux` entry of `bundle` names in its banner.
fn bundled_kernel_release(bundle: &std::path::Path) -> String {
    bundle::linux_release(&bundle::entry(bundle, "linux"))
        .unwrap_or_else(|| panic!("the kernel in {} has no banner", bundle.display()))
}

/// `(major, minor)` of a kernel release such as `6.12.95+deb12-cloud-arm64`.
fn series(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// A static AArch64 Linux executable (one ELF header, one program header, `code`), loaded at
/// 0x40_0000 and entered at its first instruction.
fn static_executable(code: &[u32]) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const HEADERS: u64 = 64 + 56;
    let size = HEADERS + 4 * code.len() as u64;
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(BASE + HEADERS).to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // program headers
    elf.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    elf.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 1, 0, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // read + execute
    for word in [0, BASE, BASE, size, size, 0x1000] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    for instruction in code {
        elf.extend_from_slice(&instruction.to_le_bytes());
    }
    elf
}

/// A program whose exit status is the vector length `read` (RDVL or RDSVL into x0) in units of
/// 16 bytes: `<read> x0, #1; lsr x0, x0, #4; mov x8, #93 (exit); svc #0`.
fn vector_length_program(read: u32) -> Vec<u8> {
    static_executable(&[read, 0xd344_fc00, 0xd280_0ba8, 0xd400_0001])
}

/// `RDVL x0, #1`: the SVE vector length in bytes.
const RDVL_X0_1: u32 = 0x04bf_5020;
/// `RDSVL x0, #1`: the SME streaming vector length in bytes.
const RDSVL_X0_1: u32 = 0x04bf_5820;

/// Standard base64 (with padding), as busybox `base64 -d` reads it.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in data.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let group = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
        for index in 0..4 {
            if index <= chunk.len() {
                text.push(char::from(
                    ALPHABET[(group >> (18 - 6 * index)) as usize & 63],
                ));
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// Writes `program` to `path` in `cell` (which has the focus) and runs it; returns its exit status.
fn run_program(machine: &mut Machine, cell: &str, path: &str, program: &[u8]) -> u32 {
    let output = shell::run_ok(
        machine,
        cell,
        &format!(
            "echo {} | base64 -d > {path} && chmod +x {path} && {{ {path}; echo status=$?; }}",
            base64(program)
        ),
        COMMAND_TIMEOUT,
    );
    output
        .lines()
        .find_map(|line| line.strip_prefix("status="))
        .and_then(|status| status.trim().parse().ok())
        .unwrap_or_else(|| panic!("{cell}: {path} printed no status:\n{output}"))
}

/// Checks that the vector-length program with `read` runs in `cell` and reports the default vector
/// length the kernel announces in `/proc/sys/abi/<abi>_default_vector_length`.
fn assert_vector_length(machine: &mut Machine, cell: &str, abi: &str, read: u32) {
    let default = shell::run_ok(
        machine,
        cell,
        &format!("cat /proc/sys/abi/{abi}_default_vector_length"),
        COMMAND_TIMEOUT,
    );
    let default: u32 = default
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{cell}: no {abi} default vector length: {default}"));
    let status = run_program(
        machine,
        cell,
        &format!("/tmp/{abi}"),
        &vector_length_program(read),
    );
    assert_eq!(
        status,
        default / 16,
        "{cell}: the {abi} program exited with {status} (132 is SIGILL), expected the default \
         vector length {default} bytes / 16"
    );
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn newest_debian_kernel_runs_both_cells_on_full_cpu_max_without_cellvisor_warnings() {
    let artifacts = Artifacts::from_env().unwrap_or_else(|error| fail(error));
    let bundle = artifacts.kernel_bundle(LAYOUT, NEWEST_KERNEL);
    let release = bundled_kernel_release(&bundle);
    let default_release = bundled_kernel_release(&artifacts.bundle(LAYOUT));
    assert!(
        series(&release).is_some_and(|series| series >= NEWEST_AT_LEAST)
            && release != default_release,
        "{} holds {release}, not a kernel newer than the default {default_release}",
        bundle.display()
    );
    let config = QemuConfig {
        cpu: "max".to_owned(),
        bundle: Some(bundle),
        ..QemuConfig::new(LAYOUT)
    };
    let mut machine = Machine::boot(&artifacts, &config)
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    for (cell, line, _) in DEVICE_LINES {
        machine
            .find_after(&format!("[{cell}] {line}"), 0, BOOT_TIMEOUT)
            .unwrap_or_else(|error| fail(error));
    }
    shell::wait_ready(&mut machine, &CELLS, PERSONAL, BOOT_TIMEOUT);

    shell::in_each_cell(&mut machine, &CELLS, COMMAND_TIMEOUT, |machine, cell| {
        let run_ok = |machine: &mut Machine, command: &str| {
            shell::run_ok(machine, cell, command, COMMAND_TIMEOUT)
        };
        assert_eq!(
            run_ok(machine, "uname -r").trim(),
            release,
            "uname -r in {cell}"
        );
        assert_eq!(run_ok(machine, "nproc").trim(), "2", "nproc in {cell}");
        let interrupts = run_ok(
            machine,
            "for c in 0 1; do taskset -c $c sh -c 'sleep 1' & done; wait; cat /proc/interrupts",
        );
        let ticks = shell::interrupt_counts(&interrupts, "arch_timer")
            .unwrap_or_else(|| panic!("{cell}: no arch_timer line in\n{interrupts}"));
        assert!(
            ticks.len() == 2 && ticks.iter().all(|&count| count > 0),
            "{cell}: timer ticks are not taken on both CPUs ({ticks:?}) in\n{interrupts}"
        );
        let module = DEVICE_LINES
            .iter()
            .find(|(name, _, _)| *name == cell)
            .map(|(_, _, module)| *module)
            .unwrap_or_else(|| panic!("no module for {cell}"));
        let modules = run_ok(machine, "cut -d' ' -f1 /proc/modules");
        assert!(
            modules.lines().any(|line| line == module)
                && modules.lines().any(|line| line == "virtio_mmio"),
            "{cell}: virtio_mmio and {module} are not loaded from the initramfs:\n{modules}"
        );
        // The console splits long lines (`…`), so the line may arrive in pieces.
        let features = run_ok(machine, "grep -m1 '^Features' /proc/cpuinfo");
        let advertised = |feature: &str| features.split_whitespace().any(|word| word == feature);
        assert!(
            advertised("sve"),
            "{cell}: the CPU does not advertise sve: {features}"
        );
        assert_vector_length(machine, cell, "sve", RDVL_X0_1);
        // Debian builds 6.12 without CONFIG_ARM64_SME (it depends on BROKEN there): the kernel
        // leaves SME off at EL1 and does not advertise it, whatever EL2 enables.
        if advertised("sme") {
            assert_vector_length(machine, cell, "sme", RDSVL_X0_1);
        } else {
            eprintln!("{cell}: the kernel does not advertise SME; RDSVL not tried");
        }
    });

    // The channel works with this kernel's own vsock modules too: personal's paste reaches
    // corporate (personal is in front), and corporate's badges reach personal.
    shell::run_ok(
        &mut machine,
        PERSONAL,
        "vsock send corporate 6000 from-the-newest-kernel",
        COMMAND_TIMEOUT,
    );
    shell::in_each_cell(&mut machine, &CELLS, COMMAND_TIMEOUT, |machine, cell| {
        let (file, text) = if cell == PERSONAL {
            ("/run/badges", "badge: badge ")
        } else {
            ("/run/pastes", "paste: from-the-newest-kernel")
        };
        let command = format!(
            "i=0; until grep -q '{text}' {file}; do i=$((i+1)); [ $i -lt 120 ] || break; \
             sleep 1; done; cat {file}"
        );
        let output = shell::run_ok(machine, cell, &command, BOOT_TIMEOUT);
        assert!(output.contains(text), "{cell}'s {file}:\n{output}");
    });

    // Both shells idle (NO_HZ, WFI) for a while; then neither kernel nor cellvisor has complained.
    std::thread::sleep(cellvisor_tests::scaled(IDLE));
    shell::in_each_cell(&mut machine, &CELLS, COMMAND_TIMEOUT, |machine, cell| {
        let splats = shell::run_ok(
            machine,
            cell,
            &format!("dmesg | grep -E '{KERNEL_SPLATS}' || echo no-splats"),
            COMMAND_TIMEOUT,
        );
        assert_eq!(splats.trim(), "no-splats", "{cell}'s kernel log:\n{splats}");
    });
    let transcript = machine.transcript();
    let mut problems = disasters(&transcript);
    problems.extend(cellvisor_warnings(&transcript));
    assert!(
        problems.is_empty(),
        "cellvisor or a kernel complained while Debian {release} booted and idled: {problems:#?}"
    );
}

#[test]
fn test_programs_are_well_formed() {
    let program = vector_length_program(RDVL_X0_1);
    assert_eq!(program.len(), 64 + 56 + 16);
    assert_eq!(&program[..4], b"\x7fELF");
    assert_eq!(
        u64::from_le_bytes(program[24..32].try_into().unwrap()),
        0x40_0000 + 120
    );
    assert_eq!(
        u32::from_le_bytes(program[120..124].try_into().unwrap()),
        RDVL_X0_1
    );
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(b"Ma"), "TWE=");
    assert_eq!(base64(b"M"), "TQ==");
    assert_eq!(series("6.12.95+deb12-cloud-arm64"), Some((6, 12)));
    assert_eq!(series("6.1.0-56-cloud-arm64"), Some((6, 1)));
    assert!(series("6.1.0-56-cloud-arm64") < Some(NEWEST_AT_LEAST));
}

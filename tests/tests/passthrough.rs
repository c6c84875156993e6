//! Passthrough QEMU tests (issue 5): on the default layout `linux`, QEMU's virtio-blk disk (slot 31,
//! INTID 79) belongs to *corporate* and its virtio-net device (slot 30, INTID 78, user networking)
//! to *personal*; both slots share one 4 KiB page, so each cell reaches only its own slot through
//! cellvisor's sub-page forwarding. The harness attaches the devices for this layout
//! (`QemuConfig::passthrough_devices`), the disk as a snapshot of `corporate-disk.img`, so writes
//! live as long as the QEMU run and the image stays as built.
//!
//! The SPI tests boot `test-guest-disk` (the same disk given to one identity-mapped test-guest cell,
//! `disk`, whose bootargs are `test=spis`): 10,000 one-sector reads per mode, each completion's SPI
//! taken by vCPU 1 while it spins and then while it idles in WFI, over the legacy virtio-mmio
//! transport QEMU presents by default and over the modern one.
//!
//! The DMA-flood test boots `test-guest-dma` (the same cell running `test=dma-flood`: a full queue
//! of 64 KiB disk reads into its own RAM, each queued again as it completes, with the disk's reads
//! throttled so they stay in flight for seconds, next to a heartbeat cell) and wipes the cell from
//! the management prompt: the wipe verifies zero, and `verify disk` seconds later still counts no
//! non-zero byte, because cellvisor reset the disk before the scrub.
//!
//! The last test boots `invalid-dma-remapped`, which gives the DMA-capable disk to a cell at a
//! remapped guest address: boot must refuse it with one `cellvisor: fatal:` line naming the DMA rule.

use std::time::Duration;

use cellvisor_tests::{Artifacts, HarnessError, Machine, PassthroughDevices, QemuConfig, shell};

/// Generous: the machine running the tests is shared and slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// For one shell command or one console reaction.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

const PERSONAL: &str = "personal";
const CORPORATE: &str = "corporate";
/// The cells in console order: Ctrl-A `1` focuses the first, Ctrl-A `2` the second.
const CELLS: [&str; 2] = [PERSONAL, CORPORATE];

/// What the cells' `etc/cellvisor-devices` scripts print (guests/linux/<cell>/).
const DISK_MOUNTED: &str = "cellvisor-disk: mounted /dev/vda at /mnt/disk";
const NET_UP: &str = "cellvisor-net: eth0 10.0.2.15";

/// The name /proc/interrupts shows for a virtio-mmio transport's interrupt.
/// The virtio device IDs a Linux cell sees, sorted.
const VIRTIO_DEVICE_IDS: &str = "cat /sys/bus/virtio/devices/*/device | sort";
/// The shell command that names the virtio device behind a cell's passthrough device (the
/// channel's socket device is a virtio device too, so the numbering depends on probe order).
const DISK_VIRTIO_NAME: &str = "basename $(readlink /sys/block/vda/device)";
const NET_VIRTIO_NAME: &str = "basename $(readlink /sys/class/net/eth0/device)";

/// The layout whose one test-guest cell owns the disk and runs `test=spis`, and that cell.
const SPI_LAYOUT: &str = "test-guest-disk";
const DISK_CELL: &str = "disk";
/// For `test=spis`: its 20,000 round trips each need the device and both of the cell's vCPU threads
/// scheduled, which on a loaded host can take milliseconds apiece.
const SPI_TIMEOUT: Duration = Duration::from_secs(300);

/// The layout whose `disk` cell runs `test=dma-flood`, next to a heartbeat cell `beat`.
const DMA_LAYOUT: &str = "test-guest-dma";
const BEAT_CELL: &str = "beat";
/// The disk cell's RAM: 64 MiB.
const DISK_CELL_RAM: u64 = 64 * 1024 * 1024;
/// The disk's read throttle for the DMA-flood test: 256 KiB/s, so the guest's full queue of
/// 64 KiB reads (1.3 MiB) takes about five seconds to drain.
const FLOOD_THROTTLE: &str = ",throttling.bps-read=262144,throttling.iops-read=4";
/// How long after the wipe the cell's RAM is counted again.
const AFTER_WIPE: Duration = Duration::from_secs(5);

/// Texts the test guest prints in `test=spis` and `test=dma-flood` (guests/test-guest/src/lines.rs).
mod guest {
    pub const DMA_FLOOD_IN_FLIGHT: &str = "test-guest: dma-flood 21 reads of 65536 bytes in flight";
    pub const DMA_FLOOD_DATA_OK: &str = "test-guest: dma-flood data ok";
    pub const DMA_FLOOD_COMPLETED: &str = "reads completed";
    pub const HEARTBEAT: &str = "test-guest: heartbeat ";
    pub const SPI_DISK: &str = "test-guest: spi disk virtio-mmio version ";
    pub const SPI_SPIN: &str = "test-guest: spi-spin ";
    pub const SPI_WFI: &str = "test-guest: spi-wfi ";
    /// Read requests `test=spis` submits per mode (guests/test-guest/src/spis.rs `ROUNDS`).
    pub const SPI_ROUNDS: u32 = 10_000;
    pub const DONE: &str = "test-guest: done, powering off";
    pub const FAIL: &str = "test-guest: FAIL";
}

fn fail(error: HarnessError) -> ! {
    panic!("{error}")
}

fn artifacts() -> Artifacts {
    Artifacts::from_env().unwrap_or_else(|error| fail(error))
}

/// Waits for `text` from `cell` at or after `since`; returns where its line ends.
fn wait(machine: &mut Machine, cell: &str, text: &str, since: usize, timeout: Duration) -> usize {
    machine
        .find_after(&format!("[{cell}] {text}"), since, timeout)
        .map(|found| found.line_end)
        .unwrap_or_else(|error| fail(error))
}

/// Boots `linux` and waits for both banners, both device lines and personal's prompt.
fn boot() -> Machine {
    let config = QemuConfig::new("linux");
    assert_eq!(
        config.passthrough_devices,
        PassthroughDevices::Pci,
        "the harness attaches the devices"
    );
    let mut machine = Machine::boot(&artifacts(), &config)
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    wait(&mut machine, CORPORATE, DISK_MOUNTED, 0, BOOT_TIMEOUT);
    wait(&mut machine, PERSONAL, NET_UP, 0, BOOT_TIMEOUT);
    shell::wait_ready(&mut machine, &CELLS, PERSONAL, BOOT_TIMEOUT);
    machine
}

/// Gives `cell` the console focus and waits for its prompt.
fn focus(machine: &mut Machine, cell: &str) {
    shell::focus(machine, &CELLS, cell, COMMAND_TIMEOUT);
}

/// Runs `command` in `cell` (which has the focus) and expects exit code 0; returns its output.
fn run_ok(machine: &mut Machine, cell: &str, command: &str) -> String {
    shell::run_ok(machine, cell, command, COMMAND_TIMEOUT)
}

/// Lines that report a kernel panic, an oops or a fatal cellvisor error.
fn assert_no_disasters(machine: &Machine) {
    let disasters: Vec<String> = machine
        .transcript()
        .lines()
        .filter(|line| {
            line.contains("Kernel panic")
                || line.contains("Internal error:")
                || line.contains("cellvisor: fatal")
        })
        .map(str::to_owned)
        .collect();
    assert!(disasters.is_empty(), "{disasters:#?}");
}

/// The total count (all CPUs) of the /proc/interrupts line whose description contains `name`.
fn interrupt_total(interrupts: &str, name: &str) -> Option<u64> {
    let line = interrupts
        .lines()
        .find(|line| line.split_whitespace().last() == Some(name))?;
    let (_, counts) = line.split_once(':')?;
    Some(
        counts
            .split_whitespace()
            .map_while(|field| field.parse::<u64>().ok())
            .sum(),
    )
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn corporate_disk_keeps_a_file_across_a_cell_restart() {
    let mut machine = boot();
    focus(&mut machine, CORPORATE);
    let token = format!("cellvisor-passthrough-{}", std::process::id());
    run_ok(
        &mut machine,
        CORPORATE,
        &format!("echo {token} > /mnt/disk/token && sync && cat /mnt/disk/token"),
    );

    // `reboot -f` is PSCI SYSTEM_RESET: cellvisor restarts corporate only (RAM scrubbed, images
    // reloaded); the disk keeps what was synced.
    let since = machine.mark();
    machine
        .send_line("reboot -f")
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    let restarted = wait(
        &mut machine,
        CORPORATE,
        &format!("cellvisor-ready: {CORPORATE} "),
        since,
        BOOT_TIMEOUT,
    );
    assert!(
        machine.find(DISK_MOUNTED, since).is_some(),
        "corporate mounted its disk again"
    );
    assert!(
        machine.is_running(),
        "the machine kept running: only the cell restarted"
    );
    wait(
        &mut machine,
        CORPORATE,
        &format!("{CORPORATE}:/root# "),
        restarted,
        BOOT_TIMEOUT,
    );
    let output = run_ok(&mut machine, CORPORATE, "cat /mnt/disk/token");
    assert!(
        output.lines().any(|line| line.trim() == token),
        "the token survived the restart:\n{output}"
    );
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn each_cell_sees_only_its_own_device() {
    let mut machine = boot();
    // Personal: a network interface with QEMU's user-net address, no block device.
    let output = run_ok(
        &mut machine,
        PERSONAL,
        "ls /sys/class/net; ls /sys/block; ip -4 addr show eth0",
    );
    assert!(output.contains("eth0"), "personal has eth0:\n{output}");
    assert!(
        output.contains("10.0.2.15"),
        "personal got its lease:\n{output}"
    );
    assert!(
        !output.contains("vda"),
        "personal has no block device:\n{output}"
    );
    // Its virtio devices: the network interface (ID 1) and the channel's socket device (19).
    let output = run_ok(&mut machine, PERSONAL, VIRTIO_DEVICE_IDS);
    assert_eq!(
        output.split_whitespace().collect::<Vec<_>>(),
        ["0x0001", "0x0013"],
        "personal sees its network device and its channel, nothing else"
    );

    // Corporate: the disk, no network interface except loopback.
    focus(&mut machine, CORPORATE);
    let output = run_ok(&mut machine, CORPORATE, "ls /sys/class/net; ls /sys/block");
    assert!(output.contains("vda"), "corporate has its disk:\n{output}");
    assert!(
        !output.contains("eth"),
        "corporate has no network device:\n{output}"
    );
    let output = run_ok(&mut machine, CORPORATE, VIRTIO_DEVICE_IDS);
    assert_eq!(
        output.split_whitespace().collect::<Vec<_>>(),
        ["0x0002", "0x0013"],
        "corporate sees its disk (ID 2) and its channel (19), nothing else"
    );
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn passthrough_interrupt_counts_rise() {
    let mut machine = boot();

    // Corporate: read the whole disk, uncached, and watch its virtio interrupt.
    focus(&mut machine, CORPORATE);
    let disk = run_ok(&mut machine, CORPORATE, DISK_VIRTIO_NAME)
        .trim()
        .to_owned();
    let before = run_ok(&mut machine, CORPORATE, "cat /proc/interrupts");
    let disk_before = interrupt_total(&before, &disk)
        .unwrap_or_else(|| panic!("no {disk} line in corporate:\n{before}"));
    run_ok(
        &mut machine,
        CORPORATE,
        "dd if=/dev/vda of=/dev/null bs=1M count=16 iflag=direct 2>/dev/null || \
         (echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda of=/dev/null bs=1M count=16)",
    );
    let after = run_ok(&mut machine, CORPORATE, "cat /proc/interrupts");
    let disk_after = interrupt_total(&after, &disk).expect("line stays");
    assert!(
        disk_after > disk_before,
        "corporate's disk interrupt count rose ({disk_before} -> {disk_after}):\n{after}"
    );

    // Personal: traffic through QEMU's user network (its DNS/gateway answers inside QEMU).
    focus(&mut machine, PERSONAL);
    let net = run_ok(&mut machine, PERSONAL, NET_VIRTIO_NAME)
        .trim()
        .to_owned();
    let before = run_ok(&mut machine, PERSONAL, "cat /proc/interrupts");
    let net_before = interrupt_total(&before, &net)
        .unwrap_or_else(|| panic!("no {net} line in personal:\n{before}"));
    // Renewing the lease is a DHCP exchange with QEMU's built-in server: packets both ways.
    run_ok(
        &mut machine,
        PERSONAL,
        "udhcpc -i eth0 -q -n -t 5 -T 1 -s /etc/udhcpc.script",
    );
    let after = run_ok(&mut machine, PERSONAL, "cat /proc/interrupts");
    let net_after = interrupt_total(&after, &net).expect("line stays");
    assert!(
        net_after > net_before,
        "personal's network interrupt count rose ({net_before} -> {net_after}):\n{after}"
    );
    assert_no_disasters(&machine);
}

/// Boots `test-guest-disk` with `config` and checks that `test=spis` found the disk on a
/// virtio-mmio transport of `version` and that every read's SPI reached vCPU 1 in both modes.
fn spis_reach_a_spinning_and_an_idle_vcpu(config: &QemuConfig, version: u32) {
    assert_eq!(
        config.passthrough_devices,
        PassthroughDevices::Mmio,
        "the harness attaches the disk"
    );
    let mut machine = Machine::boot(&artifacts(), config)
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    wait(&mut machine, DISK_CELL, guest::DONE, 0, SPI_TIMEOUT);
    let prefix = format!("[{DISK_CELL}] ");
    let transcript = machine.transcript();
    let lines: Vec<&str> = transcript
        .lines()
        .filter_map(|line| {
            line.find(&prefix)
                .map(|start| &line[start + prefix.len()..])
        })
        .collect();
    let expected = format!("{}{version} ", guest::SPI_DISK);
    assert!(
        lines.iter().any(|line| line.starts_with(&expected)),
        "no {expected:?} from {DISK_CELL}; its lines:\n{}",
        lines.join("\n")
    );
    for mode in [guest::SPI_SPIN, guest::SPI_WFI] {
        let expected = format!("{mode}{}/{} in ", guest::SPI_ROUNDS, guest::SPI_ROUNDS);
        assert!(
            lines.iter().any(|line| line.starts_with(&expected)),
            "no {expected:?} from {DISK_CELL}; its lines:\n{}",
            lines.join("\n")
        );
    }
    let failures: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| line.contains(guest::FAIL))
        .collect();
    assert!(
        failures.is_empty(),
        "the guest reported failures:\n{failures:#?}"
    );
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn spis_from_a_passthrough_disk_reach_a_spinning_and_an_idle_vcpu() {
    // QEMU's virtio-mmio transports are legacy (version 1) unless told otherwise.
    spis_reach_a_spinning_and_an_idle_vcpu(&QemuConfig::new(SPI_LAYOUT), 1);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn spis_from_a_modern_virtio_mmio_disk_reach_a_spinning_and_an_idle_vcpu() {
    let config = QemuConfig {
        extra_args: vec![
            "-global".to_owned(),
            "virtio-mmio.force-legacy=false".to_owned(),
        ],
        ..QemuConfig::new(SPI_LAYOUT)
    };
    spis_reach_a_spinning_and_an_idle_vcpu(&config, 2);
}

/// Opens the management prompt (Ctrl-A m) and waits for it.
fn open_prompt(machine: &mut Machine) {
    let since = machine.mark();
    machine
        .send(&[cellvisor_tests::CONSOLE_ESCAPE, b'm'])
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    machine
        .find_after("cellvisor> ", since, COMMAND_TIMEOUT)
        .unwrap_or_else(|error| fail(error));
}

/// Types `line` at the open prompt and returns the first line after it that contains `answer`.
fn prompt_command(machine: &mut Machine, line: &str, answer: &str, timeout: Duration) -> String {
    let since = machine.mark();
    machine
        .send_line(line)
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    machine
        .find_after(answer, since, timeout)
        .map(|found| found.line)
        .unwrap_or_else(|error| fail(error))
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn a_wiped_cell_stays_zero_while_its_disk_had_reads_in_flight() {
    let config = QemuConfig {
        disk_options: FLOOD_THROTTLE.to_owned(),
        ..QemuConfig::new(DMA_LAYOUT)
    };
    assert_eq!(
        config.passthrough_devices,
        PassthroughDevices::Mmio,
        "the harness attaches the disk"
    );
    let mut machine = Machine::boot(&artifacts(), &config)
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    let queued = wait(
        &mut machine,
        DISK_CELL,
        guest::DMA_FLOOD_IN_FLIGHT,
        0,
        BOOT_TIMEOUT,
    );
    // Every slot has read the pattern back once, and reads go on.
    let checked = wait(
        &mut machine,
        DISK_CELL,
        guest::DMA_FLOOD_DATA_OK,
        queued,
        COMMAND_TIMEOUT,
    );
    let flowing = machine
        .find_after(guest::DMA_FLOOD_COMPLETED, checked, COMMAND_TIMEOUT)
        .unwrap_or_else(|error| fail(error))
        .line_end;

    open_prompt(&mut machine);
    let wiped = prompt_command(
        &mut machine,
        &format!("wipe {DISK_CELL}"),
        &format!("cell {DISK_CELL}: wip"),
        COMMAND_TIMEOUT,
    );
    assert!(
        wiped.contains(&format!(
            "cell {DISK_CELL}: wiped: {DISK_CELL_RAM} bytes scrubbed, verified zero"
        )),
        "the wipe verified every byte zero: {wiped}"
    );
    // The reads that were in flight had seconds left to run under the throttle.
    std::thread::sleep(AFTER_WIPE);
    let verified = prompt_command(
        &mut machine,
        &format!("verify {DISK_CELL}"),
        &format!("verify {DISK_CELL}: "),
        COMMAND_TIMEOUT,
    );
    assert!(
        verified.contains(&format!(
            "verify {DISK_CELL}: 0 of {DISK_CELL_RAM} bytes are not zero"
        )),
        "{AFTER_WIPE:?} after the wipe the disk cell's RAM still reads zero: {verified}"
    );
    let after = machine.mark();
    wait(
        &mut machine,
        BEAT_CELL,
        guest::HEARTBEAT,
        after,
        COMMAND_TIMEOUT,
    );

    let transcript = machine.transcript();
    let failures: Vec<&str> = transcript
        .lines()
        .filter(|line| line.contains(guest::FAIL) || line.contains(" ERROR "))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let resets: Vec<&str> = transcript[flowing..]
        .lines()
        .filter(|line| line.contains("did not reset") || line.contains("aborted its reset"))
        .collect();
    assert!(resets.is_empty(), "{resets:#?}");
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn dma_device_in_a_remapped_cell_is_refused_at_boot() {
    let config = QemuConfig::new("invalid-dma-remapped");
    let mut machine = Machine::boot(&artifacts(), &config)
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    let line = machine
        .wait_for("cellvisor: fatal:", BOOT_TIMEOUT)
        .unwrap_or_else(|error| fail(error));
    for needed in ["DMA-capable", "virtio-disk", "corporate", "identity-mapped"] {
        assert!(
            line.contains(needed),
            "the fatal line names {needed}: {line}"
        );
    }
    machine
        .wait_exit(BOOT_TIMEOUT)
        .unwrap_or_else(|error| fail(error));
    let transcript = machine.transcript();
    let fatal_lines: Vec<&str> = transcript
        .lines()
        .filter(|line| line.contains("cellvisor: fatal"))
        .collect();
    assert_eq!(fatal_lines.len(), 1, "one fatal line:\n{transcript}");
    assert!(
        !transcript.contains("test-guest: hello"),
        "no cell ran:\n{transcript}"
    );
}

#[test]
fn interrupt_totals_are_summed_over_cpus() {
    let interrupts = "           CPU0       CPU1\n\
                      11:        120         95     GICv3  27 Level     arch_timer\n\
                      13:          4          9     GICv3  79 Edge      virtio0\n\
                      IPI0:        3          7       Rescheduling interrupts\n";
    assert_eq!(interrupt_total(interrupts, "virtio0"), Some(13));
    assert_eq!(interrupt_total(interrupts, "arch_timer"), Some(215));
    assert_eq!(interrupt_total(interrupts, "virtio1"), None);
}

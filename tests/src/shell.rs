//! Driving the shells of Linux cells (the initramfs of guests/linux) over cellvisor's multiplexed
//! console: their ready banners, their prompts and the console focus.
//!
//! Like the tests that use them, these helpers panic (with the harness's message) when QEMU's
//! stdin is gone or an expected line does not come in time.

use std::time::Duration;

use crate::Machine;

/// `[cell] cellvisor-ready: <cell> uptime=`: how the ready banner of guests/linux/common/init
/// starts on the console.
pub fn ready_banner(cell: &str) -> String {
    format!("[{cell}] cellvisor-ready: {cell} uptime=")
}

/// `[cell] <cell>:/root# `: the shell prompt of `cell` on the console.
pub fn shell_prompt(cell: &str) -> String {
    format!("[{cell}] {cell}:/root# ")
}

/// Waits, from the start of the transcript, for the ready banner of each of `cells` and then for
/// the shell prompt of `focused` (the cell that has the console focus at boot), `timeout` each.
pub fn wait_ready(machine: &mut Machine, cells: &[&str], focused: &str, timeout: Duration) {
    for cell in cells {
        wait(machine, &ready_banner(cell), 0, timeout);
    }
    wait(machine, &shell_prompt(focused), 0, timeout);
}

/// Presses Enter and waits for `cell`'s shell prompt at or after `since` (the focused cell's shell
/// answers); returns where the prompt's line ends.
pub fn await_shell(machine: &mut Machine, cell: &str, since: usize, timeout: Duration) -> usize {
    machine
        .send_line("")
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    wait(machine, &shell_prompt(cell), since, timeout)
}

/// Gives `cell` the console focus (Ctrl-A and its 1-based position in `cells`, the layout's cells
/// in console order), waits until cellvisor confirms it, then presses Enter and waits for the
/// cell's fresh shell prompt, `timeout` each; returns where the prompt's line ends.
pub fn focus(machine: &mut Machine, cells: &[&str], cell: &str, timeout: Duration) -> usize {
    let index = cells
        .iter()
        .position(|name| *name == cell)
        .unwrap_or_else(|| panic!("unknown cell {cell}"));
    let key = b'1' + u8::try_from(index).expect("few cells");
    let since = machine.mark();
    machine
        .send_escape(key)
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    let switched = wait(
        machine,
        &format!("cellvisor: console input now goes to {cell}"),
        since,
        timeout,
    );
    await_shell(machine, cell, switched, timeout)
}

/// Runs `command` in the shell of `cell`, which has the focus ([`Machine::shell`]), and expects
/// exit code 0; returns its output.
pub fn run_ok(machine: &mut Machine, cell: &str, command: &str, timeout: Duration) -> String {
    let (output, code) = machine
        .shell(cell, command, timeout)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        code, 0,
        "`{command}` failed in {cell} (exit {code}):\n{output}"
    );
    output
}

/// Calls `check` with each of `cells` (console order) after giving that cell the focus, the first
/// cell (which has the focus at boot) first; gives the focus back to the first cell at the end.
pub fn in_each_cell(
    machine: &mut Machine,
    cells: &[&str],
    timeout: Duration,
    mut check: impl FnMut(&mut Machine, &str),
) {
    for (index, cell) in cells.iter().enumerate() {
        if index > 0 {
            focus(machine, cells, cell, timeout);
        }
        check(machine, cell);
    }
    if let Some(first) = cells.first()
        && cells.len() > 1
    {
        focus(machine, cells, first, timeout);
    }
}

/// The per-CPU counts of the `/proc/interrupts` line whose description contains `name`.
pub fn interrupt_counts(interrupts: &str, name: &str) -> Option<Vec<u64>> {
    let line = interrupts.lines().find(|line| line.contains(name))?;
    let (_, counts) = line.split_once(':')?;
    Some(
        counts
            .split_whitespace()
            .map_while(|field| field.parse::<u64>().ok())
            .collect(),
    )
}

/// Waits for `needle` at or after `since`; returns where its line ends.
fn wait(machine: &mut Machine, needle: &str, since: usize, timeout: Duration) -> usize {
    machine
        .find_after(needle, since, timeout)
        .map(|found| found.line_end)
        .unwrap_or_else(|error| panic!("{error}"))
}

/// The `MemTotal` of a `grep MemTotal /proc/meminfo` output, in KiB.
pub fn mem_total_kib(output: &str) -> Option<u64> {
    output.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
    })
}

/// Keeps both CPUs of `cell` (which has the focus) busy for a moment and checks that each took
/// timer ticks, rescheduling and function-call IPIs of its own (`/proc/interrupts`).
pub fn assert_timer_and_ipis_on_both_cpus(machine: &mut Machine, cell: &str, timeout: Duration) {
    let interrupts = run_ok(
        machine,
        cell,
        "for c in 0 1; do taskset -c $c sh -c 'sleep 1' & done; wait; cat /proc/interrupts",
        timeout,
    );
    for name in [
        "arch_timer",
        "Rescheduling interrupts",
        "Function call interrupts",
    ] {
        let counts = interrupt_counts(&interrupts, name)
            .unwrap_or_else(|| panic!("{cell}: no {name:?} line in\n{interrupts}"));
        assert!(
            counts.len() == 2 && counts.iter().all(|&count| count > 0),
            "{cell}: {name:?} is not taken on both CPUs ({counts:?}) in\n{interrupts}"
        );
    }
}

/// What a Linux cell of two vCPUs must show on a GIC-400 board: its kernel found an
/// `arm,gic-400` at `gic_node` (a `/proc/device-tree` path), `nproc` is 2, `MemTotal` lies in
/// `memtotal_kib`, and both CPUs take timer ticks and IPIs. `cell` has the focus.
pub fn assert_gicv2_linux_cell(
    machine: &mut Machine,
    cell: &str,
    gic_node: &str,
    memtotal_kib: std::ops::RangeInclusive<u64>,
    timeout: Duration,
) {
    let gic = run_ok(
        machine,
        cell,
        &format!("cat /proc/device-tree/{gic_node}/compatible; echo"),
        timeout,
    );
    assert!(gic.contains("arm,gic-400"), "{cell}'s GIC: {gic}");
    assert_eq!(
        run_ok(machine, cell, "nproc", timeout).trim(),
        "2",
        "nproc in {cell}"
    );
    let meminfo = run_ok(machine, cell, "grep MemTotal /proc/meminfo", timeout);
    let kib = mem_total_kib(&meminfo)
        .unwrap_or_else(|| panic!("no MemTotal in {cell}'s output:\n{meminfo}"));
    assert!(memtotal_kib.contains(&kib), "{cell}: MemTotal {kib} kB");
    assert_timer_and_ipis_on_both_cpus(machine, cell, timeout);
}

/// Checks that `date` advances across a `sleep 1` in `cell` (which has the focus): its timer
/// interrupts wake it.
pub fn assert_sleep_advances_date(machine: &mut Machine, cell: &str, timeout: Duration) {
    // Seconds since boot before and after, in one command so no typing time passes in between.
    let output = run_ok(
        machine,
        cell,
        "a=$(date +%s); sleep 1; b=$(date +%s); echo sleep-returned $a $b",
        timeout,
    );
    let times: Vec<u64> = output
        .lines()
        .find_map(|line| line.strip_prefix("sleep-returned "))
        .unwrap_or_else(|| panic!("`sleep 1` did not return in {cell}:\n{output}"))
        .split_whitespace()
        .map(|value| value.parse().expect("seconds"))
        .collect();
    assert!(
        times.len() == 2 && times[1] > times[0],
        "{cell}: `date` did not advance across `sleep 1`: {times:?}"
    );
}

/// Exit status of a shell command killed by SIGBUS (128 + 7).
const SIGBUS_STATUS: i32 = 135;

/// Reads physical `address` (another cell's RAM) with `devmem` in `cell`, which has the focus:
/// the read must die of SIGBUS, cellvisor must blame `cell` alone, and `cell` must answer
/// afterwards. Returns cellvisor's line about the violation, which the caller expects in the
/// transcript.
pub fn assert_foreign_read_aborts(
    machine: &mut Machine,
    cell: &str,
    address: u64,
    timeout: Duration,
) -> String {
    let address = format!("{address:#x}");
    let since = machine.mark();
    let (output, code) = machine
        .shell(cell, &format!("devmem {address}"), timeout)
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        code == SIGBUS_STATUS || output.contains("Bus error"),
        "devmem {address} in {cell} did not die of SIGBUS (exit {code}):\n{output}"
    );
    let violation = format!("cell {cell}: access outside the cell ({address})");
    machine
        .find_after(&violation, since, timeout)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(run_ok(machine, cell, "echo alive", timeout).trim(), "alive");
    violation
}

/// What cellvisor prints when the management prompt opens, and its prompt.
pub const PROMPT_OPENED: &str = "cellvisor management prompt: type help, exit to leave";
/// The management prompt.
pub const PROMPT: &str = "cellvisor> ";

/// Opens the management prompt (Ctrl-A m) and waits for it; returns where its prompt ends.
pub fn open_prompt(machine: &mut Machine, timeout: Duration) -> usize {
    let since = machine.mark();
    machine
        .send(&[crate::CONSOLE_ESCAPE, b'm'])
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    let opened = wait(machine, PROMPT_OPENED, since, timeout);
    wait(machine, PROMPT, opened, timeout)
}

/// Types `line` at the open management prompt and waits for the next prompt; returns the
/// command's output (the lines between the echoed command and the next prompt).
pub fn prompt_command(machine: &mut Machine, line: &str, timeout: Duration) -> String {
    let since = machine.mark();
    machine
        .send_line(line)
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    let echoed = wait(machine, line, since, timeout);
    let found = machine
        .find_after(PROMPT, echoed, timeout)
        .unwrap_or_else(|error| panic!("{error}"));
    machine.text_between(echoed, found.line_start)
}

/// Leaves the management prompt (`exit`) and waits for the echo.
pub fn leave_prompt(machine: &mut Machine, timeout: Duration) {
    let since = machine.mark();
    machine
        .send_line("exit")
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    wait(machine, "exit", since, timeout);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupt_lines_are_parsed_per_cpu() {
        let interrupts = "           CPU0       CPU1       \n 11:       1133        914     GICv3  27 Level     arch_timer\nIPI0:        39         0       Rescheduling interrupts\n";
        assert_eq!(
            interrupt_counts(interrupts, "arch_timer"),
            Some(vec![1133, 914])
        );
        assert_eq!(
            interrupt_counts(interrupts, "Rescheduling interrupts"),
            Some(vec![39, 0])
        );
        assert_eq!(interrupt_counts(interrupts, "Function call"), None);
    }
}

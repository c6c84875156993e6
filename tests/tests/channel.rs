//! The channel between the Linux cells (docs/channel.md), from inside them: layout `linux`, whose
//! policy allows corporate -> personal port 5000 (badges) and personal -> corporate port 6000
//! (paste) only while personal is in front; nothing else. Each cell's Debian kernel drives its
//! emulated virtio-vsock device with its own `vsock` and `vmw_vsock_virtio_transport` modules,
//! and talks through the `vsock` tool (guests/linux/vsock-tool). The cells' init runs the
//! example: corporate sends a badge to personal:5000 every 5 s, personal's listener writes each
//! line to `/run/badges`, corporate's on 6000 writes pastes to `/run/pastes`.
//!
//! No timing is asserted: every wait is a generous upper bound.

use std::time::{Duration, Instant};

use cellvisor_tests::{Artifacts, Machine, QemuConfig, disasters, shell};

const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a badge, a paste or a log line may take to show up.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_secs(1);

const PERSONAL: &str = "personal";
const CORPORATE: &str = "corporate";
const CELLS: [&str; 2] = [PERSONAL, CORPORATE];
const LAYOUT: &str = "linux";

/// What the vsock tool says when the peer (here: cellvisor) reset the connection.
const RESET: &str = "Connection reset by peer";
/// How cellvisor logs a refusal (core/channel.rs): `channel: refused <from>:<port> -> <to>:<port>:
/// <reason>`.
const REFUSED: &str = "channel: refused ";

fn artifacts() -> Artifacts {
    Artifacts::from_env().unwrap_or_else(|error| panic!("{error}"))
}

fn boot() -> Machine {
    let mut machine = Machine::boot(&artifacts(), &QemuConfig::new(LAYOUT))
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    shell::wait_ready(&mut machine, &CELLS, PERSONAL, BOOT_TIMEOUT);
    machine
}

fn focus(machine: &mut Machine, cell: &str) {
    shell::focus(machine, &CELLS, cell, COMMAND_TIMEOUT);
}

fn run_ok(machine: &mut Machine, cell: &str, command: &str) -> String {
    shell::run_ok(machine, cell, command, COMMAND_TIMEOUT)
}

/// Runs `command` in the focused `cell`; returns its output and exit code.
fn run(machine: &mut Machine, cell: &str, command: &str) -> (String, i32) {
    machine
        .shell(cell, command, COMMAND_TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Runs `command` in the focused `cell` until its output satisfies `done`; returns that output.
fn poll(
    machine: &mut Machine,
    cell: &str,
    command: &str,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let (output, _) = run(machine, cell, command);
        if done(&output) {
            return output;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: `{command}` in {cell} still says:\n{output}\n{}",
            machine.transcript_note()
        );
        std::thread::sleep(POLL);
    }
}

/// Waits for cellvisor's refusal log line containing every one of `parts` after `since`.
fn wait_refusal(machine: &mut Machine, parts: &[&str], since: usize) -> String {
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let text = machine.text_between(since, usize::MAX);
        if let Some(line) = text
            .lines()
            .find(|line| line.contains(REFUSED) && parts.iter().all(|part| line.contains(part)))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no refusal log line with {parts:?}\n{}",
            machine.transcript_note()
        );
        std::thread::sleep(POLL);
    }
}

/// The `channel` command's output.
fn channel(machine: &mut Machine) -> String {
    shell::open_prompt(machine, COMMAND_TIMEOUT);
    let output = shell::prompt_command(machine, "channel", COMMAND_TIMEOUT);
    shell::leave_prompt(machine, COMMAND_TIMEOUT);
    output
}

/// A management command's output (the prompt is opened and left around it).
fn manage(machine: &mut Machine, line: &str) -> String {
    shell::open_prompt(machine, COMMAND_TIMEOUT);
    let output = shell::prompt_command(machine, line, COMMAND_TIMEOUT);
    shell::leave_prompt(machine, COMMAND_TIMEOUT);
    output
}

/// The row of `cell` in the `channel` command's cell table, split into words.
fn channel_row(output: &str, cell: &str) -> Vec<String> {
    output
        .lines()
        .find(|line| line.split_whitespace().next() == Some(cell))
        .unwrap_or_else(|| panic!("no row for {cell} in:\n{output}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn assert_no_disasters(machine: &Machine) {
    let problems = disasters(&machine.transcript());
    assert!(
        problems.is_empty(),
        "{problems:#?}\n{}",
        machine.transcript_note()
    );
    assert!(
        !machine.transcript().contains("panicked"),
        "cellvisor panicked\n{}",
        machine.transcript_note()
    );
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn allowed_flows_work_refused_ones_are_reset_and_logged_and_the_paste_flow_follows_the_focus() {
    let mut machine = boot();

    // Both cells drive their device, and know each other's CID from their device tree.
    let output = run_ok(&mut machine, PERSONAL, "vsock cid; vsock cid corporate");
    assert_eq!(
        output.split_whitespace().collect::<Vec<_>>(),
        ["3", "4"],
        "{output}"
    );

    // corporate -> personal:5000: the init's badges arrive.
    let badges = poll(
        &mut machine,
        PERSONAL,
        "cat /run/badges",
        "a badge from corporate",
        |output| output.contains("badge: badge ") && output.contains("from corporate"),
    );
    assert!(!badges.contains(RESET), "{badges}");

    // personal -> corporate:6000 while personal is in front: the paste arrives.
    run_ok(
        &mut machine,
        PERSONAL,
        "vsock send corporate 6000 paste-while-in-front",
    );

    // The probe: personal tries a paste every second from now on, and notes each outcome.
    run_ok(
        &mut machine,
        PERSONAL,
        "( n=0; while [ $n -lt 900 ]; do n=$((n+1)); \
         if vsock send corporate 6000 probe-$n 2>>/tmp/probe.err; then echo \"ok $n\"; \
         else echo \"reset $n\"; fi >> /tmp/probe; sleep 1; done ) >/dev/null 2>&1 & true",
    );
    poll(
        &mut machine,
        PERSONAL,
        "cat /tmp/probe",
        "a paste probe that went through",
        |output| output.contains("ok "),
    );

    // Behind corporate, personal's pastes are refused: a reset and a log line.
    let since = machine.mark();
    focus(&mut machine, CORPORATE);
    let line = wait_refusal(
        &mut machine,
        &["personal:", "-> corporate:6000", "flow needs focus"],
        since,
    );
    assert!(line.contains("WARN"), "{line}");
    let pastes = run_ok(&mut machine, CORPORATE, "cat /run/pastes");
    assert!(
        pastes.contains("paste: paste-while-in-front") && pastes.contains("paste: probe-"),
        "corporate's pastes:\n{pastes}"
    );

    // Everything no flow allows is reset and logged: the wrong port, the other direction, the
    // host, a CID nobody has.
    for (command, logged) in [
        (
            "vsock send personal 6000 wrong-port",
            "-> personal:6000: no flow allows it",
        ),
        (
            "vsock send personal 22 wrong-port",
            "-> personal:22: no flow allows it",
        ),
        (
            "vsock send 2 5000 to-the-host",
            "-> cid 2:5000: unknown destination cid",
        ),
        (
            "vsock send 99 5000 to-nobody",
            "-> cid 99:5000: unknown destination cid",
        ),
    ] {
        let since = machine.mark();
        let (output, code) = run(&mut machine, CORPORATE, command);
        assert_eq!(code, 1, "`{command}` must fail:\n{output}");
        assert!(output.contains(RESET), "`{command}`:\n{output}");
        wait_refusal(&mut machine, &["corporate:", logged], since);
    }

    // Back in front, personal's pastes go through again.
    focus(&mut machine, PERSONAL);
    let probe = run_ok(&mut machine, PERSONAL, "cat /tmp/probe");
    let last_reset = probe
        .lines()
        .filter_map(|line| line.strip_prefix("reset "))
        .filter_map(|n| n.trim().parse::<u32>().ok())
        .max()
        .unwrap_or_else(|| panic!("no paste was refused while corporate was in front:\n{probe}"));
    poll(
        &mut machine,
        PERSONAL,
        "cat /tmp/probe",
        "a paste after personal came back to the front",
        |output| {
            output.lines().any(|line| {
                line.strip_prefix("ok ")
                    .and_then(|n| n.trim().parse::<u32>().ok())
                    .is_some_and(|n| n > last_reset)
            })
        },
    );
    let errors = run_ok(&mut machine, PERSONAL, "cat /tmp/probe.err");
    assert!(errors.contains(RESET), "{errors}");
    run_ok(&mut machine, PERSONAL, "kill %1 2>/dev/null; true");

    // The counters: the paste flow saw refusals, and the cells table counts them.
    let output = channel(&mut machine);
    let flow = output
        .lines()
        .find(|line| line.starts_with("personal -> corporate:6000"))
        .unwrap_or_else(|| panic!("no paste flow in:\n{output}"));
    let refused: u64 = flow
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{flow}"));
    assert!(refused > 0, "{flow}");
    let corporate = channel_row(&output, CORPORATE);
    assert!(
        corporate.get(7).and_then(|n| n.parse::<u64>().ok()) >= Some(4),
        "corporate's 4 refused sends are counted: {corporate:?}\n{output}"
    );
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn the_kill_switch_resets_a_cells_connections_and_keeps_it_off_until_switched_on() {
    let mut machine = boot();
    // A long-lived connection corporate -> personal:5000, a line every half second.
    focus(&mut machine, CORPORATE);
    run_ok(
        &mut machine,
        CORPORATE,
        "vsock stream personal 5000 --interval-ms 500 --text live > /tmp/stream.log 2>&1 & true",
    );
    focus(&mut machine, PERSONAL);
    poll(
        &mut machine,
        PERSONAL,
        "cat /run/badges",
        "the stream's lines",
        |output| output.contains("badge: live "),
    );

    let since = machine.mark();
    let output = manage(&mut machine, "channel off corporate");
    assert!(
        output.contains("channel off corporate: done") && output.contains("connection"),
        "{output}"
    );
    let output = channel(&mut machine);
    let row = channel_row(&output, CORPORATE);
    assert_eq!(row.get(2).map(String::as_str), Some("off"), "{output}");
    assert_eq!(
        row.get(4).map(String::as_str),
        Some("0"),
        "no connection left: {output}"
    );
    // Corporate's next badge is refused, and logged.
    wait_refusal(
        &mut machine,
        &["corporate:", "-> personal:5000", "channel off"],
        since,
    );
    // The stream was reset.
    focus(&mut machine, CORPORATE);
    let log = poll(
        &mut machine,
        CORPORATE,
        "cat /tmp/stream.log",
        "the stream's reset",
        |output| output.contains("vsock: stream to personal:5000"),
    );
    assert!(log.contains(RESET), "{log}");
    let (output, code) = run(
        &mut machine,
        CORPORATE,
        "vsock send personal 5000 while-off",
    );
    assert_eq!(code, 1, "{output}");
    assert!(output.contains(RESET), "{output}");

    // On again: badges arrive again.
    focus(&mut machine, PERSONAL);
    let before = run_ok(&mut machine, PERSONAL, "cat /run/badges")
        .lines()
        .count();
    let output = manage(&mut machine, "channel on corporate");
    assert!(output.contains("channel on corporate: done"), "{output}");
    poll(
        &mut machine,
        PERSONAL,
        "cat /run/badges",
        "a badge after `channel on`",
        |output| {
            output.lines().count() > before
                && output
                    .lines()
                    .last()
                    .is_some_and(|l| l.contains("badge: badge "))
        },
    );
    let badges = run_ok(&mut machine, PERSONAL, "cat /run/badges");
    assert!(!badges.contains("while-off"), "{badges}");
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn a_wiped_or_restarted_cell_mid_stream_leaves_nothing_behind_and_the_other_flows_work() {
    let mut machine = boot();
    // Corporate streams to personal, ten lines a second, tagged with this instance.
    focus(&mut machine, CORPORATE);
    run_ok(
        &mut machine,
        CORPORATE,
        "vsock stream personal 5000 --interval-ms 100 --text first-instance \
         > /tmp/stream.log 2>&1 & true",
    );
    focus(&mut machine, PERSONAL);
    poll(
        &mut machine,
        PERSONAL,
        "cat /run/badges",
        "the first instance's stream",
        |output| output.contains("badge: first-instance "),
    );

    // Wipe corporate mid-stream.
    shell::open_prompt(&mut machine, COMMAND_TIMEOUT);
    let since = machine.mark();
    shell::prompt_command(&mut machine, "wipe corporate", COMMAND_TIMEOUT);
    machine
        .find_after("cell corporate: wiped", since, BOOT_TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    let output = shell::prompt_command(&mut machine, "channel", COMMAND_TIMEOUT);
    shell::leave_prompt(&mut machine, COMMAND_TIMEOUT);
    let row = channel_row(&output, CORPORATE);
    assert_eq!(
        row.get(3).map(String::as_str),
        Some("no"),
        "no driver: {output}"
    );
    assert_eq!(row.get(4).map(String::as_str), Some("0"), "{output}");
    assert_eq!(
        channel_row(&output, PERSONAL).get(4).map(String::as_str),
        Some("0"),
        "personal's end of the stream was reset: {output}"
    );

    // Let personal's listener take whatever had arrived before the wipe, then mark its log:
    // nothing of the wiped instance may come after the mark.
    std::thread::sleep(Duration::from_secs(3));
    run_ok(
        &mut machine,
        PERSONAL,
        "echo mark-after-wipe >> /run/badges",
    );
    std::thread::sleep(Duration::from_secs(5));

    // The other direction still works while corporate is off: personal's paste is answered with
    // a reset (no driver there), not a hang.
    let (output, code) = run(
        &mut machine,
        PERSONAL,
        "vsock send corporate 6000 to-a-wiped-cell",
    );
    assert_eq!(code, 1, "{output}");
    assert!(output.contains(RESET), "{output}");

    // Corporate starts again; its new instance's badges arrive, and personal's pastes reach it.
    shell::open_prompt(&mut machine, COMMAND_TIMEOUT);
    let since = machine.mark();
    shell::prompt_command(&mut machine, "start corporate", COMMAND_TIMEOUT);
    shell::leave_prompt(&mut machine, COMMAND_TIMEOUT);
    machine
        .find_after(&shell::ready_banner(CORPORATE), since, BOOT_TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    let badges = poll(
        &mut machine,
        PERSONAL,
        "cat /run/badges",
        "a badge from corporate's new instance",
        |output| {
            output
                .split("mark-after-wipe")
                .nth(1)
                .is_some_and(|after| after.contains("badge: badge "))
        },
    );
    let after = badges.split("mark-after-wipe").nth(1).unwrap_or_default();
    assert!(
        !after.contains("first-instance"),
        "the wiped instance's stream arrived after the wipe:\n{badges}"
    );
    run_ok(
        &mut machine,
        PERSONAL,
        "vsock send corporate 6000 to-the-new-instance",
    );

    // Restart personal (the receiver) while corporate's new instance streams to it.
    focus(&mut machine, CORPORATE);
    let pastes = run_ok(&mut machine, CORPORATE, "cat /run/pastes");
    assert!(pastes.contains("paste: to-the-new-instance"), "{pastes}");
    assert!(!pastes.contains("to-a-wiped-cell"), "{pastes}");
    run_ok(
        &mut machine,
        CORPORATE,
        "vsock stream personal 5000 --interval-ms 100 --text second-instance \
         > /tmp/stream.log 2>&1 & true",
    );
    shell::open_prompt(&mut machine, COMMAND_TIMEOUT);
    let since = machine.mark();
    shell::prompt_command(&mut machine, "restart personal", COMMAND_TIMEOUT);
    shell::leave_prompt(&mut machine, COMMAND_TIMEOUT);
    machine
        .find_after(&shell::ready_banner(PERSONAL), since, BOOT_TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    // The stream saw its reset; corporate itself keeps working.
    let log = poll(
        &mut machine,
        CORPORATE,
        "cat /tmp/stream.log",
        "the stream's reset when personal restarted",
        |output| output.contains("vsock: stream to personal:5000"),
    );
    assert!(log.contains(RESET), "{log}");
    run_ok(&mut machine, CORPORATE, "echo corporate-still-works");
    // The new personal gets fresh badges, and nothing of the old stream.
    focus(&mut machine, PERSONAL);
    let badges = poll(
        &mut machine,
        PERSONAL,
        "cat /run/badges",
        "a badge in personal's new instance",
        |output| output.contains("badge: badge "),
    );
    assert!(
        !badges.contains("second-instance") && !badges.contains("mark-after-wipe"),
        "personal's new instance got its old instance's data:\n{badges}"
    );
    assert_no_disasters(&machine);
}

//! A hostile cell against the channel (docs/channel.md): layout `channel-attack`, whose
//! *personal* cell runs `test=vsock-attack` (guests/test-guest/src/vsock_attack.rs) against its
//! virtio-vsock device and the switch's policy, while *corporate* is Debian Linux with its usual
//! channel services (listening on port 6000, a badge to personal:5000 every 5 s).
//!
//! The attacker's every step must pass (malformed queues refused with DEVICE_NEEDS_RESET and the
//! device working after a reset, malformed headers reset or dropped, a request to every port of
//! corporate and to other CIDs answered, a flood reset for its rate, a message above the flow's
//! size reset, no byte written past any rx buffer), cellvisor must not panic, its `channel`
//! command must count the refusals and log them rate-limited, and afterwards the channel still
//! works both ways: the attacker's paste is in corporate's `/run/pastes`, and a badge from
//! corporate reached the attacker.
//!
//! No timing thresholds: every wait is a generous upper bound.

use std::time::Duration;

use cellvisor_tests::{Artifacts, Machine, QemuConfig, disasters, shell};

const LAYOUT: &str = "channel-attack";
const ATTACKER: &str = "personal";
const VICTIM: &str = "corporate";
/// Generous: the scan alone is 65,536 round trips through the hypervisor.
const TIMEOUT: Duration = Duration::from_secs(600);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

const PASS: &str = "test-guest: vsock-attack: PASS ";
const FAIL: &str = "test-guest: FAIL";
const DONE: &str = "test-guest: done, powering off";

/// Every step the attacker reports.
const STEPS: &[&str] = &[
    "probe",
    "baseline",
    "corporate-up",
    "tx-desc-table-outside-ram",
    "tx-buffer-outside-ram",
    "tx-buffer-in-other-cell",
    "tx-length-max",
    "tx-chain-loop",
    "tx-chain-over-the-whole-ring",
    "tx-next-out-of-range",
    "tx-avail-jump",
    "rx-device-readable",
    "rx-too-short",
    "header len-beyond-buffer",
    "header len-above-64k",
    "header unknown-op",
    "header seqpacket-type",
    "header spoofed-corporate",
    "header spoofed-host",
    "header spoofed-max",
    "header to-itself",
    "header to-the-host",
    "header to-cid-99",
    "header to-cid-max",
    "header data-without-connection",
    "header response-without-request",
    "scan corporate",
    "scan other cids",
    "flood",
    "too-large",
    "paste-after-attacks",
    "badge",
    "canaries",
];

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn a_hostile_cell_cannot_break_the_channel_or_reach_outside_its_buffers() {
    let artifacts = Artifacts::from_env().unwrap_or_else(|error| panic!("{error}"));
    let mut machine = Machine::boot(&artifacts, &QemuConfig::new(LAYOUT))
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    machine
        .find_after(&format!("[{ATTACKER}] {DONE}"), 0, TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}\n{}", machine.transcript_note()));
    let transcript = machine.transcript();
    let attacker: Vec<&str> = transcript
        .lines()
        .filter_map(|line| {
            line.split_once(&format!("[{ATTACKER}] "))
                .map(|(_, rest)| rest)
        })
        .collect();
    let failures: Vec<&&str> = attacker
        .iter()
        .filter(|line| line.starts_with(FAIL))
        .collect();
    assert!(
        failures.is_empty(),
        "{failures:#?}\n{}",
        machine.transcript_note()
    );
    for step in STEPS {
        assert!(
            attacker
                .iter()
                .any(|line| line.starts_with(&format!("{PASS}{step}: "))),
            "no PASS for {step}\n{}",
            machine.transcript_note()
        );
    }
    let problems = disasters(&transcript);
    assert!(
        problems.is_empty(),
        "{problems:#?}\n{}",
        machine.transcript_note()
    );
    assert!(
        !transcript.contains("panicked"),
        "cellvisor panicked\n{}",
        machine.transcript_note()
    );
    // Refusals are logged, rate-limited: some lines, far fewer than the 65,000 refusals.
    let logged = transcript
        .lines()
        .filter(|line| line.contains("channel: refused personal:"))
        .count();
    assert!(
        logged > 0 && logged < 1000,
        "{logged} refusal log lines\n{}",
        machine.transcript_note()
    );
    // Each kind of refusal has its own limit: the scan's flood does not hide the later ones.
    assert!(
        transcript.contains("rate exceeded") && transcript.contains("message too large"),
        "the rate and size refusals are logged\n{}",
        machine.transcript_note()
    );

    // The victim is never blamed: what corporate's Linux had in flight when the attacker's
    // connection was reset is answered with an RST but neither counted nor logged against it.
    let blamed: Vec<&str> = transcript
        .lines()
        .filter(|line| line.contains("channel: refused corporate:"))
        .collect();
    assert!(
        blamed.is_empty(),
        "{blamed:#?}\n{}",
        machine.transcript_note()
    );

    // The counters: personal's refusals are counted, in `channel` and in `cells`.
    // Corporate is up (the attacker's `corporate-up` step saw its Linux accept); the console's
    // focus is still on the attacker, which has powered off.
    machine
        .find_after(&shell::ready_banner(VICTIM), 0, COMMAND_TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}\n{}", machine.transcript_note()));
    shell::open_prompt(&mut machine, COMMAND_TIMEOUT);
    let channel = shell::prompt_command(&mut machine, "channel", COMMAND_TIMEOUT);
    let cells = shell::prompt_command(&mut machine, "cells", COMMAND_TIMEOUT);
    let row = channel
        .lines()
        .find(|line| line.split_whitespace().next() == Some(ATTACKER))
        .unwrap_or_else(|| panic!("no personal row in\n{channel}"));
    let refused: u64 = row
        .split_whitespace()
        .nth(7)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{row}"));
    assert!(refused > 65_000, "personal's refusals: {row}\n{channel}");
    let cells_row = cells
        .lines()
        .find(|line| line.split_whitespace().next() == Some(ATTACKER))
        .unwrap_or_else(|| panic!("no personal row in\n{cells}"));
    let words: Vec<&str> = cells_row.split_whitespace().collect();
    let counted: u64 = words
        .get(words.len().saturating_sub(4))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{cells_row}"));
    assert!(counted >= refused, "cells counts them: {cells_row}");

    // Corporate works on, and got the attacker's paste after all the attacks.
    shell::leave_prompt(&mut machine, COMMAND_TIMEOUT);
    shell::focus(&mut machine, &[ATTACKER, VICTIM], VICTIM, COMMAND_TIMEOUT);
    let pastes = shell::run_ok(&mut machine, VICTIM, "cat /run/pastes", COMMAND_TIMEOUT);
    assert!(
        pastes.contains("paste: after-attacks"),
        "corporate's pastes:\n{pastes}\n{}",
        machine.transcript_note()
    );
    let output = shell::run_ok(&mut machine, VICTIM, "vsock cid", COMMAND_TIMEOUT);
    assert_eq!(output.trim(), "4", "{output}");
}

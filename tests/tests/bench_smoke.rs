//! Smoke run of the bench guest (guests/bench-guest) under cellvisor, layout `bench`: a few
//! iterations, every operation's line must appear with well-formed fields. No timing assertions:
//! `cargo xtask bench` is where figures are made.

use std::time::Duration;

use cellvisor_tests::bundle::cpio;
use cellvisor_tests::{Artifacts, Machine, QemuConfig};

/// The operations the guest times, in the order it prints them.
const OPS: [&str; 10] = [
    "null",
    "hvc",
    "gicd_read",
    "gicd_write",
    "uart_read",
    "sgi_self",
    "eoi",
    "ipi",
    "timer",
    "pci_intx",
];
const ITERATIONS: u64 = 16;
/// Generous: the machine running the tests is shared and slow.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The value of `key=` in `line`.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

fn is_number_or_dash(value: Option<&str>) -> bool {
    value.is_some_and(|value| value == "-" || value.parse::<f64>().is_ok_and(|v| v >= 0.0))
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn bench_guest_reports_every_operation() {
    let artifacts = Artifacts::from_env().unwrap_or_else(|error| panic!("{error}"));
    let guest_path = artifacts.out_dir.join("bench-guest.bin");
    let guest = std::fs::read(&guest_path).unwrap_or_else(|error| {
        panic!(
            "cannot read {} ({error}): run `cargo xtask build`",
            guest_path.display()
        )
    });
    let bootargs = format!("iterations={ITERATIONS}");
    let bundle = artifacts
        .out_dir
        .join("test-bundles")
        .join("bench-smoke.cpio");
    std::fs::create_dir_all(bundle.parent().expect("has a parent")).expect("bundle directory");
    std::fs::write(
        &bundle,
        cpio::archive(&[
            ("bench-guest".to_owned(), 0o100644, guest),
            (
                "override/bench/bootargs".to_owned(),
                0o100644,
                bootargs.into_bytes(),
            ),
        ]),
    )
    .expect("write the bundle");
    let config = QemuConfig {
        bundle: Some(bundle),
        ..QemuConfig::new("bench")
    };
    let mut machine =
        Machine::boot(&artifacts, &config).unwrap_or_else(|error| panic!("cannot boot: {error}"));
    machine
        .wait_for("[bench] bench: done", TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    let transcript = machine.transcript();
    assert!(
        !transcript.contains("bench: error"),
        "the bench guest reported an error:\n{}",
        cellvisor_tests::last_lines(&transcript, 30)
    );
    let start = transcript
        .lines()
        .find(|line| line.contains("[bench] bench: start "))
        .expect("start line");
    assert_eq!(field(start, "env"), Some("cellvisor"), "{start}");
    assert_eq!(field(start, "iterations"), Some("16"), "{start}");
    for op in OPS {
        let needle = format!("[bench] bench: op={op} ");
        let line = transcript
            .lines()
            .find(|line| line.contains(&needle))
            .unwrap_or_else(|| panic!("no line for op {op}:\n{transcript}"));
        assert_eq!(
            field(line, "iterations"),
            Some("16"),
            "iterations of {op}: {line}"
        );
        assert!(
            field(line, "ticks").is_some_and(|ticks| ticks.parse::<u64>().is_ok()),
            "ticks of {op}: {line}"
        );
        for key in ["ns_per_op", "cycles_per_op", "el2_instr_per_op"] {
            assert!(is_number_or_dash(field(line, key)), "{key} of {op}: {line}");
        }
    }
}

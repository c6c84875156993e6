//! Display and input switching (`test-guests-shared` with QEMU's `ramfb`, `virtio-keyboard-device`
//! and `virtio-tablet-device`, under `-icount shift=0,sleep=off` on one CPU, where the 1 GHz
//! counter counts that CPU's instructions: a tick is an EL2 instruction and a nanosecond).
//!
//! Personal runs the test guest's `test=input` (it drives its emulated virtio-input device and
//! prints each event), corporate `test=heartbeat`. Keys typed with QMP go through cellvisor to
//! personal; the switch key (`pause`) then switches back and forth. The management prompt's
//! `screen` command gives the mean cost of a switch, from the switch key's interrupt to
//! cellvisor's banner on the scanout (banner drawn, caches cleaned, ramfb repointed), and the
//! mean cost of a forwarded input event, from the interrupt to the guest's queue.
use std::path::PathBuf;
use std::time::Duration;

use crate::images::{self, Ingredients, Overrides};
use crate::prereq::Qemu;
use crate::util::{self, Result};

use super::bench_dir;
use super::disk::Session;
use super::qemu::{self, Mode};

const LAYOUT: &str = "test-guests-shared";
/// Keys typed (each a press and a release, each with its `SYN_REPORT`: 4 events).
const KEYS: usize = 16;
/// Switches made with the switch key.
const SWITCHES: usize = 8;

/// What the display run showed.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct DisplayFigures {
    /// Switches with the switch key that `screen` counted.
    pub(super) switches: u64,
    /// Their mean cost in EL2 instructions (= icount nanoseconds).
    pub(super) switch_instructions: u64,
    /// Input events forwarded.
    pub(super) events: u64,
    /// Their mean cost in EL2 instructions each.
    pub(super) event_instructions: u64,
}

impl DisplayFigures {
    /// One progress line.
    pub(super) fn summary(&self) -> String {
        format!(
            "switch {} EL2 instructions ({:.3} ms icount, goal < 16 ms) over {} switches; {} EL2 instructions per input event over {}",
            self.switch_instructions,
            self.switch_instructions as f64 / 1e6,
            self.switches,
            self.event_instructions,
            self.events
        )
    }

    pub(super) fn json(&self) -> String {
        format!(
            "{{\"layout\": \"{LAYOUT}\", \"switches\": {}, \"switch_el2_instructions\": {}, \"switch_icount_ms\": {:.3}, \"events\": {}, \"event_el2_instructions\": {}}}",
            self.switches,
            self.switch_instructions,
            self.switch_instructions as f64 / 1e6,
            self.events,
            self.event_instructions
        )
    }
}

/// Reads the `screen` command's figures: `(switches, mean ns)` and `(events, mean ns)`.
fn parse_screen(text: &str) -> Option<((u64, u64), (u64, u64))> {
    let number_after = |line: &str, word: &str| -> Option<u64> {
        let at = line.find(word)? + word.len();
        line.get(at..)?
            .split_whitespace()
            .next()?
            .trim_end_matches(',')
            .parse()
            .ok()
    };
    let switch = text
        .lines()
        .rev()
        .find(|line| line.contains("switch key: "))?;
    let input = text.lines().rev().find(|line| line.contains("input: "))?;
    Some((
        (
            number_after(switch, "switch key: ")?,
            number_after(switch, "mean ")?,
        ),
        (
            number_after(input, "input: ")?,
            number_after(input, "mean ")?,
        ),
    ))
}

/// A QMP socket path for this run.
fn qmp_socket() -> PathBuf {
    std::env::temp_dir().join(format!("cellvisor-bench-qmp-{}.sock", std::process::id()))
}

/// Boots [`LAYOUT`] with the screen and input devices under icount, types [`KEYS`] keys into
/// personal, switches [`SWITCHES`] times with the switch key, and reads `screen`.
pub(super) fn display_run(qemu: &Qemu) -> Result<DisplayFigures> {
    let layout = images::layout(LAYOUT)?;
    let bundle = bench_dir().join(format!("bundle-{LAYOUT}-display.cpio"));
    let mut overrides = Overrides::default();
    overrides
        .bootargs
        .insert("personal".to_owned(), "test=input".to_owned());
    overrides
        .bootargs
        .insert("corporate".to_owned(), "test=heartbeat".to_owned());
    images::build_bundle(layout, &overrides, &mut Ingredients::default(), &bundle)?;
    let socket = qmp_socket();
    let _ = std::fs::remove_file(&socket);
    let mut command = qemu::cellvisor_command(qemu, &bundle, LAYOUT, Mode::Icount);
    command
        .args(cellvisor_tests::DISPLAY_DEVICE_ARGS)
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", socket.display()));
    let log = bench_dir().join("display-icount.log");
    let mut session = Session::start(command)?;
    let outcome = measure(&mut session, &socket);
    session.finish(&log)?;
    let _ = std::fs::remove_file(&socket);
    outcome.map_err(|error| util::Error(format!("{error}; see {}", util::pretty(&log))))
}

fn measure(session: &mut Session, socket: &std::path::Path) -> Result<DisplayFigures> {
    let timeout = Duration::from_secs(180);
    session.wait_for("ready for keys", 0, timeout)?;
    let mut qmp = cellvisor_tests::qmp::Qmp::connect(socket, Duration::from_secs(30))
        .map_err(|error| util::Error(format!("QMP: {error}")))?;
    let qmp_error = |error: cellvisor_tests::HarnessError| util::Error(format!("QMP: {error}"));
    for _ in 0..KEYS {
        let since = session.mark();
        qmp.tap("a").map_err(qmp_error)?;
        // The release: the last of the tap's events.
        session.wait_for("code=30 value=0", since, timeout)?;
    }
    for round in 0..SWITCHES {
        let since = session.mark();
        qmp.tap("pause").map_err(qmp_error)?;
        let cell = if round % 2 == 0 {
            "corporate"
        } else {
            "personal"
        };
        session.wait_for(&format!("screen: banner for {cell}"), since, timeout)?;
        session.wait_for(&format!("console input now goes to {cell}"), since, timeout)?;
    }
    let since = session.mark();
    session.send(&[cellvisor_tests::CONSOLE_ESCAPE, b'm'])?;
    let (_, opened) = session.wait_for("cellvisor management prompt", since, timeout)?;
    session.send(b"screen\r")?;
    let (_, _) = session.wait_for("frames refused", opened, timeout)?;
    let text = session.transcript();
    let Some(((switches, switch_ns), (events, event_ns))) =
        parse_screen(text.get(opened..).unwrap_or_default())
    else {
        crate::fail!("`screen` printed no switch or input figures");
    };
    Ok(DisplayFigures {
        switches,
        switch_instructions: switch_ns,
        events,
        event_instructions: event_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screen_figures_are_read_from_the_last_lines() {
        let text = "screen 640x480: personal in front, showing personal's frame\n\
                    switch key: 8 switches, mean 412345 ns, last 400000 ns from the key to the banner\n\
                    input: 64 events forwarded, mean 1234 ns each; 0 frames refused\n";
        assert_eq!(parse_screen(text), Some(((8, 412_345), (64, 1234))));
        assert_eq!(parse_screen("nothing"), None);
    }
}

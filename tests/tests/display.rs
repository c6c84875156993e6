//! The phone's screen and input: layout `linux` booted with QEMU's `ramfb` (the screen) and its
//! virtio-mmio keyboard and tablet ([`QemuConfig::display`]), all owned by cellvisor, still
//! headless: the tests look at the screen with QMP `screendump` and type and touch with QMP
//! `input-send-event` ([`cellvisor_tests::Qmp`]).
//!
//! What cellvisor does with them: each Linux cell has an emulated PL111 framebuffer (`/dev/fb0`,
//! 640x480, 32 bpp) and emulated virtio-input devices (one per physical input device,
//! `/dev/input/event*`). The focused cell's framebuffer is on the screen; on each focus switch
//! cellvisor first shows a banner (the cell's name on its colour: personal green 0x2E7D32,
//! corporate blue 0x1565C0, board data) for `banner_ms` milliseconds, logging
//! `cellvisor: screen: banner for <cell>`, then the cell's frame (`cellvisor: screen: <cell> on
//! screen`, or `... has no picture`). Keys and touches go to the focused cell alone, and the
//! board's switch key, `KEY_PAUSE` (QMP qcode `pause`), switches to the next cell like Ctrl-A `n`.
//!
//! Screenshots are polled until they show what is expected (or a generous timeout passes): no
//! timing is asserted, except that the banner is seen while it is up, which `cellvisor.banner_ms=4000`
//! makes four seconds long. A failing test leaves its screenshots next to its transcript
//! (`<CELLVISOR_OUT>/transcripts/<test>-<what>.ppm`); a passing one removes them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cellvisor_tests::{
    Artifacts, CONSOLE_ESCAPE, Image, Machine, QemuConfig, Qmp, cellvisor_warnings, disasters,
    shell,
};

const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a screenshot or an input log may take to show what it should.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two screenshots or two reads of the input logs.
const POLL: Duration = Duration::from_millis(250);

const PERSONAL: &str = "personal";
const CORPORATE: &str = "corporate";
/// The cells in console order: Ctrl-A `1` focuses the first, Ctrl-A `2` the second.
const CELLS: [&str; 2] = [PERSONAL, CORPORATE];
const LAYOUT: &str = "linux";

/// Long enough for a screenshot to catch the banner after its console line.
const BANNER_ARGS: &str = "cellvisor.banner_ms=4000";

/// The banner colours (boards/qemu-virt).
const PERSONAL_BANNER: [u8; 3] = [0x2e, 0x7d, 0x32];
const RED: [u8; 3] = [0xff, 0, 0];
const BLUE: [u8; 3] = [0, 0, 0xff];
const BLACK: [u8; 3] = [0, 0, 0];
/// Per channel: the emulated framebuffer is 8 bits per channel, so colours arrive exactly; a little
/// slack for a scaler's rounding.
const TOLERANCE: u8 = 8;
/// A solid fill covers the screen: at least this share of its pixels.
const SOLID: f64 = 0.9;
/// A banner is its colour but for the cell's name: most of the screen.
const MOSTLY: f64 = 0.5;

/// `struct input_event` on arm64: a 16-byte `timeval`, `u16 type`, `u16 code`, `s32 value`: 12
/// 16-bit words.
const EVENT_WORDS: usize = 12;
const EV_KEY: u16 = 1;
const EV_ABS: u16 = 3;
/// Linux key codes of the letters the tests type.
const KEY_A: u16 = 30;
const KEY_B: u16 = 48;
const KEY_C: u16 = 46;
const KEY_X: u16 = 45;
const KEY_Y: u16 = 21;
const KEY_Z: u16 = 44;

fn fail(error: impl std::fmt::Display) -> ! {
    panic!("{error}")
}

fn artifacts() -> Artifacts {
    Artifacts::from_env().unwrap_or_else(|error| fail(error))
}

/// Boots `linux` with the screen, keyboard and tablet and a 4 s banner; waits for both cells.
fn boot(artifacts: &Artifacts) -> Machine {
    let config = QemuConfig {
        display: true,
        hypervisor_args: BANNER_ARGS.to_owned(),
        ..QemuConfig::new(LAYOUT)
    };
    let mut machine = Machine::boot(artifacts, &config)
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    shell::wait_ready(&mut machine, &CELLS, PERSONAL, BOOT_TIMEOUT);
    machine
}

fn qmp(machine: &Machine) -> Qmp {
    machine.qmp().unwrap_or_else(|error| fail(error))
}

fn run_ok(machine: &mut Machine, cell: &str, command: &str) -> String {
    shell::run_ok(machine, cell, command, COMMAND_TIMEOUT)
}

fn focus(machine: &mut Machine, cell: &str) {
    shell::focus(machine, &CELLS, cell, COMMAND_TIMEOUT);
}

/// Waits for `needle` at or after `since`; returns where its line ends.
fn wait(machine: &mut Machine, needle: &str, since: usize) -> usize {
    machine
        .find_after(needle, since, COMMAND_TIMEOUT)
        .unwrap_or_else(|error| fail(error))
        .line_end
}

fn assert_clean(machine: &Machine) {
    let transcript = machine.transcript();
    let mut problems = disasters(&transcript);
    problems.extend(cellvisor_warnings(&transcript));
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A shell command that fills `/dev/fb0` with one colour, `pixel` being its 4 bytes in memory
/// order. It reads the framebuffer's layout from sysfs (`bits_per_pixel`, `stride`,
/// `virtual_size`) and refuses anything but 32 bpp; busybox has no `fbset` to report the colour
/// offsets, so the pixel assumes the usual XRGB8888 (red at bit 16, green at 8, blue at 0: bytes
/// B, G, R, X). The pixel is doubled in /tmp until it covers a frame (`stride` x height bytes),
/// then one frame of it goes to the device.
fn fill_command(pixel: [u8; 4]) -> String {
    let pixel: String = pixel.iter().map(|byte| format!("\\{byte:03o}")).collect();
    format!(
        "( fb=/sys/class/graphics/fb0; bpp=$(cat $fb/bits_per_pixel); stride=$(cat $fb/stride); \
         size=$(cat $fb/virtual_size); height=${{size#*,}}; \
         echo \"fb0: bpp=$bpp stride=$stride virtual_size=$size\"; \
         [ \"$bpp\" = 32 ] || {{ echo 'fb0 is not 32 bpp'; exit 1; }}; \
         printf '{pixel}' > /tmp/fill; \
         while [ $(stat -c %s /tmp/fill) -lt $((stride * height)) ]; do \
         cat /tmp/fill /tmp/fill > /tmp/fill2; mv /tmp/fill2 /tmp/fill; done; \
         dd if=/tmp/fill of=/dev/fb0 bs=$stride count=$height 2>/dev/null && rm /tmp/fill && \
         echo fb0-filled )"
    )
}

/// XRGB8888 bytes in memory order (see [`fill_command`]).
fn xrgb([red, green, blue]: [u8; 3]) -> [u8; 4] {
    [blue, green, red, 0]
}

/// Fills `cell`'s framebuffer (the cell has the focus) with `rgb`.
fn fill(machine: &mut Machine, cell: &str, rgb: [u8; 3]) {
    let output = run_ok(machine, cell, &fill_command(xrgb(rgb)));
    assert!(
        output.contains("fb0-filled"),
        "{cell} did not fill /dev/fb0:\n{output}"
    );
}

/// Screenshots of one test, kept next to its transcript; [`Screen::discard`] removes them when
/// the test passes.
struct Screen {
    qmp: Qmp,
    dir: PathBuf,
    test: &'static str,
    taken: Vec<PathBuf>,
}

impl Screen {
    fn new(machine: &Machine, artifacts: &Artifacts, test: &'static str) -> Screen {
        let dir = artifacts.transcript_dir();
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        Screen {
            qmp: qmp(machine),
            dir,
            test,
            taken: Vec::new(),
        }
    }

    /// Takes a screenshot into `<test>-<what>.ppm`.
    fn dump(&mut self, what: &str) -> (Image, PathBuf) {
        let path = self.dir.join(format!("{}-{what}.ppm", self.test));
        let image = self
            .qmp
            .screendump(&path)
            .unwrap_or_else(|error| fail(error));
        if !self.taken.contains(&path) {
            self.taken.push(path.clone());
        }
        (image, path)
    }

    /// Takes screenshots until one has at least `share` of its pixels near `rgb`; fails with what
    /// the screen showed after [`SCREEN_TIMEOUT`].
    fn wait_for(&mut self, machine: &Machine, what: &str, rgb: [u8; 3], share: f64) -> Image {
        let deadline = Instant::now() + cellvisor_tests::scaled(SCREEN_TIMEOUT);
        loop {
            let (image, path) = self.dump(what);
            let near = image.share_near(rgb, TOLERANCE);
            if near >= share {
                return image;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the screen did not show {what}: {:.1} % of its {}x{} pixels are near {rgb:02x?} \
                     (want {:.0} %); its main colours: {}; screenshot {}; {}",
                    near * 100.0,
                    image.width,
                    image.height,
                    share * 100.0,
                    colours(&image),
                    path.display(),
                    machine.transcript_note()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Removes the screenshots (the test passed).
    fn discard(self) {
        for path in &self.taken {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The main colours of `image`, for failure messages.
fn colours(image: &Image) -> String {
    image
        .dominant_colours(4)
        .iter()
        .map(|(rgb, share)| format!("{rgb:02x?} {:.1} %", share * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn the_screen_shows_the_focused_cell_and_the_banner_on_a_switch() {
    let artifacts = artifacts();
    let mut machine = boot(&artifacts);
    let mut screen = Screen::new(
        &machine,
        &artifacts,
        "the_screen_shows_the_focused_cell_and_the_banner_on_a_switch",
    );

    // Personal has the focus at boot: its framebuffer turns red.
    fill(&mut machine, PERSONAL, RED);
    // Ctrl-A 2: corporate's banner, then its framebuffer, which turns blue.
    let switched = machine.mark();
    focus(&mut machine, CORPORATE);
    wait(
        &mut machine,
        "cellvisor: screen: banner for corporate",
        switched,
    );
    fill(&mut machine, CORPORATE, BLUE);
    screen.wait_for(&machine, "corporate-blue", BLUE, SOLID);

    // The switch key: personal's banner is up first ...
    let since = machine.mark();
    screen.qmp.tap("pause").unwrap_or_else(|error| fail(error));
    let banner = wait(
        &mut machine,
        "cellvisor: screen: banner for personal",
        since,
    );
    let on_screen = "cellvisor: screen: personal on screen";
    let deadline = Instant::now() + cellvisor_tests::scaled(SCREEN_TIMEOUT);
    loop {
        // Whether the banner was already gone before this screenshot was taken.
        let gone = machine.find(on_screen, banner).is_some();
        let (image, path) = screen.dump("personal-banner");
        let near = image.share_near(PERSONAL_BANNER, TOLERANCE);
        if near >= MOSTLY {
            break;
        }
        if gone || Instant::now() >= deadline {
            panic!(
                "no personal banner on the screen after the pause key: {:.1} % of the pixels \
                 are near {PERSONAL_BANNER:02x?}; its main colours: {}; screenshot {}; {}",
                near * 100.0,
                colours(&image),
                path.display(),
                machine.transcript_note()
            );
        }
        std::thread::sleep(POLL);
    }
    // ... then personal's framebuffer, still red, and the console is personal's too.
    wait(&mut machine, on_screen, banner);
    screen.wait_for(&machine, "personal-red", RED, SOLID);
    wait(
        &mut machine,
        "cellvisor: console input now goes to personal",
        since,
    );
    let prompt = machine.mark();
    shell::await_shell(&mut machine, PERSONAL, prompt, COMMAND_TIMEOUT);
    assert_clean(&machine);
    screen.discard();
}

/// One `struct input_event` as read from an evdev node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Event {
    kind: u16,
    code: u16,
    value: i32,
}

/// The events in each `/tmp/event*.log` of `cell` (which has the focus), by file name.
type Logs = BTreeMap<String, Vec<Event>>;

/// Reads back `cell`'s input logs, decoded from `od` (16-bit words).
fn read_logs(machine: &mut Machine, cell: &str) -> Logs {
    let output = run_ok(
        machine,
        cell,
        "for f in /tmp/event*.log; do echo \"log $f $(stat -c %s $f)\"; od -An -tu2 -v $f; done",
    );
    parse_logs(&output)
}

fn parse_logs(output: &str) -> Logs {
    let mut words: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    let mut current = None;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("log ") {
            let name = rest.split_whitespace().next().unwrap_or(rest).to_owned();
            words.entry(name.clone()).or_default();
            current = Some(name);
        } else if let Some(name) = &current {
            let numbers: Option<Vec<u16>> = line
                .split_whitespace()
                .map(|word| word.parse().ok())
                .collect();
            if let Some(numbers) = numbers {
                words.entry(name.clone()).or_default().extend(numbers);
            }
        }
    }
    words
        .into_iter()
        .map(|(name, words)| {
            let events = words
                .chunks_exact(EVENT_WORDS)
                .map(|event| Event {
                    kind: event[8],
                    code: event[9],
                    value: (u32::from(event[10]) | (u32::from(event[11]) << 16)) as i32,
                })
                .collect();
            (name, events)
        })
        .collect()
}

fn all_events(logs: &Logs) -> impl Iterator<Item = &Event> {
    logs.values().flatten()
}

/// Whether the logs hold a press and a release of every key of `keys`, a pointer move (an
/// `EV_ABS` event) and a button release (an `EV_KEY` release of another code: the touch's
/// button, the last event a [`Qmp::touch`] sends).
fn received(logs: &Logs, keys: &[u16]) -> bool {
    let has = |kind: u16, code: Option<u16>, value: Option<i32>| {
        all_events(logs).any(|event| {
            event.kind == kind
                && code.is_none_or(|code| event.code == code)
                && value.is_none_or(|value| event.value == value)
        })
    };
    keys.iter()
        .all(|&key| has(EV_KEY, Some(key), Some(1)) && has(EV_KEY, Some(key), Some(0)))
        && has(EV_ABS, None, None)
        && all_events(logs).any(|event| {
            event.kind == EV_KEY
                && event.value == 0
                && ![KEY_A, KEY_B, KEY_C, KEY_X, KEY_Y, KEY_Z].contains(&event.code)
        })
}

/// How many events of `kind` (and of a code in `codes`, if given) the logs hold.
fn count(logs: &Logs, kind: u16, codes: Option<&[u16]>) -> usize {
    all_events(logs)
        .filter(|event| event.kind == kind && codes.is_none_or(|codes| codes.contains(&event.code)))
        .count()
}

/// Types `keys` (QMP qcodes) and touches the screen at `x`, `y`.
fn type_and_touch(qmp: &mut Qmp, keys: &[&str], x: u32, y: u32) {
    for key in keys {
        qmp.tap(key).unwrap_or_else(|error| fail(error));
    }
    qmp.touch(x, y).unwrap_or_else(|error| fail(error));
}

/// Reads `cell`'s logs until they hold `keys` and a touch ([`received`]); fails with what they
/// hold after [`SCREEN_TIMEOUT`].
fn wait_for_input(machine: &mut Machine, cell: &str, keys: &[u16]) -> Logs {
    let deadline = Instant::now() + cellvisor_tests::scaled(SCREEN_TIMEOUT);
    loop {
        let logs = read_logs(machine, cell);
        if received(&logs, keys) {
            return logs;
        }
        if Instant::now() >= deadline {
            panic!(
                "{cell} (focused) did not get the keys {keys:?} and the touch: its logs hold {logs:#?}; {}",
                machine.transcript_note()
            );
        }
        std::thread::sleep(POLL);
    }
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn keys_and_touch_reach_only_the_focused_cell() {
    let artifacts = artifacts();
    let mut machine = boot(&artifacts);
    let mut qmp = qmp(&machine);

    // In each cell, a reader per input device copies its events to /tmp/<device>.log.
    let mut baseline: BTreeMap<String, Logs> = BTreeMap::new();
    shell::in_each_cell(&mut machine, &CELLS, COMMAND_TIMEOUT, |machine, cell| {
        let devices = run_ok(
            machine,
            cell,
            "ls /dev/input/event*; for n in /sys/class/input/event*/device/name; do echo \"$n: $(cat $n)\"; done",
        );
        // `ls` may put several names on one line.
        let count = devices
            .split_whitespace()
            .filter(|word| word.starts_with("/dev/input/event") && !word.ends_with(':'))
            .count();
        assert!(
            count >= 2,
            "{cell} should have an input device for the keyboard and one for the tablet:\n{devices}"
        );
        run_ok(
            machine,
            cell,
            "for e in /dev/input/event*; do cat $e > /tmp/$(basename $e).log & done; sleep 1",
        );
        baseline.insert(cell.to_owned(), read_logs(machine, cell));
    });

    // Corporate focused: it gets the keys and the touch ...
    focus(&mut machine, CORPORATE);
    type_and_touch(&mut qmp, &["a", "b", "c"], 16384, 16384);
    let corporate = wait_for_input(&mut machine, CORPORATE, &[KEY_A, KEY_B, KEY_C]);
    // ... and personal nothing (Ctrl-A 1, not the pause key, which would be typed).
    focus(&mut machine, PERSONAL);
    let personal = read_logs(&mut machine, PERSONAL);
    assert_eq!(
        all_events(&personal).count(),
        all_events(&baseline[PERSONAL]).count(),
        "personal got input while corporate had the focus: {personal:#?}; {}",
        machine.transcript_note()
    );

    // Personal focused: the reverse.
    type_and_touch(&mut qmp, &["x", "y", "z"], 8192, 24576);
    wait_for_input(&mut machine, PERSONAL, &[KEY_X, KEY_Y, KEY_Z]);
    focus(&mut machine, CORPORATE);
    let after = read_logs(&mut machine, CORPORATE);
    assert_eq!(
        count(&after, EV_KEY, Some(&[KEY_X, KEY_Y, KEY_Z])),
        0,
        "corporate got personal's keys: {after:#?}; {}",
        machine.transcript_note()
    );
    assert_eq!(
        (count(&after, EV_ABS, None), count(&after, EV_KEY, None)),
        (
            count(&corporate, EV_ABS, None),
            count(&corporate, EV_KEY, None)
        ),
        "corporate's logs grew while personal had the focus: before {corporate:#?}, after {after:#?}; {}",
        machine.transcript_note()
    );
    assert_clean(&machine);
}

#[test]
fn fill_commands_and_event_logs_are_what_the_tests_expect() {
    assert_eq!(xrgb(RED), [0, 0, 0xff, 0]);
    let command = fill_command(xrgb(RED));
    assert!(
        command.contains("printf '\\000\\000\\377\\000'"),
        "{command}"
    );
    assert!(command.contains("height=${size#*,}"), "{command}");
    // Two events of od's output: a key press of KEY_A and a negative absolute value.
    let output = "log /tmp/event0.log 48\n     1     0     0     0     2     0     0     0\n     \
                  1    30     1     0     1     0     0     0\n     2     0     0     0     3     1 \
                  65535 65535\nlog /tmp/event1.log 0\n";
    let logs = parse_logs(output);
    assert_eq!(
        logs["/tmp/event0.log"],
        [
            Event {
                kind: EV_KEY,
                code: KEY_A,
                value: 1
            },
            Event {
                kind: EV_ABS,
                code: 1,
                value: -1
            }
        ]
    );
    assert!(logs["/tmp/event1.log"].is_empty());
    assert!(!received(&logs, &[KEY_A]));
    assert_eq!(count(&logs, EV_KEY, Some(&[KEY_A])), 1);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn a_restarted_cell_shows_nothing_of_its_previous_instance() {
    let test = "a_restarted_cell_shows_nothing_of_its_previous_instance";
    let artifacts = artifacts();
    let mut machine = boot(&artifacts);
    let mut screen = Screen::new(&machine, &artifacts, test);
    // Personal (in front) shows red.
    fill(&mut machine, PERSONAL, RED);
    screen.wait_for(&machine, "personal-red", RED, SOLID);

    // Restarted from the management prompt: the scanout leaves its RAM for its banner at once.
    let since = machine.mark();
    machine
        .send(&[CONSOLE_ESCAPE, b'm'])
        .unwrap_or_else(|error| fail(error));
    let opened = wait(&mut machine, "cellvisor management prompt", since);
    machine
        .send_line("restart personal")
        .unwrap_or_else(|error| fail(error));
    wait(&mut machine, "restart personal: requested", opened);
    wait(
        &mut machine,
        "cellvisor: screen: personal stopped, its banner stands in",
        opened,
    );
    screen.wait_for(&machine, "personal-banner", PERSONAL_BANNER, MOSTLY);
    machine
        .send_line("exit")
        .unwrap_or_else(|error| fail(error));

    // The new instance sets up its own frame (its RAM was scrubbed): black with its console, and
    // never the previous instance's red.
    wait(&mut machine, &shell::ready_banner(PERSONAL), opened);
    let image = screen.wait_for(&machine, "personal-new-instance", BLACK, SOLID);
    let red = image.share_near(RED, TOLERANCE);
    assert!(
        red < 0.01,
        "{:.1} % of the new instance's screen is the old one's red; {}",
        red * 100.0,
        machine.transcript_note()
    );
    assert_clean(&machine);
    screen.discard();
}

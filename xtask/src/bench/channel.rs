//! The channel between the Linux cells (docs/channel.md): layout `linux-bench`, whose policy adds
//! personal -> corporate port 7000 (64 KiB messages, 1,000,000 messages/s, no focus rule), under
//! `-icount shift=0,sleep=off`, each cell booted with `maxcpus=1` (one running vCPU per cell).
//!
//! In personal the guest tool (`vsock`, guests/linux/vsock-tool) times a 1 MiB transfer
//! (`vsock blast`) against corporate's `vsock listen 7000 --sink`, then round trips of a 64-byte
//! message (`vsock ping`) against corporate's `vsock listen 7000 --echo`; the same over TCP
//! loopback inside personal (`--tcp`, the native reference) in the same boot. The management
//! prompt's `channel` command is read before and after each channel transfer: its EL2 work line
//! (`EL2 work: N packets moved, T counter ticks per packet`, the ticks cellvisor spent in the
//! channel's pump) gives the ticks per packet moved in that window. Under icount a counter tick is
//! an instruction of the machine (see [`ChannelFigures`] and docs/benchmarks.md for exactly
//! which).
use std::time::Duration;

use crate::images::{self, Ingredients, Overrides};
use crate::prereq::Qemu;
use crate::util::{self, Result};

use super::bench_dir;
use super::disk::Session;
use super::qemu::{self, Mode};
use super::report::{json_number, json_string};

const LAYOUT: &str = "linux-bench";
/// The flow's port on corporate.
const PORT: u16 = 7000;
/// personal's own TCP loopback listeners (the native reference): echo, sink.
const TCP_ECHO_PORT: u16 = 7001;
const TCP_SINK_PORT: u16 = 7002;
/// The round trip's message size.
pub(super) const PING_SIZE: u64 = 64;
/// The transfer's size.
pub(super) const BLAST_BYTES: u64 = 1 << 20;
/// Added to both cells' bootargs: one running vCPU per cell.
const CELL_ARGS: &str = "maxcpus=1";

/// Round trips and transfers per transport: `--quick` and full.
fn iterations(quick: bool) -> (u64, usize) {
    if quick { (200, 1) } else { (2000, 3) }
}

/// One `vsock ping` result line.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Ping {
    /// `vsock` or `tcp`.
    pub(super) transport: String,
    pub(super) count: u64,
    pub(super) size: u64,
    pub(super) total_ns: u64,
    pub(super) avg_ns: u64,
    pub(super) min_ns: u64,
    pub(super) max_ns: u64,
}

/// One `vsock blast` result line.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Blast {
    /// `vsock` or `tcp`.
    pub(super) transport: String,
    pub(super) bytes: u64,
    pub(super) ns: u64,
}

/// The `channel` command's EL2 work line: packets moved and counter ticks per packet (both 0
/// before any packet moved).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct El2Work {
    pub(super) packets: u64,
    pub(super) ticks_per_packet: u64,
}

/// The EL2 work of a window between two `channel` readings.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Window {
    /// Packets moved in the window (each taken from a tx queue or written into an rx buffer).
    pub(super) packets: u64,
    /// Counter ticks per packet in the window.
    pub(super) ticks_per_packet: f64,
    /// How far off `ticks_per_packet` may be from the readings' integer division (± ticks).
    pub(super) error: f64,
}

impl Window {
    /// The window between `before` and `after`. The line gives total / packets rounded down, so
    /// each total is known to within its packet count.
    pub(super) fn between(before: El2Work, after: El2Work) -> Option<Window> {
        let packets = after.packets.checked_sub(before.packets)?;
        if packets == 0 {
            return None;
        }
        let total = |work: El2Work| work.packets as f64 * work.ticks_per_packet as f64;
        let ticks = total(after) - total(before);
        Some(Window {
            packets,
            ticks_per_packet: ticks / packets as f64,
            error: before.packets.max(after.packets) as f64 / packets as f64,
        })
    }

    fn json(&self) -> String {
        format!(
            "{{\"packets_moved\": {}, \"ticks_per_packet\": {}, \"ticks_per_packet_error\": {}}}",
            self.packets,
            json_number(Some(self.ticks_per_packet)),
            json_number(Some(self.error))
        )
    }
}

/// What the channel run showed. Times are the guests' CLOCK_MONOTONIC under icount: virtual
/// nanoseconds, one per instruction QEMU executes on any vCPU (its round-robin runs them all on
/// one thread and one clock). Ticks per packet are the counter ticks from the pump's entry to its
/// exit over the packets it moved: the pumping CPU's EL2 instructions, plus any instruction of the
/// other cell's vCPU if QEMU's round-robin switched to it inside the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct ChannelFigures {
    /// Round trips over the channel, and over TCP loopback in personal.
    pub(super) ping: Ping,
    pub(super) tcp_ping: Ping,
    /// Transfers over the channel, and over TCP loopback in personal.
    pub(super) blasts: Vec<Blast>,
    pub(super) tcp_blasts: Vec<Blast>,
    /// The EL2 work of the channel's transfers, and of its round trips.
    pub(super) blast_el2: Option<Window>,
    pub(super) ping_el2: Option<Window>,
}

/// The median of `values` (the lower middle one of an even count).
fn median(mut values: Vec<u64>) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len().saturating_sub(1) / 2).copied()
}

impl ChannelFigures {
    /// The median transfer time over the channel and over TCP loopback.
    pub(super) fn blast_ns(&self) -> (Option<u64>, Option<u64>) {
        let ns = |blasts: &[Blast]| median(blasts.iter().map(|blast| blast.ns).collect());
        (ns(&self.blasts), ns(&self.tcp_blasts))
    }

    /// MB/s of a median transfer of [`BLAST_BYTES`] taking `ns`.
    pub(super) fn mb_per_s(ns: Option<u64>) -> Option<f64> {
        ns.filter(|ns| *ns != 0)
            .map(|ns| BLAST_BYTES as f64 * 1e3 / ns as f64)
    }

    /// Mean round trip: channel / loopback.
    pub(super) fn latency_ratio(&self) -> Option<f64> {
        (self.tcp_ping.avg_ns != 0).then(|| self.ping.avg_ns as f64 / self.tcp_ping.avg_ns as f64)
    }

    /// Throughput (median transfer): channel / loopback.
    pub(super) fn throughput_ratio(&self) -> Option<f64> {
        let (channel, tcp) = self.blast_ns();
        match (Self::mb_per_s(channel), Self::mb_per_s(tcp)) {
            (Some(channel), Some(tcp)) if tcp > 0.0 => Some(channel / tcp),
            _ => None,
        }
    }

    /// One progress line.
    pub(super) fn summary(&self) -> String {
        let (channel, tcp) = self.blast_ns();
        let el2 = |window: Option<Window>| {
            window.map_or_else(
                || "-".to_owned(),
                |window| {
                    format!(
                        "{:.0} ticks/packet over {}",
                        window.ticks_per_packet, window.packets
                    )
                },
            )
        };
        format!(
            "round trip {} B: channel {} ns, loopback {} ns (x{}); 1 MiB: channel {} MB/s, loopback {} MB/s (x{}); EL2 work: transfer {}, round trips {}",
            self.ping.size,
            self.ping.avg_ns,
            self.tcp_ping.avg_ns,
            fmt(self.latency_ratio(), 2),
            fmt(Self::mb_per_s(channel), 1),
            fmt(Self::mb_per_s(tcp), 1),
            fmt(self.throughput_ratio(), 3),
            el2(self.blast_el2),
            el2(self.ping_el2)
        )
    }

    pub(super) fn json(&self) -> String {
        let ping = |ping: &Ping| {
            format!(
                "{{\"transport\": {}, \"count\": {}, \"size\": {}, \"total_ns\": {}, \"avg_ns\": {}, \"min_ns\": {}, \"max_ns\": {}}}",
                json_string(&ping.transport),
                ping.count,
                ping.size,
                ping.total_ns,
                ping.avg_ns,
                ping.min_ns,
                ping.max_ns
            )
        };
        let blasts = |blasts: &[Blast]| {
            let items: Vec<String> = blasts
                .iter()
                .map(|blast| {
                    format!(
                        "{{\"transport\": {}, \"bytes\": {}, \"ns\": {}}}",
                        json_string(&blast.transport),
                        blast.bytes,
                        blast.ns
                    )
                })
                .collect();
            format!("[{}]", items.join(", "))
        };
        let window =
            |window: Option<Window>| window.map_or_else(|| "null".to_owned(), |w| w.json());
        let (channel, tcp) = self.blast_ns();
        format!(
            "{{\"layout\": \"{LAYOUT}\", \"mode\": \"icount\", \"cell_bootargs\": \"{CELL_ARGS}\", \"ping\": {}, \"tcp_ping\": {}, \"latency_ratio\": {}, \"blasts\": {}, \"tcp_blasts\": {}, \"blast_mb_per_s\": {}, \"tcp_blast_mb_per_s\": {}, \"throughput_ratio\": {}, \"blast_el2\": {}, \"ping_el2\": {}}}",
            ping(&self.ping),
            ping(&self.tcp_ping),
            json_number(self.latency_ratio()),
            blasts(&self.blasts),
            blasts(&self.tcp_blasts),
            json_number(Self::mb_per_s(channel)),
            json_number(Self::mb_per_s(tcp)),
            json_number(self.throughput_ratio()),
            window(self.blast_el2),
            window(self.ping_el2)
        )
    }
}

/// `value` with `decimals` decimals, `-` when missing.
fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.decimals$}"))
}

/// The `key=value` words of the first line of `text` that starts with `prefix` (after any
/// `[cell] ` prefix), or `None`.
fn fields<'a>(text: &'a str, prefix: &str) -> Option<Vec<(&'a str, &'a str)>> {
    let line = text.lines().find_map(|line| {
        let line = line.trim();
        let line = match line
            .strip_prefix('[')
            .and_then(|rest| rest.split_once("] "))
        {
            Some((_, rest)) => rest,
            None => line,
        };
        line.strip_prefix(prefix)
    })?;
    Some(
        line.split_whitespace()
            .filter_map(|word| word.split_once('='))
            .collect(),
    )
}

fn field<'a>(fields: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn field_u64(fields: &[(&str, &str)], key: &str) -> Option<u64> {
    field(fields, key)?.parse().ok()
}

/// Reads `vsock-ping: transport=vsock|tcp count=N size=B total_ns=T avg_ns=A min_ns=.. max_ns=..`.
pub(super) fn parse_ping(text: &str) -> Option<Ping> {
    let fields = fields(text, "vsock-ping: ")?;
    Some(Ping {
        transport: field(&fields, "transport")?.to_owned(),
        count: field_u64(&fields, "count")?,
        size: field_u64(&fields, "size")?,
        total_ns: field_u64(&fields, "total_ns")?,
        avg_ns: field_u64(&fields, "avg_ns")?,
        min_ns: field_u64(&fields, "min_ns")?,
        max_ns: field_u64(&fields, "max_ns")?,
    })
}

/// Reads every `vsock-blast: transport=vsock|tcp bytes=N ns=T` line of `text`.
pub(super) fn parse_blasts(text: &str) -> Vec<Blast> {
    let mut blasts = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("vsock-blast: ") {
        let line = rest[at..].lines().next().unwrap_or_default();
        if let Some(fields) = fields(line, "vsock-blast: ")
            && let (Some(transport), Some(bytes), Some(ns)) = (
                field(&fields, "transport"),
                field_u64(&fields, "bytes"),
                field_u64(&fields, "ns"),
            )
        {
            blasts.push(Blast {
                transport: transport.to_owned(),
                bytes,
                ns,
            });
        }
        rest = &rest[at + "vsock-blast: ".len()..];
    }
    blasts
}

/// Reads the last `EL2 work: N packets moved, T counter ticks per packet` line of `text` (`EL2
/// work: no packet moved yet` is zero packets).
pub(super) fn parse_el2_work(text: &str) -> Option<El2Work> {
    let line = text.lines().rev().find_map(|line| {
        line.find("EL2 work: ")
            .map(|at| &line[at + "EL2 work: ".len()..])
    })?;
    if line.trim() == "no packet moved yet" {
        return Some(El2Work::default());
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [
            packets,
            "packets",
            "moved,",
            ticks,
            "counter",
            "ticks",
            "per",
            "packet",
            ..,
        ] => Some(El2Work {
            packets: packets.parse().ok()?,
            ticks_per_packet: ticks.parse().ok()?,
        }),
        _ => None,
    }
}

/// Boots [`LAYOUT`] under icount and measures the channel against TCP loopback.
pub(super) fn channel_run(qemu: &Qemu, quick: bool) -> Result<ChannelFigures> {
    let layout = images::layout(LAYOUT)?;
    let mut overrides = Overrides::default();
    for cell in layout.cells {
        overrides.bootargs.insert(
            cell.name.to_owned(),
            format!("{} {CELL_ARGS}", cell.bootargs),
        );
    }
    let bundle = bench_dir().join(format!("bundle-{LAYOUT}.cpio"));
    images::build_bundle(layout, &overrides, &mut Ingredients::default(), &bundle)?;
    let mut command = qemu::cellvisor_command(qemu, &bundle, LAYOUT, Mode::Icount);
    // The layout's cells own the PCI functions (personal the network, corporate the disk, as a
    // snapshot so the image is left unchanged): cellvisor refuses to boot without them.
    command.args(cellvisor_tests::pci_device_args(
        &images::corporate_disk()?,
        true,
    ));
    let log = bench_dir().join("channel-icount.log");
    let mut session = Session::start(command)?;
    let outcome = measure(&mut session, quick);
    session.finish(&log)?;
    outcome.map_err(|error| util::Error(format!("{error}; see {}", util::pretty(&log))))
}

/// The console's focus: Ctrl-A 1 (personal) or 2 (corporate).
fn focus(session: &mut Session, cell: &str) -> Result<()> {
    let key = if cell == "personal" { b'1' } else { b'2' };
    let since = session.mark();
    session.send(&[cellvisor_tests::CONSOLE_ESCAPE, key])?;
    session.wait_for(
        &format!("console input now goes to {cell}"),
        since,
        Duration::from_secs(60),
    )?;
    Ok(())
}

/// The `channel` command's EL2 work line (Ctrl-A m, `channel`, `exit`).
fn el2_work(session: &mut Session) -> Result<El2Work> {
    let timeout = Duration::from_secs(60);
    let since = session.mark();
    session.send(&[cellvisor_tests::CONSOLE_ESCAPE, b'm'])?;
    let (_, opened) = session.wait_for("cellvisor management prompt", since, timeout)?;
    session.send(b"channel\r")?;
    let (line, _) = session.wait_for("EL2 work: ", opened, timeout)?;
    let since = session.mark();
    session.send(b"exit\r")?;
    session.wait_for("exit", since, timeout)?;
    match parse_el2_work(&line) {
        Some(work) => Ok(work),
        None => crate::fail!("cannot read the `channel` command's line {line:?}"),
    }
}

/// Runs `command` in the focused cell and fails when its status is not 0.
fn run(session: &mut Session, command: &str, timeout: Duration) -> Result<String> {
    let output = session.shell(&format!("{command}; echo \"bench-status $?\""), timeout)?;
    if !output.contains("bench-status 0") {
        crate::fail!("`{command}` failed:\n{}", output.trim_end());
    }
    Ok(output)
}

fn measure(session: &mut Session, quick: bool) -> Result<ChannelFigures> {
    let (count, transfers) = iterations(quick);
    let boot = Duration::from_secs(300);
    let timeout = Duration::from_secs(600);
    session.wait_for("cellvisor-ready: personal ", 0, boot)?;
    session.wait_for("cellvisor-ready: corporate ", 0, boot)?;
    let listen = |mode: &str| {
        format!(
            "vsock listen {PORT} --{mode} >/tmp/bench-listen.log 2>&1 & echo $! > /tmp/bench-listen.pid; sleep 1; kill -0 $(cat /tmp/bench-listen.pid) || {{ cat /tmp/bench-listen.log; false; }}"
        )
    };
    focus(session, "corporate")?;
    run(session, "true", timeout)?;
    run(session, &listen("sink"), timeout)?;
    focus(session, "personal")?;
    run(session, "true", timeout)?;
    run(
        session,
        &format!(
            "vsock listen {TCP_SINK_PORT} --sink --tcp >/tmp/bench-tcp-sink.log 2>&1 & s=$!; \
             vsock listen {TCP_ECHO_PORT} --echo --tcp >/tmp/bench-tcp-echo.log 2>&1 & e=$!; sleep 1; \
             kill -0 $s $e || {{ cat /tmp/bench-tcp-sink.log /tmp/bench-tcp-echo.log; false; }}"
        ),
        timeout,
    )?;
    let mut figures = ChannelFigures::default();

    // The transfers: the channel's (between two `channel` readings), then loopback's.
    let rounds: Vec<String> = (1..=transfers).map(|round| round.to_string()).collect();
    let rounds = rounds.join(" ");
    let loop_of =
        |command: String| format!("s=0; for i in {rounds}; do {command} || s=1; done; [ $s = 0 ]");
    let before = el2_work(session)?;
    let output = run(
        session,
        &loop_of(format!(
            "vsock blast corporate {PORT} --bytes {BLAST_BYTES}"
        )),
        timeout,
    )?;
    let after = el2_work(session)?;
    figures.blasts = parse_blasts(&output);
    figures.blast_el2 = Window::between(before, after);
    let output = run(
        session,
        &loop_of(format!(
            "vsock blast personal {TCP_SINK_PORT} --bytes {BLAST_BYTES} --tcp"
        )),
        timeout,
    )?;
    figures.tcp_blasts = parse_blasts(&output);
    if figures.blasts.len() != transfers || figures.tcp_blasts.len() != transfers {
        crate::fail!(
            "expected {transfers} `vsock-blast:` lines per transport, read {} over the channel and {} over TCP:\n{}",
            figures.blasts.len(),
            figures.tcp_blasts.len(),
            output.trim_end()
        );
    }

    // corporate's listener becomes the echo server.
    focus(session, "corporate")?;
    run(
        session,
        &format!(
            "kill $(cat /tmp/bench-listen.pid); sleep 1; {}",
            listen("echo")
        ),
        timeout,
    )?;
    focus(session, "personal")?;
    run(session, "true", timeout)?;

    // The round trips: the channel's (between two `channel` readings), then loopback's.
    let before = el2_work(session)?;
    let output = run(
        session,
        &format!("vsock ping corporate {PORT} --count {count} --size {PING_SIZE}"),
        timeout,
    )?;
    let after = el2_work(session)?;
    figures.ping_el2 = Window::between(before, after);
    let Some(ping) = parse_ping(&output) else {
        crate::fail!(
            "no `vsock-ping:` line over the channel in:\n{}",
            output.trim_end()
        );
    };
    figures.ping = ping;
    let output = run(
        session,
        &format!("vsock ping personal {TCP_ECHO_PORT} --count {count} --size {PING_SIZE} --tcp"),
        timeout,
    )?;
    let Some(ping) = parse_ping(&output) else {
        crate::fail!("no `vsock-ping:` line over TCP in:\n{}", output.trim_end());
    };
    figures.tcp_ping = ping;
    if figures.ping.transport != "vsock" || figures.tcp_ping.transport != "tcp" {
        crate::fail!(
            "the tool reported transports {} and {}, not vsock and tcp",
            figures.ping.transport,
            figures.tcp_ping.transport
        );
    }
    if figures.blast_el2.is_none() || figures.ping_el2.is_none() {
        crate::fail!("the `channel` command counted no packet moved during a transfer");
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_lines_are_read() {
        let text = "[personal] vsock-ping: transport=vsock count=200 size=64 total_ns=9000000 avg_ns=45000 min_ns=40000 max_ns=90000\n";
        assert_eq!(
            parse_ping(text),
            Some(Ping {
                transport: "vsock".to_owned(),
                count: 200,
                size: 64,
                total_ns: 9_000_000,
                avg_ns: 45_000,
                min_ns: 40_000,
                max_ns: 90_000,
            })
        );
        assert_eq!(parse_ping("vsock-ping: transport=tcp count=2"), None);
        assert_eq!(parse_ping("nothing"), None);
        let text = "vsock-blast: transport=vsock bytes=1048576 ns=2000000\n\
                    noise\n\
                    [personal] vsock-blast: transport=tcp bytes=1048576 ns=1000000\n\
                    vsock-blast: transport=tcp bytes=oops ns=1\n";
        let blasts = parse_blasts(text);
        assert_eq!(blasts.len(), 2, "{blasts:?}");
        assert_eq!(blasts[0].transport, "vsock");
        assert_eq!(blasts[1].ns, 1_000_000);
        assert_eq!(ChannelFigures::mb_per_s(Some(blasts[0].ns)), Some(524.288));
    }

    #[test]
    fn the_el2_work_window_is_the_difference_of_two_readings() {
        assert_eq!(
            parse_el2_work("EL2 work: no packet moved yet\n"),
            Some(El2Work::default())
        );
        let before = parse_el2_work(
            "flow ...\nEL2 work: 22 packets moved, 3571 counter ticks per packet\neverything no flow allows is refused with a connection reset\n",
        )
        .expect("a line");
        assert_eq!(
            before,
            El2Work {
                packets: 22,
                ticks_per_packet: 3571
            }
        );
        let after = El2Work {
            packets: 122,
            ticks_per_packet: 3000,
        };
        let window = Window::between(before, after).expect("packets moved");
        assert_eq!(window.packets, 100);
        assert!((window.ticks_per_packet - (366_000.0 - 78_562.0) / 100.0).abs() < 1e-9);
        assert!((window.error - 1.22).abs() < 1e-9);
        assert_eq!(Window::between(after, after), None);
        assert_eq!(parse_el2_work("EL2 work: garbled"), None);
    }

    #[test]
    fn the_ratios_are_channel_over_loopback() {
        let blast = |transport: &str, ns| Blast {
            transport: transport.to_owned(),
            bytes: BLAST_BYTES,
            ns,
        };
        let figures = ChannelFigures {
            ping: Ping {
                avg_ns: 30_000,
                ..Ping::default()
            },
            tcp_ping: Ping {
                avg_ns: 10_000,
                ..Ping::default()
            },
            blasts: vec![
                blast("vsock", 4_000_000),
                blast("vsock", 2_000_000),
                blast("vsock", 9_000_000),
            ],
            tcp_blasts: vec![blast("tcp", 1_000_000)],
            ..ChannelFigures::default()
        };
        assert_eq!(figures.latency_ratio(), Some(3.0));
        assert_eq!(figures.blast_ns(), (Some(4_000_000), Some(1_000_000)));
        assert_eq!(figures.throughput_ratio(), Some(0.25));
        let json = figures.json();
        assert!(json.contains("\"latency_ratio\": 3"), "{json}");
        assert!(json.contains("\"blast_el2\": null"), "{json}");
    }
}

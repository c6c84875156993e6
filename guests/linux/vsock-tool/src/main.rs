//! `vsock`: the Linux cells' end of cellvisor's policy-checked virtio-vsock channel.
//!
//! Small commands over AF_VSOCK stream sockets (or TCP on 127.0.0.1 with `--tcp`, the native
//! reference): a line listener, echo and sink servers, one-line sends, a periodic badge sender, and
//! latency/throughput probes. A peer is a CID or a cell name from the device tree's
//! `cellvisor,cells` property. Every error is one line on stderr (`vsock: ...`) and exit status 1;
//! a usage mistake exits 2. See `vsock help` and guests/linux/README.md.
mod args;
mod cells;
mod commands;
mod net;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use args::{Command, ListenMode, Transport};

/// A failed command: the one line printed after `vsock: `.
struct Failure(String);

fn main() -> ExitCode {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let command = match args::parse(&words) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("vsock: {error} (see `vsock help`)");
            return ExitCode::from(2);
        }
    };
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("vsock: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `line` on stdout (a closed stdout is ignored, never a panic).
fn print(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// The CID of `peer` for `transport` (TCP needs none).
fn peer_cid(transport: Transport, peer: &str) -> Result<u32, String> {
    match transport {
        Transport::Tcp => Ok(0),
        Transport::Vsock => cells::resolve(Path::new(cells::DEVICE_TREE), peer),
    }
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Help => {
            print(args::USAGE.trim_end());
            Ok(())
        }
        Command::Cid { name: None } => {
            let cid = net::local_cid().map_err(|error| Failure(format!("cid: {error}")))?;
            print(&cid.to_string());
            Ok(())
        }
        Command::Cid { name: Some(name) } => {
            let cid = cells::resolve(Path::new(cells::DEVICE_TREE), &name)
                .map_err(|error| Failure(format!("cid {name}: {error}")))?;
            print(&cid.to_string());
            Ok(())
        }
        Command::Listen {
            port,
            mode,
            transport,
        } => {
            let fail = |error: std::io::Error| Failure(format!("listen {port}: {error}"));
            let lines = match &mode {
                ListenMode::Lines { log: Some(log), .. } => commands::shared(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(log)
                        .map_err(|error| {
                            Failure(format!("listen {port}: {}: {error}", log.display()))
                        })?,
                ),
                _ => commands::shared(std::io::stdout()),
            };
            let listener = net::Listener::bind(transport, port).map_err(fail)?;
            commands::serve(
                listener,
                port,
                &mode,
                lines,
                commands::shared(std::io::stderr()),
            )
        }
        Command::Send { peer, port, text } => {
            let fail = |error: String| Failure(format!("send to {peer}:{port}: {error}"));
            let cid = peer_cid(Transport::Vsock, &peer).map_err(fail)?;
            commands::send(Transport::Vsock, cid, port, &text).map_err(|e| fail(e.to_string()))
        }
        Command::Stream {
            peer,
            port,
            interval,
            count,
            text,
        } => {
            let fail = |line: u64, error: String| {
                Failure(format!("stream to {peer}:{port}: line {line}: {error}"))
            };
            let cid = peer_cid(Transport::Vsock, &peer).map_err(|error| fail(1, error))?;
            commands::stream(Transport::Vsock, cid, port, interval, count, &text)
                .map_err(|(line, error)| fail(line, error.to_string()))
        }
        Command::Badge { peer, port, every } => {
            let what = format!("vsock: badge to {peer}:{port}");
            let mut changes = commands::StateChanges::default();
            for n in 1.. {
                let result = peer_cid(Transport::Vsock, &peer)
                    .map_err(std::io::Error::other)
                    .and_then(|cid| commands::send_badge(Transport::Vsock, cid, port, n));
                if let Some(line) = changes.note(&format!("{what}: badge {n}"), &result) {
                    eprintln!("{line}");
                }
                std::thread::sleep(every);
            }
            Ok(())
        }
        Command::Ping {
            peer,
            port,
            count,
            size,
            transport,
        } => {
            let fail = |error: String| Failure(format!("ping {peer}:{port}: {error}"));
            let cid = peer_cid(transport, &peer).map_err(fail)?;
            let stats = commands::ping(transport, cid, port, count, size)
                .map_err(|error| fail(error.to_string()))?;
            print(&stats.line());
            Ok(())
        }
        Command::Blast {
            peer,
            port,
            bytes,
            transport,
        } => {
            let fail = |error: String| Failure(format!("blast {peer}:{port}: {error}"));
            let cid = peer_cid(transport, &peer).map_err(fail)?;
            let took = commands::blast(transport, cid, port, bytes)
                .map_err(|error| fail(error.to_string()))?;
            print(&commands::blast_line(transport, bytes, took));
            Ok(())
        }
    }
}

//! What each command does, over a [`Stream`] of either transport.
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::args::{ListenMode, Transport};
use crate::net::{Listener, Stream};

/// Longest line `listen` keeps whole; a longer one is written in pieces of this size.
const MAX_LINE: u64 = 64 << 10;

/// Chunk size of `blast` writes and of the servers' reads.
const CHUNK: usize = 64 << 10;

/// How long `badge` waits for the listener to close a delivered badge's connection.
const BADGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A writer shared by connection threads, written a whole line at a time.
pub type Shared = Arc<Mutex<Box<dyn Write + Send>>>;

/// Wraps `writer` for [`serve`].
pub fn shared(writer: impl Write + Send + 'static) -> Shared {
    Arc::new(Mutex::new(Box::new(writer)))
}

/// Writes `line` and a newline to `out` and flushes; a broken output is not worth dying for.
fn put_line(out: &Shared, line: &[u8]) {
    let mut out = match out.lock() {
        Ok(out) => out,
        Err(poisoned) => poisoned.into_inner(),
    };
    let _ = out
        .write_all(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

/// `listen`: accepts connections on `listener` forever, each in its own thread; received lines go
/// to `lines`, a connection that ends in an error is reported on `errors` as
/// `vsock: listen PORT: connection from PEER: <error>`.
pub fn serve(listener: Listener, port: u32, mode: &ListenMode, lines: Shared, errors: Shared) -> ! {
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(connection) => connection,
            Err(error) => {
                put_line(
                    &errors,
                    format!("vsock: listen {port}: accept: {error}").as_bytes(),
                );
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let (mode, lines, thread_errors) = (mode.clone(), lines.clone(), errors.clone());
        let spawned = std::thread::Builder::new().spawn(move || {
            let result = match &mode {
                ListenMode::Lines { prefix, .. } => receive_lines(stream, prefix, &lines),
                ListenMode::Echo => echo(stream),
                ListenMode::Sink => sink(stream),
            };
            if let Err(error) = result {
                put_line(
                    &thread_errors,
                    format!("vsock: listen {port}: connection from {peer}: {error}").as_bytes(),
                );
            }
        });
        if let Err(error) = spawned {
            put_line(
                &errors,
                format!("vsock: listen {port}: cannot start a thread: {error}").as_bytes(),
            );
        }
    }
}

/// Writes every line of `stream` as `<prefix><line>` to `out`, until EOF.
fn receive_lines(stream: Stream, prefix: &str, out: &Shared) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        line.extend_from_slice(prefix.as_bytes());
        let read = reader
            .by_ref()
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        put_line(out, &line);
    }
}

/// Echoes every byte back until EOF, then closes.
fn echo(mut stream: Stream) -> io::Result<()> {
    let mut buffer = vec![0; CHUNK];
    loop {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            return stream.shutdown_write();
        }
        stream.write_all(&buffer[..read])?;
    }
}

/// Discards bytes until EOF, then writes their count back as 8 bytes little-endian.
fn sink(mut stream: Stream) -> io::Result<()> {
    let count = io::copy(&mut stream, &mut io::sink())?;
    stream.write_all(&count.to_le_bytes())?;
    stream.shutdown_write()
}

/// `send`: one line on a new connection, then waits for the peer to close.
pub fn send(transport: Transport, cid: u32, port: u32, text: &str) -> io::Result<()> {
    let mut stream = Stream::connect(transport, cid, port)?;
    stream.write_all(format!("{text}\n").as_bytes())?;
    stream.shutdown_write()?;
    stream.wait_for_eof()
}

/// `stream`: `<text> <n>` lines every `interval` on one connection, `count` of them (or forever).
/// An error comes with the number of the line it stopped at.
pub fn stream(
    transport: Transport,
    cid: u32,
    port: u32,
    interval: Duration,
    count: Option<u64>,
    text: &str,
) -> Result<(), (u64, io::Error)> {
    let mut stream = Stream::connect(transport, cid, port).map_err(|error| (1, error))?;
    let mut n = 1;
    loop {
        stream
            .write_all(format!("{text} {n}\n").as_bytes())
            .map_err(|error| (n, error))?;
        if count.is_some_and(|count| n >= count) {
            break;
        }
        n += 1;
        std::thread::sleep(interval);
    }
    stream
        .shutdown_write()
        .and_then(|()| stream.wait_for_eof())
        .map_err(|error| (n, error))
}

/// The text of badge `n`: `badge <n> from <hostname>: <uptime>`.
pub fn badge_text(n: u64) -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let hostname = read("/proc/sys/kernel/hostname");
    let hostname = match hostname.trim() {
        "" => "unknown",
        name => name,
    };
    let uptime = read("/proc/uptime");
    let uptime = uptime.split_whitespace().next().unwrap_or("?");
    format!("badge {n} from {hostname}: {uptime}")
}

/// One badge on its own connection.
pub fn send_badge(transport: Transport, cid: u32, port: u32, n: u64) -> io::Result<()> {
    let mut stream = Stream::connect(transport, cid, port)?;
    stream.set_read_timeout(Some(BADGE_TIMEOUT))?;
    stream.write_all(format!("{}\n", badge_text(n)).as_bytes())?;
    stream.shutdown_write()?;
    stream.wait_for_eof()
}

/// Reports the changes of a repeated action's outcome only: the first failure, each recovery.
#[derive(Debug, Default)]
pub struct StateChanges {
    failing: bool,
}

impl StateChanges {
    /// The line to print for this outcome, if the state changed.
    pub fn note(&mut self, what: &str, result: &io::Result<()>) -> Option<String> {
        match (result, self.failing) {
            (Err(error), false) => {
                self.failing = true;
                Some(format!("{what}: {error} (reported again when it works)"))
            }
            (Ok(()), true) => {
                self.failing = false;
                Some(format!("{what}: delivered again"))
            }
            _ => None,
        }
    }
}

/// What `ping` measured.
#[derive(Debug)]
pub struct PingStats {
    pub transport: Transport,
    pub count: u64,
    pub size: usize,
    pub total: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl PingStats {
    /// The `vsock-ping:` result line.
    pub fn line(&self) -> String {
        let total = self.total.as_nanos();
        format!(
            "vsock-ping: transport={} count={} size={} total_ns={total} avg_ns={} min_ns={} max_ns={}",
            self.transport.name(),
            self.count,
            self.size,
            total / u128::from(self.count.max(1)),
            self.min.as_nanos(),
            self.max.as_nanos()
        )
    }
}

/// `ping`: `count` round trips of `size` bytes on one connection to an echo server.
pub fn ping(
    transport: Transport,
    cid: u32,
    port: u32,
    count: u64,
    size: usize,
) -> io::Result<PingStats> {
    let mut stream = Stream::connect(transport, cid, port)?;
    let mut message: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut answer = vec![0; size];
    let mut stats = PingStats {
        transport,
        count,
        size,
        total: Duration::ZERO,
        min: Duration::MAX,
        max: Duration::ZERO,
    };
    for round in 0..count {
        // A different first byte each round, so a stale echo is noticed.
        message[0] = round as u8;
        let started = Instant::now();
        stream.write_all(&message)?;
        stream.read_exact(&mut answer)?;
        let took = started.elapsed();
        if answer != message {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("round trip {} came back different", round + 1),
            ));
        }
        stats.total += took;
        stats.min = stats.min.min(took);
        stats.max = stats.max.max(took);
    }
    stream.shutdown_write()?;
    stream.wait_for_eof()?;
    Ok(stats)
}

/// `blast`: sends `bytes` bytes to a sink server and waits for its count; returns the time from
/// the first byte sent to the count received.
pub fn blast(transport: Transport, cid: u32, port: u32, bytes: u64) -> io::Result<Duration> {
    let mut stream = Stream::connect(transport, cid, port)?;
    let chunk = vec![0x5a; CHUNK];
    let started = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let now = left.min(CHUNK as u64) as usize;
        stream.write_all(&chunk[..now])?;
        left -= now as u64;
    }
    stream.shutdown_write()?;
    let mut count = [0; 8];
    stream
        .read_exact(&mut count)
        .map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                error.kind(),
                "the connection ended before the sink's count (reset or not a --sink listener?)",
            ),
            _ => error,
        })?;
    let took = started.elapsed();
    let count = u64::from_le_bytes(count);
    if count != bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the sink counted {count} of {bytes} bytes"),
        ));
    }
    Ok(took)
}

/// The `vsock-blast:` result line.
pub fn blast_line(transport: Transport, bytes: u64, took: Duration) -> String {
    format!(
        "vsock-blast: transport={} bytes={bytes} ns={}",
        transport.name(),
        took.as_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory writer for a server's lines.
    #[derive(Clone, Default)]
    struct Memory(Arc<Mutex<Vec<u8>>>);

    impl Write for Memory {
        fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buffer);
            Ok(buffer.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Memory {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    /// A TCP server of `mode` on a free port of 127.0.0.1, in a thread; its port and output.
    fn server(mode: ListenMode) -> (u32, Memory, Memory) {
        let listener = Listener::bind(Transport::Tcp, 0).unwrap();
        let port = listener.port().unwrap();
        let (lines, errors) = (Memory::default(), Memory::default());
        let (out, err) = (shared(lines.clone()), shared(errors.clone()));
        std::thread::spawn(move || serve(listener, port, &mode, out, err));
        (port, lines, errors)
    }

    /// Waits up to 5 s for `memory` to hold `text`.
    fn wait_for(memory: &Memory, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = memory.text();
            if now.contains(text) || Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn lines_arrive_prefixed_from_send_stream_and_badge() {
        let (port, lines, errors) = server(ListenMode::Lines {
            log: None,
            prefix: "badge: ".into(),
        });
        send(Transport::Tcp, 0, port, "hi there").unwrap();
        assert_eq!(
            lines.text(),
            "badge: hi there\n",
            "written before the close"
        );
        stream(
            Transport::Tcp,
            0,
            port,
            Duration::from_millis(1),
            Some(3),
            "tick",
        )
        .unwrap();
        send_badge(Transport::Tcp, 0, port, 7).unwrap();
        let text = lines.text();
        assert!(
            text.starts_with(
                "badge: hi there\nbadge: tick 1\nbadge: tick 2\nbadge: tick 3\nbadge: badge 7 from "
            ),
            "{text}"
        );
        assert!(errors.text().is_empty());
    }

    #[test]
    fn ping_and_blast_against_echo_and_sink() {
        let (echo_port, ..) = server(ListenMode::Echo);
        let stats = ping(Transport::Tcp, 0, echo_port, 5, 1000).unwrap();
        assert_eq!((stats.count, stats.size), (5, 1000));
        assert!(stats.min <= stats.max && stats.max <= stats.total);
        let line = stats.line();
        assert!(
            line.starts_with("vsock-ping: transport=tcp count=5 size=1000 total_ns="),
            "{line}"
        );
        for field in ["avg_ns=", "min_ns=", "max_ns="] {
            assert!(line.contains(field), "{line}");
        }
        let (sink_port, ..) = server(ListenMode::Sink);
        for bytes in [0, 1, CHUNK as u64 + 3, 1 << 20] {
            let took = blast(Transport::Tcp, 0, sink_port, bytes).unwrap();
            let line = blast_line(Transport::Tcp, bytes, took);
            assert!(
                line.starts_with(&format!("vsock-blast: transport=tcp bytes={bytes} ns=")),
                "{line}"
            );
        }
    }

    #[test]
    fn a_connection_ending_in_an_error_is_reported() {
        let (port, _, errors) = server(ListenMode::Echo);
        // Closing with the echo unread makes the client's kernel reset the connection.
        let mut stream = Stream::connect(Transport::Tcp, 0, port).unwrap();
        stream.write_all(&[1; 4096]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(stream);
        let text = wait_for(&errors, "\n");
        assert!(
            text.starts_with(&format!("vsock: listen {port}: connection from 127.0.0.1:")),
            "{text}"
        );
        assert!(
            text.ends_with("Connection reset by peer (os error 104)\n"),
            "{text}"
        );
    }

    #[test]
    fn refused_connections_are_io_errors() {
        let listener = Listener::bind(Transport::Tcp, 0).unwrap();
        let port = listener.port().unwrap();
        drop(listener);
        let error = send(Transport::Tcp, 0, port, "x").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
        let (line, error) =
            stream(Transport::Tcp, 0, port, Duration::ZERO, Some(1), "t").unwrap_err();
        assert_eq!((line, error.kind()), (1, io::ErrorKind::ConnectionRefused));
    }

    #[test]
    fn badge_failures_are_reported_on_change_only() {
        let mut changes = StateChanges::default();
        let what = "vsock: badge to personal:5000";
        let failure = || Err(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(changes.note(what, &Ok(())), None);
        let first = changes.note(what, &failure()).unwrap();
        assert!(
            first.starts_with("vsock: badge to personal:5000: connection reset"),
            "{first}"
        );
        assert_eq!(changes.note(what, &failure()), None);
        assert_eq!(changes.note(what, &failure()), None);
        assert_eq!(
            changes.note(what, &Ok(())).as_deref(),
            Some("vsock: badge to personal:5000: delivered again")
        );
        assert_eq!(changes.note(what, &Ok(())), None);
    }
}

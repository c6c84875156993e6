//! The command line, parsed by hand into a [`Command`].
use std::path::PathBuf;
use std::time::Duration;

/// The usage text (`vsock help`).
pub const USAGE: &str = "\
usage: vsock COMMAND ...   (PEER: a CID or a cell name from the device tree's cellvisor,cells)
  vsock cid [NAME]                        this cell's CID, or NAME's
  vsock listen PORT [--log FILE] [--prefix TEXT] [--tcp]
                                          print (or append to FILE) every line received
  vsock listen PORT --echo|--sink [--tcp] echo bytes back / count them and send the count back
  vsock send PEER PORT TEXT...            send one line, wait for the peer to close
  vsock stream PEER PORT [--interval-ms N] [--count N] [--text T]
                                          one connection, a line `T <n>` every N ms
  vsock badge PEER PORT [--every SECONDS] a connection per badge, forever
  vsock ping PEER PORT [--count N] [--size B] [--tcp]
                                          round trips against a `listen --echo`
  vsock blast PEER PORT [--bytes N] [--tcp]
                                          throughput against a `listen --sink`
  --tcp: TCP over 127.0.0.1:PORT instead of vsock (PEER ignored)
";

/// Largest `ping --size`: a round trip is written whole before it is read back, so it must fit
/// in the socket buffers of both ends.
pub const MAX_PING_SIZE: usize = 64 << 10;

/// Which socket family a command uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// AF_VSOCK, through cellvisor's channel.
    Vsock,
    /// TCP over 127.0.0.1: the native reference.
    Tcp,
}

impl Transport {
    /// The name printed in `transport=` fields.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Vsock => "vsock",
            Transport::Tcp => "tcp",
        }
    }
}

/// What `listen` does with each connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenMode {
    /// Every received line as `<prefix><line>`, to stdout or appended to `log`.
    Lines {
        /// The file to append to (stdout when `None`).
        log: Option<PathBuf>,
        /// Text put before every line.
        prefix: String,
    },
    /// Echo every byte back (the latency server).
    Echo,
    /// Discard the bytes; at EOF write their count back as 8 bytes LE (the throughput server).
    Sink,
}

/// One parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `vsock help`.
    Help,
    /// `vsock cid [NAME]`.
    Cid { name: Option<String> },
    /// `vsock listen PORT ...`.
    Listen {
        port: u32,
        mode: ListenMode,
        transport: Transport,
    },
    /// `vsock send PEER PORT TEXT...`.
    Send {
        peer: String,
        port: u32,
        text: String,
    },
    /// `vsock stream PEER PORT ...`.
    Stream {
        peer: String,
        port: u32,
        interval: Duration,
        count: Option<u64>,
        text: String,
    },
    /// `vsock badge PEER PORT ...`.
    Badge {
        peer: String,
        port: u32,
        every: Duration,
    },
    /// `vsock ping PEER PORT ...`.
    Ping {
        peer: String,
        port: u32,
        count: u64,
        size: usize,
        transport: Transport,
    },
    /// `vsock blast PEER PORT ...`.
    Blast {
        peer: String,
        port: u32,
        bytes: u64,
        transport: Transport,
    },
}

/// Positional words and `--options` of one command.
struct Words {
    positional: Vec<String>,
    options: Vec<(String, Option<String>)>,
}

impl Words {
    /// Splits `words` by `options` (name without `--`, whether it takes a value); `--` ends the
    /// options. Values come as `--name VALUE` or `--name=VALUE`.
    fn split(words: &[String], options: &[(&str, bool)]) -> Result<Words, String> {
        let mut parsed = Words {
            positional: Vec::new(),
            options: Vec::new(),
        };
        let mut rest = words.iter();
        while let Some(word) = rest.next() {
            if word == "--" {
                parsed.positional.extend(rest.by_ref().cloned());
                break;
            }
            let Some(option) = word.strip_prefix("--") else {
                parsed.positional.push(word.clone());
                continue;
            };
            let (name, inline) = match option.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (option, None),
            };
            let Some(&(_, takes_value)) = options.iter().find(|(known, _)| *known == name) else {
                return Err(format!("unknown option --{name}"));
            };
            let value = match (takes_value, inline) {
                (true, Some(value)) => Some(value),
                (true, None) => match rest.next() {
                    Some(value) => Some(value.clone()),
                    None => return Err(format!("--{name} needs a value")),
                },
                (false, Some(_)) => return Err(format!("--{name} takes no value")),
                (false, None) => None,
            };
            parsed.options.push((name.to_owned(), value));
        }
        Ok(parsed)
    }

    /// Whether flag `name` was given.
    fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(option, _)| option == name)
    }

    /// The last value of option `name`.
    fn value(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(option, _)| option == name)
            .and_then(|(_, value)| value.as_deref())
    }

    /// The value of option `name` as a number, `default` when absent.
    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.value(name) {
            None => Ok(default),
            Some(text) => number(&format!("--{name}"), text),
        }
    }

    /// Exactly `names.len()` positional words (`at_least`: or more).
    fn positional(&self, names: &[&str], at_least: bool) -> Result<&[String], String> {
        let count = self.positional.len();
        if count < names.len() {
            return Err(format!("missing {}", names[count]));
        }
        if count > names.len() && !at_least {
            return Err(format!(
                "unexpected argument `{}`",
                self.positional[names.len()]
            ));
        }
        Ok(&self.positional)
    }

    fn transport(&self) -> Transport {
        if self.flag("tcp") {
            Transport::Tcp
        } else {
            Transport::Vsock
        }
    }
}

fn number<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{what}: `{text}` is not a valid number"))
}

fn port(text: &str, transport: Transport) -> Result<u32, String> {
    let port: u32 = number("PORT", text)?;
    if transport == Transport::Tcp && u16::try_from(port).is_err() {
        return Err(format!("PORT: {port} is not a TCP port (at most 65535)"));
    }
    Ok(port)
}

/// Parses the words after the program name.
pub fn parse(words: &[String]) -> Result<Command, String> {
    let Some((command, words)) = words.split_first() else {
        return Err("no command given".to_owned());
    };
    match command.as_str() {
        "help" | "-h" | "--help" => Ok(Command::Help),
        "cid" => {
            let words = Words::split(words, &[])?;
            match words.positional.as_slice() {
                [] => Ok(Command::Cid { name: None }),
                [name] => Ok(Command::Cid {
                    name: Some(name.clone()),
                }),
                [_, extra, ..] => Err(format!("unexpected argument `{extra}`")),
            }
        }
        "listen" => {
            let words = Words::split(
                words,
                &[
                    ("log", true),
                    ("prefix", true),
                    ("echo", false),
                    ("sink", false),
                    ("tcp", false),
                ],
            )?;
            let transport = words.transport();
            let positional = words.positional(&["PORT"], false)?;
            let lines = words.flag("log") || words.flag("prefix");
            let mode = match (words.flag("echo"), words.flag("sink")) {
                (true, true) => return Err("--echo and --sink exclude each other".to_owned()),
                (true, false) | (false, true) if lines => {
                    return Err(
                        "--log and --prefix are for line mode, not --echo/--sink".to_owned()
                    );
                }
                (true, false) => ListenMode::Echo,
                (false, true) => ListenMode::Sink,
                (false, false) => ListenMode::Lines {
                    log: words.value("log").map(PathBuf::from),
                    prefix: words.value("prefix").unwrap_or("").to_owned(),
                },
            };
            Ok(Command::Listen {
                port: port(&positional[0], transport)?,
                mode,
                transport,
            })
        }
        "send" => {
            let words = Words::split(words, &[])?;
            let positional = words.positional(&["PEER", "PORT", "TEXT"], true)?;
            Ok(Command::Send {
                peer: positional[0].clone(),
                port: port(&positional[1], Transport::Vsock)?,
                text: positional[2..].join(" "),
            })
        }
        "stream" => {
            let words = Words::split(
                words,
                &[("interval-ms", true), ("count", true), ("text", true)],
            )?;
            let positional = words.positional(&["PEER", "PORT"], false)?;
            let count = match words.value("count") {
                None => None,
                Some(text) => Some(number("--count", text)?),
            };
            Ok(Command::Stream {
                peer: positional[0].clone(),
                port: port(&positional[1], Transport::Vsock)?,
                interval: Duration::from_millis(words.number("interval-ms", 1000)?),
                count,
                text: words.value("text").unwrap_or("stream").to_owned(),
            })
        }
        "badge" => {
            let words = Words::split(words, &[("every", true)])?;
            let positional = words.positional(&["PEER", "PORT"], false)?;
            let every: f64 = words.number("every", 5.0)?;
            let every = Duration::try_from_secs_f64(every)
                .map_err(|_| format!("--every: `{every}` is not a valid number of seconds"))?;
            Ok(Command::Badge {
                peer: positional[0].clone(),
                port: port(&positional[1], Transport::Vsock)?,
                every,
            })
        }
        "ping" => {
            let words = Words::split(words, &[("count", true), ("size", true), ("tcp", false)])?;
            let transport = words.transport();
            let positional = words.positional(&["PEER", "PORT"], false)?;
            let size = words.number("size", 64)?;
            if !(1..=MAX_PING_SIZE).contains(&size) {
                return Err(format!("--size: {size} is not in 1..={MAX_PING_SIZE}"));
            }
            let count = words.number("count", 10)?;
            if count == 0 {
                return Err("--count: at least one round trip".to_owned());
            }
            Ok(Command::Ping {
                peer: positional[0].clone(),
                port: port(&positional[1], transport)?,
                count,
                size,
                transport,
            })
        }
        "blast" => {
            let words = Words::split(words, &[("bytes", true), ("tcp", false)])?;
            let transport = words.transport();
            let positional = words.positional(&["PEER", "PORT"], false)?;
            Ok(Command::Blast {
                peer: positional[0].clone(),
                port: port(&positional[1], transport)?,
                bytes: words.number("bytes", 1 << 20)?,
                transport,
            })
        }
        other => Err(format!("unknown command `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Result<Command, String> {
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        parse(&words)
    }

    #[test]
    fn commands_and_defaults() {
        assert_eq!(parse_line("cid"), Ok(Command::Cid { name: None }));
        assert_eq!(
            parse_line("cid corporate"),
            Ok(Command::Cid {
                name: Some("corporate".into())
            })
        );
        assert_eq!(parse_line("help"), Ok(Command::Help));
        assert_eq!(
            parse_line("listen 5000 --log /run/badges --prefix=badge:"),
            Ok(Command::Listen {
                port: 5000,
                mode: ListenMode::Lines {
                    log: Some("/run/badges".into()),
                    prefix: "badge:".into()
                },
                transport: Transport::Vsock
            })
        );
        assert_eq!(
            parse_line("listen 7000 --sink --tcp"),
            Ok(Command::Listen {
                port: 7000,
                mode: ListenMode::Sink,
                transport: Transport::Tcp
            })
        );
        assert_eq!(
            parse_line("send corporate 6000 hello   there"),
            Ok(Command::Send {
                peer: "corporate".into(),
                port: 6000,
                text: "hello there".into()
            })
        );
        assert_eq!(
            parse_line("stream 4 6000 --count 3 --interval-ms 10"),
            Ok(Command::Stream {
                peer: "4".into(),
                port: 6000,
                interval: Duration::from_millis(10),
                count: Some(3),
                text: "stream".into()
            })
        );
        assert_eq!(
            parse_line("badge personal 5000"),
            Ok(Command::Badge {
                peer: "personal".into(),
                port: 5000,
                every: Duration::from_secs(5)
            })
        );
        assert_eq!(
            parse_line("badge personal 5000 --every 0.5"),
            Ok(Command::Badge {
                peer: "personal".into(),
                port: 5000,
                every: Duration::from_millis(500)
            })
        );
        assert_eq!(
            parse_line("ping corporate 7000 --tcp"),
            Ok(Command::Ping {
                peer: "corporate".into(),
                port: 7000,
                count: 10,
                size: 64,
                transport: Transport::Tcp
            })
        );
        assert_eq!(
            parse_line("blast 4 7000 --bytes 4096"),
            Ok(Command::Blast {
                peer: "4".into(),
                port: 7000,
                bytes: 4096,
                transport: Transport::Vsock
            })
        );
    }

    #[test]
    fn text_after_double_dash_is_text() {
        assert_eq!(
            parse_line("send 3 5000 -- --not-an-option x"),
            Ok(Command::Send {
                peer: "3".into(),
                port: 5000,
                text: "--not-an-option x".into()
            })
        );
    }

    #[test]
    fn mistakes_are_one_line_errors() {
        for (line, error) in [
            ("", "no command given"),
            ("frobnicate", "unknown command `frobnicate`"),
            ("listen", "missing PORT"),
            ("listen 5000 6000", "unexpected argument `6000`"),
            ("listen five", "PORT: `five` is not a valid number"),
            ("listen 5000 --log", "--log needs a value"),
            (
                "listen 5000 --echo --sink",
                "--echo and --sink exclude each other",
            ),
            (
                "listen 5000 --echo --log x",
                "--log and --prefix are for line mode, not --echo/--sink",
            ),
            (
                "listen 70000 --tcp",
                "PORT: 70000 is not a TCP port (at most 65535)",
            ),
            ("listen 5000 --bogus", "unknown option --bogus"),
            ("listen 5000 --tcp=yes", "--tcp takes no value"),
            ("send corporate 6000", "missing TEXT"),
            ("send corporate", "missing PORT"),
            ("ping 4 7000 --size 0", "--size: 0 is not in 1..=65536"),
            ("ping 4 7000 --count 0", "--count: at least one round trip"),
            (
                "badge 3 5000 --every -1",
                "--every: `-1` is not a valid number of seconds",
            ),
            (
                "blast 4 7000 --bytes 1M",
                "--bytes: `1M` is not a valid number",
            ),
            ("cid a b", "unexpected argument `b`"),
        ] {
            assert_eq!(parse_line(line), Err(error.to_owned()), "{line}");
        }
    }
}

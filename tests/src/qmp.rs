//! [`Qmp`]: a small client for QEMU's machine protocol over a Unix socket, enough to take
//! screenshots of the machine's screen (`screendump`, read back as an [`Image`]) and to press keys
//! and touch the screen (`input-send-event`) of a machine booted with
//! [`QemuConfig::display`](crate::QemuConfig::display).
//!
//! QMP speaks one JSON object per line. The few commands sent here are written by hand and the
//! replies are read by their first key (`"return"` or `"error"`); asynchronous `"event"` lines in
//! between are skipped. No JSON library: the harness depends on std alone.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::HarnessError;

/// The largest absolute pointer coordinate QEMU's `abs` input events take (`INPUT_EVENT_ABS_MAX`):
/// `0..=ABS_MAX` spans the screen's width or height.
pub const ABS_MAX: u32 = 0x7fff;

/// A connection to QEMU's QMP socket, in command mode (capabilities negotiated).
pub struct Qmp {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    timeout: Duration,
}

impl Qmp {
    /// Connects to the QMP server socket at `path`, retrying until it exists and accepts (QEMU
    /// creates it as it starts), reads the greeting and leaves capabilities negotiation
    /// (`qmp_capabilities`). `timeout` bounds the connecting and, afterwards, each reply.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, HarnessError> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(error) if Instant::now() >= deadline => {
                    return Err(HarnessError::Qmp(format!(
                        "cannot connect to {} within {:.1} s: {error}",
                        path.display(),
                        timeout.as_secs_f64()
                    )));
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        };
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut qmp = Qmp {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
            timeout,
        };
        let greeting = qmp.read_line("the QMP greeting")?;
        if !greeting.contains("\"QMP\"") {
            return Err(HarnessError::Qmp(format!(
                "{} did not greet as QMP: {greeting}",
                path.display()
            )));
        }
        qmp.execute(&command("qmp_capabilities", None))?;
        Ok(qmp)
    }

    /// Sends one command line (a JSON object, see [`command`]) and waits for its reply, skipping
    /// events; returns the reply line of a `"return"`, or an error with QEMU's `"desc"` for an
    /// `"error"`.
    pub fn execute(&mut self, line: &str) -> Result<String, HarnessError> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")?;
        self.writer.flush()?;
        loop {
            let reply = self.read_line(&format!("the reply to {line}"))?;
            match reply_kind(&reply) {
                Reply::Return => return Ok(reply),
                Reply::Error => {
                    return Err(HarnessError::Qmp(format!(
                        "{line} failed: {}",
                        error_description(&reply).unwrap_or(&reply)
                    )));
                }
                Reply::Other => continue,
            }
        }
    }

    /// Saves the screen to `file` as a binary PPM (QMP `screendump`, `"format":"ppm"`) and reads
    /// it back. `file` is written by QEMU: give an absolute path.
    pub fn screendump(&mut self, file: &Path) -> Result<Image, HarnessError> {
        self.execute(&screendump_command(file))?;
        let bytes = std::fs::read(file).map_err(|error| {
            HarnessError::Qmp(format!(
                "cannot read the screendump {}: {error}",
                file.display()
            ))
        })?;
        Image::parse_ppm(&bytes)
            .map_err(|error| HarnessError::Qmp(format!("screendump {}: {error}", file.display())))
    }

    /// Presses (`down`) or releases the key QEMU calls `qcode` (`a`, `ret`, `pause`, ...).
    pub fn key(&mut self, qcode: &str, down: bool) -> Result<(), HarnessError> {
        self.execute(&key_command(qcode, down)).map(drop)
    }

    /// Presses and releases the key `qcode`.
    pub fn tap(&mut self, qcode: &str) -> Result<(), HarnessError> {
        self.key(qcode, true)?;
        self.key(qcode, false)
    }

    /// Touches the screen at absolute `x`, `y` (each `0..=`[`ABS_MAX`], clamped): moves the
    /// pointer there, then presses and releases the left button.
    pub fn touch(&mut self, x: u32, y: u32) -> Result<(), HarnessError> {
        self.execute(&move_command(x, y))?;
        self.execute(&button_command("left", true))?;
        self.execute(&button_command("left", false)).map(drop)
    }

    fn read_line(&mut self, what: &str) -> Result<String, HarnessError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(HarnessError::Qmp(format!(
                "QEMU closed the QMP socket while waiting for {what}"
            ))),
            Ok(_) => Ok(line.trim_end().to_owned()),
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(HarnessError::Qmp(format!(
                    "no answer within {:.1} s while waiting for {what}",
                    self.timeout.as_secs_f64()
                )))
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// `{"execute":"<name>"}`, with `"arguments":<arguments>` (a JSON object) if given.
pub fn command(name: &str, arguments: Option<&str>) -> String {
    match arguments {
        Some(arguments) => format!(
            "{{\"execute\":{},\"arguments\":{arguments}}}",
            json_string(name)
        ),
        None => format!("{{\"execute\":{}}}", json_string(name)),
    }
}

/// The `screendump` of the primary screen to `file`, as PPM.
pub fn screendump_command(file: &Path) -> String {
    command(
        "screendump",
        Some(&format!(
            "{{\"filename\":{},\"format\":\"ppm\"}}",
            json_string(&file.to_string_lossy())
        )),
    )
}

/// `input-send-event` of `events` (JSON objects, comma-separated).
fn input_command(events: &str) -> String {
    command(
        "input-send-event",
        Some(&format!("{{\"events\":[{events}]}}")),
    )
}

/// A key press or release of `qcode`.
pub fn key_command(qcode: &str, down: bool) -> String {
    input_command(&format!(
        "{{\"type\":\"key\",\"data\":{{\"down\":{down},\"key\":{{\"type\":\"qcode\",\"data\":{}}}}}}}",
        json_string(qcode)
    ))
}

/// The absolute pointer moving to `x`, `y` (clamped to [`ABS_MAX`]).
pub fn move_command(x: u32, y: u32) -> String {
    let abs = |axis: &str, value: u32| {
        format!(
            "{{\"type\":\"abs\",\"data\":{{\"axis\":\"{axis}\",\"value\":{}}}}}",
            value.min(ABS_MAX)
        )
    };
    input_command(&format!("{},{}", abs("x", x), abs("y", y)))
}

/// A pointer button (`left`, `right`, ...) press or release.
pub fn button_command(button: &str, down: bool) -> String {
    input_command(&format!(
        "{{\"type\":\"btn\",\"data\":{{\"down\":{down},\"button\":{}}}}}",
        json_string(button)
    ))
}

/// `text` as a JSON string literal.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Return,
    Error,
    /// An event, the greeting, or anything else that is no reply.
    Other,
}

/// What a QMP line is, by its object's first key (QEMU writes `"return"` or `"error"` first in a
/// reply, `"timestamp"` first in an event).
fn reply_kind(line: &str) -> Reply {
    match first_key(line) {
        Some("return") => Reply::Return,
        Some("error") => Reply::Error,
        _ => Reply::Other,
    }
}

/// The first key of the JSON object on `line`.
fn first_key(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    rest.split('"').next()
}

/// The `"desc"` of an error reply (up to its closing quote; QEMU's descriptions are plain text).
fn error_description(line: &str) -> Option<&str> {
    let start = line.find("\"desc\"")? + "\"desc\"".len();
    let rest = line[start..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let mut end = 0;
    let mut escaped = false;
    for (index, c) in rest.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            end = index;
            break;
        }
        end = index + c.len_utf8();
    }
    Some(&rest[..end])
}

/// A screenshot: `width` x `height` RGB pixels, row by row from the top left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `width * height` pixels, row-major.
    pub pixels: Vec<[u8; 3]>,
}

impl Image {
    /// Parses a binary PPM (`P6`; comments in the header; maxval 255, as QEMU writes them).
    pub fn parse_ppm(bytes: &[u8]) -> Result<Image, String> {
        let mut position = 0;
        let magic = ppm_token(bytes, &mut position).ok_or("empty file")?;
        if magic != b"P6" {
            return Err(format!(
                "not a binary PPM (magic {:?})",
                String::from_utf8_lossy(magic)
            ));
        }
        let mut number = |what: &str| -> Result<u32, String> {
            let token = ppm_token(bytes, &mut position).ok_or(format!("no {what}"))?;
            std::str::from_utf8(token)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| format!("bad {what} {:?}", String::from_utf8_lossy(token)))
        };
        let width = number("width")?;
        let height = number("height")?;
        let maxval = number("maxval")?;
        if maxval != 255 {
            return Err(format!("maxval {maxval}, only 255 is read"));
        }
        // Exactly one whitespace byte separates the header from the pixels.
        if !bytes.get(position).is_some_and(u8::is_ascii_whitespace) {
            return Err("no whitespace after the header".to_owned());
        }
        position += 1;
        let count = width as usize * height as usize;
        let data = &bytes[position..];
        if data.len() < count * 3 {
            return Err(format!(
                "{width}x{height} needs {} bytes of pixels, the file has {}",
                count * 3,
                data.len()
            ));
        }
        let pixels = data[..count * 3]
            .chunks_exact(3)
            .map(|rgb| [rgb[0], rgb[1], rgb[2]])
            .collect();
        Ok(Image {
            width,
            height,
            pixels,
        })
    }

    /// The pixel at column `x`, row `y`.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        self.pixels
            .get(y as usize * self.width as usize + x as usize)
            .copied()
    }

    /// The fraction of pixels (0 to 1; 0 for an empty image) whose every channel is within
    /// `tolerance` of `rgb`'s.
    pub fn share_near(&self, rgb: [u8; 3], tolerance: u8) -> f64 {
        if self.pixels.is_empty() {
            return 0.0;
        }
        let near = self
            .pixels
            .iter()
            .filter(|pixel| {
                pixel
                    .iter()
                    .zip(rgb)
                    .all(|(&have, want)| have.abs_diff(want) <= tolerance)
            })
            .count();
        near as f64 / self.pixels.len() as f64
    }

    /// The most frequent colours, most frequent first, with their share: for failure messages.
    pub fn dominant_colours(&self, count: usize) -> Vec<([u8; 3], f64)> {
        let mut counts = std::collections::HashMap::new();
        for pixel in &self.pixels {
            *counts.entry(*pixel).or_insert(0usize) += 1;
        }
        let mut colours: Vec<([u8; 3], usize)> = counts.into_iter().collect();
        colours.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let total = self.pixels.len().max(1) as f64;
        colours
            .into_iter()
            .take(count)
            .map(|(colour, n)| (colour, n as f64 / total))
            .collect()
    }
}

/// The next header token of a PPM from `position`: skips whitespace and `#` comments (to the end
/// of their line); leaves `position` just after the token.
fn ppm_token<'a>(bytes: &'a [u8], position: &mut usize) -> Option<&'a [u8]> {
    loop {
        match bytes.get(*position)? {
            byte if byte.is_ascii_whitespace() => *position += 1,
            b'#' => {
                while bytes.get(*position).is_some_and(|&byte| byte != b'\n') {
                    *position += 1;
                }
            }
            _ => break,
        }
    }
    let start = *position;
    while bytes
        .get(*position)
        .is_some_and(|byte| !byte.is_ascii_whitespace() && *byte != b'#')
    {
        *position += 1;
    }
    Some(&bytes[start..*position])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_with_comments_is_parsed() {
        let mut bytes = b"P6\n# written by a test\n3 # width\n2\n255\n".to_vec();
        let pixels: [[u8; 3]; 6] = [
            [255, 0, 0],
            [255, 0, 0],
            [0, 0, 255],
            [10, 20, 30],
            [255, 0, 0],
            // A pixel byte that looks like whitespace and one like a comment: data, not header.
            [b'\n', b'#', b' '],
        ];
        for pixel in pixels {
            bytes.extend_from_slice(&pixel);
        }
        let image = Image::parse_ppm(&bytes).expect("parses");
        assert_eq!((image.width, image.height), (3, 2));
        assert_eq!(image.pixel(0, 0), Some([255, 0, 0]));
        assert_eq!(image.pixel(2, 0), Some([0, 0, 255]));
        assert_eq!(image.pixel(0, 1), Some([10, 20, 30]));
        assert_eq!(image.pixel(2, 1), Some([b'\n', b'#', b' ']));
        assert_eq!(image.pixel(3, 0), None);
        assert_eq!(image.pixel(0, 2), None);
        assert!((image.share_near([250, 5, 5], 8) - 0.5).abs() < 1e-9);
        assert_eq!(image.share_near([250, 5, 5], 4), 0.0);
        assert_eq!(image.dominant_colours(1), vec![([255, 0, 0], 0.5)]);
    }

    #[test]
    fn qemus_own_ppm_header_is_parsed() {
        // QEMU's ppm_save: "P6\n%d %d\n%d\n".
        let mut bytes = b"P6\n2 1\n255\n".to_vec();
        bytes.extend_from_slice(&[0x2e, 0x7d, 0x32, 0x2e, 0x7d, 0x32]);
        let image = Image::parse_ppm(&bytes).expect("parses");
        assert_eq!(image.pixels, vec![[0x2e, 0x7d, 0x32]; 2]);
        assert_eq!(image.share_near([0x2e, 0x7d, 0x32], 0), 1.0);
    }

    #[test]
    fn bad_ppms_are_refused() {
        for bad in [
            &b""[..],
            b"P3\n1 1\n255\n0 0 0\n",
            b"P6\n1 1\n65535\n\0\0\0\0\0\0",
            b"P6\n2 2\n255\n\0\0\0",
            b"P6\nx 1\n255\n\0\0\0",
            b"P6\n1 1\n255",
        ] {
            assert!(Image::parse_ppm(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commands_are_the_json_qmp_expects() {
        assert_eq!(
            command("qmp_capabilities", None),
            r#"{"execute":"qmp_capabilities"}"#
        );
        assert_eq!(
            screendump_command(Path::new("/tmp/a \"b\"\\c.ppm")),
            r#"{"execute":"screendump","arguments":{"filename":"/tmp/a \"b\"\\c.ppm","format":"ppm"}}"#
        );
        assert_eq!(
            key_command("pause", true),
            r#"{"execute":"input-send-event","arguments":{"events":[{"type":"key","data":{"down":true,"key":{"type":"qcode","data":"pause"}}}]}}"#
        );
        assert_eq!(
            key_command("a", false),
            r#"{"execute":"input-send-event","arguments":{"events":[{"type":"key","data":{"down":false,"key":{"type":"qcode","data":"a"}}}]}}"#
        );
        assert_eq!(
            move_command(100, 40000),
            r#"{"execute":"input-send-event","arguments":{"events":[{"type":"abs","data":{"axis":"x","value":100}},{"type":"abs","data":{"axis":"y","value":32767}}]}}"#
        );
        assert_eq!(
            button_command("left", false),
            r#"{"execute":"input-send-event","arguments":{"events":[{"type":"btn","data":{"down":false,"button":"left"}}]}}"#
        );
        assert_eq!(json_string("a\u{1}\n"), r#""a\u0001\n""#);
    }

    #[test]
    fn replies_are_told_from_events() {
        assert_eq!(reply_kind(r#"{"return": {}}"#), Reply::Return);
        assert_eq!(
            reply_kind(r#"{"error": {"class": "GenericError", "desc": "no \"event\" here"}}"#),
            Reply::Error
        );
        assert_eq!(
            reply_kind(
                r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESET", "data": {"return": 1}}"#
            ),
            Reply::Other
        );
        assert_eq!(
            reply_kind(r#"{"QMP": {"version": {}, "capabilities": ["oob"]}}"#),
            Reply::Other
        );
        assert_eq!(reply_kind("garbage"), Reply::Other);
        assert_eq!(
            error_description(
                r#"{"error": {"class": "GenericError", "desc": "Could not open '/x': \"No\" such file"}}"#
            ),
            Some(r#"Could not open '/x': \"No\" such file"#)
        );
    }

    #[test]
    fn a_fake_qmp_server_is_spoken_to() {
        use std::io::{BufRead, BufReader, Write};
        use std::os::unix::net::UnixListener;
        let dir = std::env::temp_dir().join(format!("cellvisor-qmp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let socket = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&socket);
        let ppm = dir.join("screen.ppm");
        let server_socket = socket.clone();
        let server = thread::spawn(move || {
            // Bound late: the client retries until the socket exists.
            thread::sleep(Duration::from_millis(200));
            let listener = UnixListener::bind(&server_socket).expect("bind");
            let (stream, _) = listener.accept().expect("accept");
            let mut writer = stream.try_clone().expect("clone");
            let mut reader = BufReader::new(stream);
            writeln!(
                writer,
                r#"{{"QMP": {{"version": {{}}, "capabilities": []}}}}"#
            )
            .unwrap();
            let mut received = Vec::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                received.push(line.trim_end().to_owned());
                if line.contains("screendump") {
                    let file = line.split("\"filename\":\"").nth(1).unwrap();
                    let file = file.split('"').next().unwrap();
                    let mut bytes = b"P6\n1 1\n255\n".to_vec();
                    bytes.extend_from_slice(&[0, 0, 255]);
                    std::fs::write(file, bytes).unwrap();
                }
                if line.contains("\"btn\"") && line.contains("\"down\":false") {
                    writeln!(
                        writer,
                        r#"{{"error": {{"class": "GenericError", "desc": "VM not running"}}}}"#
                    )
                    .unwrap();
                } else {
                    writeln!(
                        writer,
                        r#"{{"timestamp": {{"seconds": 0, "microseconds": 0}}, "event": "X"}}"#
                    )
                    .unwrap();
                    writeln!(writer, r#"{{"return": {{}}}}"#).unwrap();
                }
                line.clear();
            }
            received
        });
        let mut qmp = Qmp::connect(&socket, Duration::from_secs(10)).expect("connects");
        let image = qmp.screendump(&ppm).expect("screendump");
        assert_eq!(image.pixels, vec![[0, 0, 255]]);
        qmp.tap("a").expect("tap");
        let error = qmp.touch(1, 2).expect_err("the fake refuses the release");
        assert!(error.to_string().contains("VM not running"), "{error}");
        drop(qmp);
        let received = server.join().expect("server");
        assert_eq!(received[0], command("qmp_capabilities", None));
        assert_eq!(received[2], key_command("a", true));
        assert_eq!(received[3], key_command("a", false));
        assert_eq!(received[4], move_command(1, 2));
        assert_eq!(received.len(), 7);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The console multiplexer (`console::Console`) under random input and output bytes.
#![forbid(unsafe_code)]

use cellvisor::console::mux::{self as console, InputAction, MAX_LINE};

use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct Console;

/// Hypervisor lines the scenario prints; every piece starts with `cellvisor`.
const HYPERVISOR_LINES: &[&str] = &[
    "cellvisor: cell restarted",
    "cellvisor: two\ncellvisor: lines",
    "cellvisor: carriage\r return",
];

/// One thing that happens on the console.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// A byte typed by the user.
    Input(u8),
    /// A byte written by a cell's UART (the cell index may not exist).
    Output(usize, u8),
    /// A cell stops: its partial line is written out.
    Flush(usize),
    /// cellvisor prints `HYPERVISOR_LINES[n]`.
    Hypervisor(usize),
}

/// A console configuration and what happens on it.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Cell names (never empty, no CR/LF).
    pub names: Vec<String>,
    /// ANSI colours on.
    pub color: bool,
    /// The sequence.
    pub ops: Vec<Op>,
}

fn output_byte(rng: &mut Rng) -> u8 {
    match rng.below(10) {
        0 => b'\r',
        1 => b'\n',
        2 => rng.next_u64() as u8,
        _ => rng.range(0x20, 0x7e) as u8,
    }
}

impl FuzzTarget for Console {
    type Input = Scenario;
    const NAME: &'static str = "console";
    const SUMMARY: &'static str =
        "console mux: focus only on existing cells, every terminal line starts with a known prefix";

    fn generate(rng: &mut Rng) -> Scenario {
        let cells = rng.range(1, 12) as usize;
        let names = (0..cells)
            .map(|_| {
                let length = rng.range(1, 10) as usize;
                (0..length)
                    .map(|_| rng.range(u64::from(b'a'), u64::from(b'z')) as u8 as char)
                    .collect()
            })
            .collect();
        // Long runs of one cell's bytes, so lines reach MAX_LINE and get cut.
        let mut ops = Vec::new();
        for _ in 0..rng.range(1, 40) {
            match rng.below(10) {
                0..=2 => {
                    let byte = match rng.below(4) {
                        0 => console::ESCAPE,
                        1 => rng.range(u64::from(b'0'), u64::from(b'9')) as u8,
                        2 => rng.pick(b"mMhH?\x01"),
                        _ => rng.next_u64() as u8,
                    };
                    ops.push(Op::Input(byte));
                }
                3..=7 => {
                    let cell = rng.index(cells + 2);
                    let run = if rng.chance(1, 8) {
                        rng.range(1, 600)
                    } else {
                        rng.range(1, 12)
                    };
                    for _ in 0..run {
                        ops.push(Op::Output(cell, output_byte(rng)));
                    }
                }
                8 => ops.push(Op::Flush(rng.index(cells + 1))),
                _ => ops.push(Op::Hypervisor(rng.index(HYPERVISOR_LINES.len()))),
            }
        }
        Scenario {
            names,
            color: rng.coin(),
            ops,
        }
    }

    fn check(scenario: &Scenario) -> Result<(), String> {
        let names: Vec<&str> = scenario.names.iter().map(String::as_str).collect();
        let mut mux = console::Console::new(&names, scenario.color);
        let mut terminal: Vec<u8> = Vec::new();
        for (index, op) in scenario.ops.iter().enumerate() {
            let written_before = terminal.len();
            let mut sink = |bytes: &[u8]| terminal.extend_from_slice(bytes);
            match *op {
                Op::Input(byte) => match mux.input(byte) {
                    InputAction::SwitchFocus(cell) => {
                        ensure!(
                            cell < names.len(),
                            "step {index}: focus moved to cell {cell} of {}",
                            names.len()
                        );
                        ensure!(
                            mux.focused() == cell,
                            "step {index}: focus {} after SwitchFocus({cell})",
                            mux.focused()
                        );
                    }
                    InputAction::ToCell(cell, _) => {
                        ensure!(
                            cell < names.len() && cell == mux.focused(),
                            "step {index}: input to cell {cell}"
                        );
                    }
                    _ => {}
                },
                Op::Output(cell, byte) => mux.cell_output(cell, byte, &mut sink),
                Op::Flush(cell) => mux.flush_cell(cell, &mut sink),
                Op::Hypervisor(line) => mux.hypervisor_line(HYPERVISOR_LINES[line], &mut sink),
            }
            if let Op::Output(cell, _) | Op::Flush(cell) = *op
                && cell >= names.len()
            {
                ensure!(
                    terminal.len() == written_before,
                    "step {index}: bytes for missing cell {cell} reached the terminal"
                );
            }
            ensure!(
                mux.focused() < names.len(),
                "step {index}: focus on missing cell {}",
                mux.focused()
            );
        }
        check_terminal(&terminal, &names, scenario.color)
    }
}

/// Every line on the terminal starts with a cell prefix or is a hypervisor line, and no cell line
/// is longer than `MAX_LINE` plus the continuation marks.
fn check_terminal(terminal: &[u8], names: &[&str], color: bool) -> Result<(), String> {
    const PALETTE: [&str; 6] = [
        "\x1b[1;32m",
        "\x1b[1;36m",
        "\x1b[1;35m",
        "\x1b[1;33m",
        "\x1b[1;34m",
        "\x1b[1;31m",
    ];
    let prefixes: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(cell, name)| {
            if color {
                format!("{}[{name}]\x1b[0m ", PALETTE[cell % PALETTE.len()]).into_bytes()
            } else {
                format!("[{name}] ").into_bytes()
            }
        })
        .collect();
    let continuation = "…".len();
    let mut rest = terminal;
    while !rest.is_empty() {
        let (line, next) = match rest.windows(2).position(|pair| pair == b"\r\n") {
            Some(end) => (&rest[..end], &rest[end + 2..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        if line.starts_with(b"cellvisor") {
            continue;
        }
        let Some(prefix) = prefixes
            .iter()
            .filter(|prefix| line.starts_with(prefix))
            .max_by_key(|prefix| prefix.len())
        else {
            return Err(format!(
                "terminal line without a known prefix: {:?}",
                String::from_utf8_lossy(line)
            ));
        };
        let payload = line.len() - prefix.len();
        ensure!(
            payload <= MAX_LINE + 2 * continuation,
            "terminal line of {payload} bytes after its prefix: {:?}",
            String::from_utf8_lossy(line)
        );
    }
    Ok(())
}

//! Test options from `/chosen/bootargs`:
//! `test=all|heartbeat|sgis|spis|dma-flood|dma-attack|pattern|timer-levels|residue|display-attack|vsock-attack beats=N
//! period_ms=N gaps=on skip=a,b targets=NAME:ADDR,... dma_bytes=N rounds=N`, and `test=switch seed=N
//! check_seed=N rounds=N`.
#![forbid(unsafe_code)]

/// What the guest does after saying hello.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `test=all` (the default): every foundation check, then power off.
    All,
    /// `test=heartbeat`: only print `beats` numbered heartbeats, one per `period_ms`, then power off.
    Heartbeat,
    /// `test=sgis`: SGIs to a spinning, then to an idle vCPU 1, each counted (see `sgis`).
    Sgis,
    /// `test=residue`: registers at reset values, then filled, then heartbeats (see `residue`).
    Residue,
    /// `test=timer-levels`: the EL1 timers' PPIs stop being pending when their condition ends
    /// (see `timer_levels`).
    TimerLevels,
    /// `test=spis`: a passed-through disk's SPIs to a spinning, then to an idle vCPU 1, one per
    /// read request, each counted (see `spis`).
    Spis,
    /// `test=dma-flood`: a passed-through disk's reads kept in flight for ever (see `dma_flood`).
    DmaFlood,
    /// `test=dma-attack`: a passed-through virtio-blk PCI disk's reads aimed at each of `targets`
    /// (see `dma_attack`).
    DmaAttack,
    /// `test=pattern`: a pattern over the cell's RAM from 1 to 3 MiB, checked every second for
    /// `rounds` rounds (see `pattern`).
    Pattern,
    /// `test=switch`: registers filled with `seed`'s pattern and compared with `check_seed`'s
    /// through busy and idle phases, for `rounds` rounds, while another cell shares the CPU (see
    /// `switch`).
    Switch,
    /// `test=display-attack`: the emulated PL111 and virtio-input devices attacked, then key
    /// events printed (see `display_attack`).
    DisplayAttack,
    /// `test=vsock-attack`: the channel's virtio-vsock device and policy attacked
    /// (vsock_attack.rs).
    VsockAttack,
    /// `test=input`: the input devices' events printed as they come, no attack (the bench's key
    /// reader; see `display_attack::echo`).
    Input,
}

/// Parsed options.
pub struct Options<'a> {
    /// `test=`.
    pub mode: Mode,
    /// `beats=`: heartbeats to print (default 20).
    pub beats: u32,
    /// `period_ms=`: milliseconds between heartbeats (default 100).
    pub period_ms: u32,
    /// `gaps=on`: each heartbeat line also says how long it came after the previous one, on the
    /// guest's own clock (`gap_us=`).
    pub gaps: bool,
    /// `targets=`: `test=dma-attack`'s comma-separated `NAME:ADDR` list (see `dma_attack`).
    pub targets: &'a str,
    /// `dma_bytes=`: bytes of each `test=dma-attack` read (default 8192, see `dma_attack`).
    pub dma_bytes: u32,
    /// `rounds=`: `test=pattern`'s checks before it powers off (default 0: for ever);
    /// `test=switch`'s rounds (0: `switch::DEFAULT_ROUNDS`).
    pub rounds: u32,
    /// `seed=`: what `test=switch` derives its register values from (default 1).
    pub seed: u64,
    /// `check_seed=`: whose values `test=switch` expects (default: `seed`; another seed makes it
    /// fail at once).
    pub check_seed: Option<u64>,
    /// `skip=`: comma-separated names of checks to leave out (see `lines::CHECK_*`).
    skip: &'a str,
}

impl<'a> Options<'a> {
    /// Parses `bootargs`; unknown words are handed to `unknown` and otherwise ignored.
    pub fn parse(bootargs: &'a str, mut unknown: impl FnMut(&str)) -> Self {
        let mut options = Options {
            mode: Mode::All,
            beats: 20,
            period_ms: 100,
            gaps: false,
            targets: "",
            dma_bytes: crate::dma_attack::DEFAULT_BYTES,
            rounds: 0,
            seed: 1,
            check_seed: None,
            skip: "",
        };
        for word in bootargs.split_ascii_whitespace() {
            match word.split_once('=') {
                Some(("test", "all")) => options.mode = Mode::All,
                Some(("test", "heartbeat")) => options.mode = Mode::Heartbeat,
                Some(("test", "sgis")) => options.mode = Mode::Sgis,
                Some(("test", "residue")) => options.mode = Mode::Residue,
                Some(("test", "timer-levels")) => options.mode = Mode::TimerLevels,
                Some(("test", "spis")) => options.mode = Mode::Spis,
                Some(("test", "dma-flood")) => options.mode = Mode::DmaFlood,
                Some(("test", "dma-attack")) => options.mode = Mode::DmaAttack,
                Some(("test", "pattern")) => options.mode = Mode::Pattern,
                Some(("test", "switch")) => options.mode = Mode::Switch,
                Some(("test", "display-attack")) => options.mode = Mode::DisplayAttack,
                Some(("test", "vsock-attack")) => options.mode = Mode::VsockAttack,
                Some(("test", "input")) => options.mode = Mode::Input,
                Some(("seed", number)) => match number.parse() {
                    Ok(seed) => options.seed = seed,
                    Err(_) => unknown(word),
                },
                Some(("check_seed", number)) => match number.parse() {
                    Ok(seed) => options.check_seed = Some(seed),
                    Err(_) => unknown(word),
                },
                Some(("targets", targets)) => options.targets = targets,
                Some(("dma_bytes", number)) => match number.parse() {
                    Ok(bytes) => options.dma_bytes = bytes,
                    Err(_) => unknown(word),
                },
                Some(("rounds", number)) => match number.parse() {
                    Ok(rounds) => options.rounds = rounds,
                    Err(_) => unknown(word),
                },
                Some(("beats", number)) => match number.parse() {
                    Ok(beats) => options.beats = beats,
                    Err(_) => unknown(word),
                },
                Some(("period_ms", number)) => match number.parse() {
                    Ok(period_ms) => options.period_ms = period_ms,
                    Err(_) => unknown(word),
                },
                Some(("gaps", "on")) => options.gaps = true,
                Some(("skip", names)) => options.skip = names,
                _ => unknown(word),
            }
        }
        options
    }

    /// Whether the check called `name` was asked to be skipped.
    pub fn skips(&self, name: &str) -> bool {
        !name.is_empty() && self.skip.split(',').any(|skipped| skipped == name)
    }
}

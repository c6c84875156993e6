//! The phone's screen and input devices: cellvisor owns them and gives them to the cell in front
//! (docs/architecture.md "Display and input").
//!
//! - The scanout shows the front cell's own framebuffer directly (its PL111's LCDUPBASE, checked
//!   to lie inside that cell's RAM); switching repoints it, no pixel is copied.
//! - On every switch cellvisor first shows its own banner frame, from its own memory, naming the
//!   cell coming to the front in its colour, for the board's `banner_ms`; no cell can draw it.
//! - Events of the physical input devices go to the front cell's emulated devices only. The
//!   board's switch key never reaches a cell: it brings the next cell to the front. Keys a cell saw
//!   pressed are released for it when it leaves the front, so none stays held down there.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::board::Display;
use crate::console::logger;
use crate::core::cell::Cell;
use crate::core::hardware::{InputEvent, ScanoutFrame, VcpuHardware};
use crate::dev::CellPhysical;
use crate::dev::pl111::{FrameRequest, PixelFormat};
use crate::dev::virtio::input::InputConfig;
use crate::mem::addr::{GuestPhysAddr, PhysAddr};

/// Linux's `EV_SYN`.
const EV_SYN: u16 = 0;
/// Linux's `EV_KEY`.
const EV_KEY: u16 = 1;
/// Linux's `SYN_REPORT`.
const SYN_REPORT: u16 = 0;
/// Key codes a device can hold down: Linux's `KEY_MAX` + 1.
const KEY_CODES: usize = 0x300;
/// The banner's pixel format (the scanout's native one).
const BANNER_FORMAT: PixelFormat = PixelFormat::Xrgb8888;

/// The banner time the hypervisor command line asks for (`cellvisor.banner_ms=N`), if any.
pub fn banner_ms_from_bootargs(bootargs: &str) -> Option<u32> {
    bootargs
        .split_ascii_whitespace()
        .filter_map(|word| word.strip_prefix("cellvisor.banner_ms="))
        .next_back()
        .and_then(|value| value.parse().ok())
}

/// A physical input device cellvisor drives, as probed at boot.
#[derive(Clone, Debug)]
pub struct PhysicalInput {
    /// Its interrupt (an SPI routed to the boot CPU).
    pub intid: u32,
    /// What it says of itself; each cell's emulated device for it says the same.
    pub config: Arc<InputConfig>,
}

/// The screen and input hardware found at boot.
#[derive(Clone, Debug, Default)]
pub struct Peripherals {
    /// Whether the board's screen is there (QEMU: a `ramfb`).
    pub screen: bool,
    /// The physical input devices, in probe order.
    pub inputs: Vec<PhysicalInput>,
    /// The hypervisor command line's `banner_ms=`, overriding the board's.
    pub banner_ms: Option<u32>,
}

/// What the scanout shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Showing {
    /// Nothing yet.
    Nothing,
    /// cellvisor's banner for this cell, until the counter reaches `until`.
    Banner { cell: usize, until: u64 },
    /// This cell's own frame (or, if it has none, its banner stays).
    Cell(usize),
}

struct State {
    showing: Showing,
    /// Per cell, its last frame that passed the checks (`None`: it shows nothing).
    frames: Vec<Option<ScanoutFrame>>,
    /// Per physical input device: the cell that saw its keys go down, and which are down.
    held: Vec<(usize, Vec<u64>)>,
}

/// The screen and input of the running partition.
pub struct Screen {
    display: &'static Display,
    present: bool,
    banner_ms: u32,
    /// cellvisor's own framebuffer, for the banner (lock order: after `state`).
    banner: Mutex<Vec<u32>>,
    state: Mutex<State>,
    stats: Stats,
}

/// What the `screen` command reports: switches made with the switch key and their cost from the
/// key's interrupt to the banner on the scanout; input events forwarded and their cost.
#[derive(Default)]
struct Stats {
    key_switches: AtomicU64,
    key_switch_ticks: AtomicU64,
    last_key_switch_ticks: AtomicU64,
    events: AtomicU64,
    event_ticks: AtomicU64,
    refused_frames: AtomicU64,
}

/// Why a cell's frame is not shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameRefusal {
    /// The frame does not lie wholly inside one of the cell's RAM regions.
    OutsideRam,
    /// The screen hardware refused the configuration.
    Hardware,
}

impl Screen {
    /// The screen of `display` for `cells` cells, with the hardware of `peripherals`.
    pub fn new(display: &'static Display, peripherals: &Peripherals, cells: usize) -> Self {
        let pixels = if peripherals.screen {
            (display.width as usize).saturating_mul(display.height as usize)
        } else {
            0
        };
        Self {
            display,
            present: peripherals.screen,
            banner_ms: peripherals.banner_ms.unwrap_or(display.banner_ms),
            banner: Mutex::new(vec![0; pixels]),
            state: Mutex::new(State {
                showing: Showing::Nothing,
                frames: vec![None; cells],
                held: peripherals
                    .inputs
                    .iter()
                    .map(|_| (usize::MAX, vec![0; KEY_CODES / 64]))
                    .collect(),
            }),
            stats: Stats::default(),
        }
    }

    /// Records a switch made with the switch key: `ticks` from its interrupt to the banner on the
    /// scanout.
    pub fn record_key_switch(&self, ticks: u64) {
        self.stats.key_switches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .key_switch_ticks
            .fetch_add(ticks, Ordering::Relaxed);
        self.stats
            .last_key_switch_ticks
            .store(ticks, Ordering::Relaxed);
    }

    /// Records `events` input events forwarded in `ticks` (from the interrupt to the guest's
    /// queue).
    pub fn record_events(&self, events: u64, ticks: u64) {
        self.stats.events.fetch_add(events, Ordering::Relaxed);
        self.stats.event_ticks.fetch_add(ticks, Ordering::Relaxed);
    }

    /// The `screen` command's lines.
    pub fn lines(&self, cells: &[Cell], front: usize, frequency: u64) -> Vec<String> {
        let name = |cell: usize| cells.get(cell).map_or("?", Cell::name);
        let nanos = |ticks: u64| u128::from(ticks) * 1_000_000_000 / u128::from(frequency.max(1));
        let state = self.state.lock();
        let mut lines = Vec::new();
        lines.push(if self.present {
            format!(
                "screen {}x{}: {} in front, showing {}",
                self.display.width,
                self.display.height,
                name(front),
                match state.showing {
                    Showing::Nothing => String::from("nothing"),
                    Showing::Banner { cell, .. } => format!("the banner for {}", name(cell)),
                    Showing::Cell(cell) => match state.frames.get(cell).copied().flatten() {
                        Some(_) => format!("{}'s frame", name(cell)),
                        None => format!("the banner for {} (it has no picture)", name(cell)),
                    },
                }
            )
        } else {
            String::from("no screen found (QEMU: -device ramfb)")
        });
        for (index, frame) in state.frames.iter().enumerate() {
            lines.push(match frame {
                Some(frame) => format!(
                    "  {:<12} frame at {:#x}, {}x{}, stride {}",
                    name(index),
                    frame.address.raw(),
                    frame.width,
                    frame.height,
                    frame.stride
                ),
                None => format!("  {:<12} no picture", name(index)),
            });
        }
        drop(state);
        let switches = self.stats.key_switches.load(Ordering::Relaxed);
        let switch_ticks = self.stats.key_switch_ticks.load(Ordering::Relaxed);
        let last = self.stats.last_key_switch_ticks.load(Ordering::Relaxed);
        lines.push(format!(
            "switch key: {switches} switches, mean {} ns, last {} ns from the key to the banner",
            nanos(switch_ticks.checked_div(switches).unwrap_or(0)),
            nanos(last)
        ));
        let events = self.stats.events.load(Ordering::Relaxed);
        let event_ticks = self.stats.event_ticks.load(Ordering::Relaxed);
        lines.push(format!(
            "input: {events} events forwarded, mean {} ns each; {} frames refused",
            nanos(event_ticks.checked_div(events).unwrap_or(0)),
            self.stats.refused_frames.load(Ordering::Relaxed)
        ));
        lines
    }

    /// The board's description of the screen.
    pub fn display(&self) -> &'static Display {
        self.display
    }

    /// Whether the screen hardware is there.
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// The board's switch key.
    pub fn switch_key(&self) -> u16 {
        self.display.switch_key
    }

    /// Brings `cell` to the screen: cellvisor's banner for it now, its own frame once the
    /// banner's time is up (this CPU's EL2 timer ends it: [`Screen::timer_fired`]).
    pub fn bring_to_front<H: VcpuHardware + ?Sized>(
        &self,
        cells: &[Cell],
        cell: usize,
        hardware: &mut H,
    ) {
        if !self.present {
            return;
        }
        let Some(front) = cells.get(cell) else {
            return;
        };
        let (now, frequency) = hardware.counter();
        let until = now.saturating_add(u64::from(self.banner_ms).saturating_mul(frequency) / 1000);
        let mut state = self.state.lock();
        let shown = self.show_banner(front, hardware);
        state.showing = Showing::Banner { cell, until };
        drop(state);
        if shown {
            logger::hypervisor_line(&alloc::format!(
                "cellvisor: screen: banner for {}",
                front.name()
            ));
        }
        hardware.set_screen_timer(Some(until));
    }

    /// Draws cellvisor's banner for `cell` and scans it out.
    fn show_banner<H: VcpuHardware + ?Sized>(&self, cell: &Cell, hardware: &mut H) -> bool {
        let display = self.display;
        let mut banner = self.banner.lock();
        crate::display::banner::draw_banner(
            &mut banner,
            display.width,
            display.height,
            display.width,
            BANNER_FORMAT,
            cell.name(),
            display.colour_of(cell.name()),
        );
        let address = PhysAddr::new(banner.as_ptr() as u64);
        let bytes = (banner.len() * 4) as u64;
        // The display reads RAM, not the caches.
        hardware.clean_invalidate_memory(address, bytes);
        hardware.scanout(&ScanoutFrame {
            address,
            width: display.width,
            height: display.height,
            stride: display.width * 4,
            fourcc: BANNER_FORMAT.fourcc(),
        })
    }

    /// This CPU's EL2 timer fired: if a banner's time is up, the cell in front gets the screen.
    pub fn timer_fired<H: VcpuHardware + ?Sized>(&self, cells: &[Cell], hardware: &mut H) {
        let mut state = self.state.lock();
        let Showing::Banner { cell, until } = state.showing else {
            hardware.set_screen_timer(None);
            return;
        };
        if hardware.counter().0 < until {
            // Another switch moved the end; keep waiting for it.
            hardware.set_screen_timer(Some(until));
            return;
        }
        hardware.set_screen_timer(None);
        state.showing = Showing::Cell(cell);
        let frame = state.frames.get(cell).copied().flatten();
        drop(state);
        let name = cells.get(cell).map_or("?", Cell::name);
        let line = match frame {
            Some(frame) if hardware.scanout(&frame) => {
                alloc::format!("cellvisor: screen: {name} on screen")
            }
            _ => alloc::format!("cellvisor: screen: {name} has no picture"),
        };
        logger::hypervisor_line(&line);
    }

    /// The frame of `cell`'s PL111 may have changed: check it and, if the cell is on screen,
    /// show it. A frame outside the cell's RAM is refused and the screen keeps the cell's previous
    /// frame.
    pub fn frame_changed<H: VcpuHardware + ?Sized>(
        &self,
        cell: &Cell,
        request: Option<FrameRequest>,
        hardware: &mut H,
    ) -> Result<(), FrameRefusal> {
        if !self.present {
            return Ok(());
        }
        let frame = match request {
            None => None,
            Some(request) => Some(checked_frame(cell, &request).ok_or_else(|| {
                self.stats.refused_frames.fetch_add(1, Ordering::Relaxed);
                self.log_refused(cell, &request, hardware.counter());
                FrameRefusal::OutsideRam
            })?),
        };
        let mut state = self.state.lock();
        let Some(slot) = state.frames.get_mut(cell.index()) else {
            return Ok(());
        };
        if *slot == frame {
            return Ok(());
        }
        *slot = frame;
        if state.showing != Showing::Cell(cell.index()) {
            return Ok(());
        }
        match frame {
            Some(frame) if hardware.scanout(&frame) => Ok(()),
            Some(_) => Err(FrameRefusal::Hardware),
            // The cell turned its screen off: its banner stands in.
            None => {
                self.show_banner(cell, hardware);
                Ok(())
            }
        }
    }

    /// `cell` is stopped or restarted: its frame is forgotten and, if it is on screen, the scanout
    /// leaves its RAM for its banner.
    pub fn forget<H: VcpuHardware + ?Sized>(&self, cell: &Cell, hardware: &mut H) {
        let mut state = self.state.lock();
        if let Some(slot) = state.frames.get_mut(cell.index()) {
            *slot = None;
        }
        for (owner, keys) in &mut state.held {
            if *owner == cell.index() {
                keys.fill(0);
            }
        }
        if self.present && state.showing == Showing::Cell(cell.index()) {
            self.show_banner(cell, hardware);
            drop(state);
            logger::hypervisor_line(&format!(
                "cellvisor: screen: {} stopped, its banner stands in",
                cell.name()
            ));
        }
    }

    fn log_refused(&self, cell: &Cell, request: &FrameRequest, clock: (u64, u64)) {
        cell.log_guest_fault(
            "screen: framebuffer not inside the cell's RAM refused, the screen keeps its previous \
             frame",
            request.base,
            clock,
        );
    }

    /// Routes `events` of physical input device `device` to the cell in front, `front`: the
    /// switch key is kept back (its press is returned as `true`: bring the next cell to the
    /// front); the rest go to the front cell's emulated device. Returns whether to switch.
    pub fn route_input<H: VcpuHardware + ?Sized>(
        &self,
        cells: &[Cell],
        front: usize,
        device: usize,
        events: &[InputEvent],
        hardware: &mut H,
    ) -> bool {
        let mut switch = false;
        let mut forward: Vec<InputEvent> = Vec::with_capacity(events.len());
        {
            let mut state = self.state.lock();
            let Some((owner, keys)) = state.held.get_mut(device) else {
                return false;
            };
            if *owner != front {
                keys.fill(0);
                *owner = front;
            }
            for event in events {
                if event.kind == EV_KEY && event.code == self.display.switch_key {
                    switch |= event.value == 1;
                    continue;
                }
                if event.kind == EV_KEY
                    && let Some(word) = keys.get_mut(usize::from(event.code) / 64)
                {
                    let bit = 1u64 << (event.code % 64);
                    if event.value == 0 {
                        *word &= !bit;
                    } else {
                        *word |= bit;
                    }
                }
                forward.push(*event);
            }
        }
        if let Some(cell) = cells.get(front) {
            deliver(cell, device, &forward, hardware);
        }
        switch
    }

    /// The front moves away from `old`: every key `old` saw pressed is released for it, so none
    /// stays held down in the cell behind.
    pub fn release_keys<H: VcpuHardware + ?Sized>(
        &self,
        cells: &[Cell],
        old: usize,
        hardware: &mut H,
    ) {
        let mut releases: Vec<(usize, Vec<InputEvent>)> = Vec::new();
        {
            let mut state = self.state.lock();
            for (device, (owner, keys)) in state.held.iter_mut().enumerate() {
                if *owner != old {
                    continue;
                }
                let mut events = Vec::new();
                for (index, word) in keys.iter_mut().enumerate() {
                    let mut bits = *word;
                    while bits != 0 {
                        let bit = bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        events.push(InputEvent {
                            kind: EV_KEY,
                            code: (index * 64 + bit) as u16,
                            value: 0,
                        });
                    }
                    *word = 0;
                }
                if !events.is_empty() {
                    events.push(InputEvent {
                        kind: EV_SYN,
                        code: SYN_REPORT,
                        value: 0,
                    });
                    releases.push((device, events));
                }
            }
        }
        if let Some(cell) = cells.get(old) {
            for (device, events) in releases {
                deliver(cell, device, &events, hardware);
            }
        }
    }
}

/// Hands `events` to `cell`'s emulated device for physical device `device` and kicks the vCPU
/// that takes its interrupt; a queue the guest broke is logged (rate-limited) against the cell.
fn deliver<H: VcpuHardware + ?Sized>(
    cell: &Cell,
    device: usize,
    events: &[InputEvent],
    hardware: &mut H,
) {
    if events.is_empty() {
        return;
    }
    let (kick, error) = cell.devices.input_events(
        device,
        events,
        &mut CellPhysical::new(hardware, cell.plan()),
    );
    if error.is_some() {
        cell.log_guest_fault(
            "virtio-input: malformed queue refused, the device needs a reset",
            0,
            hardware.counter(),
        );
    }
    crate::core::irq::kick_vcpus(cell, kick, hardware);
}

/// The frame `request` describes, if it lies wholly inside one of `cell`'s RAM regions.
fn checked_frame(cell: &Cell, request: &FrameRequest) -> Option<ScanoutFrame> {
    let length = u64::from(request.stride).checked_mul(u64::from(request.height))?;
    if length == 0 || request.stride < request.width.checked_mul(4)? {
        return None;
    }
    let address = cell.ipa_to_pa(GuestPhysAddr::new(request.base), length)?;
    Some(ScanoutFrame {
        address,
        width: request.width,
        height: request.height,
        stride: request.stride,
        fourcc: request.format.fourcc(),
    })
}

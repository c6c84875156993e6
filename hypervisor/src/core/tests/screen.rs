//! The screen and input: the banner on a switch, the front cell's checked frame on the scanout,
//! refused frames, the switch key, and a stopped cell's frame forgotten.

use std::sync::Arc;
use std::vec;
use std::vec::Vec;

use super::{BOARD, Fixture, KERNEL, build_with, only};
use crate::arch::fake::Event;
use crate::core::hardware::{InputEvent, ScanoutFrame};
use crate::core::screen::{FrameRefusal, Peripherals, PhysicalInput, banner_ms_from_bootargs};
use crate::dev::pl111::{FrameRequest, PixelFormat};
use crate::dev::virtio::input::InputConfig;
use crate::mem::addr::PhysAddr;

/// `linux` with a screen and one input device; the banner lasts `banner_ms`.
fn with_screen(banner_ms: u32) -> Fixture {
    let peripherals = Peripherals {
        screen: true,
        inputs: vec![PhysicalInput {
            intid: 32 + 16 + 31,
            config: Arc::new(InputConfig::default()),
        }],
        banner_ms: Some(banner_ms),
    };
    build_with(&BOARD, "linux", KERNEL, &peripherals)
        .unwrap_or_else(|(cell, error)| panic!("cell {cell}: {error}"))
}

fn scanouts(events: Vec<Event>) -> Vec<ScanoutFrame> {
    only(events, |event| matches!(event, Event::Scanout(_)))
        .into_iter()
        .filter_map(|event| match event {
            Event::Scanout(frame) => Some(frame),
            _ => None,
        })
        .collect()
}

/// A 640x480 XRGB frame at `base` (guest-physical).
fn frame_at(base: u64) -> FrameRequest {
    FrameRequest {
        base,
        width: 640,
        height: 480,
        stride: 640 * 4,
        format: PixelFormat::Xrgb8888,
    }
}

#[test]
fn a_switch_shows_the_banner_from_cellvisor_memory_then_the_cells_checked_frame() {
    let mut fixture = with_screen(0);
    let runtime = fixture.runtime;
    let screen = runtime.screen.as_ref().expect("the board has a screen");
    let corporate = fixture.cell("corporate");
    // Corporate's RAM is seen at 0x4000_0000 and lies at 0x9000_0000.
    screen
        .frame_changed(corporate, Some(frame_at(0x4100_0000)), &mut fixture.cpu0)
        .expect("inside its RAM");
    assert!(
        scanouts(fixture.cpu0.events()).is_empty(),
        "corporate is not on screen yet"
    );

    runtime.set_foreground(1, &mut fixture.cpu0);
    let banner = scanouts(fixture.cpu0.events());
    assert_eq!(banner.len(), 1, "{banner:?}");
    let ram = |address: PhysAddr| {
        runtime
            .cells
            .iter()
            .any(|cell| cell.plan().memory.iter().any(|r| r.physical.contains(address)))
    };
    assert!(
        !ram(banner[0].address),
        "the banner is in cellvisor's memory, not a cell's"
    );
    assert_eq!((banner[0].width, banner[0].height), (640, 480));
    assert!(
        fixture
            .cpu0
            .events()
            .iter()
            .any(|event| matches!(event, Event::ScreenTimer(Some(_)))),
        "the banner's end is armed"
    );

    fixture.board.clear_events();
    screen.timer_fired(&runtime.cells, &mut fixture.cpu0);
    let shown = scanouts(fixture.cpu0.events());
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0].address, PhysAddr::new(0x9100_0000));
    assert_eq!(shown[0].stride, 640 * 4);
}

#[test]
fn frames_outside_the_cell_or_straddling_its_end_are_refused_and_the_old_frame_stays() {
    let mut fixture = with_screen(0);
    let runtime = fixture.runtime;
    let screen = runtime.screen.as_ref().expect("a screen");
    let personal = fixture.cell("personal");
    screen
        .frame_changed(personal, Some(frame_at(0x6100_0000)), &mut fixture.cpu0)
        .expect("inside");
    runtime.set_foreground(1, &mut fixture.cpu0);
    runtime.set_foreground(0, &mut fixture.cpu0);
    screen.timer_fired(&runtime.cells, &mut fixture.cpu0);
    fixture.board.clear_events();

    // Personal's 768 MiB end at 0x9000_0000: a frame ending 4 KiB beyond it straddles the end.
    let frame_bytes = 640 * 4 * 480;
    for base in [
        0x9000_0000 - frame_bytes + 0x1000,
        0x9000_0000,
        0x4000_0000,
        0x0900_0000,
        u64::MAX - 0x1000,
    ] {
        assert_eq!(
            screen.frame_changed(personal, Some(frame_at(base)), &mut fixture.cpu0),
            Err(FrameRefusal::OutsideRam),
            "{base:#x}"
        );
    }
    assert!(scanouts(fixture.cpu0.events()).is_empty());
    // A frame that fits exactly at the end is fine.
    screen
        .frame_changed(
            personal,
            Some(frame_at(0x9000_0000 - frame_bytes)),
            &mut fixture.cpu0,
        )
        .expect("ends at the end of its RAM");
    assert_eq!(
        scanouts(fixture.cpu0.events())
            .first()
            .map(|frame| frame.address),
        Some(PhysAddr::new(0x9000_0000 - frame_bytes))
    );
}

#[test]
fn the_switch_key_switches_and_never_reaches_a_cell() {
    let mut fixture = with_screen(0);
    let runtime = fixture.runtime;
    let screen = runtime.screen.as_ref().expect("a screen");
    let key = |code: u16, value: u32| InputEvent {
        kind: 1,
        code,
        value,
    };
    let switch = screen.switch_key();
    assert!(!screen.route_input(&runtime.cells, 0, 0, &[key(30, 1), key(30, 0)], &mut fixture.cpu0));
    assert!(screen.route_input(&runtime.cells, 0, 0, &[key(switch, 1)], &mut fixture.cpu0));
    // Its release and auto-repeat do not switch again.
    assert!(!screen.route_input(
        &runtime.cells,
        1,
        0,
        &[key(switch, 2), key(switch, 0)],
        &mut fixture.cpu0
    ));
}

#[test]
fn a_stopped_cell_on_screen_leaves_it_for_its_banner() {
    let mut fixture = with_screen(0);
    let runtime = fixture.runtime;
    let screen = runtime.screen.as_ref().expect("a screen");
    let personal = fixture.cell("personal");
    screen
        .frame_changed(personal, Some(frame_at(0x6100_0000)), &mut fixture.cpu0)
        .expect("inside");
    runtime.set_foreground(1, &mut fixture.cpu0);
    runtime.set_foreground(0, &mut fixture.cpu0);
    screen.timer_fired(&runtime.cells, &mut fixture.cpu0);
    fixture.board.clear_events();
    screen.forget(personal, &mut fixture.cpu0);
    let shown = scanouts(fixture.cpu0.events());
    assert_eq!(shown.len(), 1);
    assert!(
        !personal
            .plan()
            .memory
            .iter()
            .any(|region| region.physical.contains(shown[0].address)),
        "the scanout left the stopped cell's RAM"
    );
    // Its next instance starts with no picture: the banner stays after the next switch.
    runtime.set_foreground(1, &mut fixture.cpu0);
    runtime.set_foreground(0, &mut fixture.cpu0);
    fixture.board.clear_events();
    screen.timer_fired(&runtime.cells, &mut fixture.cpu0);
    assert!(scanouts(fixture.cpu0.events()).is_empty());
}

#[test]
fn without_a_screen_nothing_is_scanned_out() {
    let mut fixture = super::fixture("linux");
    let runtime = fixture.runtime;
    runtime.set_foreground(1, &mut fixture.cpu0);
    assert!(scanouts(fixture.cpu0.events()).is_empty());
}

#[test]
fn the_banner_time_comes_from_the_command_line() {
    assert_eq!(banner_ms_from_bootargs("cellvisor.layout=linux"), None);
    assert_eq!(
        banner_ms_from_bootargs("cellvisor.banner_ms=4000 cellvisor.layout=linux"),
        Some(4000)
    );
    assert_eq!(banner_ms_from_bootargs("cellvisor.banner_ms=x"), None);
}

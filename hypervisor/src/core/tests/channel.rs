//! The channel between cells through the runtime: two fake drivers (one per Linux cell of layout
//! `linux`) program their virtio-vsock devices through the device bus, and the channel moves
//! their packets from one cell's RAM into the other's: an allowed connection request arrives,
//! a refused one is answered with a reset, the focus rule follows `set_foreground`, the kill
//! switch resets the connection, and a stopped cell's connections are reset with nothing of it
//! left queued.

use std::vec;
use std::vec::Vec;

use super::fixture;
use crate::arch::fake::FakeCpu;
use crate::console::manage::Command;
use crate::core::cell::Cell;
use crate::core::hardware::Machine;
use crate::core::lifecycle::AfterStop;
use crate::core::run::{Step, step};
use crate::core::runtime::Runtime;
use crate::dev::CellPhysical;
use crate::dev::mmio::AccessWidth;
use crate::dev::virtio::F_VERSION_1;
use crate::dev::virtio::mmio::{offset, status};
use crate::dev::virtio::vsock::{HEADER_SIZE, Header, TYPE_STREAM, op};
use crate::mem::addr::{GuestPhysAddr, PhysAddr};

const QUEUE_SIZE: u32 = 8;
/// Where each driver keeps its queues and buffers: this far into its cell's RAM.
const AREA: u64 = 0x0100_0000;
const PERSONAL_CID: u64 = 3;
const CORPORATE_CID: u64 = 4;

/// A fake virtio-vsock driver of one cell: rx queue 0 with [`QUEUE_SIZE`] buffers of 4 KiB, tx
/// queue 1, both split virtqueues in the cell's RAM.
struct Driver {
    cell: &'static Cell,
    /// Guest-physical base of the driver's area, and its physical address.
    ipa: u64,
    pa: u64,
    tx_avail: u16,
    rx_avail: u16,
    rx_used_seen: u16,
}

impl Driver {
    fn queue(&self, queue: u64) -> (u64, u64, u64) {
        let base = self.ipa + queue * 0x1_0000;
        (base, base + 0x1000, base + 0x2000)
    }

    fn rx_buffer(&self, n: u64) -> u64 {
        self.ipa + 0x4_0000 + n * 0x1000
    }

    fn tx_buffer(&self) -> u64 {
        self.ipa + 0x8_0000
    }

    fn to_pa(&self, ipa: u64) -> PhysAddr {
        PhysAddr::new(ipa - self.ipa + self.pa)
    }

    /// A register write, as a trapped store is emulated, then the channel's work for it.
    fn write(&self, runtime: &'static Runtime, cpu: &mut FakeCpu, at: u64, value: u32) {
        let window = self.cell.devices.vsock().expect("on the channel").window;
        let target = self
            .cell
            .devices
            .device_at(GuestPhysAddr::new(window.base().raw() + at))
            .expect("the vsock window");
        self.cell
            .devices
            .write(
                0,
                target,
                AccessWidth::Word,
                u64::from(value),
                &mut CellPhysical::new(cpu, &self.cell.plan),
                &mut |_| {},
            )
            .expect("a valid register write");
        if let Some(channel) = &runtime.channel {
            channel.written(&runtime.cells, self.cell.index(), cpu, &mut |_, _, _| {});
        }
    }

    fn put(&self, cpu: &mut FakeCpu, ipa: u64, bytes: &[u8]) {
        cpu.write_memory(self.to_pa(ipa), bytes);
    }

    fn get(&self, cpu: &mut FakeCpu, ipa: u64, length: usize) -> Vec<u8> {
        let mut bytes = vec![0; length];
        cpu.read_memory(self.to_pa(ipa), &mut bytes);
        bytes
    }

    fn descriptor(
        &self,
        cpu: &mut FakeCpu,
        queue: u64,
        index: u64,
        addr: u64,
        len: u32,
        flags: u16,
    ) {
        let (desc, _, _) = self.queue(queue);
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        self.put(cpu, desc + 16 * index, &raw);
    }

    /// Brings the device up (VERSION_1, both queues, DRIVER_OK) and posts every rx buffer.
    fn start(cell: &'static Cell, runtime: &'static Runtime, cpu: &mut FakeCpu) -> Driver {
        let ipa = cell.plan.memory[0].guest_base.raw() + AREA;
        let pa = cell.plan.memory[0].physical.base().raw() + AREA;
        let driver = Driver {
            cell,
            ipa,
            pa,
            tx_avail: 0,
            rx_avail: QUEUE_SIZE as u16,
            rx_used_seen: 0,
        };
        driver.write(
            runtime,
            cpu,
            offset::STATUS,
            status::ACKNOWLEDGE | status::DRIVER,
        );
        driver.write(runtime, cpu, offset::DRIVER_FEATURES_SEL, 1);
        driver.write(
            runtime,
            cpu,
            offset::DRIVER_FEATURES,
            (F_VERSION_1 >> 32) as u32,
        );
        let features_ok = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        driver.write(runtime, cpu, offset::STATUS, features_ok);
        for queue in 0..2u64 {
            let (desc, avail, used) = driver.queue(queue);
            driver.write(runtime, cpu, offset::QUEUE_SEL, queue as u32);
            driver.write(runtime, cpu, offset::QUEUE_NUM, QUEUE_SIZE);
            for (register, address) in [
                (offset::QUEUE_DESC_LOW, desc),
                (offset::QUEUE_DRIVER_LOW, avail),
                (offset::QUEUE_DEVICE_LOW, used),
            ] {
                driver.write(runtime, cpu, register, address as u32);
                driver.write(runtime, cpu, register + 4, (address >> 32) as u32);
            }
            driver.write(runtime, cpu, offset::QUEUE_READY, 1);
        }
        // Every rx descriptor is one device-writable 4 KiB buffer, all offered.
        let (_, avail, _) = driver.queue(0);
        for n in 0..u64::from(QUEUE_SIZE) {
            driver.descriptor(cpu, 0, n, driver.rx_buffer(n), 0x1000, 2);
            driver.put(cpu, avail + 4 + 2 * n, &(n as u16).to_le_bytes());
        }
        driver.put(cpu, avail + 2, &(QUEUE_SIZE as u16).to_le_bytes());
        driver.write(
            runtime,
            cpu,
            offset::STATUS,
            features_ok | status::DRIVER_OK,
        );
        driver.write(runtime, cpu, offset::QUEUE_NOTIFY, 0);
        driver
    }

    /// Sends one packet (header and payload in one descriptor) and notifies the tx queue.
    fn send(
        &mut self,
        runtime: &'static Runtime,
        cpu: &mut FakeCpu,
        header: Header,
        payload: &[u8],
    ) {
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(payload);
        let slot = u64::from(self.tx_avail % QUEUE_SIZE as u16);
        let buffer = self.tx_buffer() + slot * 0x1000;
        self.put(cpu, buffer, &bytes);
        self.descriptor(cpu, 1, slot, buffer, bytes.len() as u32, 0);
        let (_, avail, _) = self.queue(1);
        self.put(cpu, avail + 4 + 2 * slot, &(slot as u16).to_le_bytes());
        self.tx_avail = self.tx_avail.wrapping_add(1);
        self.put(cpu, avail + 2, &self.tx_avail.to_le_bytes());
        self.write(runtime, cpu, offset::QUEUE_NOTIFY, 1);
    }

    /// The headers the device wrote into rx buffers since the last call; each buffer is offered
    /// again (the device sees it at its next delivery, as it reads the available index then).
    fn received(&mut self, cpu: &mut FakeCpu) -> Vec<Header> {
        let (_, avail, used) = self.queue(0);
        let index = u16::from_le_bytes(self.get(cpu, used + 2, 2).try_into().unwrap());
        let mut headers = Vec::new();
        while self.rx_used_seen != index {
            let slot = u64::from(self.rx_used_seen % QUEUE_SIZE as u16);
            let element = self.get(cpu, used + 4 + 8 * slot, 4);
            let id = u32::from_le_bytes(element.try_into().unwrap());
            let bytes = self.get(cpu, self.rx_buffer(u64::from(id)), HEADER_SIZE);
            headers.push(Header::parse(&bytes).expect("a whole header"));
            self.rx_used_seen = self.rx_used_seen.wrapping_add(1);
            let slot = u64::from(self.rx_avail % QUEUE_SIZE as u16);
            self.put(cpu, avail + 4 + 2 * slot, &(id as u16).to_le_bytes());
            self.rx_avail = self.rx_avail.wrapping_add(1);
            self.put(cpu, avail + 2, &self.rx_avail.to_le_bytes());
        }
        headers
    }
}

fn request(src_cid: u64, dst_cid: u64, src_port: u32, dst_port: u32) -> Header {
    Header {
        src_cid,
        dst_cid,
        src_port,
        dst_port,
        kind: TYPE_STREAM,
        op: op::REQUEST,
        buf_alloc: 0x4_0000,
        ..Header::default()
    }
}

#[test]
fn packets_go_from_one_cells_ram_into_the_others_under_the_policy() {
    let mut fixture = fixture("linux");
    let runtime = fixture.runtime;
    let mut cpu2 = fixture.board.cpu(2);
    let mut personal = Driver::start(fixture.cell("personal"), runtime, &mut fixture.cpu0);
    let mut corporate = Driver::start(fixture.cell("corporate"), runtime, &mut cpu2);
    let channel = runtime
        .channel
        .as_ref()
        .expect("layout linux has a channel");
    let lines = channel.lines(&runtime.cells);
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("personal     3      on       yes")),
        "{lines:#?}"
    );

    // personal -> corporate:6000 while personal is in front (it is at boot): into corporate's
    // RAM (at 0x9000_0000, seen at 0x4000_0000), unchanged.
    let paste = request(PERSONAL_CID, CORPORATE_CID, 1024, 6000);
    personal.send(runtime, &mut fixture.cpu0, paste, &[]);
    assert_eq!(corporate.received(&mut cpu2), [paste]);
    assert!(personal.received(&mut fixture.cpu0).is_empty());

    // Corporate accepts; personal gets the response.
    let accept = Header {
        op: op::RESPONSE,
        ..paste.reset_reply()
    };
    let accept = Header {
        buf_alloc: 0x4_0000,
        ..accept
    };
    corporate.send(runtime, &mut cpu2, accept, &[]);
    let answers = personal.received(&mut fixture.cpu0);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].op, op::RESPONSE);

    // A port no flow names: personal itself gets the reset, corporate nothing.
    personal.send(
        runtime,
        &mut fixture.cpu0,
        request(PERSONAL_CID, CORPORATE_CID, 1025, 5000),
        &[],
    );
    let answers = personal.received(&mut fixture.cpu0);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!((answers[0].op, answers[0].dst_port), (op::RST, 1025));
    assert!(corporate.received(&mut cpu2).is_empty());

    // Behind corporate, personal's paste request is refused too.
    runtime.set_foreground(1, &mut fixture.cpu0);
    personal.send(
        runtime,
        &mut fixture.cpu0,
        request(PERSONAL_CID, CORPORATE_CID, 1026, 6000),
        &[],
    );
    assert_eq!(personal.received(&mut fixture.cpu0)[0].op, op::RST);
    assert!(corporate.received(&mut cpu2).is_empty());
    runtime.set_foreground(0, &mut fixture.cpu0);

    // The kill switch: the open connection is reset at both ends, corporate's traffic refused.
    let outcome = runtime.manage(&Command::ChannelOff("corporate".into()), &mut fixture.cpu0);
    assert_eq!(
        outcome.lines,
        [
            "channel off corporate: done, 1 connection reset; its traffic is refused until \
          `channel on corporate`"
        ]
    );
    assert_eq!(personal.received(&mut fixture.cpu0)[0].op, op::RST);
    assert_eq!(corporate.received(&mut cpu2)[0].op, op::RST);
    let badge = request(CORPORATE_CID, PERSONAL_CID, 2000, 5000);
    corporate.send(runtime, &mut cpu2, badge, &[]);
    assert_eq!(corporate.received(&mut cpu2)[0].op, op::RST);
    assert!(personal.received(&mut fixture.cpu0).is_empty());
    runtime.manage(&Command::ChannelOn("corporate".into()), &mut fixture.cpu0);
    let badge = Header {
        src_port: 2001,
        ..badge
    };
    corporate.send(runtime, &mut cpu2, badge, &[]);
    assert_eq!(personal.received(&mut fixture.cpu0), [badge]);
    assert_eq!(channel.refused(1), Some(1), "corporate's one refused badge");
    assert_eq!(
        channel.refused(0),
        Some(2),
        "personal's two refused requests"
    );

    // Corporate stops with the badge's connection half open: personal gets the reset, and
    // corporate's device is off the channel before its RAM is touched.
    let outcome = runtime.manage(&Command::Stop("corporate".into()), &mut fixture.cpu0);
    assert_eq!(outcome.lines, ["stop corporate: requested"]);
    assert_eq!(step(runtime, &mut cpu2), Step::Lifecycle(AfterStop::Off));
    let answers = personal.received(&mut fixture.cpu0);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!((answers[0].op, answers[0].dst_port), (op::RST, 5000));
    let lines = channel.lines(&runtime.cells);
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("corporate    4      on       no      0")),
        "{lines:#?}"
    );
    // A request to the stopped cell is reset at once, and not logged as a policy refusal.
    personal.send(
        runtime,
        &mut fixture.cpu0,
        request(PERSONAL_CID, CORPORATE_CID, 1027, 6000),
        &[],
    );
    assert_eq!(personal.received(&mut fixture.cpu0)[0].op, op::RST);
}

#[test]
fn a_flood_of_one_refusal_does_not_hide_the_first_of_another() {
    let mut fixture = fixture("linux");
    let runtime = fixture.runtime;
    let mut cpu2 = fixture.board.cpu(2);
    let mut personal = Driver::start(fixture.cell("personal"), runtime, &mut fixture.cpu0);
    let _corporate = Driver::start(fixture.cell("corporate"), runtime, &mut cpu2);
    super::console();
    // A port scan: far more "no flow" refusals than the log lets through at once.
    for port in 0..40 {
        personal.send(
            runtime,
            &mut fixture.cpu0,
            request(PERSONAL_CID, CORPORATE_CID, 31_000, 7000 + port),
            &[],
        );
        assert_eq!(personal.received(&mut fixture.cpu0)[0].op, op::RST);
    }
    // Then, at once, a paste while corporate is in front: another kind, logged anyway.
    runtime.set_foreground(1, &mut fixture.cpu0);
    personal.send(
        runtime,
        &mut fixture.cpu0,
        request(PERSONAL_CID, CORPORATE_CID, 31_001, 6000),
        &[],
    );
    assert_eq!(personal.received(&mut fixture.cpu0)[0].op, op::RST);
    runtime.set_foreground(0, &mut fixture.cpu0);
    let text = super::console();
    let scan = text
        .lines()
        .filter(|line| line.contains("channel: refused personal:31000 -> corporate:"))
        .count();
    assert!(
        (1..40).contains(&scan),
        "the scan's lines are rate-limited: {scan}"
    );
    assert!(
        text.contains("channel: refused personal:31001 -> corporate:6000: flow needs focus"),
        "{text}"
    );
    assert_eq!(
        runtime
            .channel
            .as_ref()
            .and_then(|channel| channel.refused(0)),
        Some(41)
    );
}

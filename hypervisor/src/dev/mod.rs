//! The per-cell device bus: the devices cellvisor emulates or forwards for a cell, behind one
//! `enum`, and the one place a trapped access is routed to its device.
//!
//! Lock order: the `uart` lock, then the `vgic` lock (the vUART's interrupt line is driven into
//! the vGIC under the UART lock so line changes arrive in order); under the `uart` lock the cell's
//! console output ring's lock (`console::ring`). The terminal is taken only after the `uart` lock
//! is released (`console::logger::drain`).
#![forbid(unsafe_code)]

pub mod gic;
pub mod guest_ram;
pub mod mmio;
pub mod passthrough;
pub mod pci;
pub mod pl111;
pub mod vgic;
pub mod virtio;
pub mod vuart;

use spin::Mutex;

use crate::core::hardware::Machine;
use crate::core::pci::Ecam;
use crate::dev::gic::SPI_BASE_INTID;
use crate::mem::addr::GuestPhysAddr;
use crate::mem::range::IpaRange;
use crate::setup::partition::CellPlan;
use mmio::{AccessWidth, MmioError};
use passthrough::{Forward, PassthroughPlan};
use vgic::{Delivery, PhysicalDistributor, Trigger, VcpuSet, Vgic, VgicError};
use vuart::VirtualUart;

/// An emulated device in a cell's guest-physical space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The cell's PL011.
    Uart,
    /// The GIC distributor.
    Distributor,
    /// The cell's redistributor frames.
    Redistributors,
    /// A page shared by passthrough devices of several cells: forwarded when the bytes are the
    /// cell's, read-as-zero otherwise.
    Passthrough,
    /// The cell's PCI configuration space (its ECAM window): filtered by [`pci::PciBus`].
    PciConfig,
    /// The cell's emulated PL111 CLCD controller (its screen).
    Display,
    /// The cell's emulated virtio-input device for the `n`-th physical input device.
    Input(usize),
    /// The cell's emulated virtio-vsock device (its end of the channel).
    Vsock,
}

/// A cell's emulated PL111: its window and registers. Its frame is scanned out while the cell is
/// in front (`core::screen`).
pub struct EmulatedDisplay {
    /// Where the cell sees it.
    pub window: IpaRange,
    /// The panel's width in pixels.
    pub width: u32,
    /// The panel's height in pixels.
    pub height: u32,
    /// Its registers.
    pub pl111: Mutex<pl111::Pl111>,
}

/// A cell's emulated virtio-input device, fed the events of one physical input device while the
/// cell is in front.
pub struct EmulatedInput {
    /// Where the cell sees its virtio-mmio registers.
    pub window: IpaRange,
    /// Its interrupt (a virtual SPI of the cell).
    pub intid: u32,
    /// The transport and device.
    pub device: Mutex<virtio::mmio::VirtioMmio<virtio::input::VirtioInput>>,
    /// Rate-limits the log of queues the guest broke.
    pub broken: crate::console::ratelimit::RateLimiter,
}

/// A cell's emulated virtio-vsock device, its end of the channel between cells
/// (`core::channel` moves its packets).
pub struct EmulatedVsock {
    /// Where the cell sees its virtio-mmio registers.
    pub window: IpaRange,
    /// Its interrupt (a virtual SPI of the cell).
    pub intid: u32,
    /// The transport and device.
    pub device: crate::arch::RelaxedMutex<virtio::mmio::VirtioMmio<virtio::vsock::VsockDevice>>,
    /// Every cell on the channel, by name and CID (the cell's device tree lists them).
    pub cells: alloc::vec::Vec<(&'static str, u32)>,
    /// Rate-limits the log of queues the guest broke.
    pub broken: crate::console::ratelimit::RateLimiter,
}

/// A cell's PCI host: the ECAM window it sees, the host's physical ECAM, and the filter.
pub struct CellPciHost {
    /// The cell's ECAM window (bus 0).
    pub window: IpaRange,
    /// Physical address of the host's bus 0 ECAM.
    pub physical_ecam: u64,
    /// The cell's view of its functions.
    pub bus: Mutex<pci::PciBus>,
    /// The functions as prepared at boot, with the board's reset for each (the stop path).
    pub functions: alloc::vec::Vec<(pci::CellFunction, crate::board::PciReset)>,
}

/// Where a trapped access lands: the device, the offset into its window and the IPA itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The device.
    pub device: Device,
    /// Offset of the access into the device's window (0 for a passthrough page).
    pub offset: u64,
    /// The accessed guest-physical address.
    pub ipa: GuestPhysAddr,
}

/// The guest-physical windows of a cell's emulated devices.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    /// The vUART's frame.
    pub uart: IpaRange,
    /// The distributor's frame.
    pub distributor: IpaRange,
    /// The cell's GICv3 redistributor frames (one per vCPU); `None` on a GICv2, whose
    /// distributor frame is then the GICv2 one and whose CPU interface is not emulated (the
    /// hardware GICV frame is mapped there).
    pub redistributors: Option<IpaRange>,
}

/// A cell's devices: their windows and their state.
pub struct DeviceBus {
    windows: Windows,
    uart: Mutex<VirtualUart>,
    uart_intid: u32,
    vgic: Mutex<Vgic>,
    passthrough: PassthroughPlan,
    pci: Option<CellPciHost>,
    display: Option<EmulatedDisplay>,
    inputs: alloc::vec::Vec<EmulatedInput>,
    vsock: Option<EmulatedVsock>,
}

/// The machine narrowed to one cell, for its devices: the vGIC's physical distributor maps vCPU
/// indices to physical CPUs through the cell's plan.
pub struct CellPhysical<'a, M: Machine + ?Sized> {
    machine: &'a mut M,
    plan: &'a CellPlan,
    /// Whether the physical CPU of a vCPU holds that vCPU's state (its timers' PPIs are the
    /// vCPU's); `None`: always (no CPU of the cell is time-shared, or none of it runs).
    holds: Option<&'a dyn Fn(usize) -> bool>,
}

impl<'a, M: Machine + ?Sized> CellPhysical<'a, M> {
    /// The machine as the cell of `plan` sees it.
    pub fn new(machine: &'a mut M, plan: &'a CellPlan) -> Self {
        Self {
            machine,
            plan,
            holds: None,
        }
    }

    /// As [`CellPhysical::new`], for a cell whose vCPUs may time-share their CPUs with other
    /// cells: `holds(vcpu)` says whether the vCPU's CPU holds its state now. A PPI of a vCPU
    /// whose CPU holds another cell's vCPU is that other vCPU's, so it is neither sampled nor
    /// deactivated for this cell (docs/architecture.md "Time-sharing").
    pub fn time_shared(
        machine: &'a mut M,
        plan: &'a CellPlan,
        holds: &'a dyn Fn(usize) -> bool,
    ) -> Self {
        Self {
            machine,
            plan,
            holds: Some(holds),
        }
    }

    /// Whether private interrupt `intid` of `vcpu` is another vCPU's on its CPU now.
    fn private_elsewhere(&self, intid: u32, vcpu: usize) -> bool {
        intid < SPI_BASE_INTID && self.holds.is_some_and(|holds| !holds(vcpu))
    }
}

impl<M: Machine + ?Sized> PhysicalDistributor for CellPhysical<'_, M> {
    fn set_enabled(&mut self, intid: u32, enabled: bool) {
        self.machine.spi_set_enabled(intid, enabled);
    }

    fn set_priority(&mut self, intid: u32, priority: u8) {
        self.machine.spi_set_priority(intid, priority);
    }

    fn set_trigger(&mut self, intid: u32, trigger: Trigger) {
        self.machine
            .spi_set_edge_triggered(intid, trigger == Trigger::Edge);
    }

    fn route_to(&mut self, intid: u32, vcpu: usize) {
        if let Some(cpu) = self.plan.physical_cpu_of(vcpu) {
            self.machine.spi_route(intid, cpu);
        }
    }

    fn deactivate(&mut self, intid: u32, vcpu: usize) {
        if self.private_elsewhere(intid, vcpu) {
            return;
        }
        if let Some(cpu) = self.plan.physical_cpu_of(vcpu) {
            self.machine.deactivate_interrupt(intid, cpu);
        }
    }

    fn line_asserted(&mut self, intid: u32, vcpu: usize) -> bool {
        // A vCPU the cell does not have, or one descheduled from its CPU, has no line to sample
        // now; keep the instance (it is sampled again where its CPU holds it).
        if self.private_elsewhere(intid, vcpu) {
            return true;
        }
        self.plan
            .physical_cpu_of(vcpu)
            .is_none_or(|cpu| self.machine.interrupt_line_asserted(intid, cpu))
    }
}

impl DeviceBus {
    /// A bus with the given windows, vGIC and passthrough plan; `uart_intid` is the vUART's SPI.
    pub fn new(
        windows: Windows,
        uart_intid: u32,
        vgic: Vgic,
        passthrough: PassthroughPlan,
    ) -> Self {
        Self {
            windows,
            uart: Mutex::new(VirtualUart::new()),
            uart_intid,
            vgic: Mutex::new(vgic),
            passthrough,
            pci: None,
            display: None,
            inputs: alloc::vec::Vec::new(),
            vsock: None,
        }
    }

    /// The bus with the cell's end of the channel added (its window must not overlap another
    /// window).
    pub fn with_vsock(mut self, vsock: EmulatedVsock) -> Self {
        self.vsock = Some(vsock);
        self
    }

    /// The cell's end of the channel, if it is on one.
    pub fn vsock(&self) -> Option<&EmulatedVsock> {
        self.vsock.as_ref()
    }

    /// What the cell's device tree says of its end of the channel.
    pub fn guest_channel(&self) -> Option<crate::setup::guest_fdt::GuestChannel> {
        let vsock = self.vsock.as_ref()?;
        Some(crate::setup::guest_fdt::GuestChannel {
            window: vsock.window.to_board(),
            intid: vsock.intid,
            cells: vsock.cells.clone(),
        })
    }

    /// Drives the channel device's interrupt line from its transport's state; returns the
    /// vCPUs to kick (any: the caller may run on another cell's CPU).
    pub fn vsock_line(
        &self,
        device: &virtio::mmio::VirtioMmio<virtio::vsock::VsockDevice>,
    ) -> VcpuSet {
        match &self.vsock {
            Some(vsock) => self.set_line(vsock.intid, device.interrupt_level(), usize::MAX),
            None => VcpuSet::empty(),
        }
    }

    /// The bus with the cell's screen and input devices added (their windows must not overlap
    /// another window).
    pub fn with_display(
        mut self,
        display: EmulatedDisplay,
        inputs: alloc::vec::Vec<EmulatedInput>,
    ) -> Self {
        self.display = Some(display);
        self.inputs = inputs;
        self
    }

    /// What the cell's device tree says of its screen and input devices.
    pub fn guest_display(&self) -> Option<crate::setup::guest_fdt::GuestDisplay> {
        let display = self.display.as_ref()?;
        let range = |window: &IpaRange| window.to_board();
        Some(crate::setup::guest_fdt::GuestDisplay {
            window: range(&display.window),
            width: display.width,
            height: display.height,
            inputs: self
                .inputs
                .iter()
                .map(|input| (range(&input.window), input.intid))
                .collect(),
        })
    }

    /// The frame the cell's PL111 shows now, if it has one and shows a frame.
    pub fn display_frame(&self) -> Option<Option<pl111::FrameRequest>> {
        self.display
            .as_ref()
            .map(|display| display.pl111.lock().frame())
    }

    /// The cell's emulated input devices.
    pub fn inputs(&self) -> &[EmulatedInput] {
        &self.inputs
    }

    /// Hands `events` of physical input device `n` to the cell's emulated device for it, and
    /// drives its interrupt line. Returns the vCPUs to kick, or why the device broke (the guest's
    /// queue was malformed: the device now wants a reset, and the caller logs it).
    pub fn input_events<M: Machine + ?Sized>(
        &self,
        n: usize,
        events: &[crate::core::hardware::InputEvent],
        physical: &mut CellPhysical<'_, M>,
    ) -> (VcpuSet, Option<virtio::VirtioError>) {
        let Some(input) = self.inputs.get(n) else {
            return (VcpuSet::empty(), None);
        };
        let mut device = input.device.lock();
        let mut memory = guest_ram::CellRam::new(physical.plan, &mut *physical.machine);
        for event in events {
            device.device_mut().push_event(*event);
        }
        device.run(&mut memory, |input, queues, memory| {
            match queues.get_mut(0) {
                Some(eventq) => input.deliver(eventq, memory),
                None => Ok(false),
            }
        });
        let error = device.take_error();
        let kick = self.set_line(input.intid, device.interrupt_level(), usize::MAX);
        (kick, error)
    }

    /// The bus with the cell's PCI host added (its ECAM window must not overlap another window).
    pub fn with_pci(mut self, pci: CellPciHost) -> Self {
        self.pci = Some(pci);
        self
    }

    /// The cell's PCI host, if it owns PCI functions.
    pub fn pci(&self) -> Option<&CellPciHost> {
        self.pci.as_ref()
    }

    /// The device at `ipa`, if any, and the offset into its window.
    pub fn device_at(&self, ipa: GuestPhysAddr) -> Option<Target> {
        let inside = |window: &IpaRange| window.offset_of(ipa);
        let (device, offset) = if let Some(offset) = inside(&self.windows.uart) {
            (Device::Uart, offset)
        } else if let Some(offset) = inside(&self.windows.distributor) {
            (Device::Distributor, offset)
        } else if let Some(offset) = self.windows.redistributors.as_ref().and_then(inside) {
            (Device::Redistributors, offset)
        } else if self.passthrough.is_trapped(ipa) {
            (Device::Passthrough, 0)
        } else if let Some(offset) = self.pci.as_ref().and_then(|pci| inside(&pci.window)) {
            (Device::PciConfig, offset)
        } else if let Some(offset) = self.display.as_ref().and_then(|d| inside(&d.window)) {
            (Device::Display, offset)
        } else if let Some((n, offset)) = self
            .inputs
            .iter()
            .enumerate()
            .find_map(|(n, input)| inside(&input.window).map(|offset| (n, offset)))
        {
            (Device::Input(n), offset)
        } else if let Some(offset) = self.vsock.as_ref().and_then(|v| inside(&v.window)) {
            (Device::Vsock, offset)
        } else {
            return None;
        };
        Some(Target {
            device,
            offset,
            ipa,
        })
    }

    /// The cell's vGIC (lock order: after the UART's lock).
    pub fn vgic(&self) -> spin::MutexGuard<'_, Vgic> {
        self.vgic.lock()
    }

    /// The cell's passthrough plan.
    pub fn passthrough(&self) -> &PassthroughPlan {
        &self.passthrough
    }

    /// Emulates a read of `width` at `target` by `vcpu`; `physical` is the machine as this bus's
    /// cell sees it (passthrough registers, and the physical lines the vGIC samples).
    /// Returns the value and the vCPUs that now have an interrupt to take (to be kicked).
    #[inline(always)]
    pub fn read<M: Machine + ?Sized>(
        &self,
        vcpu: usize,
        Target {
            device,
            offset,
            ipa,
        }: Target,
        width: AccessWidth,
        physical: &mut CellPhysical<'_, M>,
    ) -> Result<(u64, VcpuSet), MmioError> {
        match device {
            Device::Uart => {
                let mut uart = self.uart.lock();
                let value = uart.read(offset, width)?;
                // Reading DR can lower the receive interrupt; update the line under the UART lock.
                let kick = self.set_uart_line(&uart, vcpu);
                Ok((u64::from(value), kick))
            }
            Device::Distributor => {
                let mut vgic = self.vgic.lock();
                let value = if self.windows.redistributors.is_some() {
                    vgic.distributor_read(offset, width, physical)
                } else {
                    vgic.distributor_v2_read(vcpu, offset, width, physical)
                }
                .map_err(vgic_error)?;
                Ok((value, VcpuSet::empty()))
            }
            Device::Redistributors => {
                let value = self
                    .vgic
                    .lock()
                    .redistributor_read(offset, width, physical)
                    .map_err(vgic_error)?;
                Ok((value, VcpuSet::empty()))
            }
            Device::Passthrough => match self.passthrough.forward(ipa, width) {
                Forward::Device(address) => physical
                    .machine
                    .device_read(address, width)
                    .map(|value| (value, VcpuSet::empty()))
                    .map_err(|_| MmioError::DeviceAbort),
                Forward::ReadAsZero => Ok((0, VcpuSet::empty())),
            },
            Device::PciConfig => {
                let Some(pci) = &self.pci else {
                    return Err(MmioError::BadOffset);
                };
                let mut ecam = Ecam::at(physical.machine, pci.physical_ecam);
                let value = pci.bus.lock().read(offset, width, &mut ecam)?;
                Ok((value, VcpuSet::empty()))
            }
            Device::Display => {
                let display = self.display.as_ref().ok_or(MmioError::BadOffset)?;
                let value = display.pl111.lock().read(offset, width)?;
                Ok((u64::from(value), VcpuSet::empty()))
            }
            Device::Input(n) => {
                let input = self.inputs.get(n).ok_or(MmioError::BadOffset)?;
                let mut device = input.device.lock();
                let value = device.read(offset, width)?;
                // Reading never changes the line.
                Ok((u64::from(value), VcpuSet::empty()))
            }
            Device::Vsock => {
                let vsock = self.vsock.as_ref().ok_or(MmioError::BadOffset)?;
                let value = vsock.device.lock().read(offset, width)?;
                Ok((u64::from(value), VcpuSet::empty()))
            }
        }
    }

    /// Emulates a write of `value` (`width`) at `target` by `vcpu`. Returns the vCPUs that now have an interrupt to take (to be
    /// kicked). Bytes the guest sends to its vUART go to `output` (under the UART lock: the cell's
    /// output ring), and once the UART lock is released the console moves output to the terminal
    /// (`console::logger::drain`: bounded, with a try-lock, never waiting); `physical` is the
    /// machine as this bus's cell sees it.
    #[inline(always)]
    pub fn write<M: Machine + ?Sized>(
        &self,
        vcpu: usize,
        Target {
            device,
            offset,
            ipa,
        }: Target,
        width: AccessWidth,
        value: u64,
        physical: &mut CellPhysical<'_, M>,
        output: &mut dyn FnMut(u8),
    ) -> Result<VcpuSet, MmioError> {
        match device {
            Device::Uart => {
                let kick = {
                    let mut uart = self.uart.lock();
                    uart.write(offset, width, value as u32, output)?;
                    self.set_uart_line(&uart, vcpu)
                };
                // No cell lock is held from here on.
                crate::console::logger::drain();
                Ok(kick)
            }
            Device::Distributor if self.windows.redistributors.is_some() => self
                .vgic
                .lock()
                .distributor_write(offset, width, value, physical)
                .map_err(vgic_error),
            Device::Distributor => self
                .vgic
                .lock()
                .distributor_v2_write(vcpu, offset, width, value, physical)
                .map_err(vgic_error),
            Device::Redistributors => self
                .vgic
                .lock()
                .redistributor_write(offset, width, value, physical)
                .map_err(vgic_error),
            Device::Passthrough => {
                if let Forward::Device(address) = self.passthrough.forward(ipa, width) {
                    physical
                        .machine
                        .device_write(address, width, value)
                        .map_err(|_| MmioError::DeviceAbort)?;
                }
                Ok(VcpuSet::empty())
            }
            Device::PciConfig => {
                let Some(pci) = &self.pci else {
                    return Err(MmioError::BadOffset);
                };
                let mut ecam = Ecam::at(physical.machine, pci.physical_ecam);
                pci.bus.lock().write(offset, width, value, &mut ecam)?;
                Ok(VcpuSet::empty())
            }
            Device::Display => {
                let display = self.display.as_ref().ok_or(MmioError::BadOffset)?;
                // The caller repoints the scanout if the frame changed (`core::screen`).
                display.pl111.lock().write(offset, width, value as u32)?;
                Ok(VcpuSet::empty())
            }
            Device::Input(n) => {
                let input = self.inputs.get(n).ok_or(MmioError::BadOffset)?;
                let mut device = input.device.lock();
                let mut memory = guest_ram::CellRam::new(physical.plan, &mut *physical.machine);
                device.write(offset, width, value as u32, &mut memory)?;
                if let Some(error) = device.take_error() {
                    let (now, frequency) = physical.machine.counter();
                    if let Some(hidden) = input.broken.allow(now, frequency) {
                        log::warn!(
                            "cell {}: virtio-input {n}: {error}: refused, the device needs a \
                             reset{}",
                            physical.plan.name,
                            crate::console::ratelimit::hidden_note(hidden)
                        );
                    }
                }
                Ok(self.set_line(input.intid, device.interrupt_level(), vcpu))
            }
            Device::Vsock => {
                // Registers only: the queue work a notification asks for needs the channel's
                // switch, which the caller runs next (`core::channel::written`).
                let vsock = self.vsock.as_ref().ok_or(MmioError::BadOffset)?;
                let mut device = vsock.device.lock();
                let mut memory = guest_ram::CellRam::new(physical.plan, &mut *physical.machine);
                device.write(offset, width, value as u32, &mut memory)?;
                Ok(self.set_line(vsock.intid, device.interrupt_level(), vcpu))
            }
        }
    }

    /// Drives the vUART's interrupt line into the vGIC. Called with the UART lock held so line
    /// changes reach the vGIC in the order they happened (lock order: uart, then vgic).
    fn set_uart_line(&self, uart: &VirtualUart, current_vcpu: usize) -> VcpuSet {
        let mut kick = VcpuSet::empty();
        if let Ok(Delivery::Ready { vcpu }) = self
            .vgic
            .lock()
            .set_level(self.uart_intid, uart.interrupt_level())
            && vcpu != current_vcpu
        {
            kick.insert(vcpu);
        }
        kick
    }

    /// Drives virtual SPI `intid` to `level`; returns the vCPU to kick if it is not `current_vcpu`.
    fn set_line(&self, intid: u32, level: bool, current_vcpu: usize) -> VcpuSet {
        let mut kick = VcpuSet::empty();
        if let Ok(Delivery::Ready { vcpu }) = self.vgic.lock().set_level(intid, level)
            && vcpu != current_vcpu
        {
            kick.insert(vcpu);
        }
        kick
    }

    /// A byte typed at the console while this cell has the focus. Returns the vCPUs to kick.
    pub fn console_input(&self, byte: u8) -> VcpuSet {
        let mut uart = self.uart.lock();
        uart.push_input(byte);
        self.set_uart_line(&uart, usize::MAX)
    }

    /// Resets every device to its power-on state (restart, start); `physical` is the machine as
    /// this bus's cell sees it.
    pub fn reset<M: Machine + ?Sized>(&self, physical: &mut CellPhysical<'_, M>) {
        let mut uart = self.uart.lock();
        uart.reset();
        self.vgic.lock().reset(physical);
        if let Some(pci) = &self.pci {
            pci.bus.lock().reset();
        }
        if let Some(display) = &self.display {
            display.pl111.lock().reset();
        }
        for input in &self.inputs {
            input.device.lock().reset();
            let _ = self.vgic.lock().set_level(input.intid, false);
        }
        if let Some(vsock) = &self.vsock {
            vsock.device.lock().reset();
            let _ = self.vgic.lock().set_level(vsock.intid, false);
        }
    }
}

fn vgic_error(error: VgicError) -> MmioError {
    match error {
        VgicError::Unaligned => MmioError::Unaligned,
        VgicError::UnsupportedWidth => MmioError::BadWidth,
        _ => MmioError::BadOffset,
    }
}

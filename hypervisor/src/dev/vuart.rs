//! An emulated Arm PL011 UART per cell.
#![forbid(unsafe_code)]
//!
//! The model is what Linux's `amba-pl011` driver and the `pl011` earlycon need, and it identifies
//! itself like QEMU's PL011 (PrimeCell ID 0xB105F00D, PeriphID 0x00141011: revision 1, so Linux
//! uses a 16-entry FIFO). Transmission is instant: every byte written to DR goes straight to the
//! caller's `out` (or, in loopback mode, to the receive FIFO), so the transmit FIFO is always empty
//! (FR.TXFE = 1, FR.TXFF = 0, FR.BUSY = 0) and TXRIS is always asserted; Linux masks TXIM when it
//! has nothing to send. Receive data arrives through [`Pl011::push_input`].
//!
//! Interrupts (level, [`Pl011::interrupt_level`] = RIS & IMSC != 0):
//! - RXRIS while the receive FIFO holds at least the IFLS trigger level (1 entry with FIFOs off);
//! - RTRIS ("receive timeout") from the arrival of a byte until the FIFO is empty or the guest
//!   clears it through ICR: without a baud clock, "no more data for 32 bit periods" is taken to be
//!   "immediately", which is what a driver draining the FIFO on RTIS expects;
//! - TXRIS always;
//! - modem and error interrupts never (no line errors are modelled).
//!
//! Accesses may be 8, 16 or 32 bits wide and must be naturally aligned; narrower accesses see the
//! corresponding byte lanes of the 32-bit register. 64-bit accesses, offsets outside the 4 KiB
//! window and misaligned accesses are errors; reserved offsets inside the window read as zero and
//! ignore writes, as on the real part.

use alloc::collections::VecDeque;

use tock_registers::{LocalRegisterCopy, register_bitfields};

use crate::dev::mmio::{AccessWidth, MmioError};

register_bitfields![u32,
    /// UARTFR, the flag register.
    FR [
        /// Ring indicator.
        RI OFFSET(8) NUMBITS(1) [],
        /// Transmit FIFO empty.
        TXFE OFFSET(7) NUMBITS(1) [],
        /// Receive FIFO full.
        RXFF OFFSET(6) NUMBITS(1) [],
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    /// UARTLCR_H, the line control register.
    LCR_H [
        /// Stick parity select.
        SPS OFFSET(7) NUMBITS(1) [],
        /// Word length.
        WLEN OFFSET(5) NUMBITS(2) [],
        /// Enable FIFOs.
        FEN OFFSET(4) NUMBITS(1) [],
        /// Two stop bits select.
        STP2 OFFSET(3) NUMBITS(1) [],
        /// Even parity select.
        EPS OFFSET(2) NUMBITS(1) [],
        /// Parity enable.
        PEN OFFSET(1) NUMBITS(1) [],
        /// Send break.
        BRK OFFSET(0) NUMBITS(1) []
    ],
    /// UARTCR, the control register.
    CR [
        /// CTS hardware flow control enable.
        CTSEN OFFSET(15) NUMBITS(1) [],
        /// RTS hardware flow control enable.
        RTSEN OFFSET(14) NUMBITS(1) [],
        /// Request to send.
        RTS OFFSET(11) NUMBITS(1) [],
        /// Data transmit ready.
        DTR OFFSET(10) NUMBITS(1) [],
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// Loopback enable: transmitted data is received.
        LBE OFFSET(7) NUMBITS(1) [],
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) []
    ],
    /// UARTIFLS, the interrupt FIFO level select register.
    IFLS [
        /// Receive interrupt FIFO level select.
        RXIFLSEL OFFSET(3) NUMBITS(3) [
            OneEighth = 0,
            OneQuarter = 1,
            OneHalf = 2,
            ThreeQuarters = 3,
            SevenEighths = 4
        ],
        /// Transmit interrupt FIFO level select.
        TXIFLSEL OFFSET(0) NUMBITS(3) []
    ],
    /// The interrupt bits shared by UARTIMSC, UARTRIS, UARTMIS and UARTICR.
    INT [
        /// Overrun error.
        OE OFFSET(10) NUMBITS(1) [],
        /// Break error.
        BE OFFSET(9) NUMBITS(1) [],
        /// Parity error.
        PE OFFSET(8) NUMBITS(1) [],
        /// Framing error.
        FE OFFSET(7) NUMBITS(1) [],
        /// Receive timeout.
        RT OFFSET(6) NUMBITS(1) [],
        /// Transmit.
        TX OFFSET(5) NUMBITS(1) [],
        /// Receive.
        RX OFFSET(4) NUMBITS(1) [],
        /// nUARTDSR modem.
        DSRM OFFSET(3) NUMBITS(1) [],
        /// nUARTDCD modem.
        DCDM OFFSET(2) NUMBITS(1) [],
        /// nUARTCTS modem.
        CTSM OFFSET(1) NUMBITS(1) [],
        /// nUARTRI modem.
        RIM OFFSET(0) NUMBITS(1) []
    ]
];

/// Register offsets within the PL011's 4 KiB window.
pub mod offset {
    /// UARTDR, data.
    pub const DR: u64 = 0x000;
    /// UARTRSR (read) / UARTECR (write), receive status / error clear.
    pub const RSR_ECR: u64 = 0x004;
    /// UARTFR, flags.
    pub const FR: u64 = 0x018;
    /// UARTILPR, IrDA low-power counter.
    pub const ILPR: u64 = 0x020;
    /// UARTIBRD, integer baud rate divisor.
    pub const IBRD: u64 = 0x024;
    /// UARTFBRD, fractional baud rate divisor.
    pub const FBRD: u64 = 0x028;
    /// UARTLCR_H, line control.
    pub const LCR_H: u64 = 0x02c;
    /// UARTCR, control.
    pub const CR: u64 = 0x030;
    /// UARTIFLS, interrupt FIFO level select.
    pub const IFLS: u64 = 0x034;
    /// UARTIMSC, interrupt mask set/clear.
    pub const IMSC: u64 = 0x038;
    /// UARTRIS, raw interrupt status.
    pub const RIS: u64 = 0x03c;
    /// UARTMIS, masked interrupt status.
    pub const MIS: u64 = 0x040;
    /// UARTICR, interrupt clear.
    pub const ICR: u64 = 0x044;
    /// UARTDMACR, DMA control.
    pub const DMACR: u64 = 0x048;
    /// UARTPeriphID0; ID registers follow every 4 bytes up to UARTPCellID3 at 0xFFC.
    pub const PERIPH_ID0: u64 = 0xfe0;
    /// Size of the register window.
    pub const WINDOW: u64 = 0x1000;
}

/// UARTPeriphID0..3 then UARTPCellID0..3, as QEMU's PL011 reports them.
const ID_REGISTERS: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
/// The peripheral ID UARTPeriphID0..3 spell: an Arm PL011 revision 1.
pub const PERIPHERAL_ID: u32 = u32::from_le_bytes([
    ID_REGISTERS[0],
    ID_REGISTERS[1],
    ID_REGISTERS[2],
    ID_REGISTERS[3],
]);
const _: () = assert!(PERIPHERAL_ID == 0x0014_1011);

/// Receive FIFO depth with FIFOs enabled (a revision-1 PL011).
pub const FIFO_DEPTH: usize = 16;

/// UARTCR at reset: TXE and RXE set, UART disabled.
const CR_RESET: u32 = 0x0300;
/// UARTIFLS at reset: both triggers at 1/2.
const IFLS_RESET: u32 = 0x12;
/// Implemented interrupt bits.
const INT_MASK: u32 = 0x7ff;

/// The state of one emulated PL011.
#[derive(Clone, Debug)]
pub struct Pl011 {
    rx_fifo: [u8; FIFO_DEPTH],
    rx_head: usize,
    rx_count: usize,
    /// Receive-timeout latch: set when a byte arrives, cleared by ICR.RTIC or an empty FIFO.
    rx_timeout: bool,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: LocalRegisterCopy<u32, LCR_H::Register>,
    cr: LocalRegisterCopy<u32, CR::Register>,
    ifls: LocalRegisterCopy<u32, IFLS::Register>,
    imsc: LocalRegisterCopy<u32, INT::Register>,
    dmacr: u32,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// A PL011 in its reset state.
    pub const fn new() -> Self {
        Self {
            rx_fifo: [0; FIFO_DEPTH],
            rx_head: 0,
            rx_count: 0,
            rx_timeout: false,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: LocalRegisterCopy::new(0),
            cr: LocalRegisterCopy::new(CR_RESET),
            ifls: LocalRegisterCopy::new(IFLS_RESET),
            imsc: LocalRegisterCopy::new(0),
            dmacr: 0,
        }
    }

    /// Back to the reset state (on a cell restart); pending input is dropped.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Offers one input byte to the guest. `false` if the receive FIFO is full: keep the byte and
    /// offer it again after the guest has read some.
    pub fn push_input(&mut self, byte: u8) -> bool {
        if self.rx_count >= self.rx_capacity() {
            return false;
        }
        let tail = (self.rx_head + self.rx_count) % FIFO_DEPTH;
        match self.rx_fifo.get_mut(tail) {
            Some(slot) => *slot = byte,
            None => return false,
        }
        self.rx_count += 1;
        self.rx_timeout = true;
        true
    }

    /// Whether the UART's interrupt line is asserted: (RIS & IMSC) != 0.
    pub fn interrupt_level(&self) -> bool {
        self.masked_interrupts() != 0
    }

    /// Whether the receive FIFO can take another byte.
    pub fn can_accept_input(&self) -> bool {
        self.rx_count < self.rx_capacity()
    }

    /// A guest read of `width` at `offset` within the window.
    pub fn read(&mut self, offset: u64, width: AccessWidth) -> Result<u32, MmioError> {
        let (register, shift) = check_access(offset, width)?;
        let value = match register {
            offset::DR if shift == 0 => u32::from(self.pop_input()),
            _ => self.register_value(register),
        };
        // `shift` is 0, 8, 16 or 24, and `width` at most 32 bits.
        Ok(((u64::from(value) >> shift) & width.mask()) as u32)
    }

    /// A guest write of `width` at `offset`; bytes written to DR go to `out`.
    pub fn write(
        &mut self,
        offset: u64,
        width: AccessWidth,
        value: u32,
        out: &mut impl FnMut(u8),
    ) -> Result<(), MmioError> {
        let (register, shift) = check_access(offset, width)?;
        let lanes = (width.mask() << shift) as u32;
        let value = ((u64::from(value) & width.mask()) << shift) as u32;
        match register {
            offset::DR => {
                if shift == 0 {
                    self.transmit(value as u8, out);
                }
            }
            offset::ICR => self.clear_interrupts(value),
            _ => {
                let merged = (self.register_value(register) & !lanes) | value;
                self.write_register(register, merged);
            }
        }
        Ok(())
    }

    fn transmit(&mut self, byte: u8, out: &mut impl FnMut(u8)) {
        if self.cr.is_set(CR::LBE) {
            // Loopback: the byte comes back in; dropped if the FIFO is full, like an overrun.
            let _ = self.push_input(byte);
        } else {
            out(byte);
        }
    }

    fn pop_input(&mut self) -> u8 {
        if self.rx_count == 0 {
            return 0;
        }
        let byte = self.rx_fifo.get(self.rx_head).copied().unwrap_or(0);
        self.rx_head = (self.rx_head + 1) % FIFO_DEPTH;
        self.rx_count -= 1;
        if self.rx_count == 0 {
            self.rx_timeout = false;
        }
        byte
    }

    fn fifo_enabled(&self) -> bool {
        self.lcr_h.is_set(LCR_H::FEN)
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() { FIFO_DEPTH } else { 1 }
    }

    fn rx_trigger(&self) -> usize {
        if !self.fifo_enabled() {
            return 1;
        }
        match self.ifls.read_as_enum(IFLS::RXIFLSEL) {
            Some(IFLS::RXIFLSEL::Value::OneEighth) => FIFO_DEPTH / 8,
            Some(IFLS::RXIFLSEL::Value::OneQuarter) => FIFO_DEPTH / 4,
            Some(IFLS::RXIFLSEL::Value::ThreeQuarters) => FIFO_DEPTH * 3 / 4,
            Some(IFLS::RXIFLSEL::Value::SevenEighths) => FIFO_DEPTH * 7 / 8,
            // 1/2 and the reserved encodings.
            _ => FIFO_DEPTH / 2,
        }
    }

    fn flags(&self) -> u32 {
        let mut fr = LocalRegisterCopy::<u32, FR::Register>::new(0);
        fr.modify(FR::TXFE::SET);
        if self.rx_count == 0 {
            fr.modify(FR::RXFE::SET);
        }
        if self.rx_count >= self.rx_capacity() {
            fr.modify(FR::RXFF::SET);
        }
        fr.get()
    }

    fn raw_interrupts(&self) -> u32 {
        let mut ris = LocalRegisterCopy::<u32, INT::Register>::new(0);
        ris.modify(INT::TX::SET);
        if self.rx_count >= self.rx_trigger() {
            ris.modify(INT::RX::SET);
        }
        if self.rx_timeout && self.rx_count > 0 {
            ris.modify(INT::RT::SET);
        }
        ris.get()
    }

    fn masked_interrupts(&self) -> u32 {
        self.raw_interrupts() & self.imsc.get()
    }

    fn clear_interrupts(&mut self, value: u32) {
        let clear = LocalRegisterCopy::<u32, INT::Register>::new(value);
        if clear.is_set(INT::RT) {
            self.rx_timeout = false;
        }
        // RX and TX follow the FIFO levels; error and modem interrupts are never raised.
    }

    /// The current value of a register, without side effects.
    fn register_value(&self, register: u64) -> u32 {
        match register {
            offset::FR => self.flags(),
            offset::ILPR => self.ilpr,
            offset::IBRD => self.ibrd,
            offset::FBRD => self.fbrd,
            offset::LCR_H => self.lcr_h.get(),
            offset::CR => self.cr.get(),
            offset::IFLS => self.ifls.get(),
            offset::IMSC => self.imsc.get(),
            offset::RIS => self.raw_interrupts(),
            offset::MIS => self.masked_interrupts(),
            offset::DMACR => self.dmacr,
            offset::PERIPH_ID0..offset::WINDOW => {
                let index = (register - offset::PERIPH_ID0) / 4;
                usize::try_from(index)
                    .ok()
                    .and_then(|index| ID_REGISTERS.get(index))
                    .map_or(0, |&id| u32::from(id))
            }
            // DR's upper lanes (error flags, never set; lane 0 is read by popping the FIFO), RSR
            // (no errors are modelled), ICR (write-only) and reserved offsets.
            _ => 0,
        }
    }

    fn write_register(&mut self, register: u64, value: u32) {
        match register {
            offset::ILPR => self.ilpr = value & 0xff,
            offset::IBRD => self.ibrd = value & 0xffff,
            offset::FBRD => self.fbrd = value & 0x3f,
            offset::LCR_H => self.lcr_h.set(value & 0xff),
            offset::CR => self.cr.set(value & 0xff87),
            offset::IFLS => self.ifls.set(value & 0x3f),
            offset::IMSC => self.imsc.set(value & INT_MASK),
            offset::DMACR => self.dmacr = value & 0x7,
            // ECR (nothing to clear), read-only registers and reserved offsets ignore writes.
            _ => {}
        }
    }
}

/// Validates an access; returns the 32-bit register offset and the bit shift of the accessed lanes.
fn check_access(offset: u64, width: AccessWidth) -> Result<(u64, u32), MmioError> {
    if offset >= offset::WINDOW {
        return Err(MmioError::BadOffset);
    }
    if width == AccessWidth::Doubleword {
        return Err(MmioError::BadWidth);
    }
    if !width.is_aligned(offset) {
        return Err(MmioError::Unaligned);
    }
    // (offset & 3) * 8 is at most 24.
    Ok((offset & !3, ((offset & 3) * 8) as u32))
}

/// A cell's emulated PL011 plus a backlog of console input that did not fit its receive FIFO
/// (typed or pasted faster than the guest reads), fed in as the guest drains the FIFO.
pub struct VirtualUart {
    device: Pl011,
    backlog: VecDeque<u8>,
}

/// Console input kept for a cell beyond its UART's FIFO; more is dropped.
const INPUT_BACKLOG: usize = 4096;

impl Default for VirtualUart {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualUart {
    /// A UART at reset with an empty backlog.
    pub fn new() -> Self {
        Self {
            device: Pl011::new(),
            backlog: VecDeque::new(),
        }
    }

    /// Back to the power-on state; pending input is dropped.
    pub fn reset(&mut self) {
        self.device.reset();
        self.backlog.clear();
    }

    /// Emulates a guest read; a read may make room in the receive FIFO for backlogged input.
    pub fn read(&mut self, offset: u64, width: AccessWidth) -> Result<u32, MmioError> {
        let value = self.device.read(offset, width)?;
        self.refill();
        Ok(value)
    }

    /// Emulates a guest write; transmitted bytes go to `out`.
    pub fn write(
        &mut self,
        offset: u64,
        width: AccessWidth,
        value: u32,
        out: &mut dyn FnMut(u8),
    ) -> Result<(), MmioError> {
        self.device
            .write(offset, width, value, &mut |byte| out(byte))
    }

    /// The level of the UART's interrupt line.
    pub fn interrupt_level(&self) -> bool {
        self.device.interrupt_level()
    }

    /// A byte of console input: into the receive FIFO, or the backlog while that is full.
    pub fn push_input(&mut self, byte: u8) {
        self.refill();
        if self.backlog.is_empty() && self.device.push_input(byte) {
            return;
        }
        if self.backlog.len() < INPUT_BACKLOG {
            self.backlog.push_back(byte);
        }
    }

    fn refill(&mut self) {
        while let Some(&byte) = self.backlog.front() {
            if !self.device.push_input(byte) {
                break;
            }
            self.backlog.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const W: AccessWidth = AccessWidth::Word;
    const RX: u32 = 1 << 4;
    const TX: u32 = 1 << 5;
    const RT: u32 = 1 << 6;
    const FR_RXFE: u32 = 1 << 4;
    const FR_RXFF: u32 = 1 << 6;
    const FR_TXFE: u32 = 1 << 7;

    fn write(uart: &mut Pl011, offset: u64, value: u32) -> Vec<u8> {
        let mut out = Vec::new();
        uart.write(offset, W, value, &mut |byte| out.push(byte))
            .unwrap();
        out
    }

    fn read(uart: &mut Pl011, offset: u64) -> u32 {
        uart.read(offset, W).unwrap()
    }

    /// What `pl011_startup`/`pl011_hwinit` leave behind: FIFOs on, RX and timeout interrupts unmasked.
    fn linux_started() -> Pl011 {
        let mut uart = Pl011::new();
        write(&mut uart, offset::ICR, 0x7ff);
        write(&mut uart, offset::IFLS, 0x12);
        write(&mut uart, offset::IBRD, 13);
        write(&mut uart, offset::FBRD, 1);
        write(&mut uart, offset::LCR_H, 0x70); // 8 bits, FIFO enabled
        write(&mut uart, offset::CR, 0x301);
        write(&mut uart, offset::IMSC, RT | RX);
        uart
    }

    #[test]
    fn id_registers_like_qemu() {
        let mut uart = Pl011::new();
        let ids: Vec<u32> = (0..8).map(|i| read(&mut uart, 0xfe0 + 4 * i)).collect();
        assert_eq!(ids, [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        // amba_rev = PeriphID bits 23:20 = 1 (so Linux picks a 16-byte FIFO); part number 0x011.
        let periphid = ids[..4]
            .iter()
            .enumerate()
            .fold(0, |acc, (i, id)| acc | (id << (8 * i)));
        assert_eq!(periphid, 0x0014_1011);
        assert_eq!((periphid >> 20) & 0xf, 1);
        // Byte reads of the ID registers give the same values.
        assert_eq!(uart.read(0xff0, AccessWidth::Byte), Ok(0x0d));
    }

    #[test]
    fn reset_values() {
        let mut uart = Pl011::new();
        assert_eq!(read(&mut uart, offset::FR), FR_TXFE | FR_RXFE);
        assert_eq!(read(&mut uart, offset::CR), 0x300);
        assert_eq!(read(&mut uart, offset::IFLS), 0x12);
        assert_eq!(read(&mut uart, offset::IMSC), 0);
        assert_eq!(read(&mut uart, offset::RIS), TX);
        assert_eq!(read(&mut uart, offset::MIS), 0);
        assert_eq!(read(&mut uart, offset::RSR_ECR), 0);
        assert!(!uart.interrupt_level());
    }

    #[test]
    fn transmit_goes_out_in_any_width() {
        let mut uart = Pl011::new();
        assert_eq!(write(&mut uart, offset::DR, 0x1234_5641), b"A");
        let mut out = Vec::new();
        uart.write(offset::DR, AccessWidth::Byte, u32::from(b'b'), &mut |b| {
            out.push(b)
        })
        .unwrap();
        uart.write(
            offset::DR,
            AccessWidth::Halfword,
            u32::from(b'c'),
            &mut |b| out.push(b),
        )
        .unwrap();
        // A byte write to lane 1 of DR is not a transmission.
        uart.write(
            offset::DR + 1,
            AccessWidth::Byte,
            u32::from(b'x'),
            &mut |b| out.push(b),
        )
        .unwrap();
        assert_eq!(out, b"bc");
        // Flags never show a busy or full transmitter.
        assert_eq!(read(&mut uart, offset::FR) & ((1 << 3) | (1 << 5)), 0);
    }

    #[test]
    fn loopback_receives_own_output() {
        let mut uart = Pl011::new();
        write(&mut uart, offset::CR, 0x381);
        assert_eq!(write(&mut uart, offset::DR, u32::from(b'z')), b"");
        assert_eq!(read(&mut uart, offset::DR), u32::from(b'z'));
    }

    #[test]
    fn bad_accesses() {
        let mut uart = Pl011::new();
        let mut sink = |_: u8| {};
        assert_eq!(uart.read(0x1000, W), Err(MmioError::BadOffset));
        assert_eq!(
            uart.read(u64::MAX, AccessWidth::Byte),
            Err(MmioError::BadOffset)
        );
        assert_eq!(
            uart.read(0, AccessWidth::Doubleword),
            Err(MmioError::BadWidth)
        );
        assert_eq!(
            uart.write(0, AccessWidth::Doubleword, 0, &mut sink),
            Err(MmioError::BadWidth)
        );
        assert_eq!(
            uart.write(0x1004, W, 0, &mut sink),
            Err(MmioError::BadOffset)
        );
        assert_eq!(uart.read(0x2, W), Err(MmioError::Unaligned));
        assert_eq!(
            uart.read(0x1, AccessWidth::Halfword),
            Err(MmioError::Unaligned)
        );
        // Reserved offsets are RAZ/WI.
        assert_eq!(uart.read(0x08, W), Ok(0));
        assert_eq!(uart.write(0x800, W, 0xffff_ffff, &mut sink), Ok(()));
        assert_eq!(uart.read(0x800, W), Ok(0));
        // Read-only registers ignore writes.
        write(&mut uart, offset::FR, 0);
        write(&mut uart, 0xfe0, 0);
        assert_eq!(read(&mut uart, offset::FR), FR_TXFE | FR_RXFE);
        assert_eq!(read(&mut uart, 0xfe0), 0x11);
    }

    #[test]
    fn sub_word_writes_merge_lanes() {
        let mut uart = Pl011::new();
        let mut sink = |_: u8| {};
        uart.write(offset::CR, AccessWidth::Byte, 0x01, &mut sink)
            .unwrap();
        assert_eq!(read(&mut uart, offset::CR), 0x301);
        uart.write(offset::CR + 1, AccessWidth::Byte, 0x00, &mut sink)
            .unwrap();
        assert_eq!(read(&mut uart, offset::CR), 0x001);
        assert_eq!(uart.read(offset::IFLS, AccessWidth::Halfword), Ok(0x12));
        write(&mut uart, offset::IBRD, 0xffff_ffff);
        assert_eq!(read(&mut uart, offset::IBRD), 0xffff);
        write(&mut uart, offset::FBRD, 0xff);
        assert_eq!(read(&mut uart, offset::FBRD), 0x3f);
    }

    #[test]
    fn character_mode_holds_one_byte() {
        let mut uart = Pl011::new();
        assert!(uart.can_accept_input());
        assert!(uart.push_input(b'a'));
        assert!(!uart.push_input(b'b'));
        assert!(!uart.can_accept_input());
        assert_eq!(read(&mut uart, offset::FR) & (FR_RXFF | FR_RXFE), FR_RXFF);
        assert_eq!(read(&mut uart, offset::RIS) & RX, RX);
        assert_eq!(read(&mut uart, offset::DR), u32::from(b'a'));
        assert_eq!(read(&mut uart, offset::FR) & (FR_RXFF | FR_RXFE), FR_RXFE);
        // Reading an empty FIFO gives 0 and does nothing else.
        assert_eq!(read(&mut uart, offset::DR), 0);
    }

    #[test]
    fn fifo_mode_order_and_capacity() {
        let mut uart = linux_started();
        for byte in 0..16u8 {
            assert!(uart.push_input(b'0' + byte));
        }
        assert!(!uart.push_input(b'!'));
        assert_eq!(read(&mut uart, offset::FR) & FR_RXFF, FR_RXFF);
        for byte in 0..16u8 {
            assert_eq!(read(&mut uart, offset::DR), u32::from(b'0' + byte));
        }
        assert_eq!(read(&mut uart, offset::FR) & FR_RXFE, FR_RXFE);
        // The ring wraps.
        for round in 0..40u8 {
            assert!(uart.push_input(round));
            assert!(uart.push_input(round.wrapping_add(1)));
            assert_eq!(read(&mut uart, offset::DR), u32::from(round));
            assert_eq!(
                read(&mut uart, offset::DR),
                u32::from(round.wrapping_add(1))
            );
        }
    }

    #[test]
    fn rx_trigger_levels() {
        let mut uart = linux_started();
        write(&mut uart, offset::ICR, RT);
        // IFLS RX at 1/2 of 16 = 8.
        for _ in 0..7 {
            uart.push_input(b'x');
        }
        write(&mut uart, offset::ICR, RT);
        assert_eq!(read(&mut uart, offset::RIS) & (RX | RT), 0);
        uart.push_input(b'x');
        assert_eq!(read(&mut uart, offset::RIS) & RX, RX);
        read(&mut uart, offset::DR);
        assert_eq!(read(&mut uart, offset::RIS) & RX, 0);
        // 1/8 of 16 = 2.
        write(&mut uart, offset::IFLS, 0);
        assert_eq!(read(&mut uart, offset::RIS) & RX, RX);
        // 7/8 of 16 = 14.
        write(&mut uart, offset::IFLS, 4 << 3);
        assert_eq!(read(&mut uart, offset::RIS) & RX, 0);
    }

    /// The interrupt line as Linux's pl011_int / start_tx / stop_tx drive it.
    #[test]
    fn interrupt_level_as_linux_drives_it() {
        let mut uart = linux_started();
        assert!(!uart.interrupt_level());

        // A key press: RTIS fires at once (below the RX trigger level).
        assert!(uart.push_input(b'l'));
        assert!(uart.interrupt_level());
        assert_eq!(read(&mut uart, offset::MIS), RT);
        // pl011_int acks everything but TX/RT/RX, then drains the FIFO.
        write(&mut uart, offset::ICR, 0x7ff & !(TX | RT | RX));
        assert!(uart.interrupt_level());
        while read(&mut uart, offset::FR) & FR_RXFE == 0 {
            read(&mut uart, offset::DR);
        }
        assert!(!uart.interrupt_level());

        // start_tx: write what fits, then unmask TX; TXIS is asserted until stop_tx masks it.
        assert_eq!(write(&mut uart, offset::DR, u32::from(b's')), b"s");
        write(&mut uart, offset::IMSC, RT | RX | TX);
        assert!(uart.interrupt_level());
        assert_eq!(read(&mut uart, offset::MIS), TX);
        // ICR cannot clear TXIS while the FIFO is empty.
        write(&mut uart, offset::ICR, TX);
        assert!(uart.interrupt_level());
        write(&mut uart, offset::IMSC, RT | RX);
        assert!(!uart.interrupt_level());

        // RTIS cleared through ICR stays clear until new data arrives.
        uart.push_input(b'a');
        write(&mut uart, offset::ICR, RT);
        assert!(!uart.interrupt_level());
        uart.push_input(b'b');
        assert!(uart.interrupt_level());

        // Masking everything drops the line.
        write(&mut uart, offset::IMSC, 0);
        assert!(!uart.interrupt_level());
    }

    #[test]
    fn reset_drops_input_and_state() {
        let mut uart = linux_started();
        uart.push_input(b'q');
        uart.reset();
        assert_eq!(read(&mut uart, offset::FR), FR_TXFE | FR_RXFE);
        assert_eq!(read(&mut uart, offset::LCR_H), 0);
        assert_eq!(read(&mut uart, offset::IMSC), 0);
        assert!(!uart.interrupt_level());
    }
}

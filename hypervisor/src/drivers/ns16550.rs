//! The console UART as a 16550 or a Synopsys DesignWare APB UART (`snps,dw-apb-uart`, the
//! Allwinner A64's): registers `n << reg_shift` bytes apart, read and written 1 or 4 bytes wide.
//!
//! The boot loader has set the baud rate and line format; this driver only enables the FIFOs and
//! moves bytes. Registers, with DLAB (LCR bit 7) clear, as the 16550 data sheet names them.

use core::fmt;
use core::ptr::NonNull;

use tock_registers::LocalRegisterCopy;
use tock_registers::register_bitfields;

use super::ConsoleUart;

/// Receiver Buffer Register (read) and Transmitter Holding Register (write).
const RBR_THR: usize = 0;
/// Interrupt Enable Register.
const IER: usize = 1;
/// FIFO Control Register (write; reads are the Interrupt Identification Register).
const FCR: usize = 2;
/// Line Status Register.
const LSR: usize = 5;

/// Bytes the transmit FIFO takes once LSR.THRE says it is empty (a 16550A's depth; the
/// DesignWare UART's is at least as deep).
const TRANSMIT_FIFO_DEPTH: usize = 16;

/// Polls of LSR before a byte is given up on, so a stuck UART cannot hang EL2.
const WAIT_LIMIT: u32 = 1_000_000;

register_bitfields![u8,
    /// Interrupt Enable Register.
    IER_BITS [
        /// Received data available (and, with FIFOs, the character timeout).
        ERBFI OFFSET(0) NUMBITS(1) [],
        /// Transmitter holding register (FIFO) empty.
        ETBEI OFFSET(1) NUMBITS(1) [],
        /// Receiver line status.
        ELSI OFFSET(2) NUMBITS(1) [],
        /// Modem status.
        EDSSI OFFSET(3) NUMBITS(1) []
    ],
    /// FIFO Control Register.
    FCR_BITS [
        /// FIFOs enabled.
        FIFOE OFFSET(0) NUMBITS(1) []
    ],
    /// Line Status Register.
    LSR_BITS [
        /// A received byte is waiting in RBR.
        DR OFFSET(0) NUMBITS(1) [],
        /// Overrun error.
        OE OFFSET(1) NUMBITS(1) [],
        /// Parity error.
        PE OFFSET(2) NUMBITS(1) [],
        /// Framing error.
        FE OFFSET(3) NUMBITS(1) [],
        /// Break interrupt.
        BI OFFSET(4) NUMBITS(1) [],
        /// Transmitter holding register (with FIFOs: the transmit FIFO) empty.
        THRE OFFSET(5) NUMBITS(1) []
    ]
];

/// Why a 16550 could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ns16550Error {
    /// The register frame is at address 0.
    ZeroBase,
    /// `reg-shift` above 2, `reg-io-width` neither 1 nor 4, or 4-byte accesses to registers
    /// that are not 4-byte aligned.
    BadLayout {
        /// The `reg-shift` asked for.
        reg_shift: u32,
        /// The `reg-io-width` asked for.
        reg_io_width: u32,
    },
}

impl fmt::Display for Ns16550Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroBase => write!(
                f,
                "the 16550 console UART is at address 0: fix its reg in the platform device tree"
            ),
            Self::BadLayout {
                reg_shift,
                reg_io_width,
            } => write!(
                f,
                "the 16550 console UART has reg-shift {reg_shift} and reg-io-width {reg_io_width}: cellvisor drives reg-shift 0-2 with 1-byte accesses or reg-shift 2 with 4-byte accesses; fix the platform device tree"
            ),
        }
    }
}

/// A 16550-compatible UART cellvisor owns.
pub struct Ns16550 {
    /// The register frame.
    base: NonNull<u8>,
    /// Register `n` is at `base + (n << reg_shift)`.
    reg_shift: u32,
    /// Accesses are 32 bits wide (`reg-io-width = 4`), else 8 bits.
    word_access: bool,
}

// SAFETY: the frame belongs to this value alone (the contract of `new`); moving it to another CPU
// moves the only handle to the registers.
unsafe impl Send for Ns16550 {}

impl Ns16550 {
    /// Wraps the 16550 at `base` whose registers are `1 << reg_shift` bytes apart and accessed
    /// `reg_io_width` bytes wide (the DT's `reg-shift` and `reg-io-width`), and enables its FIFOs.
    ///
    /// # Safety
    /// `base` must be the physical (= EL2 virtual) address of a 16550's register frame of at
    /// least `8 << reg_shift` bytes, mapped as device memory or accessed with the MMU off, and no
    /// other `Ns16550` may exist for it.
    pub unsafe fn new(base: u64, reg_shift: u32, reg_io_width: u32) -> Result<Self, Ns16550Error> {
        let word_access = match (reg_shift, reg_io_width) {
            (0..=2, 1) => false,
            (2, 4) if base.is_multiple_of(4) => true,
            _ => {
                return Err(Ns16550Error::BadLayout {
                    reg_shift,
                    reg_io_width,
                });
            }
        };
        let base = NonNull::new(base as usize as *mut u8).ok_or(Ns16550Error::ZeroBase)?;
        let mut uart = Self {
            base,
            reg_shift,
            word_access,
        };
        uart.write_register(FCR, FCR_BITS::FIFOE::SET.value);
        Ok(uart)
    }

    /// The address of register `index`.
    fn register(&self, index: usize) -> *mut u8 {
        self.base.as_ptr().wrapping_add(index << self.reg_shift)
    }

    /// Reads register `index` (its low 8 bits).
    fn read_register(&self, index: usize) -> u8 {
        let address = self.register(index);
        if self.word_access {
            // SAFETY: `new`'s contract: the frame holds register `index` (below 8), 4-byte aligned
            // as `new` checked, and is ours alone.
            let word = unsafe { address.cast::<u32>().read_volatile() };
            // The register is the low byte of the word.
            (word & 0xff) as u8
        } else {
            // SAFETY: as above, one byte wide.
            unsafe { address.read_volatile() }
        }
    }

    /// Writes `value` to register `index`.
    fn write_register(&mut self, index: usize, value: u8) {
        let address = self.register(index);
        if self.word_access {
            // SAFETY: `new`'s contract: the frame holds register `index` (below 8), 4-byte aligned
            // as `new` checked, and is ours alone.
            unsafe { address.cast::<u32>().write_volatile(u32::from(value)) }
        } else {
            // SAFETY: as above, one byte wide.
            unsafe { address.write_volatile(value) }
        }
    }

    /// The Line Status Register (reading it clears its error bits).
    fn line_status(&self) -> LocalRegisterCopy<u8, LSR_BITS::Register> {
        LocalRegisterCopy::new(self.read_register(LSR))
    }

    /// The Interrupt Enable Register.
    fn interrupt_enable(&self) -> LocalRegisterCopy<u8, IER_BITS::Register> {
        LocalRegisterCopy::new(self.read_register(IER))
    }

    /// Sends one byte, waiting (bounded) until the transmit FIFO is empty.
    fn write_byte(&mut self, byte: u8) {
        for _ in 0..WAIT_LIMIT {
            if self.line_status().is_set(LSR_BITS::THRE) {
                self.write_register(RBR_THR, byte);
                return;
            }
            core::hint::spin_loop();
        }
    }
}

impl ConsoleUart for Ns16550 {
    fn write_bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_byte(byte);
        }
    }

    fn try_write_bytes(&mut self, bytes: &[u8]) -> usize {
        // THRE only says the FIFO is empty, not how full it is: write a FIFO's worth when it is.
        if !self.line_status().is_set(LSR_BITS::THRE) {
            return 0;
        }
        let count = bytes.len().min(TRANSMIT_FIFO_DEPTH);
        for &byte in &bytes[..count] {
            self.write_register(RBR_THR, byte);
        }
        count
    }

    fn set_transmit_interrupt(&mut self, enabled: bool) {
        // The THRE interrupt fires whenever the FIFO is empty: armed with nothing to send it would
        // fire for ever, so it is armed only while the FIFO holds bytes.
        let armed = enabled && !self.line_status().is_set(LSR_BITS::THRE);
        let mut interrupts = self.interrupt_enable();
        if interrupts.is_set(IER_BITS::ETBEI) != armed {
            interrupts.modify(if armed {
                IER_BITS::ETBEI::SET
            } else {
                IER_BITS::ETBEI::CLEAR
            });
            self.write_register(IER, interrupts.get());
        }
    }

    fn read_byte(&mut self) -> Option<u8> {
        let status = self.line_status();
        if !status.is_set(LSR_BITS::DR) {
            return None;
        }
        let byte = self.read_register(RBR_THR);
        let error = status.any_matching_bits_set(
            LSR_BITS::OE::SET + LSR_BITS::PE::SET + LSR_BITS::FE::SET + LSR_BITS::BI::SET,
        );
        (!error).then_some(byte)
    }

    fn enable_receive_interrupt(&mut self) {
        let mut interrupts = self.interrupt_enable();
        interrupts.modify(IER_BITS::ERBFI::SET);
        self.write_register(IER, interrupts.get());
    }

    fn clear_receive_interrupt(&mut self) {
        // The 16550's receive interrupt is level: it drops as the caller drains RBR below the
        // trigger level (and the timeout with the last byte). Nothing to acknowledge; reading IIR
        // here would acknowledge a pending THRE interrupt instead.
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::vec;
    use core::cell::Cell;

    use super::*;

    /// A heap-backed stand-in for the register frame: 8 registers 4 bytes apart.
    struct FakeFrame(Box<[Cell<u32>]>);

    impl FakeFrame {
        fn new() -> Self {
            Self(vec![Cell::new(0); 8].into_boxed_slice())
        }

        fn base(&self) -> u64 {
            self.0.as_ptr() as u64
        }

        fn word(&self, index: usize) -> u32 {
            self.0[index].get()
        }

        fn set_word(&self, index: usize, value: u32) {
            self.0[index].set(value)
        }

        /// The byte at byte offset `offset` (for 1-byte-wide layouts).
        fn byte(&self, offset: usize) -> u8 {
            self.0[offset / 4].get().to_le_bytes()[offset % 4]
        }

        fn set_byte(&self, offset: usize, value: u8) {
            let mut bytes = self.0[offset / 4].get().to_le_bytes();
            bytes[offset % 4] = value;
            self.0[offset / 4].set(u32::from_le_bytes(bytes));
        }
    }

    const THRE: u32 = 1 << 5;
    const DR: u32 = 1 << 0;
    const FE: u32 = 1 << 3;

    /// The A64's layout: 32-bit registers 4 bytes apart.
    fn dw_apb(frame: &FakeFrame) -> Ns16550 {
        // SAFETY: the fake frame is 32 bytes of heap, 4-byte aligned, used by this UART alone.
        unsafe { Ns16550::new(frame.base(), 2, 4) }.expect("valid layout")
    }

    #[test]
    fn new_enables_the_fifos() {
        let frame = FakeFrame::new();
        let _uart = dw_apb(&frame);
        assert_eq!(frame.word(FCR), 1);
    }

    #[test]
    fn writes_go_to_thr_when_it_is_empty() {
        let frame = FakeFrame::new();
        let mut uart = dw_apb(&frame);
        frame.set_word(LSR, THRE);
        uart.write_bytes(b"ok");
        assert_eq!(frame.word(RBR_THR), u32::from(b'k'));
    }

    #[test]
    fn a_stuck_transmitter_gives_up_instead_of_hanging() {
        let frame = FakeFrame::new();
        let mut uart = dw_apb(&frame);
        uart.write_bytes(b"x");
        assert_eq!(frame.word(RBR_THR), 0);
        assert_eq!(uart.try_write_bytes(b"abc"), 0);
    }

    #[test]
    fn try_write_fills_at_most_one_fifo() {
        let frame = FakeFrame::new();
        let mut uart = dw_apb(&frame);
        frame.set_word(LSR, THRE);
        assert_eq!(uart.try_write_bytes(&[b'a'; 40]), TRANSMIT_FIFO_DEPTH);
        assert_eq!(uart.try_write_bytes(b"xy"), 2);
        assert_eq!(frame.word(RBR_THR), u32::from(b'y'));
    }

    #[test]
    fn reads_a_waiting_byte_and_drops_one_with_a_line_error() {
        let frame = FakeFrame::new();
        let mut uart = dw_apb(&frame);
        assert_eq!(uart.read_byte(), None);
        frame.set_word(RBR_THR, u32::from(b'q'));
        frame.set_word(LSR, DR);
        assert_eq!(uart.read_byte(), Some(b'q'));
        frame.set_word(LSR, DR | FE);
        assert_eq!(uart.read_byte(), None);
    }

    #[test]
    fn transmit_interrupt_is_armed_only_while_the_fifo_holds_bytes() {
        let frame = FakeFrame::new();
        let mut uart = dw_apb(&frame);
        uart.enable_receive_interrupt();
        assert_eq!(frame.word(IER), 0b01);
        // FIFO holds bytes (THRE clear): armed.
        uart.set_transmit_interrupt(true);
        assert_eq!(frame.word(IER), 0b11);
        uart.set_transmit_interrupt(false);
        assert_eq!(frame.word(IER), 0b01);
        // FIFO empty: not armed, receive interrupt untouched.
        frame.set_word(LSR, THRE);
        uart.set_transmit_interrupt(true);
        assert_eq!(frame.word(IER), 0b01);
        uart.clear_receive_interrupt();
        assert_eq!(frame.word(IER), 0b01);
    }

    #[test]
    fn byte_wide_registers_follow_reg_shift() {
        for reg_shift in 0..=2u32 {
            let frame = FakeFrame::new();
            // SAFETY: 32 bytes of heap, enough for 8 registers up to 4 bytes apart, ours alone.
            let mut uart = unsafe { Ns16550::new(frame.base(), reg_shift, 1) }.expect("layout");
            assert_eq!(frame.byte(FCR << reg_shift), 1, "shift {reg_shift}");
            frame.set_byte(LSR << reg_shift, THRE as u8 | DR as u8);
            frame.set_byte(RBR_THR << reg_shift, b'r');
            assert_eq!(uart.read_byte(), Some(b'r'));
            uart.write_bytes(b"w");
            assert_eq!(frame.byte(RBR_THR << reg_shift), b'w');
        }
    }

    #[test]
    fn refuses_layouts_it_cannot_drive() {
        let frame = FakeFrame::new();
        for (reg_shift, reg_io_width) in [(3, 1), (0, 4), (1, 4), (2, 2), (2, 8)] {
            // SAFETY: refused before any access.
            let result = unsafe { Ns16550::new(frame.base(), reg_shift, reg_io_width) };
            assert_eq!(
                result.err(),
                Some(Ns16550Error::BadLayout {
                    reg_shift,
                    reg_io_width
                })
            );
        }
        // SAFETY: refused before any access.
        let zero = unsafe { Ns16550::new(0, 2, 4) };
        assert_eq!(zero.err(), Some(Ns16550Error::ZeroBase));
        for error in [
            Ns16550Error::ZeroBase,
            Ns16550Error::BadLayout {
                reg_shift: 3,
                reg_io_width: 2,
            },
        ] {
            let line = alloc::string::ToString::to_string(&error);
            assert!(!line.contains('\n') && line.contains(": "), "{line}");
        }
    }
}

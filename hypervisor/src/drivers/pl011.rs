//! The console UART as an Arm PL011, driven with the arm-pl011-uart crate.

use core::ptr::NonNull;

use arm_pl011_uart::{Interrupts, PL011Registers, Uart};
use safe_mmio::UniqueMmioPointer;

use super::ConsoleUart;

/// A PL011 cellvisor owns.
pub struct Pl011 {
    uart: Uart<'static>,
}

impl Pl011 {
    /// Wraps the PL011 at `base`; `None` for address 0.
    ///
    /// # Safety
    /// `base` must be the physical (= EL2 virtual) address of a PL011's register frame, mapped as
    /// device memory or accessed with the MMU off, and no other `Pl011` may exist for it (except
    /// the one a fatal-error path creates on the way to stopping the machine).
    pub unsafe fn new(base: u64) -> Option<Self> {
        let registers = NonNull::new(base as usize as *mut PL011Registers)?;
        // SAFETY: the caller guarantees a valid, unique PL011 frame at `base`.
        let pointer = unsafe { UniqueMmioPointer::new(registers) };
        Some(Self {
            uart: Uart::new(pointer),
        })
    }

    /// Sends one byte, waiting (bounded) while the transmit FIFO is full.
    fn write_byte(&mut self, byte: u8) {
        // A stuck UART must not hang EL2 forever: give up on the byte after a bounded wait.
        for _ in 0..1_000_000 {
            if !self.uart.is_tx_fifo_full() {
                self.uart.write_word(byte);
                return;
            }
            core::hint::spin_loop();
        }
    }
}

impl ConsoleUart for Pl011 {
    fn write_bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_byte(byte);
        }
    }

    fn try_write_bytes(&mut self, bytes: &[u8]) -> usize {
        let mut written = 0;
        for &byte in bytes {
            if self.uart.is_tx_fifo_full() {
                break;
            }
            self.uart.write_word(byte);
            written += 1;
        }
        written
    }

    fn set_transmit_interrupt(&mut self, enabled: bool) {
        // The PL011 raises the transmit interrupt as its FIFO drains through the trigger level: it
        // comes only while the FIFO holds bytes. With the FIFO empty there is nothing to wait for
        // (and a UART that sends at once, like QEMU's, keeps the status set for ever), so the
        // interrupt is armed only then.
        let armed = enabled && !self.uart.is_tx_fifo_empty();
        let masks = self.uart.interrupt_masks();
        let wanted = if armed {
            masks | Interrupts::TXI
        } else {
            masks & !Interrupts::TXI
        };
        if wanted != masks {
            if !armed {
                // A status left from the last byte is not taken after the mask.
                self.uart.clear_interrupts(Interrupts::TXI);
            }
            self.uart.set_interrupt_masks(wanted);
        }
    }

    fn read_byte(&mut self) -> Option<u8> {
        self.uart.read_word().ok().flatten()
    }

    fn enable_receive_interrupt(&mut self) {
        let masks = self.uart.interrupt_masks();
        self.uart
            .set_interrupt_masks(masks | Interrupts::RXI | Interrupts::RTI);
    }

    fn clear_receive_interrupt(&mut self) {
        self.uart
            .clear_interrupts(Interrupts::RXI | Interrupts::RTI);
    }
}

//! The physical console UART (a PL011 that cellvisor owns), driven with the arm-pl011-uart crate.

use core::ptr::NonNull;

use arm_pl011_uart::{Interrupts, PL011Registers, Uart};
use safe_mmio::UniqueMmioPointer;

/// The physical PL011.
pub struct PhysicalUart {
    uart: Uart<'static>,
}

impl PhysicalUart {
    /// Wraps the PL011 at `base`.
    ///
    /// # Safety
    /// `base` must be the physical (= EL2 virtual) address of a PL011's register frame, mapped as
    /// device memory or accessed with the MMU off, and no other `PhysicalUart` may exist for it.
    pub unsafe fn new(base: u64) -> Option<Self> {
        let registers = NonNull::new(base as usize as *mut PL011Registers)?;
        // SAFETY: the caller guarantees a valid, unique PL011 frame at `base`.
        let pointer = unsafe { UniqueMmioPointer::new(registers) };
        Some(Self {
            uart: Uart::new(pointer),
        })
    }

    /// Sends one byte, waiting (bounded) while the transmit FIFO is full.
    pub fn write_byte(&mut self, byte: u8) {
        // A stuck UART must not hang EL2 forever: give up on the byte after a bounded wait.
        for _ in 0..1_000_000 {
            if !self.uart.is_tx_fifo_full() {
                self.uart.write_word(byte);
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// Sends bytes.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_byte(byte);
        }
    }

    /// A received byte, if one is waiting. Line errors drop the byte.
    pub fn read_byte(&mut self) -> Option<u8> {
        self.uart.read_word().ok().flatten()
    }

    /// Enables the receive and receive-timeout interrupts so console input raises the UART's SPI.
    pub fn enable_receive_interrupt(&mut self) {
        self.uart
            .set_interrupt_masks(Interrupts::RXI | Interrupts::RTI);
    }

    /// Clears the receive interrupts after draining the FIFO.
    pub fn clear_receive_interrupt(&mut self) {
        self.uart
            .clear_interrupts(Interrupts::RXI | Interrupts::RTI);
    }
}

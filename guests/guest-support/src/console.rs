//! Transmit-only PL011 console at the address every cell (and QEMU virt natively) has it, and
//! [`println!`](crate::println).

use core::fmt;

/// Base of the (emulated, or under native QEMU the real) PL011.
pub const PL011_BASE: usize = 0x0900_0000;
/// Data register.
const UARTDR: usize = 0x000;
/// Flag register.
pub const UARTFR: usize = 0x018;
/// UARTFR.TXFF: transmit FIFO full.
const UARTFR_TXFF: u32 = 1 << 5;

/// The console. There is no lock: the guests print from one vCPU at a time (the test guest's flow
/// hands over explicitly, the bench guest prints only on vCPU 0), and a lock could deadlock the
/// exception handler that reports unexpected exceptions.
pub struct Console;

impl Console {
    fn write_byte(&mut self, byte: u8) {
        let flags = (PL011_BASE + UARTFR) as *const u32;
        let data = (PL011_BASE + UARTDR) as *mut u32;
        // SAFETY: the PL011 registers are device memory at PL011_BASE in every cell and natively;
        // a 32-bit aligned volatile read of UARTFR has no side effects.
        while unsafe { flags.read_volatile() } & UARTFR_TXFF != 0 {
            core::hint::spin_loop();
        }
        // SAFETY: as above; writing UARTDR transmits one byte and touches no Rust memory.
        unsafe { data.write_volatile(u32::from(byte)) };
    }
}

impl fmt::Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        text.bytes().for_each(|byte| self.write_byte(byte));
        Ok(())
    }
}

/// Prints one line on the console (`\n`-terminated; under cellvisor the cell prefix is added).
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use ::core::fmt::Write as _;
        // Console::write_str never fails.
        let _ = ::core::writeln!($crate::console::Console, $($arg)*);
    }};
}

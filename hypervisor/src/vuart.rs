//! An emulated Arm PL011 UART per cell.

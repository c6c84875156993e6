//! Computes the EL1 register state that injects a synchronous exception into a guest.

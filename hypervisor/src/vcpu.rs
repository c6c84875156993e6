//! The per-physical-CPU run loop: enter the guest, decode the exit, dispatch, repeat.

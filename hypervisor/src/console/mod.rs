//! The one physical console shared by all cells: each cell's output ring, the multiplexer, the
//! terminal's queue and pump, the logger, the guest-fault rate limiter and the management prompt's
//! commands.

pub mod logger;
pub mod manage;
pub mod mux;
pub mod pace;
pub mod ratelimit;
pub mod ring;
pub mod screen;

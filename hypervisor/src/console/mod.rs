//! The one physical console shared by all cells: the multiplexer, the logger, the guest-fault
//! rate limiter and the management prompt's commands.

pub mod logger;
pub mod manage;
pub mod mux;
pub mod ratelimit;

//! The log backend: level, CPU number and rate limiting, written to the hypervisor console.

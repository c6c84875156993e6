//! PSCI for guests: the per-cell vCPU power state machine.

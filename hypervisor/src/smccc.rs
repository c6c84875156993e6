//! SMCCC function-ID classification and the result codes cellvisor returns.

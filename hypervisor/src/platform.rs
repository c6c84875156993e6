//! Reading the platform device tree: RAM, CPUs, GIC, UART, PSCI method, timer.

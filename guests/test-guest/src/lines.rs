//! Every console line the QEMU tests look for, in one place (tests/tests/foundation.rs mirrors
//! them). A line is one of these texts, followed by the values shown in the comment.
//! Any line containing `FAIL` means a check failed.

/// `test-guest: hello from vcpu 0 (mpidr 0x80000000)`.
pub const HELLO: &str = "test-guest: hello from vcpu 0";
/// `test-guest: bootargs "test=all"`.
pub const BOOTARGS: &str = "test-guest: bootargs ";
/// `test-guest: ignoring bootarg "console=ttyAMA0"`.
pub const IGNORED_BOOTARG: &str = "test-guest: ignoring bootarg ";
/// `test-guest: no device tree (x0=0x0)`: bootargs then default to nothing.
pub const NO_DEVICE_TREE: &str = "test-guest: no device tree";
/// `test-guest: psci version 1.1`.
pub const PSCI_VERSION: &str = "test-guest: psci version ";
/// Unknown SMCCC function IDs returned NOT_SUPPORTED.
pub const SMCCC_UNKNOWN_OK: &str = "test-guest: unknown smccc calls return NOT_SUPPORTED";
/// Printed by vCPU 1 when it starts, followed by nothing.
pub const VCPU1_ONLINE: &str = "test-guest: vcpu 1 online";
/// vCPU 1 came up through CPU_ON.
pub const SMP_OK: &str = "test-guest: smp ok (2 vcpus)";
/// AFFINITY_INFO reported vCPU 1 OFF after its CPU_OFF.
pub const VCPU1_OFF: &str = "test-guest: vcpu 1 off";
/// CPU_ON gave ALREADY_ON, INVALID_PARAMETERS and INVALID_ADDRESS where it should.
pub const PSCI_ERRORS_OK: &str = "test-guest: psci errors ok";
/// `test-guest: abort injected esr=0x96000010 far=0x90000000` (one line per probe).
pub const ABORT_INJECTED: &str = "test-guest: abort injected";
/// Every out-of-cell access was answered with a synchronous external abort.
pub const ISOLATION_OK: &str = "test-guest: isolation ok";
/// `test-guest: heartbeat 3/20` (with `gaps=on`: `test-guest: heartbeat 3/20 gap_us=100012`).
pub const HEARTBEAT: &str = "test-guest: heartbeat ";
/// `test-guest: sgi-spin 10000/10000 in 812 ms`: SGIs a spinning vCPU 1 took, of those sent
/// (`test=sgis`).
pub const SGI_SPIN: &str = "test-guest: sgi-spin ";
/// `test-guest: sgi-wfi 10000/10000 in 905 ms`: the same with vCPU 1 waiting in WFI between SGIs.
pub const SGI_WFI: &str = "test-guest: sgi-wfi ";
/// `test-guest: residue clean: 64 registers at their reset values` (`test=residue`).
pub const RESIDUE_CLEAN: &str = "test-guest: residue clean: ";
/// `test=residue` filled every register it checked with a pattern.
pub const RESIDUE_FILLED: &str = "test-guest: residue filled";
/// `test-guest: timer-levels virtual disable ppi-off ok`: one case of `test=timer-levels` passed
/// (timers `virtual` and `physical`; transitions `still-due`, `disable`, `imask`, `cval-future`;
/// holds `ppi-off` and `irqs-masked`); the mode ends with `test-guest: timer-levels 16/16 ok`
/// (cases passed, of all). A failed case prints
/// `test-guest: FAIL timer-levels virtual disable ppi-off: <what>` instead.
pub const TIMER_LEVELS: &str = "test-guest: timer-levels ";
/// `test-guest: spi disk virtio-mmio version 1 at 0xa003e00, INTID 79 (Edge), 131072 sectors`:
/// the passed-through disk `test=spis` found in its device tree and set up.
pub const SPI_DISK: &str = "test-guest: spi disk ";
/// `test-guest: spi-spin 10000/10000 in 4321 ms`: disk SPIs a spinning vCPU 1 took, of the read
/// requests submitted (`test=spis`).
pub const SPI_SPIN: &str = "test-guest: spi-spin ";
/// `test-guest: spi-wfi 10000/10000 in 4321 ms`: the same with vCPU 1 waiting in WFI between
/// requests.
pub const SPI_WFI: &str = "test-guest: spi-wfi ";
/// `test-guest: dma-flood 21 reads of 65536 bytes in flight`, then `test-guest: dma-flood data
/// ok` and `test-guest: dma-flood 8 reads completed` (every 8): `test=dma-flood`.
pub const DMA_FLOOD: &str = "test-guest: dma-flood ";
/// `test=dma-attack` (see `dma_attack`): first `test-guest: dma-attack: disk 00:02.0 virtio-pci,
/// common config at 0x10004000, BARs assigned by the guest, features 32..63 0x3, 2048 sectors,
/// 8192-byte reads` (or `BARs as found`), then one line
/// per target, `test-guest: dma-attack: <name> <address>: <outcome>` with the outcome one of
/// `landed`, `landed partly (<n> of <m> sectors)`, `blocked (device needs reset)`,
/// `blocked (no completion)`, `blocked (status <n>)`, `blocked (completed, nothing landed)`,
/// `unverified (completed, outside own RAM)`, `skipped (<why>)`; after a blocked one
/// `test-guest: dma-attack: disk reset and set up again`; last
/// `test-guest: dma-attack: done <N> targets: <n> landed, <n> blocked, <n> unverified, <n> skipped`.
pub const DMA_ATTACK: &str = "test-guest: dma-attack: ";
/// `test=pattern` (see `pattern`): `test-guest: pattern: written 0x40100000 0x200000` (base and
/// length), then every second `test-guest: pattern: intact 3` (the round) or
/// `test-guest: pattern: CHANGED at 0x40100008 (read 0x..., expected 0x...)` (the first
/// difference); with `rounds=N`, `test-guest: pattern: done N rounds` before powering off.
pub const PATTERN: &str = "test-guest: pattern: ";
/// `test=switch` (see `switch`): first `test-guest: switch-probe: seed=1 check_seed=1 rounds=200
/// busy_ms=20 idle_ms=1`, then every 50 rounds `test-guest: switch-probe: round 50/200
/// checks=<c> descheduled=<d> max_gap_us=<us>`, last `test-guest: switch-probe: PASS rounds=200
/// checks=<c> descheduled=<d> max_gap_us=<us>`; a difference prints `test-guest: FAIL
/// switch-probe: <register> expected <hex> got <hex>` and powers off.
pub const SWITCH: &str = "test-guest: switch-probe: ";
/// `test=display-attack` (see `display_attack`): one line per step, `test-guest: display-attack:
/// PASS <step>: <what happened>` (or `test-guest: FAIL display-attack <step>: ...`), with the
/// steps `pl111-id`, `pl111-base <name>` (`other-cell-ram`, `personal-physical-ram`,
/// `cellvisor-memory`, `straddling-ram-end`, `zero`, `top-of-4g`), `pl111-valid-frame`,
/// `input-id`, `input-handshake`,
/// `statusq-baseline`, `statusq <attack>` and `eventq <attack>` (`desc-table-outside-ram`,
/// `buffer-outside-ram`, `buffer-in-other-cell`, `length-max`, `chain-loop`, `next-out-of-range`,
/// `avail-jump`, and on the event queue `device-readable-buffer`), `notify-flood`,
/// `register-sweep`, `eventq-ready` (the attacks are on the first input device, 0x0C01_0000);
/// besides `test-guest: display-attack: pl111: 6 bad frames programmed`, `... valid frame at
/// 0x42000000`, `... notify-flood: 1000000 notifications`, `... register-sweep done`, one
/// `... input 1 at 0xc010200: 64 device-writable buffers posted, status 0xf, INTID 145 routed to
/// vcpu 0` per input device found, `... ready for keys`, then per event `... event type=1
/// code=30 value=1 (input 1)` and last `... got events (8, 1 input interrupts taken, 0 aborts in
/// all)` or `... no events`.
pub const DISPLAY_ATTACK: &str = "test-guest: display-attack: ";
/// Prefix of every `test=vsock-attack` line.
pub const VSOCK_ATTACK: &str = "test-guest: vsock-attack: ";
/// `test-guest: skipped invalid-address`: a check left out by `skip=`.
pub const SKIPPED: &str = "test-guest: skipped ";
/// The last line before PSCI SYSTEM_OFF.
pub const DONE: &str = "test-guest: done, powering off";

/// `test-guest: FAIL <what>`: prefix of every failure line.
pub const FAIL: &str = "test-guest: FAIL ";
/// Isolation failed: an out-of-cell access did not abort, or aborted wrongly.
pub const FAIL_ISOLATION: &str = "test-guest: FAIL isolation";
/// Printed after the registers of an exception the guest did not expect; then SYSTEM_OFF.
pub const FAIL_UNEXPECTED_EXCEPTION: &str = "test-guest: FAIL unexpected exception";
/// `test-guest: FAIL system_off returned -1`.
pub const FAIL_SYSTEM_OFF: &str = "test-guest: FAIL system_off returned ";
/// `test-guest: FAIL cpu_off returned -1`.
pub const FAIL_CPU_OFF: &str = "test-guest: FAIL cpu_off returned ";

/// `skip=` name of the CPU_ON INVALID_ADDRESS check (plain QEMU does not check entry addresses).
pub const CHECK_INVALID_ADDRESS: &str = "invalid-address";
/// `skip=` name of the out-of-cell access probes.
pub const CHECK_ISOLATION: &str = "isolation";

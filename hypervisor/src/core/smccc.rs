//! SMCCC function-ID classification and the result codes cellvisor returns.
#![forbid(unsafe_code)]
//!
//! Guests call cellvisor with `HVC #0` (or a trapped `SMC #0`) following the Arm SMC Calling
//! Convention (DEN0028): the function ID in W0, arguments in X1..X6 (W1..W6 for SMC32 calls),
//! results in X0..X3. [`dispatch`] answers the Arm-architecture and cellvisor vendor calls itself
//! and hands PSCI calls to [`crate::core::psci`].
//!
//! # cellvisor hypercalls (vendor-specific hypervisor service, owner 6)
//!
//! | call | SMC64 ID | SMC32 ID | arguments | results |
//! |---|---|---|---|---|
//! | [`CELLVISOR_VERSION`] | `0xC600_0000` | `0x8600_0000` | none | x0 = ABI version (major << 16 \| minor), currently [`CELLVISOR_ABI_VERSION`] |
//! | [`CELLVISOR_CELL_INFO`] | `0xC600_0001` | `0x8600_0001` | none | x0 = 0 (SUCCESS), x1 = calling cell's index, x2 = the cell's vCPU count, x3 = the calling vCPU's index |
//!
//! Every other function ID in the range returns NOT_SUPPORTED (-1) in x0. The ABI version's major
//! number changes only when an existing call changes meaning.

use core::fmt;

/// SMCCC_VERSION (SMC32, Arm architecture service): returns the SMCCC version, 1.1 = `0x10001`.
pub const SMCCC_VERSION: u32 = 0x8000_0000;
/// SMCCC_ARCH_FEATURES (SMC32): x1 = an Arm architecture function ID; returns SUCCESS if
/// implemented, NOT_SUPPORTED otherwise (including all the CPU-erratum workaround IDs).
pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
/// SMCCC_ARCH_SOC_ID (SMC32): not implemented by cellvisor.
pub const SMCCC_ARCH_SOC_ID: u32 = 0x8000_0002;
/// SMCCC_ARCH_WORKAROUND_1 (Spectre v2): not implemented; reported as NOT_SUPPORTED.
pub const SMCCC_ARCH_WORKAROUND_1: u32 = 0x8000_8000;
/// SMCCC_ARCH_WORKAROUND_2 (Spectre v4 / SSBD): not implemented; reported as NOT_SUPPORTED.
pub const SMCCC_ARCH_WORKAROUND_2: u32 = 0x8000_7FFF;
/// SMCCC_ARCH_WORKAROUND_3 (Spectre-BHB): not implemented; reported as NOT_SUPPORTED.
pub const SMCCC_ARCH_WORKAROUND_3: u32 = 0x8000_3FFF;

/// The SMCCC version cellvisor implements: 1.1.
pub const SMCCC_VERSION_1_1: u64 = 0x1_0001;

/// CELLVISOR_VERSION, SMC64 fast call: x0 = cellvisor's hypercall ABI version
/// (major << 16 | minor).
pub const CELLVISOR_VERSION: u32 = 0xC600_0000;
/// CELLVISOR_VERSION, SMC32 fast call; same result as [`CELLVISOR_VERSION`].
pub const CELLVISOR_VERSION_32: u32 = 0x8600_0000;
/// CELLVISOR_CELL_INFO, SMC64 fast call: x0 = SUCCESS, x1 = the calling cell's index, x2 = the
/// number of vCPUs in the cell, x3 = the calling vCPU's index within the cell.
pub const CELLVISOR_CELL_INFO: u32 = 0xC600_0001;
/// CELLVISOR_CELL_INFO, SMC32 fast call; same results as [`CELLVISOR_CELL_INFO`].
pub const CELLVISOR_CELL_INFO_32: u32 = 0x8600_0001;

/// cellvisor's hypercall ABI version returned by [`CELLVISOR_VERSION`]: 1.0.
pub const CELLVISOR_ABI_VERSION: u64 = 0x1_0000;

/// The service that owns a function ID (bits 29:24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// 0: Arm architecture calls (SMCCC_VERSION, ...).
    Arch,
    /// 1: CPU service calls.
    Cpu,
    /// 2: SiP (silicon partner) service calls.
    Sip,
    /// 3: OEM service calls.
    Oem,
    /// 4: standard secure service calls; PSCI lives here.
    StandardSecure,
    /// 5: standard hypervisor service calls.
    StandardHypervisor,
    /// 6: vendor-specific hypervisor service calls; cellvisor's own calls.
    VendorHypervisor,
    /// 7: vendor-specific EL3 monitor calls.
    VendorEl3Monitor,
    /// 8..=47: reserved for future use.
    Reserved(u8),
    /// 48..=49: trusted application calls.
    TrustedApplication(u8),
    /// 50..=63: trusted OS calls.
    TrustedOs(u8),
}

impl Owner {
    /// The owner for a 6-bit owner number; only the low six bits count.
    pub const fn from_number(number: u8) -> Self {
        match number & 0x3f {
            0 => Self::Arch,
            1 => Self::Cpu,
            2 => Self::Sip,
            3 => Self::Oem,
            4 => Self::StandardSecure,
            5 => Self::StandardHypervisor,
            6 => Self::VendorHypervisor,
            7 => Self::VendorEl3Monitor,
            n @ 8..=47 => Self::Reserved(n),
            n @ 48..=49 => Self::TrustedApplication(n),
            n => Self::TrustedOs(n),
        }
    }
}

/// An SMCCC function identifier (W0 of a call), with named accessors for its fields.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FunctionId(pub u32);

impl FunctionId {
    const FAST: u32 = 1 << 31;
    const SMC64: u32 = 1 << 30;

    /// Bit 31: a fast call (atomic), rather than a yielding call.
    pub const fn is_fast(self) -> bool {
        self.0 & Self::FAST != 0
    }

    /// Bit 30: the SMC64/HVC64 calling convention (64-bit arguments and results).
    pub const fn is_smc64(self) -> bool {
        self.0 & Self::SMC64 != 0
    }

    /// Bits 29:24: the owning service.
    pub const fn owner(self) -> Owner {
        Owner::from_number(((self.0 >> 24) & 0x3f) as u8)
    }

    /// Bits 23:16, which must be zero for fast calls.
    pub const fn reserved_bits(self) -> u8 {
        ((self.0 >> 16) & 0xff) as u8
    }

    /// Bits 15:0: the function number within the owner's range.
    pub const fn number(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// A well-formed fast call: bit 31 set and bits 23:16 zero. cellvisor implements no yielding
    /// calls, so anything else is NOT_SUPPORTED.
    pub const fn is_valid_fast_call(self) -> bool {
        self.is_fast() && self.reserved_bits() == 0
    }

    /// The same function with the SMC64 bit cleared, so SMC32 and SMC64 variants compare equal.
    pub const fn as_smc32(self) -> u32 {
        self.0 & !Self::SMC64
    }
}

impl fmt::Debug for FunctionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FunctionId({:#010x})", self.0)
    }
}

/// One SMCCC call as the guest made it: W0 and X1..X6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmcccCall {
    /// The function ID (W0; bits 63:32 of X0 are ignored, as SMCCC specifies).
    pub function_id: FunctionId,
    /// X1..X6 as the guest left them.
    pub args: [u64; 6],
}

impl SmcccCall {
    /// A call from the guest's X0..X6.
    pub const fn from_registers(x: [u64; 7]) -> Self {
        Self {
            function_id: FunctionId(x[0] as u32),
            args: [x[1], x[2], x[3], x[4], x[5], x[6]],
        }
    }

    /// Argument `n` (1..=6 = X1..X6), truncated to 32 bits for an SMC32 call; 0 for any other `n`.
    pub fn arg(&self, n: usize) -> u64 {
        let value = match n.checked_sub(1).and_then(|index| self.args.get(index)) {
            Some(&value) => value,
            None => 0,
        };
        if self.function_id.is_smc64() {
            value
        } else {
            value & 0xffff_ffff
        }
    }
}

/// SMCCC-wide error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum SmcccError {
    /// -1: unknown function ID or unimplemented feature.
    NotSupported = -1,
    /// -2: the call is not needed (e.g. a workaround on an unaffected CPU).
    NotRequired = -2,
    /// -3: a parameter is invalid.
    InvalidParameter = -3,
}

impl SmcccError {
    /// The value for X0: the code sign-extended to 64 bits (an SMC32 caller reads only W0).
    pub const fn to_register(self) -> u64 {
        signed_to_register(self as i32)
    }
}

/// The SMCCC success code, 0.
pub const SUCCESS: u64 = 0;

/// PSCI return codes (DEN0022), other than SUCCESS (0) and NOT_SUPPORTED (-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum PsciError {
    /// -1: the function is not implemented.
    NotSupported = -1,
    /// -2: an argument is invalid.
    InvalidParameters = -2,
    /// -3: the operation is not allowed.
    Denied = -3,
    /// -4: CPU_ON of a CPU that is already on.
    AlreadyOn = -4,
    /// -5: CPU_ON of a CPU whose earlier CPU_ON is still pending.
    OnPending = -5,
    /// -6: the implementation failed internally.
    InternalFailure = -6,
    /// -7: the target is not present.
    NotPresent = -7,
    /// -8: the target is disabled.
    Disabled = -8,
    /// -9: an address argument is outside the caller's memory.
    InvalidAddress = -9,
}

impl PsciError {
    /// The value for X0: the code sign-extended to 64 bits (an SMC32 caller reads only W0).
    pub const fn to_register(self) -> u64 {
        signed_to_register(self as i32)
    }
}

/// A signed SMCCC/PSCI return code as a 64-bit register value (sign-extended).
pub const fn signed_to_register(code: i32) -> u64 {
    code as i64 as u64
}

/// The registers a completed call returns to the guest. Registers the call does not define are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmcccResult {
    /// X0.
    pub x0: u64,
    /// X1.
    pub x1: u64,
    /// X2.
    pub x2: u64,
    /// X3.
    pub x3: u64,
}

impl SmcccResult {
    /// A result with only X0 set.
    pub const fn x0(x0: u64) -> Self {
        Self {
            x0,
            x1: 0,
            x2: 0,
            x3: 0,
        }
    }

    /// NOT_SUPPORTED in X0.
    pub const fn not_supported() -> Self {
        Self::x0(SmcccError::NotSupported.to_register())
    }
}

/// Who is calling, for [`CELLVISOR_CELL_INFO`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The calling cell's index in the partition.
    pub cell: usize,
    /// The number of vCPUs the cell has.
    pub vcpu_count: usize,
    /// The calling vCPU's index within its cell.
    pub vcpu: usize,
}

/// What to do with a call after [`dispatch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// The call is complete; write these registers back to the guest.
    Done(SmcccResult),
    /// A PSCI call (owner 4, function numbers 0x00..=0x1F): hand it to the cell's
    /// [`crate::core::psci::PsciCell::handle`].
    Psci,
}

/// Routes one call: answers SMCCC architecture calls and cellvisor's own calls, forwards PSCI, and
/// returns NOT_SUPPORTED for anything else (yielding calls, malformed IDs, other owners).
///
/// SMCCC requires the HVC/SMC immediate to be 0; the caller should answer a non-zero immediate
/// with [`SmcccResult::not_supported`] without calling this.
pub fn dispatch(call: &SmcccCall, caller: &Caller) -> Dispatch {
    let id = call.function_id;
    if !id.is_valid_fast_call() {
        return Dispatch::Done(SmcccResult::not_supported());
    }
    match id.owner() {
        Owner::StandardSecure if id.number() <= 0x1f => Dispatch::Psci,
        Owner::Arch => Dispatch::Done(arch_call(call)),
        Owner::VendorHypervisor => Dispatch::Done(cellvisor_call(call, caller)),
        _ => Dispatch::Done(SmcccResult::not_supported()),
    }
}

fn arch_call(call: &SmcccCall) -> SmcccResult {
    match call.function_id.0 {
        SMCCC_VERSION => SmcccResult::x0(SMCCC_VERSION_1_1),
        SMCCC_ARCH_FEATURES => {
            // The queried ID is a 32-bit value in W1 whatever the convention.
            let queried = call.arg(1) as u32;
            match queried {
                SMCCC_VERSION | SMCCC_ARCH_FEATURES => SmcccResult::x0(SUCCESS),
                _ => SmcccResult::not_supported(),
            }
        }
        _ => SmcccResult::not_supported(),
    }
}

fn cellvisor_call(call: &SmcccCall, caller: &Caller) -> SmcccResult {
    match call.function_id.0 {
        CELLVISOR_VERSION | CELLVISOR_VERSION_32 => SmcccResult::x0(CELLVISOR_ABI_VERSION),
        CELLVISOR_CELL_INFO | CELLVISOR_CELL_INFO_32 => {
            let narrow = |value: usize| {
                let value = value as u64;
                if call.function_id.is_smc64() {
                    value
                } else {
                    value & 0xffff_ffff
                }
            };
            SmcccResult {
                x0: SUCCESS,
                x1: narrow(caller.cell),
                x2: narrow(caller.vcpu_count),
                x3: narrow(caller.vcpu),
            }
        }
        _ => SmcccResult::not_supported(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: Caller = Caller {
        cell: 1,
        vcpu_count: 2,
        vcpu: 1,
    };

    fn call(id: u32, x1: u64) -> SmcccCall {
        SmcccCall::from_registers([u64::from(id), x1, 0, 0, 0, 0, 0])
    }

    fn done(dispatch: Dispatch) -> SmcccResult {
        match dispatch {
            Dispatch::Done(result) => result,
            Dispatch::Psci => panic!("unexpected PSCI"),
        }
    }

    #[test]
    fn function_id_fields() {
        let id = FunctionId(0xC400_0003); // PSCI CPU_ON, SMC64
        assert!(id.is_fast());
        assert!(id.is_smc64());
        assert_eq!(id.owner(), Owner::StandardSecure);
        assert_eq!(id.number(), 3);
        assert!(id.is_valid_fast_call());
        assert_eq!(id.as_smc32(), 0x8400_0003);

        let id = FunctionId(0x8600_0001);
        assert!(!id.is_smc64());
        assert_eq!(id.owner(), Owner::VendorHypervisor);

        assert!(!FunctionId(0x0400_0000).is_fast());
        assert!(!FunctionId(0x0400_0000).is_valid_fast_call());
        assert!(!FunctionId(0x8401_0000).is_valid_fast_call());
        assert_eq!(FunctionId(0x8412_3456).reserved_bits(), 0x12);
    }

    #[test]
    fn owners() {
        assert_eq!(Owner::from_number(0), Owner::Arch);
        assert_eq!(Owner::from_number(1), Owner::Cpu);
        assert_eq!(Owner::from_number(2), Owner::Sip);
        assert_eq!(Owner::from_number(3), Owner::Oem);
        assert_eq!(Owner::from_number(4), Owner::StandardSecure);
        assert_eq!(Owner::from_number(5), Owner::StandardHypervisor);
        assert_eq!(Owner::from_number(6), Owner::VendorHypervisor);
        assert_eq!(Owner::from_number(7), Owner::VendorEl3Monitor);
        assert_eq!(Owner::from_number(8), Owner::Reserved(8));
        assert_eq!(Owner::from_number(47), Owner::Reserved(47));
        assert_eq!(Owner::from_number(48), Owner::TrustedApplication(48));
        assert_eq!(Owner::from_number(49), Owner::TrustedApplication(49));
        assert_eq!(Owner::from_number(50), Owner::TrustedOs(50));
        assert_eq!(Owner::from_number(63), Owner::TrustedOs(63));
    }

    #[test]
    fn return_codes_sign_extend() {
        assert_eq!(SmcccError::NotSupported.to_register(), u64::MAX);
        assert_eq!(SmcccError::NotRequired.to_register(), (-2i64) as u64);
        assert_eq!(
            SmcccError::InvalidParameter.to_register(),
            0xffff_ffff_ffff_fffd
        );
        assert_eq!(PsciError::NotSupported.to_register(), u64::MAX);
        assert_eq!(PsciError::InvalidParameters.to_register(), (-2i64) as u64);
        assert_eq!(PsciError::Denied.to_register(), (-3i64) as u64);
        assert_eq!(PsciError::AlreadyOn.to_register(), (-4i64) as u64);
        assert_eq!(PsciError::OnPending.to_register(), (-5i64) as u64);
        assert_eq!(PsciError::InternalFailure.to_register(), (-6i64) as u64);
        assert_eq!(PsciError::NotPresent.to_register(), (-7i64) as u64);
        assert_eq!(PsciError::Disabled.to_register(), (-8i64) as u64);
        assert_eq!(PsciError::InvalidAddress.to_register(), (-9i64) as u64);
        // An SMC32 caller sees the 32-bit code in W0.
        assert_eq!(PsciError::InvalidAddress.to_register() as u32 as i32, -9);
    }

    #[test]
    fn args_truncate_for_smc32() {
        let regs = [
            0xffff_ffff_8400_0003,
            0x1_0000_0002,
            3,
            4,
            5,
            6,
            0xdead_beef_0000_0007,
        ];
        let call = SmcccCall::from_registers(regs);
        assert_eq!(call.function_id, FunctionId(0x8400_0003));
        assert_eq!(call.arg(1), 2);
        assert_eq!(call.arg(6), 7);
        assert_eq!(call.arg(0), 0);
        assert_eq!(call.arg(7), 0);
        let call64 = SmcccCall::from_registers([0xC400_0003, 0x1_0000_0002, 0, 0, 0, 0, 0]);
        assert_eq!(call64.arg(1), 0x1_0000_0002);
    }

    #[test]
    fn smccc_version_and_features() {
        assert_eq!(done(dispatch(&call(SMCCC_VERSION, 0), &CALLER)).x0, 0x10001);
        let features =
            |id: u32| done(dispatch(&call(SMCCC_ARCH_FEATURES, u64::from(id)), &CALLER)).x0;
        assert_eq!(features(SMCCC_VERSION), SUCCESS);
        assert_eq!(features(SMCCC_ARCH_FEATURES), SUCCESS);
        assert_eq!(features(SMCCC_ARCH_WORKAROUND_1), u64::MAX);
        assert_eq!(features(SMCCC_ARCH_WORKAROUND_2), u64::MAX);
        assert_eq!(features(SMCCC_ARCH_WORKAROUND_3), u64::MAX);
        assert_eq!(features(SMCCC_ARCH_SOC_ID), u64::MAX);
        assert_eq!(
            done(dispatch(&call(SMCCC_ARCH_SOC_ID, 0), &CALLER)).x0,
            u64::MAX
        );
    }

    #[test]
    fn psci_is_forwarded() {
        assert_eq!(dispatch(&call(0x8400_0000, 0), &CALLER), Dispatch::Psci);
        assert_eq!(dispatch(&call(0xC400_0003, 0), &CALLER), Dispatch::Psci);
        assert_eq!(dispatch(&call(0x8400_001F, 0), &CALLER), Dispatch::Psci);
        // Other standard-secure services (e.g. SDEI at 0x20) are not PSCI.
        assert_eq!(done(dispatch(&call(0xC400_0020, 0), &CALLER)).x0, u64::MAX);
    }

    #[test]
    fn cellvisor_calls() {
        for id in [CELLVISOR_VERSION, CELLVISOR_VERSION_32] {
            assert_eq!(
                done(dispatch(&call(id, 0), &CALLER)),
                SmcccResult::x0(CELLVISOR_ABI_VERSION)
            );
        }
        for id in [CELLVISOR_CELL_INFO, CELLVISOR_CELL_INFO_32] {
            assert_eq!(
                done(dispatch(&call(id, 0), &CALLER)),
                SmcccResult {
                    x0: SUCCESS,
                    x1: 1,
                    x2: 2,
                    x3: 1
                }
            );
        }
        assert_eq!(done(dispatch(&call(0xC600_0002, 0), &CALLER)).x0, u64::MAX);
        assert_eq!(done(dispatch(&call(0x8600_FF01, 0), &CALLER)).x0, u64::MAX);
    }

    #[test]
    fn malformed_and_foreign_calls_are_not_supported() {
        for id in [
            0x0600_0000, // yielding
            0x8601_0000, // bits 23:16 set
            0x8200_0000, // SiP
            0xC300_0000, // OEM
            0x8500_0000, // standard hypervisor
            0xB200_0000, // trusted OS
            0xFFFF_FFFF,
        ] {
            assert_eq!(
                done(dispatch(&call(id, 0), &CALLER)),
                SmcccResult::not_supported(),
                "{id:#x}"
            );
        }
    }
}

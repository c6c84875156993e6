//! The emulated-device bus: which device owns a trapped guest physical address.

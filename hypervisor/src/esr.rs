//! Decoding of ESR_EL2/HPFAR_EL2/FAR_EL2 at a guest exit into a typed request.

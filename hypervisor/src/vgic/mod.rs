//! Virtual GICv3 per cell: distributor, redistributors and list-register delivery.

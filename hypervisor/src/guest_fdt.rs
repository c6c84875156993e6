//! Generation of each cell's device tree from the platform and the board.

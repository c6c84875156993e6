//! The cellvisor image for the Raspberry Pi 4; on the host, prints the board's layouts instead.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
cellvisor::image!(raspi4b::BOARD);

#[cfg(not(target_os = "none"))]
fn main() {
    print!(
        "{}",
        cellvisor::setup::partition::describe_board(&raspi4b::BOARD)
    );
}

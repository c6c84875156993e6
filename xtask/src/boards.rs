//! The boards `cargo xtask` builds for (`--board NAME`), and how each is booted in QEMU if it can
//! be.
use std::path::PathBuf;

use cellvisor_board::Board;
use cellvisor_tests::QemuBoard;

use crate::dtb::{self, DtbPin};
use crate::fail;
use crate::util::{self, Result};

/// A board crate xtask builds an image for.
#[derive(Clone, Copy, Debug)]
pub struct BoardTarget {
    /// `--board` name (the board crate's name).
    pub name: &'static str,
    /// The board's image binary (`cellvisor-<board>`).
    pub bin: &'static str,
    /// The board as data.
    pub board: &'static Board,
    /// Where the image is linked and loaded.
    pub load_address: u64,
    /// The QEMU machine that boots it; `None`: the board builds only (flash it).
    pub qemu: Option<QemuBoard>,
    /// The platform DT QEMU gets with `-dtb`, when QEMU does not generate one.
    pub dtb: Option<DtbPin>,
}

/// The default board.
pub const QEMU_VIRT: BoardTarget = BoardTarget {
    name: "qemu-virt",
    bin: "cellvisor-qemu-virt",
    board: &qemu_virt::BOARD,
    load_address: qemu_virt::image_address::LOAD_ADDRESS,
    qemu: Some(QemuBoard::Virt),
    dtb: None,
};

/// QEMU's Raspberry Pi 4 Model B.
pub const RASPI4B: BoardTarget = BoardTarget {
    name: "raspi4b",
    bin: "cellvisor-raspi4b",
    board: &raspi4b::BOARD,
    load_address: raspi4b::image_address::LOAD_ADDRESS,
    qemu: Some(QemuBoard::Raspi4b),
    dtb: Some(dtb::RASPI4B),
};

/// The PINE64 PinePhone: built as an Image for U-Boot's `booti` (docs/porting.md).
pub const PINEPHONE: BoardTarget = BoardTarget {
    name: "pinephone",
    bin: "cellvisor-pinephone",
    board: &pinephone::BOARD,
    load_address: pinephone::image_address::LOAD_ADDRESS,
    qemu: None,
    dtb: None,
};

/// Every board, the default first.
pub const BOARDS: [BoardTarget; 3] = [QEMU_VIRT, RASPI4B, PINEPHONE];

impl BoardTarget {
    /// Whether this is the default board, whose files stay at the top of `target/cellvisor/`.
    pub fn is_default(&self) -> bool {
        self.name == QEMU_VIRT.name
    }

    /// Where this board's images go: `target/cellvisor/` for the default board, else
    /// `target/cellvisor/<board>/`.
    pub fn out_dir(&self) -> PathBuf {
        if self.is_default() {
            util::out_dir()
        } else {
            util::out_dir().join(self.name)
        }
    }

    /// The raw hypervisor image: `target/cellvisor/qemu-virt.bin`, or `<out_dir>/Image`.
    pub fn image(&self) -> PathBuf {
        if self.is_default() {
            util::out_dir().join("qemu-virt.bin")
        } else {
            self.out_dir().join(cellvisor_tests::BOARD_IMAGE)
        }
    }

    /// The guest bundle of `layout`.
    pub fn bundle(&self, layout: &str) -> PathBuf {
        self.out_dir().join(format!("bundle-{layout}.cpio"))
    }

    /// The QEMU machine, or a one-line error for a board QEMU cannot boot.
    pub fn qemu_board(&self, command: &str) -> Result<QemuBoard> {
        match self.qemu {
            Some(board) => Ok(board),
            None => fail!(
                "board `{}` has no QEMU model, so `cargo xtask {command}` cannot boot it: `cargo xtask build --board {}` makes {} to boot with U-Boot's booti (docs/porting.md)",
                self.name,
                self.name,
                util::pretty(&self.image())
            ),
        }
    }
}

/// The board called `name`, or a one-line error listing the others.
pub fn board(name: &str) -> Result<&'static BoardTarget> {
    match BOARDS.iter().find(|target| target.name == name) {
        Some(target) => Ok(target),
        None => {
            let names: Vec<&str> = BOARDS.iter().map(|target| target.name).collect();
            fail!("no board `{name}` (boards: {})", names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_board_is_found_by_name_and_an_unknown_one_is_a_one_line_error() {
        for target in &BOARDS {
            assert_eq!(board(target.name).expect("known").name, target.name);
            assert_eq!(target.board.name, target.name);
        }
        let error = board("pinephone2").expect_err("unknown").to_string();
        assert!(!error.contains('\n'), "{error}");
        assert!(error.contains("qemu-virt, raspi4b, pinephone"), "{error}");
    }

    #[test]
    fn only_the_default_board_keeps_its_files_at_the_top() {
        assert!(QEMU_VIRT.image().ends_with("cellvisor/qemu-virt.bin"));
        assert!(RASPI4B.image().ends_with("cellvisor/raspi4b/Image"));
        assert!(
            PINEPHONE
                .bundle("linux")
                .ends_with("cellvisor/pinephone/bundle-linux.cpio")
        );
    }

    #[test]
    fn the_pinephone_builds_only() {
        let error = PINEPHONE.qemu_board("run").expect_err("no QEMU model");
        assert!(error.to_string().contains("booti"), "{error}");
        assert_eq!(RASPI4B.qemu_board("run").expect("QEMU"), QemuBoard::Raspi4b);
    }
}

//! Guest bundle: the cpio (newc) archive of guest images that the boot loader passes as initrd.

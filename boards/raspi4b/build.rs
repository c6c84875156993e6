//! Links the hypervisor image at the board's load address with cellvisor's linker script.
#[path = "src/image_address.rs"]
mod image_address;
#[path = "../board/build/link_image.rs"]
mod link_image;

fn main() {
    println!("cargo:rerun-if-changed=../board/build/link_image.rs");
    link_image::link_image(image_address::LOAD_ADDRESS, image_address::TEXT_OFFSET);
}

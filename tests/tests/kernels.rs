//! Kernels as users have them: both cells' kernels given as gzip-compressed copies of the pinned
//! Debian kernels (`Image.gz`: personal the default 6.1, corporate the newest, 6.12, with its own
//! initramfs through `--initrd`) boot through `cargo xtask run --kernel`, which decompresses them
//! into the bundle; a gzip stream put into a bundle as is reaches cellvisor, which refuses it at
//! boot with one line naming the cell and the format instead of running it as a raw binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cellvisor_tests::bundle::{self, cpio};
use cellvisor_tests::{
    Artifacts, HarnessError, Machine, NEWEST_KERNEL, QemuConfig, cellvisor_warnings, scaled,
};
use flate2::Compression;
use flate2::write::GzEncoder;

/// Generous: the machine running the tests is shared and slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

fn fail(error: HarnessError) -> ! {
    panic!("{error}")
}

fn artifacts() -> Artifacts {
    Artifacts::from_env().unwrap_or_else(|error| fail(error))
}

/// The entry `name` of `layout`'s bundle.
fn bundle_entry(artifacts: &Artifacts, layout: &str, name: &str) -> Vec<u8> {
    bundle::entry(&artifacts.bundle(layout), name)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(data).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// Writes `data` to `<CELLVISOR_OUT>/test-kernels/<name>`.
fn write_test_file(artifacts: &Artifacts, name: &str, data: &[u8]) -> PathBuf {
    let directory = artifacts.out_dir.join("test-kernels");
    std::fs::create_dir_all(&directory)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", directory.display()));
    let path = directory.join(name);
    std::fs::write(&path, data)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    path
}

/// Boots the `test-guests` layout from a copy of its bundle (written as `name`) in which each
/// (entry, contents) of `replace` replaces or adds that entry.
fn boot_test_guests_with(
    artifacts: &Artifacts,
    name: &str,
    replace: &[(&str, Vec<u8>)],
) -> Machine {
    let layout = "test-guests";
    let original = artifacts.bundle(layout);
    let archive = std::fs::read(&original)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", original.display()));
    let mut entries = cpio::entries(&archive).expect("a newc archive");
    entries.retain(|(entry, _, _)| !replace.iter().any(|(name, _)| entry == name));
    for (entry, data) in replace {
        entries.push(((*entry).to_owned(), 0o100644, data.clone()));
    }
    let bundle = write_test_file(artifacts, name, &cpio::archive(&entries));
    let config = QemuConfig {
        bundle: Some(bundle),
        ..QemuConfig::new(layout)
    };
    Machine::boot(artifacts, &config).unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"))
}

/// The workspace root (this crate lives in `<root>/tests`).
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn gzip_compressed_kernels_boot_both_cells_through_xtask() {
    let artifacts = artifacts();
    let default_image = bundle_entry(&artifacts, "linux", "linux");
    let newest = artifacts.kernel_bundle("linux", NEWEST_KERNEL);
    let newest_image = bundle::entry(&newest, "linux");
    let kernels = [
        (
            "personal",
            &default_image,
            write_test_file(&artifacts, "Image.gz", &gzip(&default_image)),
        ),
        (
            "corporate",
            &newest_image,
            write_test_file(&artifacts, "Image-newest.gz", &gzip(&newest_image)),
        ),
    ];
    // The newest kernel's modules are not the default kernel's: its cell takes its own initramfs.
    let newest_initrd = write_test_file(
        &artifacts,
        "initrd-corporate-newest.cpio.gz",
        &bundle::entry(&newest, "initrd-corporate"),
    );
    let timeout = scaled(BOOT_TIMEOUT).as_secs().to_string();
    // `cargo xtask run --check` builds the override bundle (decompressing the kernels), boots the
    // default layout headless and waits for every cell's ready banner.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args(["xtask", "run", "--check", "--timeout", &timeout]);
    for (cell, _, packed) in &kernels {
        command
            .arg("--kernel")
            .arg(format!("{cell}={}", packed.display()));
    }
    command
        .arg("--initrd")
        .arg(format!("corporate={}", newest_initrd.display()))
        .env("CELLVISOR_QEMU", &artifacts.qemu)
        .env_remove("CELLVISOR_LINUX_IMAGE")
        .env_remove("CELLVISOR_LINUX_IMAGE_NEWEST");
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run cargo xtask: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cargo xtask run --check failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // The bundle xtask booted holds each decompressed Image as that cell's kernel.
    let bundle_path = workspace_root().join("target/cellvisor/run/bundle-linux.cpio");
    let transcript = workspace_root().join("target/cellvisor/transcripts/run-check.log");
    let text = std::fs::read_to_string(&transcript).unwrap_or_default();
    for (cell, image, _) in &kernels {
        assert!(
            stdout
                .lines()
                .any(|line| line.split_whitespace().next() == Some(*cell)),
            "the ready table has a {cell} row:\n{stdout}"
        );
        assert!(
            bundle::entry(&bundle_path, &format!("override/{cell}/kernel")) == **image,
            "{cell}'s kernel in {} is the decompressed Image",
            bundle_path.display()
        );
        assert!(
            text.lines()
                .any(|line| line.starts_with(&format!("[{cell}]"))
                    && line.contains(&format!("cellvisor-ready: {cell}"))),
            "{} has {cell}'s ready banner",
            transcript.display()
        );
    }
    // Corporate really ran the newest kernel, with its own modules (none failed to load).
    let newest_release = bundle::linux_release(&newest_image).expect("a Linux banner");
    let newest_banner = format!("Linux version {newest_release} ");
    assert!(
        text.lines()
            .any(|line| line.starts_with("[corporate]") && line.contains(&newest_banner)),
        "corporate booted {newest_banner}: {}",
        transcript.display()
    );
    let failed: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("insmod"))
        .collect();
    assert!(failed.is_empty(), "modules failed to load: {failed:#?}");
    let warnings = cellvisor_warnings(&text);
    assert!(warnings.is_empty(), "cellvisor complained: {warnings:#?}");
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn a_gzip_kernel_reaching_cellvisor_is_refused_at_boot() {
    let artifacts = artifacts();
    let guest = bundle_entry(&artifacts, "test-guests", "test-guest");
    let mut machine = boot_test_guests_with(
        &artifacts,
        "bundle-gzip-kernel.cpio",
        &[("override/personal/kernel", gzip(&guest))],
    );
    let line = machine
        .wait_for("cellvisor: fatal:", scaled(BOOT_TIMEOUT))
        .unwrap_or_else(|error| fail(error));
    assert!(
        line.contains("cell personal: the kernel is gzip-compressed;")
            && line.contains("decompress it"),
        "the fatal line names the cell and the format: {line}"
    );
    machine
        .wait_exit(scaled(BOOT_TIMEOUT))
        .unwrap_or_else(|error| fail(error));
    let transcript = machine.transcript();
    assert_eq!(
        transcript
            .lines()
            .filter(|line| line.contains("cellvisor: fatal"))
            .count(),
        1,
        "one fatal line:\n{transcript}"
    );
    assert!(
        !transcript.contains("test-guest: hello"),
        "no cell ran:\n{transcript}"
    );
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn a_raw_image_faulting_at_its_vector_is_stopped_and_the_other_cell_runs_on() {
    let artifacts = artifacts();
    // Zeroes are `udf #0`: the first instruction is undefined, so the vCPU takes it at
    // VBAR_EL1 (0 at reset) + 0x200, outside the cell; cellvisor answers that instruction abort at
    // the same vector, where it faults again, identically, for ever.
    let mut machine = boot_test_guests_with(
        &artifacts,
        "bundle-faulting-raw-image.cpio",
        &[
            ("override/personal/kernel", vec![0; 4096]),
            (
                "override/corporate/bootargs",
                b"test=heartbeat beats=600 period_ms=100".to_vec(),
            ),
        ],
    );
    let stopped = machine
        .find_after("cell personal: vCPU 0 faulted", 0, scaled(BOOT_TIMEOUT))
        .unwrap_or_else(|error| fail(error));
    assert!(
        stopped
            .line
            .contains("times in a row at the exception vector")
            && stopped.line.contains("stopping the cell"),
        "says what it saw and what it does: {}",
        stopped.line
    );
    // The other cell keeps beating after the stop.
    let beat = machine
        .find_after(
            "test-guest: heartbeat",
            stopped.line_end,
            scaled(BOOT_TIMEOUT),
        )
        .unwrap_or_else(|error| fail(error));
    assert!(
        beat.line.starts_with("[corporate]"),
        "corporate beats on: {}",
        beat.line
    );
    machine.kill();
    let transcript = machine.transcript();
    assert_eq!(
        transcript.matches("faulted").count(),
        1,
        "the cell is stopped once:\n{transcript}"
    );
    assert!(
        !transcript.contains("panic") && !transcript.contains("cellvisor: fatal"),
        "{transcript}"
    );
}

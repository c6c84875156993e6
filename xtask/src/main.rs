//! `cargo xtask`: build, run and test cellvisor (see `cargo xtask help`).
#![forbid(unsafe_code)]

mod bench;
mod boards;
mod cpio;
mod debian;
mod dtb;
mod elf;
mod images;
mod initramfs;
mod kernel;
mod prereq;
mod run;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use images::{BuildOptions, Overrides};
use run::RunOptions;
use util::{Context, Result};

const USAGE: &str = "\
cargo xtask <command> [options]

commands:
  build [--release] [--layout NAME]... [--board NAME]
        build target/cellvisor/qemu-virt.bin, test-guest.bin, bench-guest.bin, initrd-<cell>.cpio.gz and
        bundle-<layout>.cpio for every layout (or the ones named); --board raspi4b|pinephone:
        target/cellvisor/<board>/Image and bundle-<layout>.cpio instead (raspi4b: and its DTB)
  run [--layout NAME] [--check] [--timeout SECS] [--release] [--linux default|newest] [--gic 2|3]
      [--board NAME] [--display]
      [--kernel CELL=PATH] [--initrd CELL=PATH] [--append CELL=ARGS] [-- QEMU ARGS...]
        build, then boot QEMU virt with cellvisor (default layout: linux); interactive unless
        --check, which boots headless, waits for every cell's ready banner and prints a table
        --linux newest: the Linux cells boot Debian's newest cloud kernel (bookworm-backports),
        with initramfs built with its modules, instead of the default (bookworm) one
        --kernel takes an arm64 Image, a gzip-compressed Image.gz (decompressed here) or a raw binary
        --gic 2: QEMU virt with a GICv2 (GIC-400 with virtualization) instead of the GICv3
        --board raspi4b: QEMU's Raspberry Pi 4 B with Debian's real DTB (default: qemu-virt)
        --display: the phone's screen and input too (QEMU's ramfb, virtio keyboard and tablet),
        shown in a GTK or SDL window (needs DISPLAY or WAYLAND_DISPLAY and QEMU's GTK/SDL
        backend, qemu-system-gui on Debian); the console stays on this terminal; the Pause key
        switches cells; with --check the same devices, headless
  test [--board NAME]
        prerequisites, host tests, image build, QEMU integration tests; prints a summary;
        without --board every board, with it that board's images and QEMU tests only
  bench [--quick] [--record] [--no-linux] [--gic 2|3] [--board NAME]
        cellvisor against native QEMU: micro-operations (bench guest) and EL2 instructions per
        operation, under -icount and plain TCG, Linux boot (native / one cell / two cells),
        footprint; writes target/bench/report.json and chart.svg; --record rewrites
        docs/benchmarks.md; --quick: 4096 iterations and one Linux boot per configuration
        --gic 2: the micro-operations also on a GICv2 (GIC-400), beside the GICv3 figures;
        --gic 3 is the default (GICv3 only)
        --board raspi4b: Linux boot to `Run /init` on QEMU's Raspberry Pi 4 B, natively and in
        both cells, under plain TCG and -icount (3 runs each, 1 with --quick); writes
        target/bench/report-raspi4b.json, --record rewrites docs/benchmarks-raspi4b.md; the
        bench guest does not run there, and --gic is refused (the SoC's GIC-400)
        --board qemu-virt is the default; pinephone has no QEMU model
  fuzz [SECONDS] [--seed X]
        fuzz every guest-input decoder on the host for SECONDS in total (default 60), in release
        with overflow checks; the bounded run of the same targets is part of `cargo xtask test`
  clippy
        clippy with -D warnings on the host and for the aarch64 targets
  help  this text

environment:
  CELLVISOR_QEMU         use this qemu-system-aarch64
  CELLVISOR_LINUX_IMAGE  use this arm64 Image (or gzip-compressed Image.gz) instead of fetching
                         Debian's default kernel (6.1)
  CELLVISOR_LINUX_IMAGE_NEWEST
                         the same for Debian's newest kernel (6.12, bookworm-backports)
  CELLVISOR_BUSYBOX      use this static arm64 busybox in every initramfs instead of fetching Debian's
  CELLVISOR_TIMEOUT_SCALE  multiply the QEMU tests' timeouts (slow hosts)
";

/// Command-line words, consumed front to back.
struct Args {
    words: Vec<String>,
}

impl Args {
    fn next(&mut self) -> Option<String> {
        if self.words.is_empty() {
            None
        } else {
            Some(self.words.remove(0))
        }
    }

    /// The value of option `name`, given as `name VALUE` or `name=VALUE`.
    fn value(&mut self, name: &str, inline: Option<String>) -> Result<String> {
        match inline.or_else(|| self.next()) {
            Some(value) => Ok(value),
            None => fail!("{name} needs a value (see `cargo xtask help`)"),
        }
    }
}

fn split_cell_value(option: &str, value: &str) -> Result<(String, String)> {
    match value.split_once('=') {
        Some((cell, rest)) if !cell.is_empty() => Ok((cell.to_owned(), rest.to_owned())),
        _ => fail!("{option} expects CELL=VALUE, got `{value}`"),
    }
}

fn parse_build(mut args: Args) -> Result<BuildOptions> {
    let mut options = BuildOptions::default();
    while let Some(word) = args.next() {
        let (name, inline) = split_option(&word);
        match name {
            "--release" => options.release = true,
            "--layout" => options.layouts.push(args.value(name, inline)?),
            "--board" => {
                let value = args.value(name, inline)?;
                boards::board(&value)?;
                options.board = Some(value);
            }
            _ => fail!("unknown option `{word}` for build (see `cargo xtask help`)"),
        }
    }
    Ok(options)
}

fn split_option(word: &str) -> (&str, Option<String>) {
    match word.split_once('=') {
        Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
        _ => (word, None),
    }
}

/// The GIC `--gic` names: `2` (GIC-400) or `3` (GICv3).
fn parse_gic(value: &str) -> Result<cellvisor_tests::GicVersion> {
    match cellvisor_tests::GicVersion::from_number(value) {
        Some(gic) => Ok(gic),
        None => fail!("--gic expects 2 (GIC-400) or 3 (GICv3), got `{value}`"),
    }
}

fn parse_bench(mut args: Args) -> Result<bench::BenchOptions> {
    let mut options = bench::BenchOptions::default();
    let mut gic_given = false;
    while let Some(word) = args.next() {
        let (name, inline) = split_option(&word);
        match name {
            "--quick" if inline.is_none() => options.quick = true,
            "--record" if inline.is_none() => options.record = true,
            "--no-linux" if inline.is_none() => options.no_linux = true,
            "--gic" => {
                options.gicv2 =
                    parse_gic(&args.value(name, inline)?)? == cellvisor_tests::GicVersion::V2;
                gic_given = true;
            }
            "--board" => options.board = boards::board(&args.value(name, inline)?)?,
            _ => fail!("unknown option `{word}` for bench (see `cargo xtask help`)"),
        }
    }
    if gic_given && !options.board.is_default() {
        fail!(
            "--gic chooses the GIC of qemu-virt's machine; board `{}` has its SoC's own",
            options.board.name
        );
    }
    options.board.qemu_board("bench")?;
    Ok(options)
}

fn parse_run(mut args: Args) -> Result<RunOptions> {
    let mut options = RunOptions {
        layout: run::DEFAULT_LAYOUT.to_owned(),
        check: false,
        timeout: run::DEFAULT_TIMEOUT,
        release: false,
        kernel: debian::DEFAULT_KERNEL,
        overrides: Overrides::default(),
        qemu_args: Vec::new(),
        gic: cellvisor_tests::GicVersion::V3,
        board: &boards::QEMU_VIRT,
        display: false,
    };
    let mut gic_given = false;
    while let Some(word) = args.next() {
        if word == "--" {
            options.qemu_args = std::mem::take(&mut args.words);
            break;
        }
        let (name, inline) = split_option(&word);
        match name {
            "--layout" => options.layout = args.value(name, inline)?,
            "--check" => options.check = true,
            "--display" if inline.is_none() => options.display = true,
            "--gic" => {
                options.gic = parse_gic(&args.value(name, inline)?)?;
                gic_given = true;
            }
            "--board" => options.board = boards::board(&args.value(name, inline)?)?,
            "--linux" => options.kernel = debian::KernelPin::named(&args.value(name, inline)?)?,
            "--release" => options.release = true,
            "--timeout" => {
                let value = args.value(name, inline)?;
                options.timeout = match value.parse() {
                    Ok(seconds) if seconds > 0 => seconds,
                    _ => fail!("--timeout expects a positive number of seconds, got `{value}`"),
                };
            }
            "--kernel" | "--initrd" => {
                let value = args.value(name, inline)?;
                let (cell, path) = split_cell_value(name, &value)?;
                let path = PathBuf::from(path);
                let map = if name == "--kernel" {
                    &mut options.overrides.kernel
                } else {
                    &mut options.overrides.initrd
                };
                map.insert(cell, path);
            }
            "--append" => {
                let value = args.value(name, inline)?;
                let (cell, bootargs) = split_cell_value(name, &value)?;
                options.overrides.bootargs.insert(cell, bootargs);
            }
            _ => fail!("unknown option `{word}` for run (see `cargo xtask help`)"),
        }
    }
    if gic_given && !options.board.is_default() {
        fail!(
            "--gic chooses the GIC of qemu-virt's machine; board `{}` has its SoC's own",
            options.board.name
        );
    }
    if options.display && !options.board.is_default() {
        fail!(
            "--display gives qemu-virt's machine its screen and input devices; board `{}` has none",
            options.board.name
        );
    }
    options.board.qemu_board("run")?;
    Ok(options)
}

fn build(options: &BuildOptions) -> Result<()> {
    let failures = images::build_all(options);
    if failures.is_empty() {
        eprintln!("Built everything in {}", util::pretty(&util::out_dir()));
        return Ok(());
    }
    for failure in &failures {
        eprintln!("error: {failure}");
    }
    fail!("{} build step(s) failed", failures.len())
}

/// One step of `cargo xtask test` or `cargo xtask clippy`, with its outcome.
struct Step {
    name: String,
    outcome: std::result::Result<String, String>,
    seconds: f64,
}

fn timed(steps: &mut Vec<Step>, name: &str, action: impl FnOnce() -> Result<String>) -> bool {
    eprintln!();
    eprintln!("==> {name}");
    let started = Instant::now();
    let outcome = action().map_err(|error| error.to_string());
    if let Err(error) = &outcome {
        eprintln!("error: {error}");
    }
    let ok = outcome.is_ok();
    steps.push(Step {
        name: name.to_owned(),
        outcome,
        seconds: started.elapsed().as_secs_f64(),
    });
    ok
}

fn summary(title: &str, steps: &[Step]) -> Result<()> {
    println!();
    println!("{title}");
    for step in steps {
        let (status, note) = match &step.outcome {
            Ok(note) => ("ok", note.as_str()),
            Err(error) => ("FAILED", error.as_str()),
        };
        let note = if note.is_empty() {
            String::new()
        } else {
            format!("  {note}")
        };
        println!(
            "  {status:<8} {:<48} {:>7.1} s{note}",
            step.name, step.seconds
        );
    }
    let failed = steps.iter().filter(|step| step.outcome.is_err()).count();
    if failed == 0 {
        println!("all {} steps passed", steps.len());
        Ok(())
    } else {
        fail!("{failed} of {} steps failed", steps.len())
    }
}

fn cargo_step(args: &[&str]) -> Result<String> {
    util::run(util::cargo().args(args))?;
    Ok(String::new())
}

/// Runs the host fuzz harness for `seconds` in total, release build with overflow checks.
fn fuzz(seconds: &str, seed: Option<&str>) -> Result<()> {
    let mut command = util::cargo();
    command
        .env("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true")
        .args([
            "run",
            "--release",
            "-p",
            "cellvisor-fuzz",
            "--",
            "--seconds",
            seconds,
        ]);
    if let Some(seed) = seed {
        command.args(["--seed", seed]);
    }
    util::run(&mut command)
}

/// `cargo xtask test [--board NAME]`: `None` tests every board.
fn parse_test(mut args: Args) -> Result<Option<&'static boards::BoardTarget>> {
    let mut board = None;
    while let Some(word) = args.next() {
        let (name, inline) = split_option(&word);
        match name {
            "--board" => board = Some(boards::board(&args.value(name, inline)?)?),
            _ => fail!("unknown option `{word}` for test (see `cargo xtask help`)"),
        }
    }
    Ok(board)
}

/// The QEMU test files (tests/tests/*.rs, by name) that boot `target`: the raspi4b's own, or for
/// qemu-virt every other one.
fn qemu_tests_of(target: &boards::BoardTarget) -> Result<Vec<String>> {
    let dir = util::workspace_root().join("tests").join("tests");
    let entries = std::fs::read_dir(&dir).context(|| format!("cannot list {}", dir.display()))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .filter(|name| {
            let board_test = boards::BOARDS
                .iter()
                .any(|board| !board.is_default() && board.name == name);
            if target.is_default() {
                !board_test
            } else {
                name == target.name
            }
        })
        .collect();
    names.sort();
    Ok(names)
}

fn test(board: Option<&'static boards::BoardTarget>) -> Result<()> {
    let chosen: Vec<&'static boards::BoardTarget> = match board {
        Some(target) => vec![target],
        None => boards::BOARDS.iter().collect(),
    };
    let mut steps = Vec::new();
    let mut qemu = None;
    timed(&mut steps, "prerequisites", || {
        prereq::rust_targets()?;
        prereq::linux_tools()?;
        let found = prereq::qemu()?;
        let note = format!("QEMU {} at {}", found.version, found.path.display());
        qemu = Some(found);
        Ok(note)
    });
    timed(&mut steps, "host tests (cargo test)", || {
        util::run(
            util::cargo()
                .args(["test", "--no-fail-fast"])
                .env_remove("CELLVISOR_OUT")
                .env_remove("CELLVISOR_QEMU"),
        )?;
        Ok(String::new())
    });
    let built = timed(&mut steps, "build images (every layout)", || {
        let failures: Vec<String> = chosen
            .iter()
            .flat_map(|target| {
                images::build_all(&BuildOptions {
                    board: Some(target.name.to_owned()),
                    ..BuildOptions::default()
                })
            })
            .collect();
        if failures.is_empty() {
            Ok(String::new())
        } else {
            for failure in &failures {
                eprintln!("error: {failure}");
            }
            Err(util::Error(failures.join("; ")))
        }
    });
    let qemu_step = "QEMU tests (cellvisor-tests, --include-ignored)";
    let booted: Vec<_> = chosen
        .iter()
        .filter(|target| target.qemu.is_some())
        .collect();
    match (&qemu, built) {
        (Some(_), true) if booted.is_empty() => steps.push(Step {
            name: qemu_step.to_owned(),
            outcome: Ok("none: the board has no QEMU model (built only)".to_owned()),
            seconds: 0.0,
        }),
        (Some(qemu), true) => {
            timed(&mut steps, qemu_step, || {
                let out = util::out_dir();
                let mut command = util::cargo();
                command.args(["test", "-p", "cellvisor-tests"]);
                if board.is_some() {
                    for target in &booted {
                        for name in qemu_tests_of(target)? {
                            command.args(["--test", &name]);
                        }
                    }
                }
                util::run(
                    command
                        .args([
                            // Run every test file even when one fails, so one run reports all.
                            "--no-fail-fast",
                            "--",
                            "--include-ignored",
                            "--test-threads=1",
                        ])
                        .env("CELLVISOR_OUT", &out)
                        .env("CELLVISOR_QEMU", &qemu.path),
                )?;
                Ok(format!(
                    "transcripts in {}",
                    util::pretty(&out.join("transcripts"))
                ))
            });
        }
        _ => steps.push(Step {
            name: qemu_step.to_owned(),
            outcome: Err("not run: needs QEMU and the built images".to_owned()),
            seconds: 0.0,
        }),
    }
    summary("cargo xtask test summary", &steps)
}

fn clippy() -> Result<()> {
    prereq::rust_targets()?;
    let mut steps = Vec::new();
    timed(&mut steps, "clippy (host, all targets)", || {
        cargo_step(&["clippy", "--all-targets", "--", "-D", "warnings"])
    });
    timed(
        &mut steps,
        "clippy (hypervisor and boards, aarch64 softfloat)",
        || {
            cargo_step(&[
                "clippy",
                "-p",
                "cellvisor",
                "-p",
                "qemu-virt",
                "-p",
                "raspi4b",
                "-p",
                "pinephone",
                "--target",
                images::HYPERVISOR_TARGET,
                "--",
                "-D",
                "warnings",
            ])
        },
    );
    timed(
        &mut steps,
        "clippy (test and bench guests, aarch64)",
        || {
            cargo_step(&[
                "clippy",
                "-p",
                "test-guest",
                "-p",
                "bench-guest",
                "--target",
                images::GUEST_TARGET,
                "--",
                "-D",
                "warnings",
            ])
        },
    );
    summary("cargo xtask clippy summary", &steps)
}

fn dispatch(mut args: Args) -> Result<()> {
    let Some(command) = args.next() else {
        eprint!("{USAGE}");
        fail!("no command given");
    };
    match command.as_str() {
        "build" => build(&parse_build(args)?),
        "run" => run::run(&parse_run(args)?),
        "test" => test(parse_test(args)?),
        "bench" => bench::bench(&parse_bench(args)?),
        "fuzz" => {
            let mut seconds = String::from("60");
            let mut seed = None;
            while let Some(word) = args.next() {
                match word.as_str() {
                    "--seed" => seed = Some(args.value("--seed", None)?),
                    number if number.parse::<u64>().is_ok() => seconds = number.to_owned(),
                    _ => fail!("unknown option `{word}` for fuzz (see `cargo xtask help`)"),
                }
            }
            fuzz(&seconds, seed.as_deref())
        }
        "clippy" => match args.next() {
            None => clippy(),
            Some(extra) => fail!("`clippy` takes no options (got `{extra}`)"),
        },
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => fail!("unknown command `{other}` (see `cargo xtask help`)"),
    }
}

fn main() -> ExitCode {
    let args = Args {
        words: std::env::args().skip(1).collect(),
    };
    match dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Args {
        Args {
            words: words.iter().map(|word| word.to_string()).collect(),
        }
    }

    #[test]
    fn run_options_parse() {
        let options = parse_run(args(&[
            "--layout=test-guests",
            "--check",
            "--timeout",
            "30",
            "--kernel",
            "personal=/tmp/Image",
            "--append",
            "corporate=console=ttyAMA0 quiet",
            "--",
            "-s",
            "-S",
        ]))
        .expect("parses");
        assert_eq!(options.layout, "test-guests");
        assert!(options.check);
        assert_eq!(options.timeout, 30);
        assert_eq!(
            options.overrides.kernel["personal"],
            PathBuf::from("/tmp/Image")
        );
        assert_eq!(
            options.overrides.bootargs["corporate"],
            "console=ttyAMA0 quiet"
        );
        assert_eq!(options.qemu_args, ["-s", "-S"]);
        assert!(!options.display);
        let options = parse_run(args(&["--display", "--check"])).expect("parses");
        assert!(options.display && options.check);
        // After `--`, `--display` is QEMU's.
        let options = parse_run(args(&["--", "--display"])).expect("parses");
        assert!(!options.display);
    }

    #[test]
    fn bad_run_options_are_one_line_errors() {
        for bad in [
            &["--timeout", "0"][..],
            &["--kernel", "noequals"],
            &["--bogus"],
            &["--layout"],
            &["--display=gtk"],
            &["--display", "--board", "raspi4b"],
        ] {
            let error = parse_run(args(bad)).expect_err("rejected").to_string();
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn bench_options_parse() {
        let options = parse_bench(args(&[])).expect("parses");
        assert!(!options.quick && !options.record && !options.no_linux && !options.gicv2);
        let options = parse_bench(args(&["--gic", "2", "--quick", "--no-linux", "--record"]))
            .expect("parses");
        assert!(options.gicv2 && options.quick && options.no_linux && options.record);
        assert!(parse_bench(args(&["--gic=2"])).expect("parses").gicv2);
        // `--gic 3` is the default bench; the last `--gic` wins.
        assert!(!parse_bench(args(&["--gic", "3"])).expect("parses").gicv2);
        assert!(
            !parse_bench(args(&["--gic", "2", "--gic=3"]))
                .expect("parses")
                .gicv2
        );
    }

    #[test]
    fn bench_board_options_parse() {
        assert!(parse_bench(args(&[])).expect("parses").board.is_default());
        let options = parse_bench(args(&["--board", "qemu-virt", "--quick"])).expect("parses");
        assert!(options.board.is_default() && options.quick);
        let options =
            parse_bench(args(&["--board=raspi4b", "--quick", "--record"])).expect("parses");
        assert_eq!(options.board.name, "raspi4b");
        assert!(options.quick && options.record && !options.gicv2);
        // --gic goes with qemu-virt, named or not.
        let options = parse_bench(args(&["--board", "qemu-virt", "--gic", "2"])).expect("parses");
        assert!(options.gicv2 && options.board.is_default());
    }

    #[test]
    fn bad_bench_board_options_are_one_line_errors() {
        let error = parse_bench(args(&["--board", "pinephone"]))
            .expect_err("no QEMU model")
            .to_string();
        assert!(!error.contains('\n'), "{error}");
        assert!(error.contains("cargo xtask bench"), "{error}");
        assert!(error.contains("no QEMU model"), "{error}");
        for gic in ["2", "3"] {
            for words in [
                &["--board", "raspi4b", "--gic", gic][..],
                &["--gic", gic, "--board=raspi4b"],
            ] {
                let error = parse_bench(args(words)).expect_err("raspi4b has its own GIC");
                assert_eq!(
                    error.to_string(),
                    "--gic chooses the GIC of qemu-virt's machine; board `raspi4b` has its SoC's own"
                );
            }
        }
        for bad in [&["--board"][..], &["--board", "raspi5"], &["--board="]] {
            let error = parse_bench(args(bad)).expect_err("rejected").to_string();
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn bad_bench_options_are_one_line_errors() {
        let error = parse_bench(args(&["--gic", "4"]))
            .expect_err("rejected")
            .to_string();
        assert_eq!(error, "--gic expects 2 (GIC-400) or 3 (GICv3), got `4`");
        for bad in [
            &["--gic"][..],
            &["--gic", "v2"],
            &["--bogus"],
            &["--quick=1"],
        ] {
            let error = parse_bench(args(bad)).expect_err("rejected").to_string();
            assert!(!error.contains('\n'), "{error}");
        }
        let error = parse_run(args(&["--gic", "1"]))
            .expect_err("rejected")
            .to_string();
        assert_eq!(error, "--gic expects 2 (GIC-400) or 3 (GICv3), got `1`");
    }

    #[test]
    fn kernel_bundles_are_where_the_tests_look() {
        let artifacts = cellvisor_tests::Artifacts {
            out_dir: util::out_dir(),
            qemu: PathBuf::from("qemu-system-aarch64"),
        };
        assert_eq!(
            images::kernel_bundle_path("linux", &debian::NEWEST_KERNEL),
            artifacts.kernel_bundle("linux", cellvisor_tests::NEWEST_KERNEL)
        );
        assert_eq!(
            images::kernel_bundle_path("linux", &debian::DEFAULT_KERNEL),
            artifacts.bundle("linux")
        );
        let options = parse_run(args(&["--linux", "newest"])).expect("parses");
        assert_eq!(options.kernel, debian::NEWEST_KERNEL);
        assert!(parse_run(args(&["--linux", "6.12"])).is_err());
    }

    #[test]
    fn every_layout_entry_has_a_producer_name() {
        for layout in images::layouts() {
            for name in images::entry_names(layout) {
                assert!(
                    name == "test-guest"
                        || name == "bench-guest"
                        || name == "linux"
                        || name.starts_with("initrd-"),
                    "layout {} uses unknown entry {name}",
                    layout.name
                );
            }
        }
    }
}

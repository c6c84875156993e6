//! `cellvisor-fuzz`: runs the host fuzz targets for a number of iterations or seconds.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use cellvisor_fuzz::{Budget, TARGETS, Target, target};

const USAGE: &str = "usage: cellvisor-fuzz [--target NAME|all] [--iterations N | --seconds S] [--seed X] [--replay I] [--list]

  --target NAME   run one target (default: all; see --list)
  --iterations N  iterations per target (default 10000)
  --seconds S     run for S seconds in total, shared equally between the targets
  --seed X        seed, decimal or 0x-hex (default 0x5eed)
  --replay I      run only iteration I of the target, printing its input
  --list          list the targets";

struct Options {
    targets: Vec<&'static Target>,
    budget: Budget,
    seconds: Option<f64>,
    seed: u64,
    replay: Option<u64>,
}

fn parse_number(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => text.replace('_', "").parse(),
    };
    parsed.map_err(|_| format!("not a number: {text:?}"))
}

fn parse_options() -> Result<Option<Options>, String> {
    let mut options = Options {
        targets: TARGETS.iter().collect(),
        budget: Budget::Iterations(10_000),
        seconds: None,
        seed: 0x5eed,
        replay: None,
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut value = || arguments.next().ok_or(format!("{argument} needs a value"));
        match argument.as_str() {
            "--target" => {
                let name = value()?;
                if name != "all" {
                    let found =
                        target(&name).ok_or_else(|| format!("no target {name:?} (see --list)"))?;
                    options.targets = vec![found];
                }
            }
            "--iterations" => options.budget = Budget::Iterations(parse_number(&value()?)?),
            "--seconds" => {
                let text = value()?;
                let seconds: f64 = text
                    .parse()
                    .map_err(|_| format!("not a number of seconds: {text:?}"))?;
                if !(seconds.is_finite() && seconds > 0.0) {
                    return Err(format!("--seconds must be positive, not {text}"));
                }
                options.seconds = Some(seconds);
            }
            "--seed" => options.seed = parse_number(&value()?)?,
            "--replay" => options.replay = Some(parse_number(&value()?)?),
            "--list" => {
                for target in TARGETS {
                    println!("{:<12} {}", target.name, target.summary);
                }
                return Ok(None);
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(seconds) = options.seconds {
        let share = seconds / options.targets.len() as f64;
        options.budget = Budget::Time(Duration::from_secs_f64(share));
    }
    Ok(Some(options))
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cellvisor-fuzz: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(iteration) = options.replay {
        let mut failed = false;
        for target in &options.targets {
            println!(
                "{} seed {:#x} iteration {iteration}:\n{}",
                target.name,
                options.seed,
                target.describe(options.seed, iteration)
            );
            match target.run_iteration(options.seed, iteration) {
                Ok(()) => println!("{}: passes", target.name),
                Err(failure) => {
                    println!("{failure}");
                    failed = true;
                }
            }
        }
        return if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }

    println!(
        "cellvisor-fuzz: seed {:#x}, {} target(s), {:?} each",
        options.seed,
        options.targets.len(),
        options.budget
    );
    let mut total = 0u64;
    for target in &options.targets {
        match target.run(options.seed, options.budget) {
            Ok(stats) => {
                total += stats.iterations;
                println!(
                    "{:<12} {:>10} iterations  {:>7.2} s  {:>10.0} /s",
                    target.name,
                    stats.iterations,
                    stats.elapsed.as_secs_f64(),
                    stats.rate()
                );
            }
            Err(failure) => {
                println!("{:<12} FAILED", target.name);
                eprintln!("{failure}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "cellvisor-fuzz: all {} target(s) passed, {total} iterations",
        options.targets.len()
    );
    ExitCode::SUCCESS
}

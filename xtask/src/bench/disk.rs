//! Passed-through disk: sequential reads in the corporate cell against the same kernel natively.
//!
//! Both read the same virtio-blk PCI function (00:02.0, INTx): under cellvisor behind the SMMU,
//! natively without one. The reads are driven through an interactive QEMU console session.
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fail;
use crate::images::{self, Ingredients, Overrides};
use crate::prereq::Qemu;
use crate::util::{self, Context, Result};

use super::bench_dir;
use super::parse::{interrupt_totals, read_seconds};
use super::qemu::{Mode, cellvisor_command, native_disk_command};

/// Repetitions of the disk read per boot (the table shows the median).
pub(super) const DISK_REPEATS: usize = 5;

/// The disk's INTx in both environments: INTA of slot 2, SPI 5 (INTID 37).
pub(super) const DISK_INTID: &str = "37";

/// The name of the disk's line in /proc/interrupts: virtio-pci names an INTx interrupt after the
/// virtio device (`GICv3 37 Level virtioN`; with MSI-X it would be `virtioN-req.M`), and N follows
/// the probe order: `virtio0` natively, `virtio1` in the corporate cell, whose channel device
/// (virtio-vsock, INTID 152) probes first. So the line is found by its INTID.
pub(super) fn disk_interrupt_name(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.windows(4).find_map(|window| match window {
            [chip, DISK_INTID, "Level", name] if chip.starts_with("GIC") => {
                Some((*name).to_owned())
            }
            _ => None,
        })
    })
}

/// Whether the reads' guest-clock rates in `mode` are a throughput. Under icount they are not:
/// the virtual clock counts instructions and jumps over idle time, while the requests complete on
/// QEMU's I/O threads in host time, so a read's guest duration measures how completions fall
/// against the vCPU's idle periods, not the device path. The icount runs still count interrupts
/// and exits.
pub(super) fn disk_throughput_meaningful(mode: &str) -> bool {
    mode != Mode::Icount.name()
}

/// A QEMU whose console is driven interactively (the disk benchmark types shell commands and
/// opens cellvisor's management prompt). The console text is kept cleaned of escape sequences and
/// carriage returns.
pub(super) struct Session {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    text: std::sync::Arc<(std::sync::Mutex<Vec<u8>>, std::sync::Condvar)>,
    counter: u32,
}

impl Session {
    pub(super) fn start(mut command: Command) -> Result<Session> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .context(|| format!("cannot start {}", util::show(&command)))?;
        let text =
            std::sync::Arc::new((std::sync::Mutex::new(Vec::new()), std::sync::Condvar::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let text = std::sync::Arc::clone(&text);
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut filter = cellvisor_tests::ConsoleFilter::default();
                let mut buffer = [0u8; 4096];
                while let Ok(count) = stream.read(&mut buffer) {
                    if count == 0 {
                        break;
                    }
                    let (lock, changed) = &*text;
                    let mut state = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    filter.feed(&buffer[..count], &mut state);
                    changed.notify_all();
                }
            });
        }
        Ok(Session {
            stdin: child.stdin.take(),
            child,
            text,
            counter: 0,
        })
    }

    pub(super) fn mark(&self) -> usize {
        self.text.0.lock().map_or(0, |state| state.len())
    }

    pub(super) fn transcript(&self) -> String {
        self.text
            .0
            .lock()
            .map(|state| String::from_utf8_lossy(&state).into_owned())
            .unwrap_or_default()
    }

    /// Waits for the first line containing `needle` at or after `since`; returns (line, offset
    /// past it).
    pub(super) fn wait_for(
        &self,
        needle: &str,
        since: usize,
        timeout: Duration,
    ) -> Result<(String, usize)> {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.text;
        let mut state = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            let from = since.min(state.len());
            let haystack = String::from_utf8_lossy(&state[from..]);
            // Only whole lines count: the console prints some lines in fragments.
            if let Some(at) = haystack.find(needle)
                && let Some(newline) = haystack[at..].find('\n')
            {
                let start = haystack[..at].rfind('\n').map_or(0, |n| n + 1);
                let end = at + newline + 1;
                let line = haystack[start..end].trim_end().to_owned();
                return Ok((line, from + end));
            }
            let now = Instant::now();
            if now >= deadline {
                let tail: Vec<&str> = haystack.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                fail!(
                    "timed out after {:.0} s waiting for {needle:?}; last lines:\n{}",
                    timeout.as_secs_f64(),
                    tail.join("\n")
                );
            }
            state = changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    pub(super) fn send(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write as _;
        let Some(stdin) = self.stdin.as_mut() else {
            fail!("QEMU's stdin is closed");
        };
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .context(|| "cannot write to QEMU".to_owned())
    }

    /// Runs `command` in the focused shell; returns its output lines with any `[cell] ` prefix
    /// removed. The markers' typed form differs from their printed form, so the terminal's echo
    /// of the typed line is never mistaken for output.
    pub(super) fn shell(&mut self, command: &str, timeout: Duration) -> Result<String> {
        self.counter += 1;
        let id = self.counter;
        let since = self.mark();
        self.send(
            format!("echo 'bench-''begin-{id}'; {command}; echo \"bench-\"\"end-{id} $?\"\r")
                .as_bytes(),
        )?;
        let (_, body_start) = self.wait_for(&format!("bench-begin-{id}"), since, timeout)?;
        let (end_line, _) = self.wait_for(&format!("bench-end-{id} "), body_start, timeout)?;
        let text = self.transcript();
        let end_at = text[body_start.min(text.len())..]
            .find(&format!("bench-end-{id} "))
            .map_or(text.len(), |at| body_start + at);
        let body = &text[body_start.min(end_at)..end_at];
        let mut out = String::new();
        for line in body.lines() {
            let line = match line
                .strip_prefix('[')
                .and_then(|rest| rest.split_once("] "))
            {
                Some((_, rest)) => rest,
                None => line,
            };
            out.push_str(line);
            out.push('\n');
        }
        if !end_line.trim_end().ends_with(" 0") {
            eprintln!("warning: `{command}` ended with {end_line:?}");
        }
        Ok(out)
    }

    /// The corporate row of cellvisor's `cells` table (Ctrl-A m, `cells`, `exit`): exit counts
    /// calls, mmio, sysreg, wfi, irq.
    pub(super) fn cell_exits(&mut self, cell: &str) -> Result<[u64; 5]> {
        let since = self.mark();
        self.send(&[cellvisor_tests::CONSOLE_ESCAPE, b'm'])?;
        let (_, opened) = self.wait_for(
            "cellvisor management prompt",
            since,
            Duration::from_secs(30),
        )?;
        self.send(b"cells\r")?;
        let (_, header) = self.wait_for("cell         state", opened, Duration::from_secs(30))?;
        let (row, _) = self.wait_for(&format!("{cell:<12} "), header, Duration::from_secs(30))?;
        let words: Vec<&str> = row
            .get(row.find(&format!("{cell:<12} ")).unwrap_or(0)..)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let since = self.mark();
        self.send(b"exit\r")?;
        self.wait_for("exit", since, Duration::from_secs(30))?;
        // cell state vcpus ram uptime calls mmio sysreg wfi irq faults restarts
        let mut counts = [0; 5];
        for (slot, word) in counts.iter_mut().zip(words.iter().skip(5)) {
            match word.parse() {
                Ok(value) => *slot = value,
                Err(_) => fail!("cannot read the cells row {row:?}"),
            }
        }
        if words.len() < 10 {
            fail!("cannot read the cells row {row:?}");
        }
        Ok(counts)
    }

    pub(super) fn finish(mut self, log: &Path) -> Result<()> {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::write(log, self.transcript()).context(|| format!("cannot write {}", log.display()))
    }
}

/// One boot's disk reads.
#[derive(Clone, Debug, Default)]
pub(super) struct DiskRun {
    /// MB/s (10^6 bytes per guest second) of each read.
    pub(super) rates: Vec<f64>,
    /// Bytes per read.
    pub(super) bytes: f64,
    /// /proc/interrupts totals before and after the reads.
    pub(super) interrupts_before: BTreeMap<String, u64>,
    /// /proc/interrupts totals after the reads.
    pub(super) interrupts_after: BTreeMap<String, u64>,
    /// cellvisor's exit counts of the corporate cell (calls, mmio, sysreg, wfi, irq) around the reads.
    pub(super) exits: Option<([u64; 5], [u64; 5])>,
    /// How the page cache was bypassed.
    pub(super) method: &'static str,
    /// The disk's line in /proc/interrupts ([`disk_interrupt_name`]).
    pub(super) interrupt: String,
}

impl DiskRun {
    /// How many more `name` interrupts /proc/interrupts counted after the reads than before.
    pub(super) fn interrupt_delta(&self, name: &str) -> u64 {
        let after = self.interrupts_after.get(name).copied().unwrap_or(0);
        after.saturating_sub(self.interrupts_before.get(name).copied().unwrap_or(0))
    }

    /// How many more disk interrupts /proc/interrupts counted after the reads than before.
    pub(super) fn disk_interrupt_delta(&self) -> u64 {
        self.interrupt_delta(&self.interrupt)
    }

    /// Guest interrupts of every kind (but `Err`) during the reads.
    pub(super) fn all_interrupts_delta(&self) -> u64 {
        self.interrupts_after
            .keys()
            .filter(|name| name.as_str() != "Err")
            .map(|name| self.interrupt_delta(name))
            .sum()
    }

    /// Exits of reason `index` (see [`EXIT_NAMES`]) during the reads, when cellvisor counted them.
    pub(super) fn exit_delta(&self, index: usize) -> Option<u64> {
        self.exits
            .map(|(before, after)| after[index].saturating_sub(before[index]))
    }
}

/// The exit reasons of cellvisor's `cells` table, in its column order.
pub(super) const EXIT_NAMES: [&str; 5] = ["calls", "mmio", "sysreg", "wfi", "irq"];

/// One boot of `env` (`native` or `cellvisor`) in `mode` reading `disk`, `megabytes` per read.
fn disk_run(
    qemu: &Qemu,
    env: &str,
    mode: Mode,
    disk: &Path,
    megabytes: u64,
    log: &Path,
) -> Result<DiskRun> {
    let cellvisor = env == "cellvisor";
    let command = if cellvisor {
        let mut command = cellvisor_command(qemu, &images::bundle_path("linux"), "linux", mode);
        command.args(cellvisor_tests::pci_device_args(disk, false));
        command
    } else {
        let guest = crate::debian::linux_guest(&crate::debian::DEFAULT_KERNEL)?;
        let Some(corporate) = images::layout("linux")?.cells.get(1) else {
            fail!("layout linux has no corporate cell");
        };
        native_disk_command(
            qemu,
            &guest.kernel_image,
            &util::out_dir().join("initrd-corporate.cpio.gz"),
            corporate.bootargs,
            mode,
            disk,
        )
    };
    let mut session = Session::start(command)?;
    let outcome = (|| -> Result<DiskRun> {
        let boot = Duration::from_secs(240);
        let (_, mounted) = session.wait_for("cellvisor-disk: mounted /dev/vda", 0, boot)?;
        let (_, mut since) = session.wait_for("cellvisor-ready: corporate ", mounted, boot)?;
        if cellvisor {
            session.wait_for("cellvisor-ready: personal ", 0, boot)?;
            since = since.max(session.mark());
            session.send(&[cellvisor_tests::CONSOLE_ESCAPE, b'2'])?;
            session.wait_for(
                "console input now goes to corporate",
                since,
                Duration::from_secs(30),
            )?;
        }
        let command_timeout = Duration::from_secs(300);
        session.shell("true", command_timeout)?;
        // busybox dd supports iflag=direct (O_DIRECT): the guest page cache is bypassed.
        let mut run = DiskRun {
            method: "iflag=direct",
            ..DiskRun::default()
        };
        let probe = session.shell(
            "dd if=/dev/vda of=/dev/null bs=1M count=1 iflag=direct 2>&1",
            command_timeout,
        )?;
        let direct = probe.contains("1+0 records in");
        if !direct {
            run.method = "drop_caches + plain read";
        }
        let interrupts = session.shell("cat /proc/interrupts", command_timeout)?;
        let Some(name) = disk_interrupt_name(&interrupts) else {
            fail!(
                "no line of INTID {DISK_INTID} (the disk's INTx) in /proc/interrupts; the guest \
                 drove the disk another way:\n{}",
                interrupts.trim_end()
            );
        };
        run.interrupt = name;
        run.interrupts_before = interrupt_totals(&interrupts);
        if cellvisor {
            let before = session.cell_exits("corporate")?;
            run.exits = Some((before, before));
        }
        // busybox dd prints no timing line and busybox date has no %N: the guest's monotonic
        // clock (ns) is read around dd from /proc/timer_list (`now at <ns> nsecs`).
        let (drop, flag) = if direct {
            ("", " iflag=direct")
        } else {
            ("echo 3 > /proc/sys/vm/drop_caches; ", "")
        };
        let read = format!(
            "{drop}t0=$(grep -m1 'now at' /proc/timer_list); dd if=/dev/vda of=/dev/null bs=1M count={megabytes}{flag} 2>&1; t1=$(grep -m1 'now at' /proc/timer_list); echo \"bench-read $t0 $t1\""
        );
        let output = session.shell(
            &format!(
                "for i in {}; do {read}; done",
                (1..=DISK_REPEATS)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            command_timeout,
        )?;
        if let Some((before, _)) = run.exits {
            run.exits = Some((before, session.cell_exits("corporate")?));
        }
        run.interrupts_after =
            interrupt_totals(&session.shell("cat /proc/interrupts", command_timeout)?);
        if run.disk_interrupt_delta() == 0 {
            fail!(
                "no {} interrupts in /proc/interrupts during the reads (the disk's INTx line, \
                 INTID {DISK_INTID}); the guest drove the disk another way",
                run.interrupt
            );
        }
        if output.matches(&format!("{megabytes}+0 records in")).count() < DISK_REPEATS {
            fail!("dd did not read {megabytes} MiB {DISK_REPEATS} times:\n{output}");
        }
        run.bytes = (megabytes << 20) as f64;
        for line in output.lines() {
            if let Some(seconds) = read_seconds(line) {
                run.rates.push(run.bytes / 1e6 / seconds);
            }
        }
        if run.rates.is_empty() {
            fail!("no dd result in:\n{output}");
        }
        Ok(run)
    })();
    session.finish(log)?;
    outcome
}

/// Runs the disk read natively and under cellvisor in both modes into `runs`; returns the MiB per
/// read.
pub(super) fn disk_runs(
    qemu: &Qemu,
    quick: bool,
    runs: &mut BTreeMap<(&'static str, &'static str), DiskRun>,
) -> Result<u64> {
    let dir = bench_dir();
    let bundle = images::bundle_path("linux");
    if !bundle.is_file() || !util::out_dir().join("initrd-corporate.cpio.gz").is_file() {
        images::build_bundle(
            images::layout("linux")?,
            &Overrides::default(),
            &mut Ingredients::default(),
            &bundle,
        )?;
    }
    // A private copy of the corporate disk (64 MiB ext2): the shared image may be locked by an
    // interactive run, and the bench must not change it.
    let source = images::corporate_disk()?;
    let disk = dir.join("disk.img");
    std::fs::copy(&source, &disk)
        .context(|| format!("cannot copy {} to {}", source.display(), disk.display()))?;
    let size = std::fs::metadata(&disk)
        .context(|| format!("cannot read {}", disk.display()))?
        .len();
    let megabytes = if quick { 16 } else { 64 }.min(size >> 20);
    for mode in [Mode::Icount, Mode::Tcg] {
        for env in ["native", "cellvisor"] {
            let log = dir.join(format!("disk-{env}-{}.log", mode.name()));
            let run = disk_run(qemu, env, mode, &disk, megabytes, &log)?;
            let rates = if disk_throughput_meaningful(mode.name()) {
                let rates: Vec<String> =
                    run.rates.iter().map(|rate| format!("{rate:.1}")).collect();
                format!("{} MB/s", rates.join(" / "))
            } else {
                "no throughput under icount".to_owned()
            };
            eprintln!(
                "  disk read {env:<9} {:<6}: {rates} ({}, {} MiB x {}, {} disk interrupts)",
                mode.name(),
                run.method,
                megabytes,
                run.rates.len(),
                run.disk_interrupt_delta()
            );
            let env: &'static str = if env == "native" {
                "native"
            } else {
                "cellvisor"
            };
            runs.insert((mode.name(), env), run);
        }
    }
    Ok(megabytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_interrupt_is_the_intx_line_in_both_environments() {
        // /proc/interrupts lines from the corporate cell (its channel device probed first) and
        // from the native twin (its=off).
        let cell = "[corporate]  14:          7          0     GICv3  37 Level     virtio1\n\
                    [corporate]  15:          1          0     GICv3 152 Level     virtio0\n";
        let native = " 17:         10          0     GICv3  37 Level     virtio0\n";
        assert_eq!(disk_interrupt_name(cell).as_deref(), Some("virtio1"));
        assert_eq!(disk_interrupt_name(native).as_deref(), Some("virtio0"));
        let text = cell.replace("[corporate] ", "");
        assert_eq!(interrupt_totals(&text).get("virtio1"), Some(&7));
        // With an ITS, Linux would take MSI-X: no INTID 37 line, and the reads would fail loudly.
        let msi = " 19:          1          0   ITS-MSI 32769 Edge      virtio0-req.0\n";
        assert_eq!(disk_interrupt_name(msi), None);
        assert!(!disk_throughput_meaningful(Mode::Icount.name()));
        assert!(disk_throughput_meaningful(Mode::Tcg.name()));
    }
}

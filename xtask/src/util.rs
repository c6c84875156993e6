//! Small helpers shared by the subcommands: errors, running programs, paths, hashing.
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// A failure with a one-line, actionable message.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error(message.to_owned())
    }
}

/// Result with an [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error`] from a format string.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { return Err($crate::util::Error(format!($($arg)*))) };
}

/// Adds what was being done to an I/O error.
pub trait Context<T> {
    /// Prefixes the error with `what`.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|error| Error(format!("{}: {error}", what())))
    }
}

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// The workspace's `target/` directory (xtask always uses it, whatever `CARGO_TARGET_DIR` says).
pub fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

/// Where images and bundles go: `target/cellvisor`.
pub fn out_dir() -> PathBuf {
    target_dir().join("cellvisor")
}

/// A `cargo` command run from the workspace root with the workspace's `target/` directory.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(workspace_root())
        .env_remove("CARGO_TARGET_DIR");
    command
}

/// Prints a command the way a shell would show it.
pub fn show(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            text.push_str(&format!(" '{}'", arg.replace('\'', r"'\''")));
        } else {
            text.push(' ');
            text.push_str(&arg);
        }
    }
    text
}

/// Runs a command with inherited stdio, echoing it first; fails on a non-zero exit.
pub fn run(command: &mut Command) -> Result<()> {
    eprintln!("$ {}", show(command));
    let status = status_of(command)?;
    if !status.success() {
        fail!("`{}` failed ({status})", show(command));
    }
    Ok(())
}

/// Runs a command with inherited stdio and returns its status.
pub fn status_of(command: &mut Command) -> Result<ExitStatus> {
    command
        .status()
        .context(|| format!("cannot run `{}`", command.get_program().to_string_lossy()))
}

/// Runs a command quietly and returns its stdout; fails (quoting stderr) on a non-zero exit.
pub fn output_of(command: &mut Command) -> Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .context(|| format!("cannot run `{}`", command.get_program().to_string_lossy()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr
            .lines()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("");
        fail!("`{}` failed ({}): {first}", show(command), output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The full path of `program` found on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Whether we run as root (effective uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
            .unwrap_or(false)
    })
}

/// A field of `/etc/os-release` (e.g. `VERSION_CODENAME`), without quotes.
pub fn os_release(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix('=')?;
        Some(value.trim_matches('"').to_owned())
    })
}

/// Whether the host is Debian or a derivative (Ubuntu, ...) with apt.
pub fn is_debian_like() -> bool {
    Path::new("/etc/debian_version").exists() && which("apt-get").is_some()
}

/// SHA-256 of a file, via coreutils' `sha256sum`.
pub fn sha256(path: &Path) -> Result<String> {
    let output = output_of(Command::new("sha256sum").arg(path))?;
    match output.split_whitespace().next() {
        Some(hash) if hash.len() == 64 => Ok(hash.to_owned()),
        _ => fail!("unexpected sha256sum output for {}", path.display()),
    }
}

/// Writes `contents` to `path` only if it differs (keeps timestamps stable), creating parents.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .context(|| format!("cannot create {}", parent.display()))?;
    }
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, contents)
        .context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).context(|| format!("cannot write {}", path.display()))
}

/// A path relative to the workspace root, for messages.
pub fn pretty(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

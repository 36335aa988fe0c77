//! What fpctl persists under `.fpctl/`: the supervisor's record of every
//! service (so `check` and `logs` work from any shell, and a new supervisor
//! can find what an old one started). Writes are atomic: temp file + rename.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::control::ServiceState;

pub const STATE_FILE: &str = "state.json";
pub const SOCKET_FILE: &str = "fpctl.sock";
pub const LOCK_FILE: &str = "supervisor.lock";
pub const SUPERVISOR_LOG: &str = "supervisor.log";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateFile {
    pub supervisor_pid: Option<i32>,
    pub supervisor_ticks: Option<u64>,
    pub services: BTreeMap<String, ServiceRecord>,
}

/// One service as the supervisor left it. Files written by earlier versions
/// load too: the states were the same words, and newer fields default.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub state: ServiceState,
    pub pid: Option<i32>,
    /// Start time of `pid` in clock ticks since boot: its identity.
    pub ticks: Option<u64>,
    /// Unix time, seconds, when the current process started.
    pub started_at: Option<f64>,
    /// Restarts since the supervisor took the service over.
    pub restarts: u32,
    /// Restarts in a row (the count `max_restarts` limits).
    #[serde(default)]
    pub restarts_in_row: Option<u32>,
    pub external: bool,
    pub detail: Option<String>,
}

pub fn state_path(config: &Config) -> PathBuf {
    config.state_dir().join(STATE_FILE)
}

/// The longest Unix socket path the kernel takes (`sun_path` is 108 bytes,
/// the terminating NUL included).
pub const SOCKET_PATH_MAX: usize = 107;

/// Where the project's supervisor listens: `.fpctl/fpctl.sock`, or, for a
/// folder too deep for that to fit in `sun_path`, a short name derived from
/// the project's path in a runtime folder only this user can enter.
pub fn socket_path(config: &Config) -> PathBuf {
    let local = config.state_dir().join(SOCKET_FILE);
    if local.as_os_str().len() <= SOCKET_PATH_MAX {
        return local;
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(config.root.as_os_str().as_encoded_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    runtime_dir().join(format!("{name}.sock"))
}

/// `$XDG_RUNTIME_DIR/fpctl`, or `/tmp/fpctl-UID`.
fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("fpctl"),
        None => PathBuf::from(format!("/tmp/fpctl-{}", nix::unistd::getuid())),
    }
}

/// Create the socket's folder when it is not `.fpctl/` (owner-only, and
/// refused when someone else owns it), and refuse a path that cannot fit.
pub fn prepare_socket_dir(socket: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if socket.as_os_str().len() > SOCKET_PATH_MAX {
        return Err(std::io::Error::other(format!(
            "the socket path {} is {} bytes, over the {SOCKET_PATH_MAX}-byte limit of Unix sockets; \
             set XDG_RUNTIME_DIR to a shorter folder",
            socket.display(),
            socket.as_os_str().len()
        )));
    }
    let Some(dir) = socket.parent() else {
        return Ok(());
    };
    if dir.file_name() == Some(std::ffi::OsStr::new(".fpctl")) {
        return Ok(());
    }
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    let meta = std::fs::metadata(dir)?;
    if meta.uid() != nix::unistd::getuid().as_raw() {
        return Err(std::io::Error::other(format!(
            "{} belongs to another user; set XDG_RUNTIME_DIR to a folder of your own",
            dir.display()
        )));
    }
    Ok(())
}

/// Create `.fpctl/` (owner-only) and the log folder.
pub fn ensure_dirs(config: &Config) -> std::io::Result<()> {
    private_dir(&config.state_dir())?;
    std::fs::create_dir_all(&config.project.log_dir)
}

/// Make `dir` a folder only its owner can enter (mode 0700), creating it
/// if needed. A symbolic link there is refused: its target's mode would
/// change, and the target may be anything (a home folder, /tmp).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        other => other?,
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(dir)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default();
        return Err(std::io::Error::other(format!(
            "{} is a symbolic link{target}: fpctl keeps its socket, state and logs in a folder \
             only you can enter there, and will not change the mode of what a link points to; \
             remove the link (fpctl creates the folder)",
            dir.display()
        )));
    }
    // Through a descriptor of the folder itself, never a link swapped in
    // since the look above.
    let folder = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)?;
    if folder.metadata()?.permissions().mode() & 0o777 != 0o700 {
        folder.set_permissions(std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

pub fn read(config: &Config) -> Option<StateFile> {
    let text = std::fs::read(state_path(config)).ok()?;
    serde_json::from_slice(&text).ok()
}

pub fn write(config: &Config, state: &StateFile) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    write_atomic(&state_path(config), &json)
}

/// Write a file so that readers see the old or the new content, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
    }
    std::fs::rename(&tmp, path)
}

pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state.json as the previous version wrote it: the state as a plain
    /// word, no count in a row.
    const PREVIOUS: &str = r#"{
  "supervisor_pid": 4242,
  "supervisor_ticks": 99,
  "services": {
    "web": {"state": "online", "pid": 4300, "ticks": 1234, "started_at": 1700000000.5,
            "restarts": 2, "external": false, "detail": null},
    "job": {"state": "completed", "pid": null, "ticks": null, "started_at": null,
            "restarts": 0, "external": false, "detail": "exited with code 0"},
    "db": {"state": "failed", "pid": null, "ticks": null, "started_at": null,
           "restarts": 5, "external": false, "detail": "gave up"}
  }
}"#;

    #[test]
    fn the_previous_format_still_loads() {
        let file: StateFile = serde_json::from_str(PREVIOUS).expect("loads");
        assert_eq!(file.supervisor_pid, Some(4242));
        let web = &file.services["web"];
        assert_eq!(web.state, ServiceState::Online);
        assert_eq!(
            (web.pid, web.ticks, web.restarts),
            (Some(4300), Some(1234), 2)
        );
        assert_eq!(web.restarts_in_row, None);
        assert_eq!(file.services["job"].state, ServiceState::Completed);
        assert_eq!(file.services["db"].state, ServiceState::Failed);
    }

    #[test]
    fn a_record_survives_a_round_trip() {
        let file: StateFile = serde_json::from_str(PREVIOUS).unwrap();
        let again: StateFile =
            serde_json::from_str(&serde_json::to_string(&file).unwrap()).unwrap();
        assert_eq!(again.services["web"].state, ServiceState::Online);
        assert_eq!(again.services.len(), 3);
    }
}

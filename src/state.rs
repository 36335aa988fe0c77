//! What fpctl persists under `.fpctl/`: the supervisor's record of every
//! service (so `check` and `logs` work from any shell, and a new supervisor
//! can find what an old one started). Writes are atomic: temp file + rename.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::status::ServiceStatus;

pub const STATE_FILE: &str = "state.json";
pub const SOCKET_FILE: &str = "fpctl.sock";
pub const LOCK_FILE: &str = "supervisor.lock";
pub const SUPERVISOR_LOG: &str = "supervisor.log";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateFile {
    pub supervisor_pid: Option<i32>,
    pub supervisor_ticks: Option<u64>,
    pub services: BTreeMap<String, Saved>,
}

/// One service as the supervisor left it: its status, as every surface
/// shows it, and what identifies its process. Files written by earlier
/// versions load too: the states were the same words, and newer fields
/// default (an earlier file has the reason in words only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    #[serde(flatten)]
    pub status: ServiceStatus,
    /// Start time of `pid` in clock ticks since boot: its identity.
    #[serde(default)]
    pub ticks: Option<u64>,
    /// Unix time, seconds, when the current process started.
    #[serde(default)]
    pub started_at: Option<f64>,
}

impl Saved {
    /// The recorded process, if it is still the very process recorded.
    pub fn live_pid(&self) -> Option<i32> {
        let (pid, ticks) = (self.status.pid?, self.ticks?);
        crate::process::is_same_process(pid, ticks).then_some(pid)
    }
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
    socket_path_in(&config.root)
}

/// [`socket_path`] of the project whose services.toml is in `root` (known
/// even when that file does not validate).
pub fn socket_path_in(root: &Path) -> PathBuf {
    let local = root.join(".fpctl").join(SOCKET_FILE);
    if local.as_os_str().len() <= SOCKET_PATH_MAX {
        return local;
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
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

/// Create the socket's folder when it is not `.fpctl/`: owner-only, and
/// made by this call or checked to be ours (see [`check_socket_dir`]); and
/// refuse a path that cannot fit.
pub fn prepare_socket_dir(socket: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if socket.as_os_str().len() > SOCKET_PATH_MAX {
        return Err(std::io::Error::other(format!(
            "the socket path {} is {} bytes, over the {SOCKET_PATH_MAX}-byte limit of Unix sockets; \
             set XDG_RUNTIME_DIR to a shorter folder",
            socket.display(),
            socket.as_os_str().len()
        )));
    }
    let Some(dir) = runtime_socket_dir(socket) else {
        return Ok(());
    };
    // mkdir(2) alone, never "create if missing": it fails when the name is
    // taken, by whoever, and then the check below decides.
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot create {}: {e}", dir.display()),
            ))
        }
    }
    check_socket_dir(socket)
}

/// The folder of `socket` when it is a shared runtime folder
/// (`$XDG_RUNTIME_DIR/fpctl`, `/tmp/fpctl-UID`), not the project's own
/// `.fpctl/`.
fn runtime_socket_dir(socket: &Path) -> Option<&Path> {
    let dir = socket.parent()?;
    (dir.file_name() != Some(std::ffi::OsStr::new(".fpctl"))).then_some(dir)
}

/// Refuse a runtime socket folder that another user made or may write
/// into: whoever can put a socket there can answer in the supervisor's
/// place (and tell `check` that everything is fine). Checked on every use;
/// a folder that does not exist yet passes (it is made owner-only).
pub fn check_socket_dir(socket: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = runtime_socket_dir(socket) else {
        return Ok(());
    };
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let me = nix::unistd::getuid().as_raw();
    let problem = if meta.file_type().is_symlink() {
        "is a symbolic link".to_string()
    } else if !meta.is_dir() {
        "is not a folder".to_string()
    } else if meta.uid() != me {
        format!("belongs to uid {}, not to you (uid {me})", meta.uid())
    } else if meta.mode() & 0o077 != 0 {
        format!(
            "has mode {:o}: other users may enter or write it (it must be 700)",
            meta.mode() & 0o7777
        )
    } else {
        return Ok(());
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "the folder for the supervisor's socket, {dir}, {problem}; another user could \
             answer there in the supervisor's place. Remove it (`rm -r {dir}`; fpctl makes \
             it again, owner-only), or set XDG_RUNTIME_DIR to a folder only you can write",
            dir = dir.display()
        ),
    ))
}

/// Create `.fpctl/` (owner-only) and the log folder (owner-only when fpctl
/// makes it), and refuse a log folder that is a link or someone else's.
pub fn ensure_dirs(config: &Config) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = config.state_dir();
    private_dir(&dir)?;
    let logs = &config.project.log_dir;
    // Inside the owner-only `.fpctl/`, nobody else can have put anything.
    let checked = |logs: &Path| match logs.starts_with(&dir) {
        true => None,
        false => log_dir_problem(logs),
    };
    if let Some(problem) = checked(logs) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            problem,
        ));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(logs)?;
    match checked(logs) {
        Some(problem) => Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            problem,
        )),
        None => Ok(()),
    }
}

/// Why fpctl must not write logs into `dir`, if it must not: it is a
/// symbolic link (whoever can change the link chooses where the logs go and
/// what they overwrite), not a folder, or another user's (who could read
/// them, or swap a log for a link). A folder that does not exist yet is
/// fine: fpctl makes it, owner-only.
pub fn log_dir_problem(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).ok()?;
    let me = nix::unistd::getuid().as_raw();
    let shown = dir.display();
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(dir)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default();
        Some(format!(
            "log_dir {shown} is a symbolic link{target}; fpctl writes logs only into a real \
             folder: set log_dir to the folder itself"
        ))
    } else if !meta.is_dir() {
        Some(format!("log_dir {shown} is not a folder"))
    } else if meta.uid() != me {
        Some(format!(
            "log_dir {shown} belongs to uid {}, not to you (uid {me}): that user could read \
             your services' logs or replace them; use a folder of your own",
            meta.uid()
        ))
    } else {
        None
    }
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
    use crate::status::ServiceState;

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
        assert_eq!(web.status.state, ServiceState::Online);
        assert_eq!(
            (web.status.pid, web.ticks, web.status.restarts),
            (Some(4300), Some(1234), 2)
        );
        assert_eq!(web.status.restarts_in_row, 0);
        assert_eq!(file.services["job"].status.state, ServiceState::Completed);
        let db = &file.services["db"].status;
        assert_eq!(db.state, ServiceState::Failed);
        assert_eq!(
            (db.detail.as_deref(), db.reason.as_ref()),
            (Some("gave up"), None)
        );
    }

    /// The format of the version before this one: the record of stop 17's
    /// fpctl, with the count in a row and no status fields.
    const PREVIOUS_WITH_ROW: &str = r#"{"supervisor_pid": null, "supervisor_ticks": null,
  "services": {"web": {"state": "stopped", "pid": null, "ticks": null, "started_at": null,
    "restarts": 0, "restarts_in_row": 3, "external": false, "detail": null}}}"#;

    #[test]
    fn a_record_survives_a_round_trip() {
        let file: StateFile = serde_json::from_str(PREVIOUS).unwrap();
        let again: StateFile =
            serde_json::from_str(&serde_json::to_string(&file).unwrap()).unwrap();
        assert_eq!(again.services["web"].status.state, ServiceState::Online);
        assert_eq!(again.services.len(), 3);
        let row: StateFile = serde_json::from_str(PREVIOUS_WITH_ROW).unwrap();
        assert_eq!(row.services["web"].status.restarts_in_row, 3);
    }

    #[test]
    fn a_typed_reason_survives_a_round_trip() {
        use crate::status::{Cause, FailReason, Reason};
        let mut file: StateFile = serde_json::from_str(PREVIOUS).unwrap();
        let reason = Reason::Failed(FailReason::gave_up(
            Cause::Exit {
                exit: crate::process::Exit::Code(3),
            },
            5,
        ));
        file.services.get_mut("db").unwrap().status.reason = Some(reason.clone());
        let again: StateFile =
            serde_json::from_str(&serde_json::to_string(&file).unwrap()).unwrap();
        assert_eq!(again.services["db"].status.reason, Some(reason));
    }
}

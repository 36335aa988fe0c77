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

pub fn socket_path(config: &Config) -> PathBuf {
    config.state_dir().join(SOCKET_FILE)
}

/// Create `.fpctl/` (owner-only) and the log folder.
pub fn ensure_dirs(config: &Config) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = config.state_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    std::fs::create_dir_all(&config.project.log_dir)
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

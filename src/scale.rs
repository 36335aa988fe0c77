//! What a running stack overrides in services.toml while its supervisor
//! runs: `fpctl scale NAME=N` instance counts over `replicas` (kept in
//! `.fpctl/scale.json`), and `fpctl start --containers`, which runs every
//! service with a container table in its container (`.fpctl/containers`).
//! Both are files so that every reader of the config (supervisor, `check`,
//! `ports`, `exec`) sees the same stack. The supervisor removes them when it
//! exits: the next start follows services.toml again. An export never reads
//! them: it writes the file as written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Service name → instance count.
pub type Counts = BTreeMap<String, u32>;

fn path(root: &Path) -> PathBuf {
    root.join(".fpctl").join("scale.json")
}

fn containers_path(root: &Path) -> PathBuf {
    root.join(".fpctl").join("containers")
}

/// Everything a running stack overrides.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub counts: Counts,
    /// `start --containers`: services with a container table run in it.
    pub containers: bool,
}

/// The overrides in force.
pub fn overrides(root: &Path) -> Overrides {
    Overrides {
        counts: read(root),
        containers: containers_path(root).is_file(),
    }
}

/// Run every service that has a container table in its container, until
/// the supervisor exits.
pub fn request_containers(root: &Path) -> std::io::Result<()> {
    let p = containers_path(root);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(p, b"")
}

/// The counts in force (none when the file is missing or unreadable).
pub fn read(root: &Path) -> Counts {
    std::fs::read(path(root))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn write(root: &Path, counts: &Counts) -> std::io::Result<()> {
    let p = path(root);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(counts).unwrap_or_default())?;
    std::fs::rename(tmp, p)
}

/// Forget every override.
pub fn clear(root: &Path) {
    let _ = std::fs::remove_file(path(root));
    let _ = std::fs::remove_file(containers_path(root));
}

/// A `NAME=N` argument that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum BadScale {
    #[error("expected NAME=N, like worker=3, found {0:?}")]
    NoCount(String),
    #[error("the count in {arg:?} must be a whole number from 1 up (`fpctl stop {name}` stops them all)")]
    BadCount { arg: String, name: String },
}

/// `NAME=N`, as given on the command line.
pub fn parse(arg: &str) -> Result<(String, u32), BadScale> {
    let (name, n) = arg
        .split_once('=')
        .ok_or_else(|| BadScale::NoCount(arg.to_string()))?;
    let n: u32 = n
        .trim()
        .parse()
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| BadScale::BadCount {
            arg: arg.to_string(),
            name: name.to_string(),
        })?;
    Ok((name.trim().to_string(), n))
}

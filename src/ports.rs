//! The port registry: the ports `port = "auto"` chose (kept in
//! `.fpctl/ports.json` so that they stay stable across runs and reloads),
//! and who holds each configured port right now.
//!
//! Config validation asks this module, through [`PortBook`], whether a port
//! may be given to a service; `fpctl ports` builds its [`Report`] here.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, PortBook, PortRange};
use crate::process;

/// The part of `.fpctl/state.json` (`state::StateFile`) that tells which
/// processes are the services' own.
#[derive(Deserialize)]
struct RecordedState {
    services: BTreeMap<String, RecordedProcess>,
}

#[derive(Deserialize)]
struct RecordedProcess {
    pid: Option<i32>,
    ticks: Option<u64>,
}

/// What `.fpctl/ports.json` holds.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Recorded {
    /// Service name -> the port `auto` gave it.
    auto: BTreeMap<String, u16>,
}

/// The ports chosen by earlier runs of one project, and the project's
/// process marker (to tell its own services from foreign holders).
pub struct Registry {
    path: PathBuf,
    marker: String,
    recorded: Recorded,
    /// `.fpctl/state.json`, read when a holder has no marker.
    state_path: PathBuf,
    /// The service processes the supervisor recorded that still run (the
    /// very processes: pid and start time), read once when first needed.
    running: std::sync::OnceLock<Vec<(String, i32)>>,
}

impl Registry {
    /// The registry of the project in `root`; empty when nothing is recorded.
    pub fn open(root: &Path) -> Registry {
        let path = root.join(".fpctl").join("ports.json");
        let recorded = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Registry {
            path,
            marker: process::project_marker(root),
            recorded,
            // `state::STATE_FILE`, read without the state module (which
            // depends on the config, which depends on this registry).
            state_path: root.join(".fpctl").join("state.json"),
            running: std::sync::OnceLock::new(),
        }
    }

    /// The recorded service whose process `pid` is, or is in the process
    /// group of, or descends from. For a process that rewrote its
    /// environment, as redis-server does with its process title, this is
    /// what is left to tell it from a foreign one.
    fn recorded_owner(&self, pid: i32) -> Option<String> {
        let running = self.running.get_or_init(|| {
            let Ok(bytes) = std::fs::read(&self.state_path) else {
                return Vec::new();
            };
            let Ok(saved) = serde_json::from_slice::<RecordedState>(&bytes) else {
                return Vec::new();
            };
            saved
                .services
                .into_iter()
                .filter_map(|(name, r)| Some((name, r.pid?, r.ticks?)))
                .filter(|&(_, pid, ticks)| process::is_same_process(pid, ticks))
                .map(|(name, pid, _)| (name, pid))
                .collect()
        });
        if running.is_empty() {
            return None;
        }
        let group = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid)))
            .ok()
            .map(|g| g.as_raw());
        running
            .iter()
            .find(|&&(_, leader)| {
                // Every service runs in a process group of its own, led by
                // the recorded process.
                pid == leader || group == Some(leader) || process::descends_from(pid, leader)
            })
            .map(|(name, _)| name.clone())
    }

    /// Record the ports `auto` chose in `config`, if they changed. Best
    /// effort: a read-only folder only loses the stability, not the run.
    pub fn remember(&self, config: &Config) {
        let now = Recorded {
            auto: config
                .services
                .iter()
                .filter(|s| s.port_auto)
                .filter_map(|s| Some((s.name.clone(), s.port?)))
                .collect(),
        };
        if now == self.recorded || (now.auto.is_empty() && !self.path.exists()) {
            return;
        }
        let Some(dir) = self.path.parent() else {
            return;
        };
        let tmp = self.path.with_extension("json.tmp");
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| {
                std::fs::write(&tmp, serde_json::to_vec_pretty(&now).unwrap_or_default())
            })
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::debug!(path = %self.path.display(), error = %e, "cannot record auto ports");
        }
    }

    /// Who listens on `port` now.
    pub fn holder(&self, port: u16) -> Holder {
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Holder::Free;
        }
        match process::port_holder(port) {
            None => Holder::Unknown,
            Some((pid, command)) => {
                let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let prefix = format!("{}={}:", process::MARKER_VAR, self.marker);
                let service = env
                    .split(|b| *b == 0)
                    .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
                    .map(|name| String::from_utf8_lossy(name).into_owned())
                    .or_else(|| self.recorded_owner(pid));
                match service {
                    Some(service) => Holder::Service { service, pid },
                    None => Holder::Foreign { pid, command },
                }
            }
        }
    }
}

impl PortBook for Registry {
    fn recorded(&self, service: &str) -> Option<u16> {
        self.recorded.auto.get(service).copied()
    }

    fn available(&self, port: u16, service: &str) -> bool {
        match self.holder(port) {
            Holder::Free => true,
            Holder::Service { service: s, .. } => s == service,
            Holder::Foreign { .. } | Holder::Unknown => false,
        }
    }
}

/// Who listens on a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Holder {
    /// Nothing listens on it.
    Free,
    /// A process of this project's service `service`.
    Service { service: String, pid: i32 },
    /// A process that is not this project's.
    Foreign { pid: i32, command: String },
    /// Something listens, but /proc does not say what (another user's process).
    Unknown,
}

/// One configured port, for `fpctl ports`.
#[derive(Debug, Serialize)]
pub struct PortRow {
    pub port: u16,
    pub service: String,
    pub tier: String,
    /// The tier's range, as `"8000-8099"`.
    pub range: Option<String>,
    /// Chosen by `port = "auto"`.
    pub auto: bool,
    #[serde(flatten)]
    pub holder: Holder,
    /// Why this port is a problem, if it is.
    pub conflict: Option<String>,
}

/// A tier's range and what is left of it.
#[derive(Debug, Serialize)]
pub struct TierRange {
    pub tier: String,
    pub range: String,
    /// Ports of the range the config gives to services.
    pub assigned: usize,
    /// Ports of the range neither assigned nor in use by anything.
    pub free: usize,
    /// The lowest of those.
    pub next_free: Option<u16>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub ports: Vec<PortRow>,
    pub tiers: Vec<TierRange>,
}

impl Report {
    pub fn conflicts(&self) -> usize {
        self.ports.iter().filter(|p| p.conflict.is_some()).count()
    }
}

/// Every configured port with its holder, and every tier range's headroom.
pub fn report(config: &Config, registry: &Registry) -> Report {
    let ports: Vec<PortRow> = config
        .services
        .iter()
        .filter_map(|svc| {
            let port = svc.port?;
            let tier = &config.tiers[svc.tier];
            let holder = registry.holder(port);
            let conflict = match &holder {
                Holder::Service { service, pid } if *service != svc.name => Some(format!(
                    "held by pid {pid} of service \"{service}\", not \"{}\"",
                    svc.name
                )),
                Holder::Foreign { pid, command } => Some(format!(
                    "held by pid {pid} ({command}), which is not a process of this project"
                )),
                Holder::Unknown => Some("in use by a process /proc does not show".into()),
                _ => None,
            };
            Some(PortRow {
                port,
                service: svc.name.clone(),
                tier: tier.name.clone(),
                range: tier.ports.map(|r| r.to_string()),
                auto: svc.port_auto,
                holder,
                conflict,
            })
        })
        .collect();
    let tiers = config
        .tiers
        .iter()
        .enumerate()
        .filter_map(|(i, tier)| {
            let range: PortRange = tier.ports?;
            let assigned: Vec<u16> = config
                .services
                .iter()
                .filter(|s| s.tier == i)
                .filter_map(|s| s.port)
                .filter(|&p| range.contains(p))
                .collect();
            let free: Vec<u16> = range
                .iter()
                .filter(|p| !assigned.contains(p))
                .filter(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
                .collect();
            Some(TierRange {
                tier: tier.name.clone(),
                range: range.to_string(),
                assigned: assigned.len(),
                free: free.len(),
                next_free: free.first().copied(),
            })
        })
        .collect();
    Report { ports, tiers }
}

//! The control protocol between the CLI and the supervisor: one JSON object
//! per line over a Unix socket under `.fpctl/`. Both sides use these types,
//! so they cannot disagree on a field. A request gets zero or more
//! `progress` responses and then exactly one final response.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; a mismatch is refused with a message.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line the supervisor reads.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub v: u32,
    #[serde(flatten)]
    pub body: T,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Start these (default all) and their dependencies; wait until settled.
    Start {
        services: Vec<String>,
        profiles: Vec<String>,
        /// Stop a stale copy of a service that holds its port.
        #[serde(default)]
        replace: bool,
    },
    /// Stop these and their dependents; none = everything and the supervisor.
    Stop {
        services: Vec<String>,
    },
    /// Stop and start these again; wait until online.
    Restart {
        services: Vec<String>,
    },
    Status,
    /// The last probe results of these services (none = all).
    History {
        services: Vec<String>,
    },
    /// Serve the HTTP API (and dashboard) on a free loopback port unless it
    /// already listens; answered with `Api`.
    Api,
    /// Re-read services.toml and apply the difference (or only show it).
    Reload {
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Progress(Progress),
    Status {
        supervisor_pid: i32,
        services: Vec<ServiceStatus>,
        /// SHA-256 of the services.toml the supervisor runs, so a client can
        /// tell when the file on disk differs from it.
        #[serde(default)]
        config_digest: Option<String>,
    },
    /// What a reload changes, one entry per service (before its progress),
    /// and where the HTTP API moves, if it does.
    Plan {
        changes: Vec<Change>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api: Option<ApiChange>,
    },
    Done {
        ok: bool,
        failures: Vec<Failure>,
    },
    Error {
        /// What went wrong, for the client to branch on (never the text).
        #[serde(default)]
        kind: ErrorKind,
        message: String,
    },
    History {
        histories: std::collections::BTreeMap<String, Vec<ProbeSample>>,
    },
    Api {
        url: String,
        token: String,
    },
}

/// One health probe's outcome, as kept in each service's history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeSample {
    /// Unix time, seconds.
    pub ts: f64,
    /// healthy, unhealthy or down.
    pub verdict: String,
    pub latency_ms: f64,
}

/// What the supervisor publishes to live watchers (the API's stream).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Update {
    /// Every service, after any change of state or a new metrics sample.
    Status { services: Vec<ServiceStatus> },
    Probe {
        service: String,
        #[serde(flatten)]
        sample: ProbeSample,
    },
    Event {
        #[serde(flatten)]
        event: crate::events::Event,
    },
}

/// The kinds of refusal a supervisor answers with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// It is stopping everything and exiting: ask the next one.
    ShuttingDown,
    /// A name that is not in services.toml.
    UnknownService,
    /// services.toml does not validate (a reload).
    InvalidConfig,
    /// Malformed, too long, wrong protocol version.
    BadRequest,
    /// Another user's supervisor.
    PermissionDenied,
    #[default]
    Internal,
}

impl Response {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
        Response::Error {
            kind,
            message: message.into(),
        }
    }
}

/// The states of SPEC.md, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    Online,
    Degraded,
    Offline,
    Starting,
    Failed,
    Blocked,
    Stopped,
    Completed,
}

impl ServiceState {
    pub const ALL: [ServiceState; 8] = [
        ServiceState::Online,
        ServiceState::Degraded,
        ServiceState::Offline,
        ServiceState::Starting,
        ServiceState::Failed,
        ServiceState::Blocked,
        ServiceState::Stopped,
        ServiceState::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Online => "online",
            ServiceState::Degraded => "degraded",
            ServiceState::Offline => "offline",
            ServiceState::Starting => "starting",
            ServiceState::Failed => "failed",
            ServiceState::Blocked => "blocked",
            ServiceState::Stopped => "stopped",
            ServiceState::Completed => "completed",
        }
    }

    /// Counts as success for exit codes.
    pub fn is_ok(self) -> bool {
        matches!(self, ServiceState::Online | ServiceState::Completed)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    pub service: String,
    pub state: ServiceState,
    pub detail: Option<String>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub state: ServiceState,
    pub pid: Option<i32>,
    /// The port of the config the supervisor runs (not of the file on disk).
    #[serde(default)]
    pub port: Option<u16>,
    /// Restarts fpctl did on its own (after an exit, a crash, a failed
    /// liveness check or `max_memory`) since the supervisor took the service
    /// over; requested ones count only in `restarts_total`.
    pub restarts: u32,
    /// Restarts in a row, the count `max_restarts` limits; `start` resets it.
    #[serde(default)]
    pub restarts_in_row: u32,
    pub uptime_s: Option<f64>,
    /// In words: the reason when failed or blocked, else the last probe.
    pub detail: Option<String>,
    /// Why it is failed or blocked, as data.
    #[serde(default)]
    pub reason: Option<Reason>,
    pub latency_ms: Option<f64>,
    /// Answering on its port, but not started by fpctl.
    pub external: bool,
    /// Resident memory of its process group, at the last sample.
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    /// CPU use of its process group over the last sample interval, in % of
    /// one core.
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// Every restart under this supervisor: crashes and requested ones.
    #[serde(default)]
    pub restarts_total: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub service: String,
    pub state: ServiceState,
    /// The reason in words (secrets masked).
    pub reason: String,
    pub log: PathBuf,
}

/// Why a service is failed or blocked, as data; `output.rs` words it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reason {
    Failed(FailReason),
    Blocked(BlockReason),
}

impl Reason {
    /// The same reason with `mask` applied to every text in it (secrets).
    pub fn masked(self, mask: impl Fn(&str) -> String) -> Reason {
        match self {
            Reason::Blocked(b) => Reason::Blocked(b),
            Reason::Failed(f) => Reason::Failed(match f {
                FailReason::Prepare { message } => FailReason::Prepare {
                    message: mask(&message),
                },
                FailReason::Recorded { message } => FailReason::Recorded {
                    message: mask(&message),
                },
                FailReason::StartTimeout {
                    after_ms,
                    last_probe,
                    elsewhere,
                } => FailReason::StartTimeout {
                    after_ms,
                    last_probe: mask(&last_probe),
                    elsewhere,
                },
                FailReason::NotRestarted { why, policy } => FailReason::NotRestarted {
                    why: mask(&why),
                    policy,
                },
                FailReason::GaveUp { why, max_restarts } => FailReason::GaveUp {
                    why: mask(&why),
                    max_restarts,
                },
                other @ FailReason::Oneshot { .. } => other,
            }),
        }
    }
}

/// Why fpctl gave up on a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailReason {
    /// The port check, setup or spawn failed (its words).
    Prepare { message: String },
    StartTimeout {
        after_ms: u64,
        last_probe: String,
        /// Ports its processes listen on instead ("pid 7 listens on 3000,
        /// not 3311").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        elsewhere: Option<String>,
    },
    /// Exited, and the restart policy says not to restart.
    NotRestarted {
        why: String,
        policy: crate::config::RestartPolicy,
    },
    /// Restarted `max_restarts` times in a row.
    GaveUp { why: String, max_restarts: u32 },
    /// A oneshot that exited non-zero.
    Oneshot { exit: crate::process::Exit },
    /// As an earlier supervisor recorded it.
    Recorded { message: String },
}

/// Why a service cannot start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BlockReason {
    /// A dependency gave up, or is stopped or disabled.
    Dependency { service: String, state: DepState },
    /// A service of an earlier tier gave up.
    EarlierTier { service: String, state: DepState },
}

/// What a blocker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepState {
    Failed,
    Blocked,
    Stopped,
    Disabled,
}

impl DepState {
    pub fn as_str(self) -> &'static str {
        match self {
            DepState::Failed => "failed",
            DepState::Blocked => "blocked",
            DepState::Stopped => "stopped",
            DepState::Disabled => "disabled",
        }
    }
}

/// One line of a reload plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub service: String,
    pub kind: ChangeKind,
    /// What differs, for a changed service: `command`, `port`, `env`, …
    /// or `FPCTL_PORT_X` for a dependent that sees a moved port. A running
    /// service restarts for these.
    pub reasons: Vec<String>,
    /// What differs and takes effect without a restart: `watch`,
    /// `depends_on`, `tier`, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live: Vec<String>,
}

impl Change {
    /// Whether the service restarts (when it runs) for this change.
    pub fn restarts(&self) -> bool {
        self.kind != ChangeKind::Changed || !self.reasons.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ChangeKind::Added => write!(f, "+ {}", self.service),
            ChangeKind::Removed => write!(f, "- {}", self.service),
            ChangeKind::Changed => {
                let all: Vec<&str> = self
                    .reasons
                    .iter()
                    .chain(&self.live)
                    .map(String::as_str)
                    .collect();
                let restart = if self.reasons.is_empty() {
                    "; no restart"
                } else {
                    ""
                };
                write!(
                    f,
                    "~ {} ({} changed{restart})",
                    self.service,
                    all.join(", ")
                )
            }
        }
    }
}

/// What a reload changes in the HTTP API: where it listens (`None`: off)
/// and whether its token is another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiChange {
    pub from: Option<String>,
    pub to: Option<String>,
    pub token: bool,
    /// `api_read_only` as it becomes, when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

impl std::fmt::Display for ApiChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let off = |a: &Option<String>| a.clone().unwrap_or_else(|| "off".into());
        let mut parts = Vec::new();
        if self.from != self.to {
            parts.push(format!("api: {} -> {}", off(&self.from), off(&self.to)));
        }
        if self.token {
            parts.push("api_token changed".into());
        }
        if let Some(now) = self.read_only {
            parts.push(format!("api_read_only: {} -> {now}", !now));
        }
        write!(f, "~ [project] {}", parts.join(", "))
    }
}

/// A connection to a running supervisor.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connect, or None when no supervisor answers on `socket`.
    pub fn connect(socket: &Path) -> Option<Client> {
        let stream = UnixStream::connect(socket).ok()?;
        let writer = stream.try_clone().ok()?;
        Some(Client {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Send one request; call `on_progress` for each progress line; return
    /// the final response.
    pub fn request(
        &mut self,
        request: Request,
        mut on_progress: impl FnMut(&Progress),
    ) -> std::io::Result<Response> {
        self.request_with(request, |r| {
            if let Response::Progress(p) = r {
                on_progress(p)
            }
        })
    }

    /// Like `request`, with every intermediate response (progress, a reload
    /// plan) passed to `on_update`.
    pub fn request_with(
        &mut self,
        request: Request,
        mut on_update: impl FnMut(&Response),
    ) -> std::io::Result<Response> {
        let mut line = serde_json::to_string(&Envelope {
            v: PROTOCOL_VERSION,
            body: request,
        })
        .map_err(std::io::Error::other)?;
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let mut buf = String::new();
            if self.reader.read_line(&mut buf)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the supervisor closed the connection (see .fpctl/supervisor.log)",
                ));
            }
            let reply: Envelope<Response> = serde_json::from_str(&buf).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad reply from supervisor: {e}"),
                )
            })?;
            match reply.body {
                r @ (Response::Progress(_) | Response::Plan { .. }) => on_update(&r),
                other => return Ok(other),
            }
        }
    }

    pub fn set_timeout(&self, t: Option<Duration>) {
        let _ = self.writer.set_read_timeout(t);
        let _ = self.reader.get_ref().set_read_timeout(t);
    }
}

/// SHA-256 (hex) of a file's bytes; None when it cannot be read.
pub fn file_digest(path: &Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).ok()?;
    Some(format!("{:x}", Sha256::digest(bytes)))
}

/// Encode one response line.
pub fn encode(response: Response) -> String {
    let mut s = serde_json::to_string(&Envelope {
        v: PROTOCOL_VERSION,
        body: response,
    })
    .expect("responses always serialize");
    s.push('\n');
    s
}

/// Decode one request line, with a message fit to send back on error.
pub fn decode(line: &str) -> Result<Request, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("malformed request: {e}"))?;
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => return Err(format!("protocol version {v} is not supported (this supervisor speaks {PROTOCOL_VERSION}); run `fpctl stop` with the matching fpctl")),
        None => return Err("malformed request: no protocol version \"v\"".into()),
    }
    serde_json::from_value::<Envelope<Request>>(value)
        .map(|e| e.body)
        .map_err(|e| format!("malformed request: {e}"))
}

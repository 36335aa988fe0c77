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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Progress(Progress),
    Status {
        supervisor_pid: i32,
        services: Vec<ServiceStatus>,
    },
    Done {
        ok: bool,
        failures: Vec<Failure>,
    },
    Error {
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
    pub restarts: u32,
    pub uptime_s: Option<f64>,
    pub detail: Option<String>,
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
    pub reason: String,
    pub log: PathBuf,
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
                Response::Progress(p) => on_progress(&p),
                other => return Ok(other),
            }
        }
    }

    pub fn set_timeout(&self, t: Option<Duration>) {
        let _ = self.writer.set_read_timeout(t);
        let _ = self.reader.get_ref().set_read_timeout(t);
    }
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

//! The control protocol between the CLI and the supervisor: one JSON object
//! per line over a Unix socket under `.fpctl/`. Both sides use these types,
//! so they cannot disagree on a field. A request gets zero or more
//! `progress` responses and then exactly one final response.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::{Event, Failure, ProbeSample, Progress, ServiceStatus, Snapshot};

/// Bumped on any incompatible change; a mismatch is refused with a message.
pub const PROTOCOL_VERSION: u32 = 2;

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
    /// The services.toml text the supervisor runs (as it last loaded it):
    /// commands act on the running stack with it while the file on disk
    /// does not validate. Answered with `Config`.
    Config,
    /// A snapshot of the stack, then every change of a service's status,
    /// every probe result and every event as [`Response::Update`], in the
    /// order they happen, for as long as the connection stays open. A
    /// client too slow to keep up gets a fresh snapshot (`Status`) and goes
    /// on from there.
    Subscribe,
    /// The record of the last start that started anything (for `fpctl
    /// analyze`); answered with `Analysis`.
    Analyze,
}

// A reply is made, sent and dropped: its size on the stack is no concern.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Progress(Progress),
    Status {
        #[serde(flatten)]
        snapshot: Snapshot,
        /// SHA-256 of the services.toml the supervisor runs, so a client can
        /// tell when the file on disk differs from it.
        #[serde(default)]
        config_digest: Option<String>,
    },
    /// One change, to a subscriber.
    Update(Update),
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
        /// One-time codes a browser trades for the token (`#code=` in the
        /// page's URL), so that the token never appears on a command line.
        #[serde(default)]
        codes: Vec<String>,
    },
    Config {
        path: PathBuf,
        text: String,
    },
    /// The last start, as the supervisor recorded it (none yet: None).
    Analysis {
        record: Option<crate::status::StartRecord>,
    },
}

/// What the supervisor publishes to live watchers (the API's stream, the
/// socket's subscribers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Update {
    /// One service's status, after any change of what it shows.
    Service(Box<ServiceStatus>),
    Probe {
        service: String,
        #[serde(flatten)]
        sample: ProbeSample,
    },
    Event(Event),
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

impl ErrorKind {
    /// The exit code of a command that got this refusal: the user's to fix
    /// (a bad name, a bad file, a bad request) is 2, the rest 1.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::UnknownService | ErrorKind::InvalidConfig | ErrorKind::BadRequest => 2,
            ErrorKind::ShuttingDown | ErrorKind::PermissionDenied | ErrorKind::Internal => 1,
        }
    }

    /// The HTTP status the API answers this refusal with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::UnknownService => 404,
            ErrorKind::InvalidConfig => 422,
            ErrorKind::BadRequest => 400,
            ErrorKind::PermissionDenied => 403,
            // It could not be done now: the stack is busy or going away.
            ErrorKind::ShuttingDown | ErrorKind::Internal => 409,
        }
    }
}

impl Response {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
        Response::Error {
            kind,
            message: message.into(),
        }
    }
}

/// One line of a reload plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
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

/// A connection to a running supervisor.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connect, or None when no supervisor answers on `socket`.
    pub fn connect(socket: &Path) -> Option<Client> {
        // Never talk to a socket in a folder someone else controls.
        crate::state::check_socket_dir(socket).ok()?;
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
        self.send(request)?;
        loop {
            let Some(reply) = self.read()? else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the supervisor closed the connection (see .fpctl/supervisor.log)",
                ));
            };
            match reply {
                r @ (Response::Progress(_) | Response::Plan { .. }) => on_update(&r),
                other => return Ok(other),
            }
        }
    }

    /// Subscribe: the first [`Subscription::recv`] is a `Status` snapshot,
    /// then `Update`s follow in the order they happen (and a fresh
    /// `Status` when this client fell too far behind).
    pub fn subscribe(mut self) -> std::io::Result<Subscription> {
        self.send(Request::Subscribe)?;
        Ok(Subscription { client: self })
    }

    fn send(&mut self, request: Request) -> std::io::Result<()> {
        let mut line = serde_json::to_string(&Envelope {
            v: PROTOCOL_VERSION,
            body: request,
        })
        .map_err(std::io::Error::other)?;
        line.push('\n');
        self.writer.write_all(line.as_bytes())
    }

    /// The next response line; None when the supervisor closed the
    /// connection.
    fn read(&mut self) -> std::io::Result<Option<Response>> {
        let mut buf = String::new();
        if self.reader.read_line(&mut buf)? == 0 {
            return Ok(None);
        }
        let reply: Envelope<Response> = serde_json::from_str(&buf).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad reply from supervisor: {e}"),
            )
        })?;
        Ok(Some(reply.body))
    }

    pub fn set_timeout(&self, t: Option<Duration>) {
        let _ = self.writer.set_read_timeout(t);
        let _ = self.reader.get_ref().set_read_timeout(t);
    }
}

/// A live subscription (see [`Request::Subscribe`]).
pub struct Subscription {
    client: Client,
}

impl Subscription {
    /// The next snapshot or update; None once the supervisor has exited.
    pub fn recv(&mut self) -> std::io::Result<Option<Response>> {
        self.client.read()
    }

    pub fn set_timeout(&self, t: Option<Duration>) {
        self.client.set_timeout(t)
    }

    /// Another handle on the connection: shutting it down ends a `next`
    /// that waits, from another thread.
    pub fn handle(&self) -> std::io::Result<UnixStream> {
        self.client.writer.try_clone()
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

/// Why a request line was refused; its text is sent back.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    #[error("malformed request: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("malformed request: no protocol version \"v\"")]
    NoVersion,
    #[error("protocol version {0} is not supported (this supervisor speaks {PROTOCOL_VERSION}); run `fpctl stop` with the matching fpctl")]
    Version(u64),
    #[error("request too long")]
    TooLong,
    #[error("malformed request: {0}")]
    Read(#[source] std::io::Error),
    #[error("no request within 10s")]
    Silent,
}

/// Decode one request line.
pub fn decode(line: &str) -> Result<Request, BadRequest> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(BadRequest::Malformed)?;
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => return Err(BadRequest::Version(v)),
        None => return Err(BadRequest::NoVersion),
    }
    serde_json::from_value::<Envelope<Request>>(value)
        .map(|e| e.body)
        .map_err(BadRequest::Malformed)
}

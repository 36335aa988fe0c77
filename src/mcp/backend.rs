//! How the MCP server reaches the supervisor: over its control socket (`fpctl
//! mcp`, a separate process), or through the API's channel inside the
//! supervisor (`POST /mcp`). Both give the same control [`Response`]s, so
//! the tools above never know which one they talk to.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::api::Shared;
use crate::config::{self, Config};
use crate::control::{Client, Request, Response, Update};
use crate::status::Snapshot;

#[derive(Clone)]
pub(crate) enum Backend {
    /// A client of the supervisor's socket; starts one when none answers.
    Socket(Arc<SocketBackend>),
    /// Inside the supervisor, as the HTTP API reaches it.
    InProcess(Arc<Shared>),
}

pub struct SocketBackend {
    /// The services.toml (absolute).
    pub path: PathBuf,
    socket: PathBuf,
    /// The config the supervisor runs, and the digest it was read for.
    running: Mutex<Option<(Option<String>, Arc<Config>)>>,
}

impl SocketBackend {
    pub fn new(path: PathBuf) -> SocketBackend {
        let root = path.parent().map(PathBuf::from).unwrap_or_default();
        SocketBackend {
            socket: crate::state::socket_path_in(&root),
            path,
            running: Mutex::new(None),
        }
    }

    /// Reach the supervisor now (starting one if needed).
    pub fn connect_now(&self) -> Result<(), BackendError> {
        self.connect().map(|_| ())
    }

    /// A connection to the supervisor, starting one in the background
    /// (from the file on disk) when none answers.
    fn connect(&self) -> Result<Client, BackendError> {
        if let Some(c) = Client::connect(&self.socket) {
            return Ok(c);
        }
        let config = config::load(Some(&self.path)).map_err(BackendError::NoConfig)?;
        crate::commands::connect_or_spawn(&config).map_err(BackendError::Spawn)
    }
}

/// Why the supervisor could not be asked, or what it refused.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("no supervisor runs, and services.toml cannot start one:\n{0}")]
    NoConfig(#[source] config::ConfigError),
    #[error("{0}")]
    Spawn(#[source] crate::Error),
    /// The supervisor's refusal, in its words.
    #[error("{0}")]
    Refused(String),
    #[error("unexpected answer from the supervisor: {0}")]
    Unexpected(String),
    #[error("the running services.toml does not load: {0}")]
    Running(String),
}

impl BackendError {
    fn unexpected(other: &Response) -> BackendError {
        BackendError::Unexpected(format!("{other:?}"))
    }
}

/// The supervisor is gone or going.
pub const GONE: &str = "the supervisor is shutting down (or exited); try again";

impl Backend {
    /// Send one request: every response comes on the channel, the final
    /// one last (after it, the channel closes).
    pub fn send(&self, request: Request) -> mpsc::UnboundedReceiver<Response> {
        let (tx, rx) = mpsc::unbounded_channel();
        match self {
            Backend::InProcess(shared) => {
                shared.forward(request, tx);
            }
            Backend::Socket(s) => {
                let s = Arc::clone(s);
                std::thread::spawn(move || {
                    let mut client = match s.connect() {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = tx.send(Response::error(Default::default(), e.to_string()));
                            return;
                        }
                    };
                    let answer = client.request_with(request, |r| {
                        let _ = tx.send(r.clone());
                    });
                    let last = answer.unwrap_or_else(|e| {
                        Response::error(Default::default(), format!("lost the supervisor: {e}"))
                    });
                    let _ = tx.send(last);
                });
            }
        }
        rx
    }

    /// The final response to `request`, and every one before it.
    pub async fn ask(&self, request: Request) -> (Vec<Response>, Response) {
        let mut rx = self.send(request);
        let mut before = Vec::new();
        while let Some(r) = rx.recv().await {
            match r {
                r @ (Response::Progress(_) | Response::Plan { .. }) => before.push(r),
                last => return (before, last),
            }
        }
        (before, Response::error(Default::default(), GONE))
    }

    /// The supervisor's snapshot, and the digest of the services.toml it
    /// runs.
    pub async fn snapshot(&self) -> Result<(Snapshot, Option<String>), BackendError> {
        match self.ask(Request::Status).await.1 {
            Response::Status {
                snapshot,
                config_digest,
            } => Ok((snapshot, config_digest)),
            Response::Error { message, .. } => Err(BackendError::Refused(message)),
            other => Err(BackendError::unexpected(&other)),
        }
    }

    /// The config the supervisor runs (as it last loaded it).
    pub async fn config(&self) -> Result<Arc<Config>, BackendError> {
        let s = match self {
            Backend::InProcess(shared) => return Ok(shared.config()),
            Backend::Socket(s) => s,
        };
        let (_, digest) = self.snapshot().await?;
        if let Some((d, c)) = &*s.running.lock().unwrap_or_else(|e| e.into_inner()) {
            if *d == digest {
                return Ok(Arc::clone(c));
            }
        }
        let (path, text) = match self.ask(Request::Config).await.1 {
            Response::Config { path, text } => (path, text),
            Response::Error { message, .. } => return Err(BackendError::Refused(message)),
            other => return Err(BackendError::unexpected(&other)),
        };
        let config = tokio::task::spawn_blocking(move || config::load_str(&path, text))
            .await
            .map_err(|e| BackendError::Running(e.to_string()))?
            .map_err(|e| BackendError::Running(e.to_string()))?;
        let config = Arc::new(config);
        *s.running.lock().unwrap_or_else(|e| e.into_inner()) = Some((digest, Arc::clone(&config)));
        Ok(config)
    }

    /// The services.toml on disk.
    pub fn path(&self) -> PathBuf {
        match self {
            Backend::InProcess(shared) => shared.config().path.clone(),
            Backend::Socket(s) => s.path.clone(),
        }
    }

    /// A live subscription: a `Status` first, then `Update`s in order (a
    /// fresh `Status` after falling behind). The channel closes when the
    /// supervisor exits; dropping the receiver ends the subscription.
    pub fn subscribe(&self) -> Live {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut closer = None;
        match self {
            Backend::InProcess(shared) => {
                let shared = Arc::clone(shared);
                tokio::spawn(async move {
                    use tokio::sync::broadcast::error::RecvError;
                    // Subscribed before the snapshot is taken: nothing falls
                    // between.
                    let mut updates = shared.updates.subscribe();
                    let status = Backend::InProcess(Arc::clone(&shared))
                        .ask(Request::Status)
                        .await
                        .1;
                    if tx.send(status).is_err() {
                        return;
                    }
                    loop {
                        let next = tokio::select! {
                            u = updates.recv() => u,
                            () = tx.closed() => return,
                        };
                        let r = match next {
                            Ok(u) => Response::Update(u),
                            Err(RecvError::Lagged(_)) => {
                                Backend::InProcess(Arc::clone(&shared))
                                    .ask(Request::Status)
                                    .await
                                    .1
                            }
                            Err(RecvError::Closed) => return,
                        };
                        if tx.send(r).is_err() {
                            return;
                        }
                    }
                });
            }
            Backend::Socket(s) => {
                let s = Arc::clone(s);
                let (handle_tx, handle_rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let sub = s
                        .connect()
                        .map_err(|e| e.to_string())
                        .and_then(|c| c.subscribe().map_err(|e| e.to_string()));
                    let mut sub = match sub {
                        Ok(sub) => sub,
                        Err(message) => {
                            let _ = tx.send(Response::error(Default::default(), message));
                            return;
                        }
                    };
                    let _ = handle_tx.send(sub.handle().ok());
                    while let Ok(Some(r)) = sub.recv() {
                        if tx.send(r).is_err() {
                            return;
                        }
                    }
                });
                // Blocks only as long as connecting takes.
                closer = handle_rx.recv().ok().flatten();
            }
        }
        Live { rx, closer }
    }
}

/// A subscription; dropping it hangs up.
pub struct Live {
    pub rx: mpsc::UnboundedReceiver<Response>,
    closer: Option<std::os::unix::net::UnixStream>,
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(c) = &self.closer {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The statuses in `update` applied to `snapshot`.
pub fn apply(snapshot: &mut Snapshot, update: &Update) {
    if let Update::Service(s) = update {
        if let Some(mine) = snapshot.services.iter_mut().find(|m| m.name == s.name) {
            *mine = (**s).clone();
        } else {
            snapshot.services.push((**s).clone());
        }
        snapshot.summary = crate::status::Summary::of(&snapshot.services);
    }
}

//! The HTTP API and the web dashboard, served by the supervisor.
//!
//! It reaches the supervisor only the way the Unix socket does, with
//! control [`Request`]s whose [`Response`]s come back on a channel, plus the
//! supervisor's broadcast of [`Update`]s for the live stream. `auth` guards
//! every request, `routes` answers the JSON endpoints, `stream` serves the
//! WebSocket, `prom` the Prometheus text, and `assets` the embedded page.

mod assets;
mod auth;
mod listen;
mod prom;
mod routes;
mod stream;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use std::sync::Mutex;

use tokio::sync::{broadcast, mpsc, watch};

use crate::config::Config;
use crate::control::{ApiChange, Change, ErrorKind, Request, Response, Update};
use crate::status::Progress;
use listen::{Listener, Move};

/// Hands one request to the supervisor; false when it is gone.
pub type Forward = Arc<dyn Fn(Request, mpsc::UnboundedSender<Response>) -> bool + Send + Sync>;

/// The API of one supervisor: off until [`Api::listen`] is called.
#[derive(Clone)]
pub struct Api {
    shared: Arc<Shared>,
    listening: Arc<Mutex<Option<Listener>>>,
    /// The token every listener checks, replaced by a reload.
    token: Arc<watch::Sender<Arc<str>>>,
}

/// What every handler can reach.
pub(crate) struct Shared {
    /// The supervisor's config, replaced by a reload.
    config: watch::Receiver<Arc<Config>>,
    forward: Forward,
    pub updates: broadcast::Sender<Update>,
    /// The one-time codes of `fpctl dashboard`, traded for the token.
    pub codes: Arc<auth::Codes>,
}

/// One request's answer: the progress lines, a reload's plan (and its
/// change to the API), then the
/// final response.
pub(crate) struct Answer {
    pub progress: Vec<Progress>,
    pub changes: Vec<Change>,
    pub api: Option<ApiChange>,
    pub last: Response,
}

impl Shared {
    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.borrow())
    }

    /// Send a request to the supervisor and wait for its final response.
    pub async fn ask(&self, request: Request) -> Option<Answer> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        if !(self.forward)(request, tx) {
            return None;
        }
        let (mut progress, mut changes, mut api) = (Vec::new(), Vec::new(), None);
        while let Some(r) = rx.recv().await {
            match r {
                Response::Progress(p) => progress.push(p),
                Response::Plan { changes: c, api: a } => {
                    changes.extend(c);
                    api = api.or(a);
                }
                last => {
                    return Some(Answer {
                        progress,
                        changes,
                        api,
                        last,
                    })
                }
            }
        }
        None
    }
}

impl Api {
    pub fn new(
        config: watch::Receiver<Arc<Config>>,
        forward: Forward,
        updates: broadcast::Sender<Update>,
    ) -> Api {
        Api {
            shared: Arc::new(Shared {
                config,
                forward,
                updates,
                codes: Arc::default(),
            }),
            listening: Arc::new(Mutex::new(None)),
            token: Arc::new(watch::channel(Arc::from("")).0),
        }
    }

    fn listening(&self) -> std::sync::MutexGuard<'_, Option<Listener>> {
        self.listening.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bind `addr` and serve the API there, checking the token in force.
    fn open(&self, configured: Option<SocketAddr>, addr: SocketAddr) -> std::io::Result<Listener> {
        Listener::open(configured, addr, |bound| {
            routes::router(
                Arc::clone(&self.shared),
                auth::Guard::new(self.token.subscribe(), bound),
            )
        })
    }

    /// Listen on `addr` (port 0: a free one) unless already listening;
    /// returns where it listens. `configured`: the `[project] api` asking.
    pub fn listen(
        &self,
        configured: Option<SocketAddr>,
        addr: SocketAddr,
    ) -> Result<SocketAddr, ApiError> {
        let mut listening = self.listening();
        if let Some(l) = &*listening {
            return Ok(l.bound);
        }
        self.token
            .send_replace(auth::token(&self.shared.config())?.into());
        let l = self
            .open(configured, addr)
            .map_err(|e| bind_error(addr, e))?;
        let bound = l.bound;
        *listening = Some(l);
        Ok(bound)
    }

    /// Where it listens now, if it does.
    pub fn address(&self) -> Option<SocketAddr> {
        self.listening().as_ref().map(|l| l.bound)
    }

    /// What a reload to `new` changes in the API, if anything.
    pub fn plan(&self, new: &Config) -> Option<ApiChange> {
        let listening = self.listening();
        let from = listening.as_ref().map(|l| l.bound.to_string());
        let to = match listen::wanted(listening.as_ref(), new.project.api.listen) {
            Move::Keep => from.clone(),
            Move::Open(addr) => Some(addr.to_string()),
            Move::Close => None,
        };
        let old = &self.shared.config().project.api;
        let token = old.token != new.project.api.token;
        let read_only =
            (old.read_only != new.project.api.read_only).then_some(new.project.api.read_only);
        (from != to || token || read_only.is_some()).then_some(ApiChange {
            from,
            to,
            token,
            read_only,
        })
    }

    /// Make the API what `new` says: bind a new address before letting go
    /// of the old one, so that when the bind fails (the error names the
    /// address) the old listener keeps serving and nothing changed. A new
    /// token counts from the next request.
    pub fn apply(&self, new: &Config) -> Result<(), ApiError> {
        let mut listening = self.listening();
        let token_changed = self.shared.config().project.api.token != new.project.api.token;
        let wanted = listen::wanted(listening.as_ref(), new.project.api.listen);
        let opens = matches!(wanted, Move::Open(_));
        // Read (or create) the new token first: it may fail too.
        let token = if (token_changed && listening.is_some()) || (opens && listening.is_none()) {
            Some(auth::token(new)?)
        } else {
            None
        };
        match wanted {
            Move::Keep => {
                if let (Some(l), Some(addr)) = (listening.as_mut(), new.project.api.listen) {
                    l.configured = Some(addr);
                }
            }
            Move::Close => *listening = None,
            Move::Open(addr) => {
                let opened = match self.open(Some(addr), addr) {
                    Ok(l) => l,
                    // The same port on another address: the old listener
                    // holds it until it closes.
                    Err(e)
                        if e.kind() == std::io::ErrorKind::AddrInUse
                            && listening
                                .as_ref()
                                .is_some_and(|old| old.bound.port() == addr.port()) =>
                    {
                        let old = listening.take();
                        let back = old.as_ref().map(|o| (o.configured, o.bound));
                        drop(old);
                        match self.open(Some(addr), addr) {
                            Ok(l) => l,
                            Err(e) => {
                                // Serve where it was again.
                                *listening = back.and_then(|(c, b)| self.open(c, b).ok());
                                return Err(bind_error(addr, e));
                            }
                        }
                    }
                    Err(e) => return Err(bind_error(addr, e)),
                };
                *listening = Some(opened);
            }
        }
        if let Some(token) = token {
            self.token.send_replace(token.into());
        }
        Ok(())
    }

    /// For `fpctl dashboard`: listen where configured, else on a free
    /// loopback port, and say where, with the token and two one-time codes
    /// (one for the browser it opens, one for the link it prints).
    pub fn ensure(&self) -> Response {
        let configured = self.shared.config().project.api.listen;
        let addr = configured.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let answer = self.listen(configured, addr).and_then(|bound| {
            let codes = (0..2)
                .map(|_| self.shared.codes.issue())
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Response::Api {
                url: format!("http://{}/", auth::url_host(bound)),
                token: self.token.borrow().to_string(),
                codes,
            })
        });
        answer.unwrap_or_else(|e| Response::error(ErrorKind::Internal, e.to_string()))
    }
}

fn bind_error(addr: SocketAddr, e: std::io::Error) -> ApiError {
    ApiError::Bind { addr, source: e }
}

/// Why the API cannot serve (or move) as asked.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot listen on {addr} for the HTTP API: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read /dev/urandom for a secret: {0}")]
    Random(#[source] std::io::Error),
    #[error("cannot create {}: {source}", .path.display())]
    StateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    WriteToken {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

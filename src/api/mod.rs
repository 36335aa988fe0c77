//! The HTTP API and the web dashboard, served by the supervisor.
//!
//! It reaches the supervisor only the way the Unix socket does, with
//! control [`Request`]s whose [`Response`]s come back on a channel, plus the
//! supervisor's broadcast of [`Update`]s for the live stream. `auth` guards
//! every request, `routes` answers the JSON endpoints, `stream` serves the
//! WebSocket, `prom` the Prometheus text, and `assets` the embedded page.

mod assets;
mod auth;
mod prom;
mod routes;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, watch, Mutex};

use crate::config::Config;
use crate::control::{Change, ErrorKind, Progress, Request, Response, Update};

/// Hands one request to the supervisor; false when it is gone.
pub type Forward = Arc<dyn Fn(Request, mpsc::UnboundedSender<Response>) -> bool + Send + Sync>;

/// The API of one supervisor: off until [`Api::listen`] is called.
#[derive(Clone)]
pub struct Api {
    shared: Arc<Shared>,
    listening: Arc<Mutex<Option<SocketAddr>>>,
}

/// What every handler can reach.
pub(crate) struct Shared {
    /// The supervisor's config, replaced by a reload.
    config: watch::Receiver<Arc<Config>>,
    forward: Forward,
    pub updates: broadcast::Sender<Update>,
}

/// One request's answer: the progress lines, a reload's plan, then the
/// final response.
pub(crate) struct Answer {
    pub progress: Vec<Progress>,
    pub changes: Vec<Change>,
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
        let (mut progress, mut changes) = (Vec::new(), Vec::new());
        while let Some(r) = rx.recv().await {
            match r {
                Response::Progress(p) => progress.push(p),
                Response::Plan { changes: c } => changes.extend(c),
                last => {
                    return Some(Answer {
                        progress,
                        changes,
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
            }),
            listening: Arc::new(Mutex::new(None)),
        }
    }

    /// Listen on `addr` (port 0: a free one) unless already listening;
    /// returns where it listens.
    pub async fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, String> {
        let mut listening = self.listening.lock().await;
        if let Some(bound) = *listening {
            return Ok(bound);
        }
        let token = auth::token(&self.shared.config())?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} for the HTTP API: {e}"))?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("cannot read the API's address: {e}"))?;
        let app = routes::router(Arc::clone(&self.shared), auth::Guard::new(token, bound));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("the HTTP API stopped: {e}");
            }
        });
        tracing::info!(%bound, "HTTP API listening");
        *listening = Some(bound);
        Ok(bound)
    }

    /// For `fpctl dashboard`: listen where configured, else on a free
    /// loopback port, and say where, with the token.
    pub async fn ensure(&self) -> Response {
        let addr = self
            .shared
            .config()
            .project
            .api
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let bound = match self.listen(addr).await {
            Ok(b) => b,
            Err(message) => return Response::error(ErrorKind::Internal, message),
        };
        match auth::token(&self.shared.config()) {
            Ok(token) => Response::Api {
                url: format!("http://{}/", auth::url_host(bound)),
                token,
            },
            Err(message) => Response::error(ErrorKind::Internal, message),
        }
    }
}

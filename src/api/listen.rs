//! Where the API listens, and moving it: `[project] api` opens it when the
//! supervisor starts, `fpctl dashboard` on demand, and a reload that changes
//! `api` moves or closes it.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{shutdown, Shutdown};

/// One open listener; it stops accepting the moment it is dropped.
pub(super) struct Listener {
    /// The `[project] api` it was opened for; `None` when `fpctl dashboard`
    /// opened it.
    pub configured: Option<SocketAddr>,
    pub bound: SocketAddr,
    /// The same socket as the server's, to stop it listening at once (the
    /// server task only lets go of its copy when the runtime gets to it).
    socket: std::net::TcpListener,
    server: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Bind `addr` and serve `app` on it.
    pub fn open(
        configured: Option<SocketAddr>,
        addr: SocketAddr,
        app: impl FnOnce(SocketAddr) -> axum::Router,
    ) -> std::io::Result<Listener> {
        let socket = std::net::TcpListener::bind(addr)?;
        socket.set_nonblocking(true)?;
        let bound = socket.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(socket.try_clone()?)?;
        let app = app(bound);
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("the HTTP API stopped: {e}");
            }
        });
        tracing::info!(%bound, "HTTP API listening");
        Ok(Listener {
            configured,
            bound,
            socket,
            server,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Out of the listening state now: new connections are refused and
        // the address can be bound again.
        let _ = shutdown(self.socket.as_raw_fd(), Shutdown::Both);
        self.server.abort();
        tracing::info!(bound = %self.bound, "HTTP API closed");
    }
}

/// What the listener should do for a config whose `api` is `wanted`.
#[derive(Debug, PartialEq)]
pub(super) enum Move {
    Keep,
    Open(SocketAddr),
    Close,
}

/// A configured address moves the listener there (unless it is there); no
/// address closes what the config opened, and leaves what `fpctl dashboard`
/// opened.
pub(super) fn wanted(now: Option<&Listener>, wanted: Option<SocketAddr>) -> Move {
    match (now, wanted) {
        (Some(l), Some(a)) if l.configured == Some(a) || l.bound == a => Move::Keep,
        (_, Some(a)) => Move::Open(a),
        (Some(l), None) if l.configured.is_some() => Move::Close,
        _ => Move::Keep,
    }
}

//! Where the API listens, and moving it: `[project] api` opens it when the
//! supervisor starts, `fpctl dashboard` on demand, and a reload that changes
//! `api` moves or closes it. Also what a connection may cost: how many are
//! served at once, how long a request's head may take, how much it may
//! buffer. A flood of connections must never take from the supervisor the
//! file descriptors and memory that its probes and services need.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use nix::sys::socket::{shutdown, Shutdown};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections served at once (WebSocket streams included), at most. A
/// dashboard uses two; scripts a few.
pub(super) const MAX_CONNECTIONS: usize = 128;
/// How long a client may take to send a request's head, counted from the
/// connection's start or from the previous answer: a kept-alive connection
/// idle for this long is closed too.
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a connection buffers of a request (its head must fit).
const MAX_BUFFER: usize = 64 * 1024;

/// The local address a request came in on (the API's own host, when it
/// listens on every address).
#[derive(Clone, Copy, Debug)]
pub(super) struct ArrivedAt(pub IpAddr);

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
        let listener = TcpListener::from_std(socket.try_clone()?)?;
        let app = app(bound);
        let cap = connection_cap(open_file_limit());
        let server = tokio::spawn(serve(listener, app, cap));
        tracing::info!(%bound, max_connections = cap, "HTTP API listening");
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

/// The soft limit on open files (the supervisor raises it to the hard
/// limit when it starts).
fn open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid resource and a pointer to a live rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    lim.rlim_cur
}

/// [`MAX_CONNECTIONS`], and never more than a quarter of the open-file
/// limit: the probes, logs and services' pipes need the rest.
pub(super) fn connection_cap(open_files: u64) -> usize {
    let quarter = usize::try_from(open_files / 4).unwrap_or(usize::MAX);
    MAX_CONNECTIONS.min(quarter).max(1)
}

/// Accept connections and serve each in its own task while fewer than `cap`
/// are open; past that, a new connection is answered 503 and closed at
/// once (accepting it keeps the kernel's queue short; holding it would
/// cost a descriptor and memory).
async fn serve(listener: TcpListener, app: axum::Router, cap: usize) {
    let slots = Arc::new(Semaphore::new(cap));
    let mut full = Throttle::default();
    let mut failing = Throttle::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors or memory: wait for some to be
                // freed rather than spin.
                if let Some(more) = failing.due() {
                    tracing::warn!("the HTTP API cannot accept a connection: {e}{more}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if let Some(more) = full.due() {
                tracing::warn!(
                    "the HTTP API has {cap} connections open: new ones are refused{more}"
                );
            }
            refuse(stream);
            continue;
        };
        let arrived = stream.local_addr().map(|a| a.ip().to_canonical()).ok();
        let app = app.clone();
        tokio::spawn(async move {
            use hyper::service::{service_fn, Service};
            let app = hyper_util::service::TowerToHyperService::new(app);
            let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                if let Some(ip) = arrived {
                    request.extensions_mut().insert(ArrivedAt(ip));
                }
                app.call(request)
            });
            let io = Counted {
                io: TokioIo::new(stream),
                _slot: slot,
            };
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_BUFFER)
                .serve_connection(io, service)
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!("API connection ended: {e}");
            }
        });
    }
}

/// The answer to a connection over the cap.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
    content-length: 43\r\nconnection: close\r\n\r\n{\"error\":\"too many connections to the API\"}";

/// A connection over the cap: one write that never waits, then closed.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(BUSY);
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// At most one log line per 10 s about the same trouble, with a count of
/// what was not logged.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    quiet: u64,
}

impl Throttle {
    fn due(&mut self) -> Option<String> {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            self.quiet += 1;
            return None;
        }
        self.last = Some(Instant::now());
        let more = match std::mem::take(&mut self.quiet) {
            0 => String::new(),
            n => format!(" ({n} more since the last note)"),
        };
        Some(more)
    }
}

/// A connection's socket with its slot: the slot is free again when the
/// socket is closed, also after the connection became a WebSocket.
struct Counted {
    io: TokioIo<TcpStream>,
    _slot: OwnedSemaphorePermit,
}

impl hyper::rt::Read for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_never_takes_more_than_a_quarter_of_the_open_files() {
        assert_eq!(connection_cap(20_000), MAX_CONNECTIONS);
        assert_eq!(connection_cap(1024), MAX_CONNECTIONS);
        assert_eq!(connection_cap(256), 64);
        assert_eq!(connection_cap(64), 16);
        assert_eq!(connection_cap(2), 1);
    }

    #[test]
    fn the_busy_answer_is_well_formed() {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut r = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = r.parse(BUSY).unwrap() else {
            panic!("a partial head");
        };
        assert_eq!(r.code, Some(503));
        let length = r
            .headers
            .iter()
            .find(|h| h.name == "content-length")
            .map(|h| {
                std::str::from_utf8(h.value)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            });
        assert_eq!(length, Some(BUSY.len() - head));
        let body: serde_json::Value = serde_json::from_slice(&BUSY[head..]).unwrap();
        assert!(body["error"].as_str().unwrap().contains("too many"));
    }
}

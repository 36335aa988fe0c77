//! The long-running supervisor of one project: it owns every service as its
//! child. This module sets the process up (lock, subreaper, socket, signals)
//! and serves the control socket. `actor` is the dispatcher (the rules
//! between services, requests, persistence), `service` one service's state
//! machine, `unit` one launch of one service, `reload` the comparison of two
//! configs. docs/supervisor.md is the theory of operation: who owns what,
//! the states and the transition table.

mod actor;
mod reload;
mod service;
mod stale;
mod unit;
mod watch;

use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};

pub use actor::instance_marker;
use actor::{Msg, Supervisor};

use crate::config::Config;
use crate::control::{self, Request, Response, Update};
use crate::state;
use crate::{Error, Result};

/// Holds the project's supervisor lock for as long as it lives.
pub struct Lock {
    _flock: Flock<std::fs::File>,
}

/// Take the project's supervisor lock, or None when another process has it.
pub fn try_lock(config: &Config) -> Result<Option<Lock>> {
    state::ensure_dirs(config)
        .map_err(|e| Error::other(format!("cannot create {}", config.state_dir().display()), e))?;
    let path = config.state_dir().join(state::LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::other(format!("cannot open {}", path.display()), e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(flock) => Ok(Some(Lock { _flock: flock })),
        Err(_) => Ok(None),
    }
}

/// Run a supervisor in this process until it is told to stop. `initial`, if
/// given, is a request whose responses go to `initial_reply` (used by `up`).
pub fn run(
    config: Config,
    lock: Lock,
    initial: Option<(Request, mpsc::UnboundedSender<Response>)>,
    foreground: bool,
) -> Result<()> {
    crate::process::one_malloc_arena();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::other("cannot start the async runtime", e))?;
    rt.block_on(serve(config, lock, initial, foreground))
}

/// The signals a supervisor handles: stop (SIGTERM, SIGINT) and reload
/// (SIGHUP).
const HANDLED: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Block the signals a supervisor handles, so that one arriving before the
/// handlers are installed waits for them instead of killing the process.
/// Async-signal-safe (called between fork and exec). Children never inherit
/// the mask: std resets it in every process it spawns.
pub fn block_signals() {
    // SAFETY: sigemptyset, sigaddset and sigprocmask on a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in HANDLED {
            libc::sigaddset(&mut set, sig);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn unblock_signals() {
    // SAFETY: as in `block_signals`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in HANDLED {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// The signal that told the supervisor to stop everything, if one did.
static STOPPED_BY: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// SIGINT or SIGTERM, when one of them (not `fpctl stop`) ended the
/// supervisor: `up` exits as a shell expects after it (130, 143).
pub fn stopped_by_signal() -> Option<i32> {
    match STOPPED_BY.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

async fn serve(
    config: Config,
    _lock: Lock,
    initial: Option<(Request, mpsc::UnboundedSender<Response>)>,
    foreground: bool,
) -> Result<()> {
    // The handlers first; then what arrived meanwhile is delivered to them.
    let handlers = Signals::install();
    unblock_signals();
    crate::process::init();
    if let Err(e) = crate::process::set_subreaper() {
        tracing::warn!("cannot become a child subreaper: {e}");
    }
    if let Err(e) = crate::process::raise_fd_limit() {
        tracing::warn!("cannot raise the open-file limit: {e}");
    }
    let socket = state::socket_path(&config);
    state::prepare_socket_dir(&socket)
        .map_err(|e| Error::other(format!("cannot listen on {}", socket.display()), e))?;
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .map_err(|e| Error::other(format!("cannot listen on {}", socket.display()), e))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::other(format!("cannot restrict {}", socket.display()), e))?;
    tracing::info!(pid = std::process::id(), socket = %socket.display(), "supervisor ready");

    let config = Arc::new(config);
    let (mut supervisor, tx) = Supervisor::new(Arc::clone(&config), Arc::new(unit::Processes));
    if let Some(saved) = state::read(&config) {
        supervisor.adopt(&saved);
    }
    if config.services.iter().any(|s| s.in_container().is_some()) {
        crate::container::mark_in_use();
        tokio::spawn(remove_stray_containers(Arc::clone(&config)));
    }
    if let Some((request, reply)) = initial {
        let _ = tx.send(Msg::Client { request, reply });
    }
    let api = start_api(&config, &tx, &mut supervisor);
    // Every connection holds a clone of `drain`; once the actor is done, the
    // last replies are flushed before the process exits.
    let (drain, mut drained) = mpsc::channel::<()>(1);
    let updates = supervisor.updates();
    // Told when the dispatcher is done, so that subscribers hang up at once
    // (the API keeps the update channel open).
    let (ended, ending) = tokio::sync::watch::channel(false);
    let acceptor = tokio::spawn(accept(listener, tx.clone(), api, (updates, ending), drain));
    tokio::spawn(signals(handlers, tx.clone(), foreground));
    // The dispatcher runs as a task, not as the runtime's main future: a
    // unit's report then wakes it through the scheduler's local queue, where
    // waking the main future would write the runtime's eventfd each time.
    if let Err(e) = tokio::spawn(supervisor.run()).await {
        tracing::error!("the dispatcher ended abnormally: {e}");
    }
    let _ = ended.send(true);
    // `fpctl scale` lasts as long as the supervisor.
    crate::scale::clear(&config.root);
    let _ = std::fs::remove_file(&socket);
    acceptor.abort();
    let _ = acceptor.await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drained.recv()).await;
    tracing::info!("supervisor exiting");
    Ok(())
}

/// Containers of the project that belong to no container service of the
/// config (a service removed from services.toml, or run natively now,
/// while no supervisor ran) are removed; a service's own leftovers are
/// dealt with by its next launch, which may adopt one.
async fn remove_stray_containers(config: Arc<Config>) {
    let Some(choice) = config
        .services
        .iter()
        .find_map(|s| s.in_container().map(|c| c.runtime))
    else {
        return;
    };
    let rt = match crate::container::runtime(choice).await {
        Ok(rt) => rt,
        Err(e) => return tracing::warn!("{e}"),
    };
    let project = actor::instance_marker(&config);
    let Ok(found) = crate::container::find(&rt, &project, None).await else {
        return;
    };
    let ours = |service: &str| {
        config
            .service(service)
            .is_some_and(|(_, s)| s.in_container().is_some())
    };
    let strays: Vec<String> = found
        .into_iter()
        .filter(|f| !ours(&f.service))
        .map(|f| f.id)
        .collect();
    if !strays.is_empty() {
        tracing::info!(
            count = strays.len(),
            "removing containers of services no longer run in one"
        );
        if let Err(e) = crate::container::remove(&rt, &strays).await {
            tracing::warn!("{e}");
        }
    }
}

/// The HTTP API, reaching the actor like socket clients do; it listens at
/// once when `[project] api` is set, else when `fpctl dashboard` asks, and
/// a reload moves it.
fn start_api(
    config: &Arc<Config>,
    tx: &mpsc::UnboundedSender<Msg>,
    supervisor: &mut Supervisor,
) -> crate::api::Api {
    let tx = tx.clone();
    let forward: crate::api::Forward =
        Arc::new(move |request, reply| tx.send(Msg::Client { request, reply }).is_ok());
    let api = crate::api::Api::new(supervisor.config_watch(), forward, supervisor.updates());
    if let Some(addr) = config.project.api.listen {
        if let Err(e) = api.listen(Some(addr), addr) {
            tracing::error!("{e}");
        }
    }
    supervisor.attach_api(api.clone());
    api
}

/// The supervisor's signal streams (tokio's handlers).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Option<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(int), Ok(hup)) => Some(Signals { term, int, hup }),
            _ => {
                tracing::error!("cannot install signal handlers");
                None
            }
        }
    }
}

async fn signals(handlers: Option<Signals>, tx: mpsc::UnboundedSender<Msg>, foreground: bool) {
    let Some(Signals {
        mut term,
        mut int,
        mut hup,
    }) = handlers
    else {
        return;
    };
    loop {
        let sig = tokio::select! {
            _ = term.recv() => libc::SIGTERM,
            _ = int.recv() => libc::SIGINT,
            // A background supervisor outlives the terminal that started it:
            // to it, SIGHUP means "re-read services.toml".
            _ = hup.recv() => if !foreground {
                tracing::info!("SIGHUP: reloading services.toml");
                let _ = tx.send(Msg::Reload);
                continue;
            } else {
                libc::SIGHUP
            },
        };
        tracing::info!("signal received: stopping everything");
        let _ = STOPPED_BY.compare_exchange(
            0,
            sig,
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
        );
        let _ = tx.send(Msg::Shutdown);
    }
}

async fn accept(
    listener: UnixListener,
    tx: mpsc::UnboundedSender<Msg>,
    api: crate::api::Api,
    updates: Feed,
    drain: mpsc::Sender<()>,
) {
    let me = nix::unistd::getuid().as_raw();
    // Out of file descriptors, accept fails until some are freed: said once
    // every 10 s, not every try.
    let mut said: Option<(std::time::Instant, u64)> = None;
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                match &mut said {
                    Some((at, quiet)) if at.elapsed() < std::time::Duration::from_secs(10) => {
                        *quiet += 1;
                    }
                    _ => {
                        let quiet = said.map_or(0, |(_, n)| n);
                        tracing::warn!("accept failed: {e} ({quiet} more since the last note)");
                        said = Some((std::time::Instant::now(), 0));
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Only our own user may drive us (the socket is 0600 too).
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == me => {}
            other => {
                tracing::warn!(peer = ?other.map(|c| c.uid()).ok(), "refused a connection from another user");
                let mut s = stream;
                let _ = s
                    .write_all(
                        control::encode(Response::error(
                            control::ErrorKind::PermissionDenied,
                            "permission denied: this supervisor belongs to another user",
                        ))
                        .as_bytes(),
                    )
                    .await;
                continue;
            }
        }
        tokio::spawn(connection(
            stream,
            tx.clone(),
            api.clone(),
            updates.clone(),
            drain.clone(),
        ));
    }
}

/// What subscribers follow: the updates, and the dispatcher's end.
type Feed = (
    broadcast::Sender<Update>,
    tokio::sync::watch::Receiver<bool>,
);

/// One client: read one request line, forward it, stream the responses.
async fn connection(
    stream: UnixStream,
    tx: mpsc::UnboundedSender<Msg>,
    api: crate::api::Api,
    (updates, ending): Feed,
    _drain: mpsc::Sender<()>,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read).take(control::MAX_LINE as u64 + 1);
    let mut line = String::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reader.read_line(&mut line),
    )
    .await;
    let request = match read {
        Ok(Ok(n)) if n > control::MAX_LINE => Err(control::BadRequest::TooLong),
        Ok(Ok(0)) => return,
        Ok(Ok(_)) => control::decode(line.trim_end()),
        Ok(Err(e)) => Err(control::BadRequest::Read(e)),
        Err(_) => Err(control::BadRequest::Silent),
    };
    let request = match request {
        Ok(r) => r,
        Err(bad) => {
            let _ = write
                .write_all(
                    control::encode(Response::error(
                        control::ErrorKind::BadRequest,
                        bad.to_string(),
                    ))
                    .as_bytes(),
                )
                .await;
            return;
        }
    };
    if let Request::Api = request {
        let _ = write
            .write_all(control::encode(api.ensure()).as_bytes())
            .await;
        return;
    }
    if let Request::Subscribe = request {
        // Subscribed before the snapshot is taken: nothing falls between.
        let updates = updates.subscribe();
        subscription(reader.into_inner(), write, tx, updates, ending).await;
        return;
    }
    let (reply_tx, mut reply_rx) = mpsc::unbounded_channel();
    if tx
        .send(Msg::Client {
            request,
            reply: reply_tx,
        })
        .is_err()
    {
        return;
    }
    while let Some(response) = reply_rx.recv().await {
        let last = !matches!(response, Response::Progress(_) | Response::Plan { .. });
        if write
            .write_all(control::encode(response).as_bytes())
            .await
            .is_err()
            || last
        {
            return;
        }
    }
}

/// A subscriber: a snapshot, then every update in order, until the client
/// hangs up or the supervisor exits. One that falls more than the backlog
/// behind gets a fresh snapshot and goes on from there, so it never holds
/// a stale picture.
async fn subscription(
    mut read: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut write: tokio::net::unix::OwnedWriteHalf,
    tx: mpsc::UnboundedSender<Msg>,
    mut updates: broadcast::Receiver<Update>,
    mut ending: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::sync::broadcast::error::RecvError;
    if !send_status(&tx, &mut write).await {
        return;
    }
    let mut sink = [0u8; 256];
    loop {
        let line = tokio::select! {
            update = updates.recv() => match update {
                Ok(u) => control::encode(Response::Update(u)),
                Err(RecvError::Lagged(_)) => {
                    if send_status(&tx, &mut write).await {
                        continue;
                    }
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            _ = ending.changed() => return,
            // The client says nothing more; its end (EOF or an error) ends
            // the subscription.
            n = read.read(&mut sink) => match n {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            },
        };
        if write.write_all(line.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Ask the dispatcher for a snapshot and write it; false when either end is
/// gone.
async fn send_status(
    tx: &mpsc::UnboundedSender<Msg>,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> bool {
    let (reply, mut answer) = mpsc::unbounded_channel();
    if tx
        .send(Msg::Client {
            request: Request::Status,
            reply,
        })
        .is_err()
    {
        return false;
    }
    let Some(status) = answer.recv().await else {
        return false;
    };
    write
        .write_all(control::encode(status).as_bytes())
        .await
        .is_ok()
}

/// Where a background supervisor writes its own log.
pub fn log_path(config: &Config) -> PathBuf {
    config.state_dir().join(state::SUPERVISOR_LOG)
}

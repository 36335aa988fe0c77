//! One launch of one service, as one task: prepare (port check, setup) →
//! spawn → watch (probes, start timeout) → stop. The task owns its child;
//! the dispatcher only sends it [`Ctl`]s and reads its [`Report`]s, and it
//! learns that the launch is over from exactly one [`UnitEvent::Ended`],
//! sent after the whole process tree is gone.
//!
//! A stop can come at any step. During prepare it drops the setup future and
//! sweeps: setup steps carry the service's marker, so they die too.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot};

use super::service::ServiceId;
use crate::config::Service;
use crate::container;
use crate::health::{self, ProbeResult, Verdict};
use crate::process::{self, no_shared_env, Exit, SpawnSpec};
use crate::service_log;
use crate::setup;
use crate::state;
use crate::status::{Elsewhere, EngineStep, Holder, IoStep, Listener, Note, PrepareError};

/// While starting, probe this often at first, then back off by half each
/// time to [`STARTING_PROBE_MAX`] (or `interval`, when shorter): readiness
/// is seen quickly whatever the interval of an online service.
const FAST_PROBE: Duration = Duration::from_millis(5);
const FAST_PROBE_FOR: Duration = Duration::from_secs(1);
const STARTING_PROBE_MAX: Duration = Duration::from_secs(1);
/// A service without a health check is online once it has run this long.
const ALIVE_GRACE: Duration = Duration::from_millis(500);

/// What the dispatcher tells a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctl {
    /// Stop gracefully: stop signal to the group, grace, SIGKILL, sweep.
    Stop,
    /// SIGKILL at once (a second interrupt, a start timeout).
    Kill,
}

/// What a unit tells the dispatcher.
#[derive(Debug)]
pub enum UnitEvent {
    External(ProbeResult),
    PrepareFailed(PrepareError),
    Spawned {
        pid: i32,
        ticks: Option<u64>,
        at: f64,
    },
    Probed(ProbeResult),
    StartTimeout {
        /// Ports the service's processes listen on instead of its own.
        elsewhere: Option<Elsewhere>,
    },
    AliveFor,
    /// The engine's id of the service's container, once it exists.
    Container {
        id: String,
    },
    /// The last report: nothing of this launch runs any more.
    Ended {
        pid: Option<i32>,
        exit: Option<Exit>,
    },
}

/// A unit's report, tagged with the launch it is about.
#[derive(Debug)]
pub struct Report {
    pub id: ServiceId,
    pub gen: u64,
    pub event: UnitEvent,
}

/// The dispatcher's handle on a running unit.
pub struct Unit {
    pub gen: u64,
    ctl: mpsc::UnboundedSender<Ctl>,
}

impl Unit {
    pub fn send(&self, ctl: Ctl) {
        let _ = self.ctl.send(ctl);
    }
}

/// Everything a unit needs, fixed at launch.
pub struct Launch {
    pub id: ServiceId,
    pub gen: u64,
    pub svc: Arc<Service>,
    pub log_path: PathBuf,
    /// `FPCTL_INSTANCE` of this service's processes.
    pub marker: String,
    /// Where the setup stamps live (`.fpctl/`).
    pub config: Arc<crate::config::Config>,
    /// Stop a stale copy of the service holding its port (`replace_stale`,
    /// `start --replace`).
    pub replace: bool,
    /// Who may run a setup now.
    pub gate: Arc<setup::Gate>,
    /// The setup the dispatcher began ahead of readiness, if any.
    pub ahead: Option<Ahead>,
}

/// A setup begun before the launch (see `actor/ahead.rs`). Dropping it
/// aborts the task; the caller sweeps what it spawned.
pub struct Ahead {
    pub token: u64,
    /// Its result arrived at the dispatcher.
    pub finished: bool,
    task: tokio::task::JoinHandle<()>,
    done: tokio::sync::watch::Receiver<Option<Result<(), PrepareError>>>,
}

impl Ahead {
    pub fn new(
        token: u64,
        task: tokio::task::JoinHandle<()>,
        done: tokio::sync::watch::Receiver<Option<Result<(), PrepareError>>>,
    ) -> Self {
        Ahead {
            token,
            finished: false,
            task,
            done,
        }
    }

    /// Wait for its result; None when it was cut short.
    async fn outcome(&self) -> Option<Result<(), PrepareError>> {
        let mut done = self.done.clone();
        let result = done.wait_for(|r| r.is_some()).await.ok()?;
        result.clone()
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where units send their reports.
pub type Sink = mpsc::UnboundedSender<Report>;

/// The dispatcher's window onto processes: it starts units, and on exit
/// sweeps whatever of the project is left. The real one runs processes; a
/// test double records launches and lets a test push reports, so the rules
/// between services are tested in-process, in milliseconds.
pub trait Launcher: Send + Sync {
    fn launch(&self, l: Launch, sink: Sink) -> Unit;
    /// Last resort on exit: nothing carrying `marker` survives, and no
    /// descendant of the supervisor either.
    fn sweep_all(&self, marker: &str);
}

/// Units that prepare, spawn and watch real processes.
pub struct Processes;

impl Launcher for Processes {
    fn launch(&self, l: Launch, sink: Sink) -> Unit {
        launch(l, sink)
    }

    fn sweep_all(&self, marker: &str) {
        for pid in process::marked_pids(&format!("{marker}:"), true) {
            process::signal_pid(pid, Signal::SIGKILL);
        }
        kill_own_children();
        if container::in_use() {
            container::remove_project_now(marker);
        }
    }
}

/// Kill every process still parented to the supervisor: as a subreaper it
/// inherits descendants that left their group and cleared their
/// environment, so neither a group signal nor the marker reaches them. Log
/// writers are spared: they finish on their own once their service is gone.
fn kill_own_children() {
    let me = std::process::id() as i32;
    for _ in 0..5 {
        let left: Vec<i32> = process::children_of(me)
            .into_iter()
            .filter(|&pid| !process::cmdline(pid).is_some_and(|c| c.contains("__log")))
            .collect();
        if left.is_empty() {
            return;
        }
        for pid in left {
            tracing::info!(pid, "killing a leftover descendant");
            process::signal_pid(pid, Signal::SIGKILL);
        }
        // Its own children are re-parented to us in turn.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
impl Unit {
    /// A handle on a unit run by someone else (a test double).
    pub fn new(gen: u64, ctl: mpsc::UnboundedSender<Ctl>) -> Unit {
        Unit { gen, ctl }
    }
}

/// Start a unit that prepares and spawns the service.
pub fn launch(l: Launch, sink: Sink) -> Unit {
    let (tx, rx) = mpsc::unbounded_channel();
    let gen = l.gen;
    tokio::spawn(async move {
        let mut task = Task {
            l,
            sink,
            ctl: rx,
            writer: None,
            container: None,
        };
        task.fresh().await;
    });
    Unit { gen, ctl: tx }
}

/// Start a unit for a process an earlier supervisor started.
pub fn adopt(l: Launch, sink: Sink, pid: i32, exit: oneshot::Receiver<Exit>) -> Unit {
    let (tx, rx) = mpsc::unbounded_channel();
    let gen = l.gen;
    tokio::spawn(async move {
        let mut task = Task {
            l,
            sink,
            ctl: rx,
            writer: None,
            container: None,
        };
        // The client of a container service: stopping it means stopping
        // its container.
        if task.l.svc.in_container().is_some() {
            container::mark_in_use();
            match InContainer::resolve(&task.l).await {
                Ok(found) => task.container = Some(found),
                Err(e) => tracing::warn!(service = %task.l.svc.name, "{e}"),
            }
        }
        let probing = task.l.svc.health.is_some() && !task.l.svc.oneshot;
        task.watch(pid, exit, probing, false).await;
    });
    Unit { gen, ctl: tx }
}

struct Task {
    l: Launch,
    sink: Sink,
    ctl: mpsc::UnboundedReceiver<Ctl>,
    /// The log writer, when the service's log rotates or records times.
    writer: Option<process::Child>,
    /// A container service's engine and container.
    container: Option<InContainer>,
}

/// What a unit knows of its service's container.
struct InContainer {
    rt: container::Runtime,
    run: container::RunSpec,
}

impl InContainer {
    async fn resolve(l: &Launch) -> Result<InContainer, container::EngineError> {
        let c = l.svc.in_container().expect("a container service");
        let rt = container::runtime(c.runtime).await?;
        let gateway = match c.network {
            crate::config::Network::Bridge => container::gateway(&rt).await,
            crate::config::Network::Host => None,
        };
        let run = container::run_spec(&rt, &l.svc, container::project_of(&l.marker), gateway);
        Ok(InContainer { rt, run })
    }

    fn names(&self) -> [String; 1] {
        [self.run.name.clone()]
    }
}

impl Task {
    fn report(&self, event: UnitEvent) {
        let _ = self.sink.send(Report {
            id: self.l.id.clone(),
            gen: self.l.gen,
            event,
        });
    }

    async fn fresh(&mut self) {
        let prepared = tokio::select! {
            r = prepare(&self.l, &mut self.container) => r,
            _ = self.ctl.recv() => {
                // Stopped during setup: its processes carry our marker.
                sweep(None, &self.l.marker).await;
                return self.report(UnitEvent::Ended { pid: None, exit: None });
            }
        };
        let attach = matches!(prepared, Ok(Prepared::Attach));
        match prepared {
            Ok(Prepared::Spawn | Prepared::Attach) => {}
            Ok(Prepared::External(probe)) => {
                self.report(UnitEvent::External(probe));
                return self.report(UnitEvent::Ended {
                    pid: None,
                    exit: None,
                });
            }
            Err(reason) => {
                sweep(None, &self.l.marker).await;
                self.report(UnitEvent::PrepareFailed(reason));
                return self.report(UnitEvent::Ended {
                    pid: None,
                    exit: None,
                });
            }
        }
        let (child, writer) = match spawn(&self.l, self.container.as_ref(), attach).await {
            Ok(c) => c,
            Err(reason) => {
                self.report(UnitEvent::PrepareFailed(reason));
                return self.report(UnitEvent::Ended {
                    pid: None,
                    exit: None,
                });
            }
        };
        self.report(UnitEvent::Spawned {
            pid: child.pid,
            ticks: child.start_ticks,
            at: state::now_unix(),
        });
        let _learn = self.container.as_ref().map(|c| {
            let (rt, name, sink) = (c.rt.clone(), c.run.name.clone(), self.sink.clone());
            let (id, gen) = (self.l.id.clone(), self.l.gen);
            AbortOnDrop(tokio::spawn(async move {
                if let Some(cid) = container::id_when_created(&rt, &name).await {
                    let _ = sink.send(Report {
                        id,
                        gen,
                        event: UnitEvent::Container { id: cid },
                    });
                }
            }))
        });
        let probing = self.l.svc.health.is_some();
        self.writer = writer;
        self.watch(child.pid, child.exit, probing, true).await;
    }

    /// Watch a running process until it exits or is stopped; then sweep its
    /// tree and report `Ended`.
    async fn watch(
        &mut self,
        pid: i32,
        mut exit: oneshot::Receiver<Exit>,
        probing: bool,
        fresh: bool,
    ) {
        let svc = Arc::clone(&self.l.svc);
        // Told by the prober when the service first answers: the start
        // timer then has nothing left to time.
        let (ready_tx, mut ready) = oneshot::channel();
        let prober = probing.then(|| {
            let guard = spawn_prober(Arc::clone(&svc), self.sink.clone(), &self.l, ready_tx);
            AbortOnDrop(guard)
        });
        // A timer that is not armed is never polled.
        let mut start_armed = fresh && probing;
        let mut alive_armed = fresh && !probing && !svc.oneshot;
        let start_timer = tokio::time::sleep(svc.start_timeout);
        let alive_timer = tokio::time::sleep(ALIVE_GRACE);
        tokio::pin!(start_timer, alive_timer);
        let status = loop {
            tokio::select! {
                e = &mut exit => break e.unwrap_or(Exit::Unknown),
                _ = &mut ready, if start_armed => start_armed = false,
                _ = &mut start_timer, if start_armed => {
                    start_armed = false;
                    let elsewhere = match svc.port {
                        // The client of a container listens on nothing.
                        Some(_) if self.container.is_some() => None,
                        Some(port) => {
                            let marker = self.l.marker.clone();
                            tokio::task::spawn_blocking(move || listening_elsewhere(pid, &marker, port))
                                .await
                                .ok()
                                .flatten()
                        }
                        None => None,
                    };
                    self.report(UnitEvent::StartTimeout { elsewhere });
                }
                _ = &mut alive_timer, if alive_armed => {
                    alive_armed = false;
                    self.report(UnitEvent::AliveFor);
                }
                ctl = self.ctl.recv() => {
                    drop(prober);
                    let ctl = ctl.unwrap_or(Ctl::Kill);
                    break match &self.container {
                        Some(c) => terminate_container(&svc, c, pid, ctl, &mut exit, &mut self.ctl).await,
                        None => terminate(&svc, pid, ctl, &mut exit, &mut self.ctl).await,
                    };
                }
            }
        };
        sweep(Some(pid), &self.l.marker).await;
        // A container outlives its client when the client alone died.
        if let Some(c) = &self.container {
            if let Err(e) = container::remove(&c.rt, &c.names()).await {
                tracing::warn!(service = %svc.name, "cannot remove its container: {e}");
            }
        }
        // The exit is noted after the service's last line is in the file.
        if let Some(writer) = self.writer.take() {
            let _ = tokio::time::timeout(process::LOG_DRAIN, writer.exit).await;
        }
        self.report(UnitEvent::Ended {
            pid: Some(pid),
            exit: Some(status),
        });
    }
}

/// Stop a process group: the stop signal, then up to `stop_timeout` for it to
/// exit (cut short by a `Kill`), then SIGKILL. Returns how it ended.
async fn terminate(
    svc: &Service,
    pgid: i32,
    first: Ctl,
    exit: &mut oneshot::Receiver<Exit>,
    ctl: &mut mpsc::UnboundedReceiver<Ctl>,
) -> Exit {
    if first == Ctl::Stop {
        tracing::info!(service = %svc.name, pid = pgid, "stopping");
        process::signal_group(pgid, svc.stop_signal);
        let grace = tokio::time::sleep(svc.stop_timeout);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                e = &mut *exit => return e.unwrap_or(Exit::Unknown),
                _ = &mut grace => {
                    tracing::warn!(service = %svc.name, "did not stop in time; sending SIGKILL");
                    break;
                }
                c = ctl.recv() => if c != Some(Ctl::Stop) { break },
            }
        }
    }
    process::signal_group(pgid, Signal::SIGKILL);
    exit.await.unwrap_or(Exit::Signal(Signal::SIGKILL as i32))
}

/// How long a container's client may take to end once its container has.
const CLIENT_DRAIN: Duration = Duration::from_secs(5);

/// Stop a container service: `stop -t stop_timeout` through the engine
/// (never a signal to the client alone: with `--sig-proxy=false` it would
/// not reach the container), cut short by a `Kill`; then `rm -f`, which
/// kills and removes what is left; then the client, if it has not ended.
async fn terminate_container(
    svc: &Service,
    c: &InContainer,
    pgid: i32,
    first: Ctl,
    exit: &mut oneshot::Receiver<Exit>,
    ctl: &mut mpsc::UnboundedReceiver<Ctl>,
) -> Exit {
    if first == Ctl::Stop {
        tracing::info!(service = %svc.name, container = %c.run.name, "stopping its container");
        let (rt, name, grace) = (c.rt.clone(), c.run.name.clone(), svc.stop_timeout);
        let mut stopping = AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = container::stop(&rt, &name, grace).await {
                tracing::warn!(container = %name, "stop failed: {e}");
            }
        }));
        loop {
            tokio::select! {
                e = &mut *exit => return e.unwrap_or(Exit::Unknown),
                _ = &mut stopping.0 => {
                    // Stopped: its client ends with it.
                    if let Ok(e) = tokio::time::timeout(CLIENT_DRAIN, &mut *exit).await {
                        return e.unwrap_or(Exit::Unknown);
                    }
                    break;
                }
                c = ctl.recv() => if c != Some(Ctl::Stop) { break },
            }
        }
    }
    if let Err(e) = container::remove(&c.rt, &c.names()).await {
        tracing::warn!(service = %svc.name, "cannot remove its container: {e}");
    }
    match tokio::time::timeout(CLIENT_DRAIN, &mut *exit).await {
        Ok(e) => e.unwrap_or(Exit::Signal(Signal::SIGKILL as i32)),
        Err(_) => {
            process::signal_group(pgid, Signal::SIGKILL);
            exit.await.unwrap_or(Exit::Signal(Signal::SIGKILL as i32))
        }
    }
}

/// SIGKILL what is left of a service's tree: its group and every process
/// carrying its marker (a grandchild that left the group with setsid).
pub async fn sweep(pgid: Option<i32>, marker: &str) {
    if let Some(pgid) = pgid {
        process::signal_group(pgid, Signal::SIGKILL);
    }
    let (done, finished) = oneshot::channel();
    let start = {
        let mut q = sweeps().lock().unwrap_or_else(|e| e.into_inner());
        q.pending.push((marker.to_string(), done));
        !std::mem::replace(&mut q.running, true)
    };
    if start {
        tokio::task::spawn_blocking(sweep_all);
    }
    let _ = finished.await;
}

/// Sweeps asked for while one runs wait for the next pass, which serves
/// them all: stopping a thousand services reads /proc a few times, not a
/// thousand.
#[derive(Default)]
struct Sweeps {
    pending: Vec<(String, oneshot::Sender<()>)>,
    running: bool,
}

fn sweeps() -> &'static std::sync::Mutex<Sweeps> {
    static SWEEPS: std::sync::OnceLock<std::sync::Mutex<Sweeps>> = std::sync::OnceLock::new();
    SWEEPS.get_or_init(Default::default)
}

fn sweep_all() {
    loop {
        let batch = {
            let mut q = sweeps().lock().unwrap_or_else(|e| e.into_inner());
            if q.pending.is_empty() {
                q.running = false;
                return;
            }
            std::mem::take(&mut q.pending)
        };
        let markers: std::collections::HashSet<&str> =
            batch.iter().map(|(m, _)| m.as_str()).collect();
        for pid in process::pids_marked_with(&markers) {
            process::signal_pid(pid, Signal::SIGKILL);
        }
        for (_, done) in batch {
            let _ = done.send(());
        }
    }
}

/// SIGKILL every process carrying `marker`, at once (a setup begun ahead
/// that is cancelled; its processes are in no group of ours).
pub fn kill_marked(marker: &str) {
    for pid in process::marked_pids(marker, false) {
        process::signal_pid(pid, Signal::SIGKILL);
    }
}

/// Which ports a service's processes listen on, when they are not its own
/// `port`.
fn listening_elsewhere(pgid: i32, marker: &str, port: u16) -> Option<Elsewhere> {
    let mut pids = process::marked_pids(marker, false);
    pids.push(pgid);
    pids.sort_unstable();
    pids.dedup();
    let found = process::listening_ports(&pids);
    if found.is_empty() || found.iter().any(|(_, ports)| ports.contains(&port)) {
        return None;
    }
    let listeners = found
        .into_iter()
        .map(|(pid, ports)| Listener { pid, ports })
        .collect();
    Some(Elsewhere { listeners, port })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The outcome of the port check and setup that precede a spawn.
enum Prepared {
    /// Nothing is on the port: spawn.
    Spawn,
    /// A healthy service already answers on the port: adopt it as external.
    External(ProbeResult),
    /// The service's container runs, started with these very settings by
    /// an earlier supervisor: attach to it instead of starting a copy.
    Attach,
}

/// Before a spawn: is the port free (or already served, healthy)? Then setup.
/// A container service first deals with what an earlier run left: its
/// running container, started with the same settings, is adopted; any other
/// container of the service is removed.
async fn prepare(l: &Launch, found: &mut Option<InContainer>) -> Result<Prepared, PrepareError> {
    let svc = &l.svc;
    if svc.in_container().is_some() {
        container::mark_in_use();
        let c = InContainer::resolve(l)
            .await
            .map_err(|e| PrepareError::Engine {
                step: EngineStep::Connect,
                error: e.to_string(),
            })?;
        let project = container::project_of(&l.marker);
        let mut adopt = None;
        let mut leftovers = Vec::new();
        let found_now = container::find(&c.rt, project, Some(&svc.name))
            .await
            .map_err(|e| PrepareError::Engine {
                step: EngineStep::Find,
                error: e.to_string(),
            })?;
        for f in found_now {
            if f.running && f.hash == c.run.hash && adopt.is_none() {
                adopt = Some(f);
            } else {
                leftovers.push(f);
            }
        }
        if !leftovers.is_empty() {
            let ids: Vec<String> = leftovers.iter().map(|f| f.id.clone()).collect();
            container::remove(&c.rt, &ids)
                .await
                .map_err(|e| PrepareError::Engine {
                    step: EngineStep::Remove,
                    error: e.to_string(),
                })?;
            let log = open_log(&l.log_path)?;
            for f in leftovers {
                let note = Note::RemovedLeftover {
                    id: f.id,
                    name: f.name,
                };
                service_log::note(&log, svc.log_timestamps, &note.to_string());
            }
        }
        *found = Some(c);
        if adopt.is_some() {
            return Ok(Prepared::Attach);
        }
    }
    if let Some(port) = svc.port {
        if health::tcp(port).await.0 == Verdict::Healthy {
            // A log check cannot vouch for a process fpctl did not start:
            // the lines it would match are an earlier run's.
            let vouches =
                |h: &&crate::config::Health| !matches!(h.probe, crate::config::Probe::Log { .. });
            if let Some(h) = svc.health.as_ref().filter(vouches) {
                let probe = health::probe(svc, &h.probe, h.timeout).await;
                if probe.verdict == Verdict::Healthy {
                    return Ok(Prepared::External(probe));
                }
            }
            let holder = process::port_holder(port);
            let same_command = holder.as_ref().is_some_and(|(pid, _)| {
                super::stale::same_command(&process::argv(*pid).unwrap_or_default(), &svc.argv)
            });
            let taken = |not_replaced| PrepareError::PortTaken {
                port,
                service: svc.name.clone(),
                holder: holder.clone().map(|(pid, command)| Holder { pid, command }),
                not_replaced,
                same_command,
            };
            match &holder {
                // A container's port is held by the engine's proxy: never
                // a stale copy of the service to stop.
                Some((pid, _)) if l.replace && svc.in_container().is_none() => {
                    match super::stale::replace(svc, *pid, port).await {
                        Ok(replaced) => {
                            let log = open_log(&l.log_path)?;
                            let text = svc.redact(&Note::Replaced(replaced).to_string());
                            service_log::note(&log, svc.log_timestamps, &text);
                        }
                        Err(why) => return Err(taken(Some(why))),
                    }
                }
                _ => return Err(taken(None)),
            }
        }
    }
    // A setup begun ahead: its failure is this launch's; after its success
    // the run below finds everything up to date.
    if let Some(ahead) = &l.ahead {
        if let Some(Err(reason)) = ahead.outcome().await {
            return Err(reason);
        }
    }
    setup_only(l).await?;
    Ok(Prepared::Spawn)
}

/// Only the setup (ahead of readiness, or for a `restart` while the old
/// process still serves).
pub async fn setup_only(l: &Launch) -> Result<(), PrepareError> {
    let log = open_log(&l.log_path)?;
    setup::run(&l.config, &l.gate, &l.svc, &log, Some(&l.marker))
        .await
        .map(drop)
}

/// The service's log, opened for fpctl's notes.
fn open_log(path: &std::path::Path) -> Result<std::fs::File, PrepareError> {
    service_log::open(path).map_err(|e| PrepareError::Io {
        step: IoStep::OpenLog,
        error: format!("{}: {e}", path.display()),
    })
}

/// Spawn the service's process: its command, or for a container service
/// the engine's client, attached to a new container (or, with `attach`, to
/// the running one an earlier supervisor left). On a thread of the blocking
/// pool, so that building the command (every `FPCTL_PORT_*` and
/// `FPCTL_HOST_*` of the config, a few thousand variables in a large stack)
/// and the fork never hold up the dispatcher, the probes or the other units.
async fn spawn(
    l: &Launch,
    c: Option<&InContainer>,
    attach: bool,
) -> Result<(process::Child, Option<process::Child>), PrepareError> {
    // A few at once: a tier of hundreds must not become hundreds of threads.
    static SPAWNERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
    let _turn = SPAWNERS.acquire().await;
    let svc = Arc::clone(&l.svc);
    let log_path = l.log_path.clone();
    let marker = l.marker.clone();
    // The engine's client gets the container's variables by name and
    // value (none to attach); a native service its own environment.
    let how = match c {
        Some(c) if attach => Run::Attach {
            argv: container::attach_argv(&c.rt, &c.run.name),
            name: c.run.name.clone(),
        },
        Some(c) => Run::Container {
            argv: c.run.argv.clone(),
            env: c.run.env.clone(),
        },
        None => Run::Native,
    };
    tokio::task::spawn_blocking(move || spawn_now(&svc, &log_path, &marker, how))
        .await
        .unwrap_or_else(|e| {
            Err(PrepareError::Io {
                step: IoStep::Spawn,
                error: e.to_string(),
            })
        })
}

/// What a spawn runs.
enum Run {
    Native,
    Container {
        argv: Vec<String>,
        env: Vec<(String, String)>,
    },
    Attach {
        argv: Vec<String>,
        name: String,
    },
}

fn spawn_now(
    svc: &Service,
    log_path: &std::path::Path,
    marker: &str,
    how: Run,
) -> Result<(process::Child, Option<process::Child>), PrepareError> {
    let log = open_log(log_path)?;
    let (argv, env, shared, note) = match how {
        Run::Native => {
            let command = shell_words::join(&svc.argv);
            (
                svc.argv.clone(),
                setup::own_env(svc),
                &*svc.port_env,
                Note::Starting { command },
            )
        }
        Run::Container { argv, env } => {
            let command = shell_words::join(&argv);
            (argv, env, no_shared_env(), Note::Starting { command })
        }
        // An attach is no new run: the log check still sees the run's lines.
        Run::Attach { argv, name } => {
            let command = shell_words::join(&argv);
            (
                argv,
                Vec::new(),
                no_shared_env(),
                Note::AdoptingContainer { name, command },
            )
        }
    };
    service_log::note(&log, svc.log_timestamps, &svc.redact(&note.to_string()));
    let spec = SpawnSpec {
        argv: &argv,
        dir: &svc.dir,
        shared,
        env: &env,
        marker: Some(marker),
    };
    let options = crate::logger::Options {
        rotation: svc.log_rotation,
        timestamps: svc.log_timestamps,
    };
    let spawned = if options.rotation.is_none() && !options.timestamps {
        process::spawn_logged(&spec, &log).map(|c| (c, None))
    } else {
        process::spawn_log_writer(log_path, options).and_then(|(pipe, writer)| {
            process::spawn_logged(&spec, &pipe).map(|c| (c, Some(writer)))
        })
    };
    let (child, writer) = spawned.map_err(|e| PrepareError::Io {
        step: IoStep::Spawn,
        error: e.to_string(),
    })?;
    tracing::info!(service = %svc.name, pid = child.pid, "spawned");
    Ok((child, writer))
}

fn spawn_prober(
    svc: Arc<Service>,
    sink: Sink,
    l: &Launch,
    ready: oneshot::Sender<()>,
) -> tokio::task::JoinHandle<()> {
    let (id, gen) = (l.id.clone(), l.gen);
    let mut ready = Some(ready);
    tokio::spawn(async move {
        let health = svc.health.as_ref().expect("prober needs a health check");
        let begun = Instant::now();
        let mut delay = FAST_PROBE;
        let mut healthy_once = false;
        // While starting, the same failure again ("connection refused" every
        // 5 ms) changes nothing: only news goes to the dispatcher.
        let mut last_down: Option<String> = None;
        loop {
            let result = health::probe(&svc, &health.probe, health.timeout).await;
            if result.verdict == Verdict::Inconclusive {
                // fpctl's own shortage (open files, memory), not the
                // service's: its state stays, and the probe is tried again.
                shortage(&svc.name, &result.detail);
                tokio::time::sleep(SHORTAGE_RETRY.min(health.interval)).await;
                continue;
            }
            healthy_once |= result.verdict == Verdict::Healthy;
            if healthy_once {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
            let news = healthy_once || last_down.as_deref() != Some(result.detail.as_str());
            if !healthy_once {
                last_down = Some(result.detail.clone());
            }
            let report = Report {
                id: id.clone(),
                gen,
                event: UnitEvent::Probed(result),
            };
            if news && sink.send(report).is_err() {
                return;
            }
            // Fast while starting, so readiness is seen within ms; once
            // online, at the configured interval.
            delay = if healthy_once {
                health.interval
            } else if begun.elapsed() < FAST_PROBE_FOR {
                FAST_PROBE
            } else {
                (delay * 3 / 2).min(health.interval.min(STARTING_PROBE_MAX))
            };
            if healthy_once {
                // Online services are probed on one grid shared by the
                // whole supervisor, so one wakeup serves all of them.
                tokio::time::sleep_until(next_tick(health.interval)).await;
            } else {
                tokio::time::sleep(delay).await;
            }
        }
    })
}

/// How soon a probe that fpctl could not make is tried again.
const SHORTAGE_RETRY: Duration = Duration::from_secs(1);

/// Say (at most every 10 s, for all services) that fpctl could not probe.
fn shortage(service: &str, detail: &str) {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
        *last = Some(Instant::now());
        tracing::warn!(
            service,
            "cannot probe: fpctl itself is short of resources ({detail}); \
             the service keeps its state and the probe is tried again"
        );
    }
}

/// The next multiple of `interval` on a clock shared by every prober.
pub(super) fn next_tick(interval: Duration) -> tokio::time::Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let step = interval.as_nanos().max(1);
    let k = epoch.elapsed().as_nanos() / step + 1;
    let nanos = u64::try_from(k * step).unwrap_or(u64::MAX);
    (epoch + Duration::from_nanos(nanos)).into()
}

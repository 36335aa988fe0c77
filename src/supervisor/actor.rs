//! The supervisor's single owner of service state.
//!
//! `Supervisor::run` is one task that receives every event on one channel:
//! client requests, setup results, child exits, probe results and timers.
//! Work that takes time (setup, probes, cleanup) runs in tasks that report
//! back with a message tagged with the service's launch generation, so a late
//! report about an earlier launch is recognised and dropped.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;

use crate::config::{Config, RestartPolicy, Service};
use crate::control::{
    Failure, ProbeSample, Progress, Request, Response, ServiceState, ServiceStatus, Update,
};
use crate::events;
use crate::graph;
use crate::health::{self, ProbeResult, Verdict};
use crate::metrics::{self, Usage};
use crate::process::{self, Exit, SpawnSpec};
use crate::setup;
use crate::state::{self, ServiceRecord, StateFile};

/// A crash after this long online starts a new crash-loop count.
const RESTART_WINDOW: Duration = Duration::from_secs(30);
/// Backoff between crash restarts: none for the first, then doubling.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// While starting, probe this often at first, then back off to `interval`.
const FAST_PROBE: Duration = Duration::from_millis(5);
const FAST_PROBE_FOR: Duration = Duration::from_secs(1);
/// A service without a health check is online once it has run this long.
const ALIVE_GRACE: Duration = Duration::from_millis(500);
/// The grid on which memory and CPU are sampled: every tick when a service
/// has `max_memory`...
const METRICS_INTERVAL: Duration = Duration::from_secs(1);
/// ...else every this many ticks: /proc counts CPU in 10 ms ticks, so a
/// shorter window would make an idle service's CPU flicker between 0 and 1 %.
const METRICS_IDLE_EVERY: u32 = 5;
/// Updates a slow live watcher may lag behind before it misses some.
const UPDATES_BACKLOG: usize = 1024;

pub enum Msg {
    Client {
        request: Request,
        reply: mpsc::UnboundedSender<Response>,
    },
    Prepared {
        idx: usize,
        gen: u64,
        result: Result<Prepared, String>,
    },
    Exited {
        idx: usize,
        gen: u64,
        exit: Exit,
    },
    Cleaned {
        idx: usize,
        gen: u64,
    },
    Probed {
        idx: usize,
        gen: u64,
        result: ProbeResult,
    },
    StartTimeout {
        idx: usize,
        gen: u64,
    },
    RestartDue {
        idx: usize,
        gen: u64,
    },
    StopTimeout {
        idx: usize,
        gen: u64,
    },
    /// A service without a health check has stayed up for `ALIVE_GRACE`.
    AliveFor {
        idx: usize,
        gen: u64,
    },
    /// SIGTERM / SIGINT to the supervisor: stop everything and exit.
    Shutdown,
    /// Time to sample the memory and CPU of running services.
    MetricsTick,
    /// Each sampled service's process group use, tagged with its launch.
    Metrics(Vec<(usize, u64, Usage)>),
}

/// The outcome of the port check and setup that precede a spawn.
pub enum Prepared {
    /// Nothing is on the port: spawn.
    Spawn,
    /// A healthy service already answers on the port: adopt it as external.
    External(ProbeResult),
}

/// Where a service is in its life, as the supervisor sees it.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Not running, on purpose (never started or stopped).
    Idle,
    /// Wanted; waiting for dependencies or an earlier tier.
    Waiting,
    /// Port check and setup running.
    Preparing,
    /// Spawned, not yet healthy.
    Starting,
    Running(ServiceState),
    /// Crashed; a restart is scheduled.
    Backoff,
    /// Stop signal sent, waiting for the exit.
    Stopping,
    /// Exited; remnants of its process tree are being killed.
    Cleaning,
    Failed(String),
    Blocked(String),
    Completed,
    /// Healthy on its port though fpctl did not start it.
    External,
}

struct Svc {
    phase: Phase,
    gen: u64,
    pid: Option<i32>,
    ticks: Option<u64>,
    started_at: Option<f64>,
    started: Option<Instant>,
    restarts: u32,
    streak: u32,
    probe_fails: u32,
    detail: Option<String>,
    latency_ms: Option<f64>,
    /// Stop was asked for; proceeds once dependents are down.
    stop_requested: bool,
    /// Start again once stopped (`restart`).
    start_after_stop: bool,
    /// Why fpctl killed it, when the exit in progress is fpctl's doing
    /// (failed liveness check, memory limit): it is restarted regardless.
    kill_reason: Option<String>,
    tasks: Vec<AbortHandle>,
    /// How many times it came to a stop on request; a stop waiter is done
    /// once this moved, even if a concurrent start brought it back at once.
    stops: u64,
    /// Restarts asked for by a client (crash restarts are `restarts`).
    requested_restarts: u32,
    usage: Option<Usage>,
    history: metrics::History,
}

impl Svc {
    fn new() -> Self {
        Svc {
            phase: Phase::Idle,
            gen: 0,
            pid: None,
            ticks: None,
            started_at: None,
            started: None,
            restarts: 0,
            streak: 0,
            probe_fails: 0,
            detail: None,
            latency_ms: None,
            stop_requested: false,
            start_after_stop: false,
            kill_reason: None,
            tasks: Vec::new(),
            stops: 0,
            requested_restarts: 0,
            usage: None,
            history: metrics::History::default(),
        }
    }

    fn public(&self) -> ServiceState {
        match &self.phase {
            Phase::Idle | Phase::Stopping | Phase::Cleaning => ServiceState::Stopped,
            Phase::Waiting | Phase::Preparing | Phase::Starting => ServiceState::Starting,
            Phase::Running(s) => *s,
            Phase::External => ServiceState::Online,
            Phase::Backoff => ServiceState::Offline,
            Phase::Failed(_) => ServiceState::Failed,
            Phase::Blocked(_) => ServiceState::Blocked,
            Phase::Completed => ServiceState::Completed,
        }
    }

    /// Ready for dependents to start.
    fn ready(&self) -> bool {
        matches!(
            self.phase,
            Phase::Running(ServiceState::Online) | Phase::External | Phase::Completed
        )
    }

    /// Gave up, so dependents cannot start.
    fn broken(&self) -> bool {
        matches!(self.phase, Phase::Failed(_) | Phase::Blocked(_))
    }

    /// Some process of ours may be running.
    fn active(&self) -> bool {
        matches!(
            self.phase,
            Phase::Preparing
                | Phase::Starting
                | Phase::Running(_)
                | Phase::Backoff
                | Phase::Stopping
                | Phase::Cleaning
        )
    }

    /// Asked to stop, or stopping.
    fn going_down(&self) -> bool {
        self.stop_requested || matches!(self.phase, Phase::Stopping | Phase::Cleaning)
    }

    fn abort_tasks(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    /// What a progress line says about the service now.
    fn label(&self) -> Option<String> {
        match &self.phase {
            Phase::Waiting => Some("waiting for dependencies".into()),
            Phase::Preparing => Some("preparing (port check, setup)".into()),
            Phase::Starting => self
                .pid
                .map(|p| format!("launched as pid {p}, waiting for health")),
            Phase::Stopping | Phase::Cleaning => Some("stopping".into()),
            Phase::Idle => None,
            _ => self.reason().or_else(|| self.detail.clone()),
        }
    }

    fn reason(&self) -> Option<String> {
        match &self.phase {
            Phase::Failed(r) | Phase::Blocked(r) => Some(r.clone()),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum WaitFor {
    Up,
    Down,
}

struct Waiter {
    targets: Vec<usize>,
    wait_for: WaitFor,
    reply: mpsc::UnboundedSender<Response>,
    since: Instant,
    shown: Vec<Option<(ServiceState, Option<String>)>>,
    /// Each target's `stops` when the request came.
    stops_before: Vec<u64>,
}

pub struct Supervisor {
    config: Arc<Config>,
    svcs: Vec<Svc>,
    /// All services in start order.
    order: Vec<usize>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    waiters: Vec<Waiter>,
    marker: String,
    /// Exit once everything is stopped.
    exiting: bool,
    dirty: bool,
    events: events::Log,
    /// Live watchers (the HTTP API's stream) subscribe here.
    updates: broadcast::Sender<Update>,
    sampler: Arc<std::sync::Mutex<metrics::Sampler>>,
    metrics_ticks: u32,
}

impl Supervisor {
    pub fn new(config: Arc<Config>) -> (Self, mpsc::UnboundedSender<Msg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let all = (0..config.services.len()).collect();
        let order = graph::plan(&config, &all).start_order();
        let marker = instance_marker(&config);
        let svcs = config.services.iter().map(|_| Svc::new()).collect();
        let config_for_events = Arc::clone(&config);
        let sup = Supervisor {
            config,
            svcs,
            order,
            tx: tx.clone(),
            rx,
            waiters: Vec::new(),
            marker,
            exiting: false,
            dirty: true,
            events: events::Log::open(&config_for_events),
            updates: broadcast::channel(UPDATES_BACKLOG).0,
            sampler: Default::default(),
            metrics_ticks: 0,
        };
        (sup, tx)
    }

    /// Where state changes, probe results and events are published.
    pub fn updates(&self) -> broadcast::Sender<Update> {
        self.updates.clone()
    }

    fn publish(&self, update: impl FnOnce() -> Update) {
        if self.updates.receiver_count() > 0 {
            let _ = self.updates.send(update());
        }
    }

    /// Take over what an earlier supervisor of this project left running, as
    /// recorded in its state file. A process is adopted only if its pid still
    /// names the very process recorded (same start time), so a reused pid is
    /// never touched; one that died meanwhile is handled as a crash.
    pub fn adopt(&mut self, saved: &StateFile) {
        for i in 0..self.config.services.len() {
            let svc = &self.config.services[i];
            let Some(rec) = saved.services.get(&svc.name) else {
                continue;
            };
            self.svcs[i].restarts = rec.restarts;
            let alive = match (rec.pid, rec.ticks) {
                (Some(pid), Some(ticks)) if process::is_same_process(pid, ticks) => {
                    Some((pid, ticks))
                }
                _ => None,
            };
            let was_wanted = matches!(
                rec.state.as_str(),
                "online" | "degraded" | "offline" | "starting"
            );
            match alive {
                Some((pid, ticks)) => match process::watch_foreign(pid) {
                    Ok(exit) => self.adopt_one(i, pid, ticks, rec.started_at, exit),
                    Err(e) => {
                        tracing::warn!(service = %svc.name, pid, "cannot watch adopted process: {e}")
                    }
                },
                None if was_wanted && rec.pid.is_some() && !rec.external => {
                    // It died while nobody supervised it: the restart policy decides.
                    tracing::info!(service = %svc.name, "recorded process is gone");
                    let s = &mut self.svcs[i];
                    s.phase = Phase::Running(ServiceState::Offline);
                    s.pid = None;
                    self.exited(i, Exit::Unknown);
                }
                None => {
                    let s = &mut self.svcs[i];
                    s.phase = match rec.state.as_str() {
                        "completed" => Phase::Completed,
                        "failed" => Phase::Failed(rec.detail.clone().unwrap_or_default()),
                        _ => Phase::Idle,
                    };
                }
            }
        }
        self.dirty = true;
    }

    fn adopt_one(
        &mut self,
        i: usize,
        pid: i32,
        ticks: u64,
        started_at: Option<f64>,
        exit: tokio::sync::oneshot::Receiver<Exit>,
    ) {
        let svc = &self.config.services[i];
        tracing::info!(service = %svc.name, pid, "adopted");
        let tx = self.tx.clone();
        let s = &mut self.svcs[i];
        s.gen += 1;
        let gen = s.gen;
        s.pid = Some(pid);
        s.ticks = Some(ticks);
        s.started_at = started_at;
        let age = started_at
            .map(|t| (state::now_unix() - t).max(0.0))
            .unwrap_or(0.0);
        s.started = Instant::now()
            .checked_sub(Duration::from_secs_f64(age))
            .or(Some(Instant::now()));
        // Online until its probes say otherwise; a oneshot is still running.
        s.phase = if svc.oneshot {
            Phase::Starting
        } else {
            Phase::Running(ServiceState::Online)
        };
        s.detail = Some("adopted".into());
        tokio::spawn(async move {
            let exit = exit.await.unwrap_or(Exit::Unknown);
            let _ = tx.send(Msg::Exited { idx: i, gen, exit });
        });
        if svc.health.is_some() && !svc.oneshot {
            let probe = self.spawn_prober(i, gen);
            self.svcs[i].tasks.push(probe);
        }
        self.event(i, "adopted", format!("pid {pid}"));
    }

    /// Handle messages until asked to exit and everything is stopped.
    pub async fn run(mut self) {
        // Sampled on the probes' shared grid, so it costs no extra wakeup.
        let tx = self.tx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep_until(next_tick(METRICS_INTERVAL)).await;
                if tx.send(Msg::MetricsTick).is_err() {
                    return;
                }
            }
        });
        self.reconcile();
        self.persist();
        while let Some(msg) = self.rx.recv().await {
            self.handle(msg);
            self.reconcile();
            self.notify_waiters();
            if self.dirty {
                self.publish(|| Update::Status {
                    services: self.statuses(),
                });
                self.persist();
            }
            if self.exiting && self.svcs.iter().all(|s| !s.active()) && self.waiters.is_empty() {
                break;
            }
        }
        self.kill_all_marked();
        self.persist();
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Client { request, reply } => self.request(request, reply),
            Msg::Prepared { idx, gen, result } if self.svcs[idx].gen == gen => {
                self.prepared(idx, result)
            }
            Msg::Exited { idx, gen, exit } if self.svcs[idx].gen == gen => self.exited(idx, exit),
            Msg::Cleaned { idx, gen } if self.svcs[idx].gen == gen => self.cleaned(idx),
            Msg::Probed { idx, gen, result } if self.svcs[idx].gen == gen => {
                self.probed(idx, result)
            }
            Msg::StartTimeout { idx, gen } if self.svcs[idx].gen == gen => self.start_timeout(idx),
            Msg::RestartDue { idx, gen }
                if self.svcs[idx].gen == gen && self.svcs[idx].phase == Phase::Backoff =>
            {
                self.launch(idx)
            }
            Msg::StopTimeout { idx, gen } if self.svcs[idx].gen == gen => {
                if let Some(pid) = self.svcs[idx].pid {
                    tracing::warn!(service = %self.config.services[idx].name, "did not stop in time; sending SIGKILL");
                    process::signal_group(pid, Signal::SIGKILL);
                }
            }
            Msg::AliveFor { idx, gen }
                if self.svcs[idx].gen == gen && self.svcs[idx].phase == Phase::Starting =>
            {
                self.svcs[idx].phase = Phase::Running(ServiceState::Online);
                self.svcs[idx].detail = Some("running".into());
                self.event(idx, "online", "running");
                self.dirty = true;
            }
            Msg::Shutdown => self.stop_all(),
            Msg::MetricsTick => self.sample_metrics(),
            Msg::Metrics(usage) => self.metrics(usage),
            _ => {} // a report about an earlier launch
        }
    }

    fn request(&mut self, request: Request, reply: mpsc::UnboundedSender<Response>) {
        if self.exiting {
            let _ = reply.send(Response::Error {
                message: "the supervisor is shutting down".into(),
            });
            return;
        }
        match request {
            Request::Status => {
                let _ = reply.send(Response::Status {
                    supervisor_pid: std::process::id() as i32,
                    services: self.statuses(),
                });
            }
            Request::History { services } => {
                let histories = self
                    .config
                    .services
                    .iter()
                    .zip(&self.svcs)
                    .filter(|(svc, _)| services.is_empty() || services.contains(&svc.name))
                    .map(|(svc, s)| (svc.name.clone(), s.history.to_vec()))
                    .collect();
                let _ = reply.send(Response::History { histories });
            }
            Request::Api => {
                let _ = reply.send(Response::Error {
                    message: "the HTTP API is not available in this supervisor".into(),
                });
            }
            Request::Start { services, profiles } => {
                match graph::select(&self.config, &services, &profiles) {
                    Ok(selected) => self.start(selected, reply),
                    Err(e) => {
                        let _ = reply.send(Response::Error {
                            message: e.to_string(),
                        });
                    }
                }
            }
            Request::Restart { services } => match graph::select(&self.config, &services, &[]) {
                Ok(_) => {
                    let targets: Vec<usize> = services
                        .iter()
                        .filter_map(|n| self.config.service(n).map(|(i, _)| i))
                        .collect();
                    for &i in &targets {
                        let s = &mut self.svcs[i];
                        s.streak = 0;
                        s.requested_restarts += 1;
                        if s.active() {
                            s.stop_requested = true;
                            s.start_after_stop = true;
                        } else {
                            s.phase = Phase::Waiting;
                        }
                    }
                    // Their dependencies must be up too.
                    let selected = graph::with_dependencies(&self.config, targets.iter().copied());
                    self.start(selected, reply);
                }
                Err(e) => {
                    let _ = reply.send(Response::Error {
                        message: e.to_string(),
                    });
                }
            },
            Request::Stop { services } if services.is_empty() => {
                self.stop_all();
                self.add_waiter((0..self.svcs.len()).collect(), WaitFor::Down, reply);
            }
            Request::Stop { services } => match graph::select(&self.config, &services, &[]) {
                Ok(_) => {
                    let roots = services
                        .iter()
                        .filter_map(|n| self.config.service(n).map(|(i, _)| i));
                    let targets = graph::with_dependents(&self.config, roots);
                    for &i in &targets {
                        self.request_stop(i);
                    }
                    self.add_waiter(targets.into_iter().collect(), WaitFor::Down, reply);
                }
                Err(e) => {
                    let _ = reply.send(Response::Error {
                        message: e.to_string(),
                    });
                }
            },
        }
    }

    fn start(&mut self, selected: BTreeSet<usize>, reply: mpsc::UnboundedSender<Response>) {
        for &i in &selected {
            let s = &mut self.svcs[i];
            match s.phase {
                Phase::Idle | Phase::Failed(_) | Phase::Blocked(_) => {
                    s.phase = Phase::Waiting;
                    s.streak = 0;
                    s.detail = None;
                    self.dirty = true;
                }
                // A stop in progress is overridden: start again once down.
                Phase::Stopping | Phase::Cleaning => s.start_after_stop = true,
                _ => {}
            }
            s.stop_requested = s.stop_requested && s.start_after_stop;
        }
        self.add_waiter(selected.into_iter().collect(), WaitFor::Up, reply);
    }

    fn add_waiter(
        &mut self,
        targets: Vec<usize>,
        wait_for: WaitFor,
        reply: mpsc::UnboundedSender<Response>,
    ) {
        let n = targets.len();
        let stops_before = targets.iter().map(|&i| self.svcs[i].stops).collect();
        self.waiters.push(Waiter {
            targets,
            wait_for,
            reply,
            since: Instant::now(),
            shown: vec![None; n],
            stops_before,
        });
    }

    fn stop_all(&mut self) {
        self.exiting = true;
        for i in 0..self.svcs.len() {
            self.request_stop(i);
        }
    }

    fn request_stop(&mut self, i: usize) {
        let s = &mut self.svcs[i];
        s.start_after_stop = false;
        match s.phase {
            Phase::Waiting
            | Phase::Blocked(_)
            | Phase::Failed(_)
            | Phase::External
            | Phase::Completed => {
                s.phase = Phase::Idle;
                s.abort_tasks();
                s.gen += 1;
                s.detail = None;
                self.dirty = true;
            }
            _ if s.active() => s.stop_requested = true,
            _ => {}
        }
    }

    /// Advance every service that can move: start what is ready, block what
    /// cannot start, stop what was asked to stop once its dependents are down.
    fn reconcile(&mut self) {
        let config = Arc::clone(&self.config);
        for pos in (0..self.order.len()).rev() {
            let i = self.order[pos];
            if !self.svcs[i].stop_requested {
                continue;
            }
            // Dependents that are being stopped too go first. One that stays
            // (a `restart` of its dependency alone) does not hold it up.
            let dependents_down = config
                .services
                .iter()
                .enumerate()
                .filter(|(_, s)| s.depends_on.contains(&i))
                .all(|(j, _)| !self.svcs[j].going_down());
            if dependents_down {
                self.begin_stop(i);
            }
        }
        for pos in 0..self.order.len() {
            let i = self.order[pos];
            if self.svcs[i].phase != Phase::Waiting {
                continue;
            }
            let svc = &config.services[i];
            if let Some(reason) = self.blocked_by(i) {
                self.event(i, "blocked", reason.clone());
                self.svcs[i].phase = Phase::Blocked(reason);
                self.dirty = true;
                continue;
            }
            let deps_ready = svc.depends_on.iter().all(|&d| self.svcs[d].ready());
            let earlier_ready = self.earlier_tiers(svc.tier).all(|j| self.svcs[j].ready());
            if deps_ready && earlier_ready {
                self.launch(i);
            }
        }
    }

    /// Wanted services of tiers before `tier`.
    fn earlier_tiers(&self, tier: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.svcs.len()).filter(move |&j| self.config.services[j].tier < tier && self.wanted(j))
    }

    fn wanted(&self, j: usize) -> bool {
        !matches!(self.svcs[j].phase, Phase::Idle) && !self.svcs[j].stop_requested
    }

    fn blocked_by(&self, i: usize) -> Option<String> {
        let svc = &self.config.services[i];
        for &d in &svc.depends_on {
            let dep = &self.svcs[d];
            let name = &self.config.services[d].name;
            if dep.broken() {
                return Some(format!(
                    "dependency \"{name}\" is {}",
                    dep.public().as_str()
                ));
            }
            if dep.phase == Phase::Idle {
                let why = if self.config.services[d].disabled {
                    "disabled"
                } else {
                    "stopped"
                };
                return Some(format!("dependency \"{name}\" is {why}"));
            }
        }
        self.earlier_tiers(svc.tier)
            .find(|&j| self.svcs[j].broken())
            .map(|j| {
                format!(
                    "\"{}\" in an earlier tier is {}",
                    self.config.services[j].name,
                    self.svcs[j].public().as_str()
                )
            })
    }

    /// Port check and setup, in a task; then `prepared` spawns.
    fn launch(&mut self, i: usize) {
        let config = Arc::clone(&self.config);
        let tx = self.tx.clone();
        let s = &mut self.svcs[i];
        s.abort_tasks();
        s.gen += 1;
        s.phase = Phase::Preparing;
        s.detail = Some("preparing".into());
        s.probe_fails = 0;
        s.kill_reason = None;
        s.started = Some(Instant::now());
        self.dirty = true;
        let gen = s.gen;
        let task = tokio::spawn(async move {
            let svc = &config.services[i];
            let result = prepare(&config, svc).await;
            let _ = tx.send(Msg::Prepared {
                idx: i,
                gen,
                result,
            });
        });
        s.tasks.push(task.abort_handle());
    }

    fn prepared(&mut self, i: usize, result: Result<Prepared, String>) {
        let svc = &self.config.services[i];
        match result {
            Err(reason) => self.fail(i, reason),
            Ok(Prepared::External(probe)) => {
                tracing::info!(service = %svc.name, "already answering on its port; not spawned");
                self.event(i, "external", probe.detail.clone());
                let s = &mut self.svcs[i];
                s.phase = Phase::External;
                s.detail = Some(format!("external: {}", probe.detail));
                s.latency_ms = Some(probe.latency.as_secs_f64() * 1000.0);
                self.dirty = true;
            }
            Ok(Prepared::Spawn) => self.spawn(i),
        }
    }

    fn spawn(&mut self, i: usize) {
        let svc = &self.config.services[i];
        let log = match open_log(&self.config, svc) {
            Ok(f) => f,
            Err(e) => {
                return self.fail(
                    i,
                    format!(
                        "cannot open log {}: {e}",
                        self.config.log_path(&svc.name).display()
                    ),
                )
            }
        };
        let shown = svc.redact(&shell_words::join(&svc.argv));
        setup::note(&log, &format!("starting: {shown}"));
        let env = setup::service_env(svc);
        let marker = format!("{}:{}", self.marker, svc.name);
        let spec = SpawnSpec {
            argv: &svc.argv,
            dir: &svc.dir,
            env: &env,
            marker: Some(&marker),
        };
        let spawned = match svc.log_rotation {
            None => process::spawn_logged(&spec, &log),
            Some(rotation) => process::spawn_log_writer(&self.config.log_path(&svc.name), rotation)
                .and_then(|pipe| process::spawn_logged(&spec, &pipe)),
        };
        let child = match spawned {
            Ok(c) => c,
            Err(e) => return self.fail(i, e.to_string()),
        };
        tracing::info!(service = %svc.name, pid = child.pid, "spawned");
        self.event(i, "spawned", format!("pid {}: {shown}", child.pid));
        let svc = &self.config.services[i];
        let tx = self.tx.clone();
        let s = &mut self.svcs[i];
        let gen = s.gen;
        s.pid = Some(child.pid);
        s.ticks = child.start_ticks;
        s.started_at = Some(state::now_unix());
        s.started = Some(Instant::now());
        s.detail = None;
        self.dirty = true;
        let exit = child.exit;
        // The exit watcher is not aborted with the launch's other tasks: it
        // must report the exit of this very process.
        tokio::spawn(async move {
            let exit = exit.await.unwrap_or(Exit::Signal(9));
            let _ = tx.send(Msg::Exited { idx: i, gen, exit });
        });
        match &svc.health {
            Some(_) => {
                s.phase = Phase::Starting;
                let probe = self.spawn_prober(i, gen);
                let timer = self.timer(svc.start_timeout, Msg::StartTimeout { idx: i, gen });
                self.svcs[i].tasks.extend([probe, timer]);
            }
            None if svc.oneshot => s.phase = Phase::Starting,
            None => {
                // No health check: alive = online, once it has outlived an
                // immediate crash (like supervisord's startsecs).
                s.phase = Phase::Starting;
                let timer = self.timer(ALIVE_GRACE, Msg::AliveFor { idx: i, gen });
                self.svcs[i].tasks.push(timer);
            }
        }
    }

    fn spawn_prober(&self, i: usize, gen: u64) -> AbortHandle {
        let config = Arc::clone(&self.config);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let svc = &config.services[i];
            let health = svc.health.as_ref().expect("prober needs a health check");
            let begun = Instant::now();
            let mut delay = FAST_PROBE;
            let mut healthy_once = false;
            loop {
                let result = health::probe(svc, &health.probe, health.timeout).await;
                healthy_once |= result.verdict == Verdict::Healthy;
                if tx
                    .send(Msg::Probed {
                        idx: i,
                        gen,
                        result,
                    })
                    .is_err()
                {
                    return;
                }
                // Fast while starting, so readiness is seen within ms; then
                // back off to the configured interval.
                delay = if healthy_once {
                    health.interval
                } else if begun.elapsed() < FAST_PROBE_FOR {
                    FAST_PROBE
                } else {
                    (delay * 3 / 2).min(health.interval)
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
        .abort_handle()
    }

    fn timer(&self, after: Duration, msg: Msg) -> AbortHandle {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(msg);
        })
        .abort_handle()
    }

    fn probed(&mut self, i: usize, result: ProbeResult) {
        let svc = &self.config.services[i];
        let retries = svc.health.as_ref().map(|h| h.retries).unwrap_or(1);
        let s = &mut self.svcs[i];
        let before = (s.public(), s.detail.clone());
        let was = s.public();
        s.latency_ms = Some(result.latency.as_secs_f64() * 1000.0);
        let sample = ProbeSample {
            ts: state::now_unix(),
            verdict: result.verdict.as_str().into(),
            latency_ms: result.latency.as_secs_f64() * 1000.0,
        };
        // A booting service is polled every few ms; only the probe that
        // finds it up is kept, so the history shows its life, not its boot.
        if s.phase != Phase::Starting || result.verdict == Verdict::Healthy {
            s.history.push(sample.clone());
            self.publish(|| Update::Probe {
                service: svc.name.clone(),
                sample,
            });
        }
        let s = &mut self.svcs[i];
        s.detail = Some(result.detail.clone());
        match (&s.phase, result.verdict) {
            (Phase::Starting, Verdict::Healthy) => {
                s.phase = Phase::Running(ServiceState::Online);
                s.probe_fails = 0;
                tracing::info!(service = %svc.name, after_ms = s.started.map(|t| t.elapsed().as_millis()).unwrap_or(0), "online");
            }
            (Phase::Running(_), Verdict::Healthy) => {
                s.phase = Phase::Running(ServiceState::Online);
                s.probe_fails = 0;
            }
            (Phase::Running(current), verdict) => {
                s.probe_fails += 1;
                if s.probe_fails >= retries {
                    let new = if verdict == Verdict::Unhealthy {
                        ServiceState::Degraded
                    } else {
                        ServiceState::Offline
                    };
                    if *current != new {
                        tracing::warn!(service = %svc.name, detail = %result.detail, "now {}", new.as_str());
                    }
                    s.phase = Phase::Running(new);
                    if new == ServiceState::Offline
                        && svc.restart != RestartPolicy::No
                        && s.kill_reason.is_none()
                    {
                        // Liveness failed: restart it through the crash path.
                        let reason =
                            format!("health check failed {retries} times: {}", result.detail);
                        self.kill_for(i, reason);
                    }
                }
            }
            _ => {}
        }
        let now = self.svcs[i].public();
        if now != was {
            let detail = self.svcs[i].detail.clone().unwrap_or_default();
            self.event(i, now.as_str(), detail);
        }
        if before != (self.svcs[i].public(), self.svcs[i].detail.clone()) {
            self.dirty = true;
        }
    }

    /// Stop a running service so that the crash path restarts it, and
    /// remember why (a failed liveness check, the memory limit).
    fn kill_for(&mut self, i: usize, reason: String) {
        let svc = &self.config.services[i];
        tracing::warn!(service = %svc.name, %reason, "killing for a restart");
        let (stop_signal, stop_timeout) = (svc.stop_signal, svc.stop_timeout);
        let s = &mut self.svcs[i];
        s.kill_reason = Some(reason);
        if let Some(pid) = s.pid {
            process::signal_group(pid, stop_signal);
        }
        let gen = s.gen;
        let timer = self.timer(stop_timeout, Msg::StopTimeout { idx: i, gen });
        self.svcs[i].tasks.push(timer);
    }

    /// Sample the process groups of running services, off the actor.
    fn sample_metrics(&mut self) {
        self.metrics_ticks = self.metrics_ticks.wrapping_add(1);
        let every_tick = self.config.services.iter().any(|s| s.max_memory.is_some());
        if !every_tick && !self.metrics_ticks.is_multiple_of(METRICS_IDLE_EVERY) {
            return;
        }
        let targets: Vec<(usize, u64, i32)> = self
            .svcs
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.phase, Phase::Running(_) | Phase::Starting))
            .filter_map(|(i, s)| Some((i, s.gen, s.pid?)))
            .collect();
        if targets.is_empty() {
            return;
        }
        let tx = self.tx.clone();
        let sampler = Arc::clone(&self.sampler);
        tokio::task::spawn_blocking(move || {
            let pgids: Vec<i32> = targets.iter().map(|t| t.2).collect();
            let by_group = match sampler.lock() {
                Ok(mut s) => s.sample(&pgids),
                Err(_) => return,
            };
            let usage = targets
                .into_iter()
                .filter_map(|(i, gen, pgid)| Some((i, gen, *by_group.get(&pgid)?)))
                .collect();
            let _ = tx.send(Msg::Metrics(usage));
        });
    }

    /// Record a sample, and restart what exceeds its `max_memory`.
    fn metrics(&mut self, usage: Vec<(usize, u64, Usage)>) {
        // Live watchers hear of a sample only when it changes what they show.
        let shown = |u: Option<Usage>| {
            u.map(|u| {
                (
                    u.rss_bytes >> 16,
                    u.cpu_percent.map(|c| (c * 10.0).round() as i64),
                )
            })
        };
        let mut changed = false;
        for (i, gen, u) in usage {
            let s = &mut self.svcs[i];
            if s.gen != gen || !matches!(s.phase, Phase::Running(_) | Phase::Starting) {
                continue;
            }
            changed |= shown(s.usage) != shown(Some(u));
            s.usage = Some(u);
            let Some(limit) = self.config.services[i].max_memory else {
                continue;
            };
            if u.rss_bytes <= limit || s.kill_reason.is_some() {
                continue;
            }
            let reason = format!(
                "memory {} over max_memory {}",
                crate::output::bytes_short(u.rss_bytes),
                crate::output::bytes_short(limit)
            );
            self.event(i, "memory", reason.clone());
            self.kill_for(i, reason);
        }
        if changed {
            self.publish(|| Update::Status {
                services: self.statuses(),
            });
        }
    }

    /// Record an event (secrets redacted).
    fn event(&mut self, i: usize, kind: &str, detail: impl Into<String>) {
        let svc = &self.config.services[i];
        let event = events::Event {
            ts: state::now_unix(),
            service: svc.name.clone(),
            kind: kind.to_string(),
            detail: svc.redact(&detail.into()),
        };
        self.events.append(&event);
        self.publish(|| Update::Event { event });
    }

    fn start_timeout(&mut self, i: usize) {
        let s = &self.svcs[i];
        if !matches!(s.phase, Phase::Starting | Phase::Preparing) {
            return;
        }
        let svc = &self.config.services[i];
        let last = s.detail.clone().unwrap_or_else(|| "no answer".into());
        let reason = format!(
            "not healthy after {} (start_timeout); last probe: {last}",
            crate::output::duration_short(svc.start_timeout)
        );
        self.fail(i, reason);
    }

    /// Give up on a service: kill what runs of it and mark it failed.
    fn fail(&mut self, i: usize, reason: String) {
        let svc = &self.config.services[i];
        tracing::warn!(service = %svc.name, %reason, "failed");
        if let Ok(log) = open_log(&self.config, svc) {
            setup::note(&log, &format!("failed: {}", svc.redact(&reason)));
        }
        let s = &mut self.svcs[i];
        s.abort_tasks();
        if let Some(pid) = s.pid.take() {
            process::signal_group(pid, Signal::SIGKILL);
            self.cleanup_in_background(i, false);
        }
        self.event(i, "failed", reason.clone());
        let s = &mut self.svcs[i];
        s.phase = Phase::Failed(reason);
        self.dirty = true;
    }

    fn begin_stop(&mut self, i: usize) {
        let svc = &self.config.services[i];
        let s = &mut self.svcs[i];
        s.stop_requested = false;
        s.abort_tasks();
        self.dirty = true;
        match (s.phase.clone(), s.pid) {
            (Phase::Running(_) | Phase::Starting, Some(pid)) => {
                s.phase = Phase::Stopping;
                tracing::info!(service = %svc.name, pid, "stopping");
                process::signal_group(pid, svc.stop_signal);
                let gen = s.gen;
                let timer = self.timer(svc.stop_timeout, Msg::StopTimeout { idx: i, gen });
                self.svcs[i].tasks.push(timer);
            }
            (Phase::Stopping | Phase::Cleaning, _) => {}
            _ => {
                // Preparing or in backoff: nothing of ours is running except
                // perhaps a setup step, which the marker scan catches.
                s.gen += 1;
                s.pid = None;
                s.phase = Phase::Cleaning;
                self.cleanup_in_background(i, true);
            }
        }
    }

    fn exited(&mut self, i: usize, exit: Exit) {
        let svc = &self.config.services[i];
        let log = open_log(&self.config, svc).ok();
        if let Some(log) = &log {
            setup::note(
                log,
                &format!("process {} {exit}", self.svcs[i].pid.unwrap_or(0)),
            );
        }
        tracing::info!(service = %svc.name, %exit, "exited");
        let pid = self.svcs[i].pid.unwrap_or(0);
        self.event(i, "exited", format!("pid {pid} {exit}"));
        let svc = &self.config.services[i];
        let s = &mut self.svcs[i];
        s.abort_tasks();
        self.dirty = true;
        let phase = s.phase.clone();
        if phase == Phase::Stopping {
            s.phase = Phase::Cleaning;
            self.cleanup_in_background(i, true);
            return;
        }
        if !s.active() {
            // Already failed (start timeout) or stopped: only clean up.
            self.cleanup_in_background(i, false);
            return;
        }
        if svc.oneshot {
            s.phase = if exit.success() {
                Phase::Completed
            } else {
                Phase::Failed(format!("{exit}"))
            };
            s.detail = Some(exit.to_string());
            let kind = if exit.success() {
                "completed"
            } else {
                "failed"
            };
            self.cleanup_in_background(i, false);
            self.event(i, kind, exit.to_string());
            return;
        }
        // A crash (or an exit on its own) of a service that should run.
        if s.started.is_some_and(|t| t.elapsed() >= RESTART_WINDOW) {
            s.streak = 0;
        }
        let restart = s.kill_reason.is_some()
            || match svc.restart {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !exit.success(),
                RestartPolicy::No => false,
            };
        let why = s.kill_reason.clone().unwrap_or_else(|| exit.to_string());
        let pgid = s.pid;
        if !restart {
            let policy = match svc.restart {
                RestartPolicy::No => "restart = \"no\"",
                _ => "restart = \"on-failure\" does not restart a clean exit",
            };
            let reason = format!("{why} ({policy})");
            s.phase = Phase::Failed(reason.clone());
            self.event(i, "failed", reason);
        } else if s.streak >= svc.max_restarts {
            let reason = format!(
                "{why}; gave up after {} restart{} (max_restarts)",
                svc.max_restarts,
                if svc.max_restarts == 1 { "" } else { "s" }
            );
            s.phase = Phase::Failed(reason.clone());
            self.event(i, "failed", reason);
        } else {
            let delay = backoff(s.streak);
            s.streak += 1;
            s.restarts += 1;
            s.phase = Phase::Backoff;
            s.pid = None;
            s.detail = Some(format!(
                "{why}; restarting in {}",
                crate::output::duration_short(delay)
            ));
            if let Some(log) = &log {
                setup::note(
                    log,
                    &format!(
                        "restart {} in {}",
                        s.restarts,
                        crate::output::duration_short(delay)
                    ),
                );
            }
            let restart_event = format!(
                "restart {} in {}: {why}",
                s.restarts,
                crate::output::duration_short(delay)
            );
            // Remnants are killed first, then the restart timer runs.
            let gen = s.gen;
            let marker = format!("{}:{}", self.marker, svc.name);
            let tx = self.tx.clone();
            let task = tokio::spawn(async move {
                let _ = tokio::task::spawn_blocking(move || kill_tree(pgid, &marker)).await;
                tokio::time::sleep(delay).await;
                let _ = tx.send(Msg::RestartDue { idx: i, gen });
            });
            self.svcs[i].tasks.push(task.abort_handle());
            self.event(i, "restart", restart_event);
            return;
        }
        self.svcs[i].pid = pgid;
        self.cleanup_in_background(i, false);
    }

    /// Kill whatever is left of a service's process tree (its group and every
    /// process carrying its marker); with `report`, send `Cleaned` after.
    fn cleanup_in_background(&mut self, i: usize, report: bool) {
        let s = &mut self.svcs[i];
        let pgid = s.pid.take();
        let gen = s.gen;
        let marker = format!("{}:{}", self.marker, self.config.services[i].name);
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            kill_tree(pgid, &marker);
            if report {
                let _ = tx.send(Msg::Cleaned { idx: i, gen });
            }
        });
    }

    fn cleaned(&mut self, i: usize) {
        let s = &mut self.svcs[i];
        if s.phase != Phase::Cleaning {
            return;
        }
        s.phase = Phase::Idle;
        s.pid = None;
        s.ticks = None;
        s.started_at = None;
        s.detail = None;
        s.latency_ms = None;
        s.usage = None;
        s.stops += 1;
        self.dirty = true;
        let again = s.start_after_stop;
        self.event(i, "stopped", if again { "for a restart" } else { "" });
        let s = &mut self.svcs[i];
        if s.start_after_stop {
            s.start_after_stop = false;
            s.phase = Phase::Waiting;
        }
    }

    fn statuses(&self) -> Vec<ServiceStatus> {
        self.config
            .services
            .iter()
            .zip(&self.svcs)
            .map(|(svc, s)| ServiceStatus {
                name: svc.name.clone(),
                state: s.public(),
                pid: s.pid,
                restarts: s.restarts,
                uptime_s: s
                    .started_at
                    .filter(|_| s.pid.is_some())
                    .map(|t| (state::now_unix() - t).max(0.0)),
                detail: s
                    .reason()
                    .or_else(|| s.detail.clone())
                    .map(|d| svc.redact(&d)),
                latency_ms: s.latency_ms,
                external: matches!(s.phase, Phase::External),
                rss_bytes: s.usage.filter(|_| s.pid.is_some()).map(|u| u.rss_bytes),
                cpu_percent: s
                    .usage
                    .filter(|_| s.pid.is_some())
                    .and_then(|u| u.cpu_percent)
                    .map(|c| (c * 10.0).round() / 10.0),
                restarts_total: s.restarts + s.requested_restarts,
            })
            .collect()
    }

    fn notify_waiters(&mut self) {
        let mut waiters = std::mem::take(&mut self.waiters);
        waiters.retain_mut(|w| {
            let elapsed_ms = w.since.elapsed().as_millis() as u64;
            for (k, &i) in w.targets.iter().enumerate() {
                let s = &self.svcs[i];
                let svc = &self.config.services[i];
                let now = (s.public(), s.label().map(|l| svc.redact(&l)));
                if w.shown[k].as_ref() != Some(&now) {
                    let progress = Progress {
                        service: self.config.services[i].name.clone(),
                        state: now.0,
                        detail: now.1.clone(),
                        elapsed_ms,
                    };
                    if w.reply.send(Response::Progress(progress)).is_err() {
                        return false; // the client went away
                    }
                    w.shown[k] = Some(now);
                }
            }
            let settled = w
                .targets
                .iter()
                .enumerate()
                .all(|(k, &i)| match w.wait_for {
                    WaitFor::Up => self.settled_up(i),
                    WaitFor::Down => {
                        let s = &self.svcs[i];
                        (!s.active() && !s.stop_requested) || s.stops > w.stops_before[k]
                    }
                });
            if !settled {
                return true;
            }
            let failures: Vec<Failure> = w
                .targets
                .iter()
                .filter(|&&i| w.wait_for == WaitFor::Up && !self.svcs[i].ready())
                .map(|&i| {
                    let s = &self.svcs[i];
                    Failure {
                        service: self.config.services[i].name.clone(),
                        state: s.public(),
                        reason: self.config.services[i]
                            .redact(&s.reason().or_else(|| s.detail.clone()).unwrap_or_default()),
                        log: self.config.log_path(&self.config.services[i].name),
                    }
                })
                .collect();
            let _ = w.reply.send(Response::Done {
                ok: failures.is_empty(),
                failures,
            });
            false
        });
        self.waiters = waiters;
    }

    fn settled_up(&self, i: usize) -> bool {
        let s = &self.svcs[i];
        !s.stop_requested
            && !s.start_after_stop
            && matches!(
                s.phase,
                Phase::Running(_)
                    | Phase::External
                    | Phase::Completed
                    | Phase::Failed(_)
                    | Phase::Blocked(_)
                    | Phase::Idle
            )
    }

    fn persist(&mut self) {
        self.dirty = false;
        let mut file = StateFile {
            supervisor_pid: Some(std::process::id() as i32),
            supervisor_ticks: process::start_ticks(std::process::id() as i32),
            services: Default::default(),
        };
        for (svc, s) in self.config.services.iter().zip(&self.svcs) {
            file.services.insert(
                svc.name.clone(),
                ServiceRecord {
                    state: s.public().as_str().into(),
                    pid: s.pid,
                    ticks: s.ticks,
                    started_at: s.started_at,
                    restarts: s.restarts,
                    external: matches!(s.phase, Phase::External),
                    detail: s
                        .reason()
                        .or_else(|| s.detail.clone())
                        .map(|d| svc.redact(&d)),
                },
            );
        }
        if self.exiting && self.svcs.iter().all(|s| !s.active()) {
            file.supervisor_pid = None;
            file.supervisor_ticks = None;
        }
        if let Err(e) = state::write(&self.config, &file) {
            tracing::error!("cannot write state: {e}");
        }
    }

    /// Last resort on exit: nothing carrying our marker survives us.
    fn kill_all_marked(&self) {
        let prefix = format!("{}:", self.marker);
        for pid in process::marked_pids(&prefix, true) {
            process::signal_pid(pid, Signal::SIGKILL);
        }
    }
}

/// The next multiple of `interval` on a clock shared by every prober.
fn next_tick(interval: Duration) -> tokio::time::Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let step = interval.as_nanos().max(1);
    let k = epoch.elapsed().as_nanos() / step + 1;
    let nanos = u64::try_from(k * step).unwrap_or(u64::MAX);
    (epoch + Duration::from_nanos(nanos)).into()
}

fn backoff(streak: u32) -> Duration {
    if streak == 0 {
        Duration::ZERO
    } else {
        BACKOFF_BASE
            .saturating_mul(1 << (streak - 1).min(16))
            .min(BACKOFF_CAP)
    }
}

/// SIGKILL a service's process group and every process carrying its marker.
fn kill_tree(pgid: Option<i32>, marker: &str) {
    if let Some(pgid) = pgid {
        process::signal_group(pgid, Signal::SIGKILL);
    }
    for pid in process::marked_pids(marker, false) {
        process::signal_pid(pid, Signal::SIGKILL);
    }
}

/// A marker unique to this project folder, shared by all its services.
pub fn instance_marker(config: &Config) -> String {
    process::project_marker(&config.root)
}

fn open_log(config: &Config, svc: &Service) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.log_path(&svc.name))
}

/// Before a spawn: is the port free (or already served, healthy)? Then setup.
async fn prepare(config: &Config, svc: &Service) -> Result<Prepared, String> {
    if let Some(port) = svc.port {
        if health::tcp(port).await.0 == Verdict::Healthy {
            if let Some(h) = &svc.health {
                let probe = health::probe(svc, &h.probe, h.timeout).await;
                if probe.verdict == Verdict::Healthy {
                    return Ok(Prepared::External(probe));
                }
            }
            let holder = process::port_holder(port)
                .map(|(pid, cmd)| format!(" by pid {pid} ({cmd})"))
                .unwrap_or_default();
            return Err(format!(
                "port {port} is already in use{holder}, and it does not answer as \"{}\" should",
                svc.name
            ));
        }
    }
    let log = open_log(config, svc).map_err(|e| format!("cannot open log: {e}"))?;
    setup::run(config, svc, &log).await?;
    Ok(Prepared::Spawn)
}

//! The dispatcher: the single owner of every service's state.
//!
//! `Supervisor::run` is one task that receives every event on two channels:
//! messages (client requests, timers, signals) and unit reports. It owns the
//! rules between services (dependencies, tiers, blocking, stop order), the
//! waiters of client requests, persistence and the event history. What one
//! service does with an event is decided by [`Svc::handle`] in `service.rs`;
//! the processes themselves belong to unit tasks (`unit.rs`).
//!
//! Services are known by name ([`ServiceId`]). Every launch gets a number
//! from one counter shared by all services, so a late report about an
//! earlier launch never matches a later one, whatever the service.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use super::reload::{self, Plan};
use super::service::{Effect, Goal, Input, Phase, ServiceId, Svc};
use super::unit::{self, Ctl, Launch, Report, Unit, UnitEvent};
use crate::config::{Config, Service};
use crate::control::{
    BlockReason, ChangeKind, DepState, ErrorKind, FailReason, Failure, Progress, Request, Response,
    ServiceState, ServiceStatus,
};
use crate::events::{self, EventKind};
use crate::graph;
use crate::process;
use crate::setup;
use crate::state::{self, ServiceRecord, StateFile};

/// How often services with `max_memory` are measured.
const MEMORY_INTERVAL: Duration = Duration::from_secs(1);

pub enum Msg {
    Client {
        request: Request,
        reply: mpsc::UnboundedSender<Response>,
    },
    RestartDue {
        id: ServiceId,
        gen: u64,
    },
    /// SIGTERM / SIGINT to the supervisor: stop everything and exit; a
    /// second one kills what is left at once.
    Shutdown,
    /// SIGHUP: re-read services.toml and apply it.
    Reload,
    /// The setups a `restart` runs first are done.
    SetupsDone {
        services: Vec<ServiceId>,
        failed: Vec<(ServiceId, String)>,
        reply: mpsc::UnboundedSender<Response>,
    },
    /// Time to measure the memory of services with `max_memory`.
    MemoryTick,
    /// Resident memory (bytes) of each measured service's process group.
    Memory(Vec<MemoryUse>),
}

pub struct MemoryUse {
    id: ServiceId,
    gen: u64,
    rss: u64,
}

/// One service: its definition, its state and its running unit.
struct Entry {
    spec: Arc<Service>,
    deps: Vec<ServiceId>,
    /// Index into the current config's tiers.
    tier: usize,
    svc: Svc,
    unit: Option<Unit>,
    /// Gone from services.toml: stopped, then forgotten.
    removed: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum WaitFor {
    Up,
    Down,
}

struct Waiter {
    targets: Vec<ServiceId>,
    wait_for: WaitFor,
    reply: mpsc::UnboundedSender<Response>,
    since: Instant,
    shown: Vec<Option<(ServiceState, Option<String>)>>,
    /// Each target's `stops` when the request came.
    stops_before: Vec<u64>,
    /// Known before waiting (a restart whose setup failed).
    failures: Vec<Failure>,
}

pub struct Supervisor {
    config: Arc<Config>,
    entries: BTreeMap<ServiceId, Entry>,
    /// All services in start order (removed ones last, so they stop first).
    order: Vec<ServiceId>,
    next_gen: u64,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports_rx: mpsc::UnboundedReceiver<Report>,
    waiters: Vec<Waiter>,
    marker: String,
    /// Exit once everything is stopped.
    exiting: bool,
    dirty: bool,
    events: events::Log,
    /// Digest of the services.toml in force (see `control::file_digest`).
    digest: Option<String>,
}

impl Supervisor {
    pub fn new(config: Arc<Config>) -> (Self, mpsc::UnboundedSender<Msg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let marker = instance_marker(&config);
        let events = events::Log::open(&config);
        let mut sup = Supervisor {
            config: Arc::clone(&config),
            entries: BTreeMap::new(),
            order: Vec::new(),
            next_gen: 0,
            tx: tx.clone(),
            rx,
            reports_tx,
            reports_rx,
            waiters: Vec::new(),
            marker,
            exiting: false,
            dirty: true,
            events,
            digest: None,
        };
        sup.install(config);
        (sup, tx)
    }

    /// Make `config` the one in force: new entries for new services, new
    /// definitions for kept ones (their state stays), removed ones marked.
    fn install(&mut self, config: Arc<Config>) {
        let names: BTreeSet<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
        for (id, e) in self.entries.iter_mut() {
            if !names.contains(id.as_str()) {
                e.removed = true;
            }
        }
        for svc in &config.services {
            let id = ServiceId::new(&svc.name);
            let deps = svc
                .depends_on
                .iter()
                .map(|&d| ServiceId::new(&config.services[d].name))
                .collect();
            let spec = Arc::new(svc.clone());
            match self.entries.get_mut(&id) {
                Some(e) => {
                    e.spec = spec;
                    e.deps = deps;
                    e.tier = svc.tier;
                    e.removed = false;
                }
                None => {
                    self.entries.insert(
                        id,
                        Entry {
                            spec,
                            deps,
                            tier: svc.tier,
                            svc: Svc::new(),
                            unit: None,
                            removed: false,
                        },
                    );
                }
            }
        }
        let all = (0..config.services.len()).collect();
        self.order = graph::plan(&config, &all)
            .start_order()
            .into_iter()
            .map(|i| ServiceId::new(&config.services[i].name))
            .collect();
        self.order.extend(
            self.entries
                .iter()
                .filter(|(_, e)| e.removed)
                .map(|(id, _)| id.clone()),
        );
        self.digest = crate::control::file_digest(&config.path);
        self.config = config;
        self.dirty = true;
    }

    fn gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    /// Take over what an earlier supervisor of this project left running, as
    /// recorded in its state file. A process is adopted only if its pid still
    /// names the very process recorded (same start time), so a reused pid is
    /// never touched; one that died meanwhile is handled as a crash.
    pub fn adopt(&mut self, saved: &StateFile) {
        let ids: Vec<ServiceId> = self.order.clone();
        for id in ids {
            let Some(rec) = saved.services.get(id.as_str()) else {
                continue;
            };
            let gen = self.gen();
            let e = self.entries.get_mut(&id).expect("every id has an entry");
            e.svc.restarts = rec.restarts;
            e.svc.streak = rec.restarts_in_row.unwrap_or(0);
            let alive = match (rec.pid, rec.ticks) {
                (Some(pid), Some(ticks)) if process::is_same_process(pid, ticks) => {
                    Some((pid, ticks))
                }
                _ => None,
            };
            let was_wanted = matches!(
                rec.state,
                ServiceState::Online
                    | ServiceState::Degraded
                    | ServiceState::Offline
                    | ServiceState::Starting
            );
            match alive {
                Some((pid, ticks)) => match process::watch_foreign(pid) {
                    Ok(exit) => {
                        tracing::info!(service = %id, pid, "adopted");
                        let s = &mut e.svc;
                        s.gen = gen;
                        s.pid = Some(pid);
                        s.ticks = Some(ticks);
                        s.started_at = rec.started_at;
                        let age = rec
                            .started_at
                            .map(|t| (state::now_unix() - t).max(0.0))
                            .unwrap_or(0.0);
                        s.started = Instant::now()
                            .checked_sub(Duration::from_secs_f64(age))
                            .or(Some(Instant::now()));
                        // Online until its probes say otherwise; a oneshot is
                        // still running.
                        s.phase = if e.spec.oneshot {
                            Phase::Starting
                        } else {
                            Phase::Running {
                                health: super::service::Health::Online,
                                fails: 0,
                            }
                        };
                        s.detail = Some("adopted".into());
                        let launch = self.launch_of(&id, gen);
                        let e = self.entries.get_mut(&id).expect("entry");
                        e.unit = Some(unit::adopt(launch, self.reports_tx.clone(), pid, exit));
                        self.record(&id, EventKind::Adopted, format!("pid {pid}"));
                    }
                    Err(e) => {
                        tracing::warn!(service = %id, pid, "cannot watch adopted process: {e}")
                    }
                },
                None if was_wanted && rec.pid.is_some() && !rec.external => {
                    // It died while nobody supervised it: the restart policy decides.
                    tracing::info!(service = %id, "recorded process is gone");
                    e.svc.gen = gen;
                    e.svc.phase = Phase::Running {
                        health: super::service::Health::Offline,
                        fails: 0,
                    };
                    let pid = rec.pid;
                    self.input(&id, Input::Ended { pid, exit: None });
                }
                None => {
                    e.svc.phase = match rec.state {
                        ServiceState::Completed => Phase::Completed,
                        ServiceState::Failed => Phase::Failed(FailReason::Recorded {
                            message: rec.detail.clone().unwrap_or_default(),
                        }),
                        _ => Phase::Idle,
                    };
                }
            }
        }
        self.dirty = true;
    }

    /// Handle messages until asked to exit and everything is stopped.
    pub async fn run(mut self) {
        if self.config.services.iter().any(|s| s.max_memory.is_some()) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(MEMORY_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if tx.send(Msg::MemoryTick).is_err() {
                        return;
                    }
                }
            });
        }
        self.reconcile();
        self.persist();
        loop {
            tokio::select! {
                Some(msg) = self.rx.recv() => self.handle(msg),
                Some(report) = self.reports_rx.recv() => self.report(report),
                else => break,
            }
            self.reconcile();
            self.forget_removed();
            self.notify_waiters();
            if self.dirty {
                self.persist();
            }
            if self.exiting && self.quiet() && self.waiters.is_empty() {
                break;
            }
        }
        self.kill_all_marked();
        kill_own_children();
        self.persist();
    }

    /// Nothing of ours runs and nothing is scheduled.
    fn quiet(&self) -> bool {
        self.entries
            .values()
            .all(|e| !e.svc.active() && e.unit.is_none())
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Client { request, reply } => self.request(request, reply),
            Msg::RestartDue { id, gen } => {
                if self.entries.get(&id).is_some_and(|e| e.svc.gen == gen) {
                    let gen = self.gen();
                    self.input(&id, Input::RestartDue { gen });
                }
            }
            Msg::Shutdown if self.exiting => {
                tracing::warn!("second stop signal: killing everything now");
                for e in self.entries.values() {
                    if let Some(u) = &e.unit {
                        u.send(Ctl::Kill);
                    }
                }
            }
            Msg::Shutdown => self.stop_all(),
            Msg::Reload => {
                if !self.exiting {
                    let (tx, _rx) = mpsc::unbounded_channel();
                    self.reload(false, tx);
                }
            }
            Msg::SetupsDone {
                services,
                failed,
                reply,
            } => {
                if self.exiting {
                    self.refuse(
                        &reply,
                        ErrorKind::ShuttingDown,
                        "the supervisor is shutting down",
                    );
                } else {
                    self.restart(services, failed, reply);
                }
            }
            Msg::MemoryTick => self.measure_memory(),
            Msg::Memory(usage) => {
                for m in usage {
                    let Some(e) = self.entries.get(&m.id) else {
                        continue;
                    };
                    let Some(limit) = e.spec.max_memory else {
                        continue;
                    };
                    if e.svc.gen == m.gen && m.rss > limit {
                        let input = Input::MemoryOver { rss: m.rss, limit };
                        self.input(&m.id, input);
                    }
                }
            }
        }
    }

    /// A unit's report: stale ones (an earlier launch) are dropped.
    fn report(&mut self, r: Report) {
        let Some(e) = self.entries.get_mut(&r.id) else {
            return;
        };
        if matches!(r.event, UnitEvent::Ended { .. })
            && e.unit.as_ref().is_some_and(|u| u.gen == r.gen)
        {
            e.unit = None;
        }
        if e.svc.gen != r.gen {
            return;
        }
        let input = match r.event {
            UnitEvent::External(p) => Input::External(p),
            UnitEvent::PrepareFailed(reason) => Input::PrepareFailed(reason),
            UnitEvent::Spawned { pid, ticks, at } => {
                let shown = e.spec.redact(&shell_words::join(&e.spec.argv));
                self.record(&r.id, EventKind::Spawned, format!("pid {pid}: {shown}"));
                Input::Spawned { pid, ticks, at }
            }
            UnitEvent::Probed(p) => Input::Probed(p),
            UnitEvent::StartTimeout => Input::StartTimeout,
            UnitEvent::AliveFor => Input::AliveFor,
            UnitEvent::Ended { pid, exit } => Input::Ended { pid, exit },
        };
        self.input(&r.id, input);
    }

    /// Drop services removed from services.toml once nothing of them runs.
    fn forget_removed(&mut self) {
        let gone: Vec<ServiceId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.removed && e.unit.is_none() && !e.svc.active())
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.entries.remove(&id);
            self.order.retain(|x| x != &id);
        }
    }

    /// Feed one service's state machine and carry out its effects.
    fn input(&mut self, id: &ServiceId, input: Input) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        let before = (e.svc.public(), e.svc.detail.clone(), e.svc.pid);
        let effects = e.svc.handle(&e.spec, input, Instant::now());
        if before != (e.svc.public(), e.svc.detail.clone(), e.svc.pid) || !effects.is_empty() {
            self.dirty = true;
        }
        for effect in effects {
            self.effect(id, effect);
        }
    }

    fn effect(&mut self, id: &ServiceId, effect: Effect) {
        match effect {
            Effect::Launch => {
                let gen = self.entries[id].svc.gen;
                let launch = self.launch_of(id, gen);
                let unit = unit::launch(launch, self.reports_tx.clone());
                self.entries.get_mut(id).expect("entry").unit = Some(unit);
            }
            Effect::Stop | Effect::Kill => {
                if let Some(u) = &self.entries[id].unit {
                    u.send(if effect == Effect::Stop {
                        Ctl::Stop
                    } else {
                        Ctl::Kill
                    });
                }
            }
            Effect::RestartAfter(delay) => {
                let (tx, gen, id) = (self.tx.clone(), self.entries[id].svc.gen, id.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(Msg::RestartDue { id, gen });
                });
            }
            Effect::Note(text) => {
                let spec = &self.entries[id].spec;
                if let Ok(log) = unit::open_log(&self.config.log_path(id.as_str())) {
                    setup::note(&log, &spec.redact(&text));
                }
            }
            Effect::Record(kind, detail) => self.record(id, kind, detail),
        }
    }

    fn launch_of(&self, id: &ServiceId, gen: u64) -> Launch {
        Launch {
            id: id.clone(),
            gen,
            svc: Arc::clone(&self.entries[id].spec),
            log_path: self.config.log_path(id.as_str()),
            marker: format!("{}:{}", self.marker, id),
            config: Arc::clone(&self.config),
        }
    }

    fn request(&mut self, request: Request, reply: mpsc::UnboundedSender<Response>) {
        if self.exiting {
            let _ = reply.send(Response::error(
                ErrorKind::ShuttingDown,
                "the supervisor is shutting down",
            ));
            return;
        }
        match request {
            Request::Status => {
                let _ = reply.send(Response::Status {
                    supervisor_pid: std::process::id() as i32,
                    services: self.statuses(),
                    config_digest: self.digest.clone(),
                });
            }
            Request::Start { services, profiles } => {
                match graph::select(&self.config, &services, &profiles) {
                    Ok(selected) => {
                        let ids = self.ids(selected);
                        for id in &ids {
                            self.input(id, Input::Start);
                        }
                        self.add_waiter(ids, WaitFor::Up, reply);
                    }
                    Err(e) => self.refuse(&reply, ErrorKind::UnknownService, e),
                }
            }
            Request::Restart { services } => match graph::select(&self.config, &services, &[]) {
                Ok(_) => {
                    let ids: Vec<ServiceId> = services.iter().map(|n| ServiceId::new(n)).collect();
                    // A running service's setup runs first, while it serves:
                    // a broken setup must not take a working service down.
                    let setups: Vec<Launch> = ids
                        .iter()
                        .filter(|id| {
                            let e = &self.entries[*id];
                            e.svc.active() && e.spec.setup != crate::config::Setup::None
                        })
                        .map(|id| self.launch_of(id, 0))
                        .collect();
                    if setups.is_empty() {
                        self.restart(ids, Vec::new(), reply);
                    } else {
                        let tx = self.tx.clone();
                        tokio::spawn(async move {
                            let mut failed = Vec::new();
                            for l in setups {
                                if let Err(reason) = unit::setup_only(&l).await {
                                    failed.push((l.id, reason));
                                }
                            }
                            let _ = tx.send(Msg::SetupsDone {
                                services: ids,
                                failed,
                                reply,
                            });
                        });
                    }
                }
                Err(e) => self.refuse(&reply, ErrorKind::UnknownService, e),
            },
            Request::Stop { services } if services.is_empty() => {
                self.stop_all();
                let all = self.entries.keys().cloned().collect();
                self.add_waiter(all, WaitFor::Down, reply);
            }
            Request::Stop { services } => match graph::select(&self.config, &services, &[]) {
                Ok(_) => {
                    let roots = services
                        .iter()
                        .filter_map(|n| self.config.service(n).map(|(i, _)| i));
                    let ids = self.ids(graph::with_dependents(&self.config, roots));
                    for id in &ids {
                        self.input(id, Input::Stop);
                    }
                    self.add_waiter(ids, WaitFor::Down, reply);
                }
                Err(e) => self.refuse(&reply, ErrorKind::UnknownService, e),
            },
            Request::Reload { dry_run } => self.reload(dry_run, reply),
        }
    }

    /// Restart `ids`, except those whose setup failed (they keep running
    /// and are reported as failures of this request).
    fn restart(
        &mut self,
        ids: Vec<ServiceId>,
        failed: Vec<(ServiceId, String)>,
        reply: mpsc::UnboundedSender<Response>,
    ) {
        let mut failures = Vec::new();
        for (id, reason) in failed {
            let Some(e) = self.entries.get(&id) else {
                continue;
            };
            let reason = match e.svc.pid {
                Some(pid) => format!("{reason}; pid {pid} keeps running the previous version"),
                None => reason,
            };
            failures.push(Failure {
                service: id.to_string(),
                state: e.svc.public(),
                reason: e.spec.redact(&reason),
                log: self.config.log_path(id.as_str()),
            });
            self.effect(&id, Effect::Note(format!("restart refused: {reason}")));
        }
        let go: Vec<ServiceId> = ids
            .into_iter()
            .filter(|id| !failures.iter().any(|f| f.service == id.as_str()))
            .collect();
        for id in &go {
            self.input(id, Input::Restart);
        }
        // Their dependencies must be up too.
        let roots = go
            .iter()
            .filter_map(|id| self.config.service(id.as_str()).map(|(i, _)| i));
        let targets = self.ids(graph::with_dependencies(&self.config, roots));
        for id in &targets {
            self.input(id, Input::Start);
        }
        self.add_waiter(targets, WaitFor::Up, reply);
        if let Some(w) = self.waiters.last_mut() {
            w.failures = failures;
        }
    }

    fn refuse(
        &self,
        reply: &mpsc::UnboundedSender<Response>,
        kind: ErrorKind,
        e: impl std::fmt::Display,
    ) {
        let _ = reply.send(Response::error(kind, e.to_string()));
    }

    fn ids(&self, indices: impl IntoIterator<Item = usize>) -> Vec<ServiceId> {
        indices
            .into_iter()
            .map(|i| ServiceId::new(&self.config.services[i].name))
            .collect()
    }

    /// Re-read services.toml and apply the difference; the reply lists the
    /// plan, then (unless a dry run) waits until the changed services settle.
    fn reload(&mut self, dry_run: bool, reply: mpsc::UnboundedSender<Response>) {
        let new = match crate::config::load(Some(&self.config.path)) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::warn!("reload refused: {e}");
                self.refuse(&reply, ErrorKind::InvalidConfig, e);
                return;
            }
        };
        let plan = reload::plan(&self.config, &new, |svc| setup::stale(&new, svc));
        let _ = reply.send(Response::Plan {
            changes: plan.changes.clone(),
        });
        if dry_run {
            let _ = reply.send(Response::Done {
                ok: true,
                failures: Vec::new(),
            });
            return;
        }
        tracing::info!(changes = plan.changes.len(), "reloading services.toml");
        self.apply(plan, new, reply);
    }

    fn apply(&mut self, plan: Plan, new: Arc<Config>, reply: mpsc::UnboundedSender<Response>) {
        self.install(new);
        let mut targets = Vec::new();
        for change in &plan.changes {
            let id = ServiceId::new(&change.service);
            self.record(&id, EventKind::Reload, change.to_string());
            let Some(e) = self.entries.get(&id) else {
                continue;
            };
            match change.kind {
                ChangeKind::Removed => self.input(&id, Input::Stop),
                ChangeKind::Added => {
                    let selected = graph::select(&self.config, &[], &[]).unwrap_or_default();
                    if self
                        .config
                        .service(id.as_str())
                        .is_some_and(|(i, _)| selected.contains(&i))
                    {
                        targets.push(id);
                    }
                }
                // What runs restarts with its new definition; what gave up
                // gets another chance; what is stopped stays stopped.
                ChangeKind::Changed if e.svc.active() => {
                    self.input(&id, Input::Restart);
                    targets.push(id);
                }
                ChangeKind::Changed if e.svc.broken() || e.svc.phase == Phase::Waiting => {
                    targets.push(id)
                }
                ChangeKind::Changed => {}
            }
        }
        // They, and what they depend on, must be up.
        let roots: Vec<usize> = targets
            .iter()
            .filter_map(|id| self.config.service(id.as_str()).map(|(i, _)| i))
            .collect();
        let ids = self.ids(graph::with_dependencies(&self.config, roots));
        for id in &ids {
            self.input(id, Input::Start);
        }
        self.add_waiter(ids, WaitFor::Up, reply);
    }

    fn add_waiter(
        &mut self,
        targets: Vec<ServiceId>,
        wait_for: WaitFor,
        reply: mpsc::UnboundedSender<Response>,
    ) {
        let n = targets.len();
        let stops_before = targets
            .iter()
            .map(|id| self.entries.get(id).map_or(0, |e| e.svc.stops))
            .collect();
        self.waiters.push(Waiter {
            targets,
            wait_for,
            reply,
            since: Instant::now(),
            shown: vec![None; n],
            stops_before,
            failures: Vec::new(),
        });
    }

    fn stop_all(&mut self) {
        self.exiting = true;
        let ids: Vec<ServiceId> = self.entries.keys().cloned().collect();
        for id in ids {
            self.input(&id, Input::Stop);
        }
    }

    /// Advance every service that can move: stop what was asked to stop
    /// once its dependents are down, block what cannot start, launch what is
    /// ready.
    fn reconcile(&mut self) {
        for pos in (0..self.order.len()).rev() {
            let id = self.order[pos].clone();
            let e = &self.entries[&id];
            if e.svc.goal == Goal::Run || e.svc.phase == Phase::Stopping {
                continue;
            }
            // Dependents that are being stopped too go first. One that stays
            // (a `restart` of its dependency alone) does not hold it up.
            let dependents_down = self
                .entries
                .values()
                .filter(|d| !d.removed && d.deps.contains(&id))
                .all(|d| !d.svc.going_down());
            if dependents_down {
                self.input(&id, Input::BeginStop);
            }
        }
        for pos in 0..self.order.len() {
            let id = self.order[pos].clone();
            let e = &self.entries[&id];
            // A blocker that came back (by a restart, or by itself) lets a
            // blocked dependent start.
            if matches!(e.svc.phase, Phase::Blocked(_)) && self.blocked_by(&id).is_none() {
                self.input(&id, Input::Start);
            }
            let e = &self.entries[&id];
            if e.svc.phase != Phase::Waiting || e.unit.is_some() {
                continue;
            }
            if let Some(reason) = self.blocked_by(&id) {
                self.input(&id, Input::Block(reason));
                continue;
            }
            let deps_ready = e.deps.iter().all(|d| self.entries[d].svc.ready());
            let earlier_ready = self.earlier_tiers(e.tier).all(|j| j.svc.ready());
            if deps_ready && earlier_ready {
                let gen = self.gen();
                self.input(&id, Input::Launch { gen });
            }
        }
    }

    /// Wanted services of tiers before `tier`.
    fn earlier_tiers(&self, tier: usize) -> impl Iterator<Item = &Entry> + '_ {
        self.entries
            .values()
            .filter(move |e| !e.removed && e.tier < tier && e.svc.wanted())
    }

    fn blocked_by(&self, id: &ServiceId) -> Option<BlockReason> {
        let e = &self.entries[id];
        let state_of = |j: &Entry| match j.svc.phase {
            Phase::Blocked(_) => DepState::Blocked,
            Phase::Idle if j.spec.disabled => DepState::Disabled,
            Phase::Idle => DepState::Stopped,
            _ => DepState::Failed,
        };
        for d in &e.deps {
            let dep = &self.entries[d];
            if dep.svc.broken() || dep.svc.phase == Phase::Idle {
                let (service, state) = (d.to_string(), state_of(dep));
                return Some(BlockReason::Dependency { service, state });
            }
        }
        self.entries
            .iter()
            .find(|(_, j)| !j.removed && j.tier < e.tier && j.svc.wanted() && j.svc.broken())
            .map(|(name, j)| BlockReason::EarlierTier {
                service: name.to_string(),
                state: state_of(j),
            })
    }

    fn measure_memory(&mut self) {
        let targets: Vec<(ServiceId, u64, i32)> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.spec.max_memory.is_some()
                    && matches!(e.svc.phase, Phase::Running { .. } | Phase::Starting)
            })
            .filter_map(|(id, e)| Some((id.clone(), e.svc.gen, e.svc.pid?)))
            .collect();
        if targets.is_empty() {
            return;
        }
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let by_group = process::rss_by_group();
            let usage = targets
                .into_iter()
                .map(|(id, gen, pgid)| MemoryUse {
                    id,
                    gen,
                    rss: by_group.get(&pgid).copied().unwrap_or(0),
                })
                .collect();
            let _ = tx.send(Msg::Memory(usage));
        });
    }

    /// Record an event (secrets redacted).
    fn record(&mut self, id: &ServiceId, kind: EventKind, detail: impl Into<String>) {
        let detail = detail.into();
        let detail = match self.entries.get(id) {
            Some(e) => e.spec.redact(&detail),
            None => detail,
        };
        let event = events::Event {
            ts: state::now_unix(),
            service: id.to_string(),
            kind,
            detail,
        };
        self.events.append(&event);
    }

    fn statuses(&self) -> Vec<ServiceStatus> {
        self.config
            .services
            .iter()
            .filter_map(|svc| {
                let e = self.entries.get(svc.name.as_str())?;
                let s = &e.svc;
                Some(ServiceStatus {
                    name: svc.name.clone(),
                    state: s.public(),
                    pid: s.pid,
                    port: e.spec.port,
                    restarts: s.restarts,
                    restarts_in_row: s.streak,
                    uptime_s: s
                        .started_at
                        .filter(|_| s.pid.is_some())
                        .map(|t| (state::now_unix() - t).max(0.0)),
                    detail: s
                        .reason()
                        .or_else(|| s.detail.clone())
                        .map(|d| e.spec.redact(&d)),
                    reason: s.typed_reason().map(|r| r.masked(|t| e.spec.redact(t))),
                    latency_ms: s.latency_ms,
                    external: matches!(s.phase, Phase::External),
                })
            })
            .collect()
    }

    fn notify_waiters(&mut self) {
        let mut waiters = std::mem::take(&mut self.waiters);
        waiters.retain_mut(|w| {
            let elapsed_ms = w.since.elapsed().as_millis() as u64;
            for (k, id) in w.targets.iter().enumerate() {
                let Some(e) = self.entries.get(id) else {
                    continue;
                };
                let now = (e.svc.public(), e.svc.label().map(|l| e.spec.redact(&l)));
                if w.shown[k].as_ref() != Some(&now) {
                    let progress = Progress {
                        service: id.to_string(),
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
            let settled = w.targets.iter().enumerate().all(|(k, id)| {
                let Some(e) = self.entries.get(id) else {
                    return true;
                };
                match w.wait_for {
                    WaitFor::Up => e.svc.settled_up(),
                    WaitFor::Down => {
                        (!e.svc.active() && e.svc.goal == Goal::Run && e.unit.is_none())
                            || e.svc.stops > w.stops_before[k]
                    }
                }
            });
            if !settled {
                return true;
            }
            let failures: Vec<Failure> = std::mem::take(&mut w.failures)
                .into_iter()
                .chain(
                    w.targets
                        .iter()
                        .filter_map(|id| Some((id, self.entries.get(id)?)))
                        .filter(|(_, e)| w.wait_for == WaitFor::Up && !e.svc.ready())
                        .map(|(id, e)| Failure {
                            service: id.to_string(),
                            state: e.svc.public(),
                            reason: e.spec.redact(
                                &e.svc
                                    .reason()
                                    .or_else(|| e.svc.detail.clone())
                                    .unwrap_or_default(),
                            ),
                            log: self.config.log_path(id.as_str()),
                        }),
                )
                .collect();
            let _ = w.reply.send(Response::Done {
                ok: failures.is_empty(),
                failures,
            });
            false
        });
        self.waiters = waiters;
    }

    fn persist(&mut self) {
        self.dirty = false;
        let mut file = StateFile {
            supervisor_pid: Some(std::process::id() as i32),
            supervisor_ticks: process::start_ticks(std::process::id() as i32),
            services: Default::default(),
        };
        for svc in &self.config.services {
            let Some(e) = self.entries.get(svc.name.as_str()) else {
                continue;
            };
            let s = &e.svc;
            file.services.insert(
                svc.name.clone(),
                ServiceRecord {
                    state: s.public(),
                    pid: s.pid,
                    ticks: s.ticks,
                    started_at: s.started_at,
                    restarts: s.restarts,
                    restarts_in_row: Some(s.streak),
                    external: matches!(s.phase, Phase::External),
                    detail: s
                        .reason()
                        .or_else(|| s.detail.clone())
                        .map(|d| e.spec.redact(&d)),
                },
            );
        }
        if self.exiting && self.quiet() {
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

/// A marker unique to this project folder, shared by all its services.
pub fn instance_marker(config: &Config) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(config.root.as_os_str().as_encoded_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

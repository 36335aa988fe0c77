//! The dispatcher: the single owner of every service's state.
//!
//! `Supervisor::run` is one task that receives every event on two channels:
//! messages (client requests, timers, signals) and unit reports. It owns the
//! rules between services (dependencies, tiers, blocking, stop order), the
//! waiters of client requests, persistence and the event history. What one
//! service does with an event is decided by [`Svc::handle`] in `service.rs`;
//! the processes themselves belong to unit tasks (`unit.rs`). Requests and
//! reload are in `requests.rs`, waiters in `waiters.rs`, `state.json` and
//! adoption in `persist.rs`. Changes of state, probe results and events
//! are also published to live watchers (the HTTP API's stream).
//!
//! Services are known by name ([`ServiceId`]). Every launch gets a number
//! from one counter shared by all services, so a late report about an
//! earlier launch never matches a later one, whatever the service.

mod ahead;
mod persist;
mod requests;
mod schedule;
mod start_log;
use start_log::StartLog;
mod status;
#[cfg(test)]
mod tests;
mod waiters;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::{broadcast, mpsc, watch};

use self::waiters::{WaitFor, Waiter};
use super::reload::{self, Plan};
use super::service::{Effect, Goal, Input, Phase, ServiceId, Svc};
use super::unit::{self, Ctl, Launch, Report, Unit, UnitEvent};
use crate::config::{Config, Service};
use crate::control::{ChangeKind, ErrorKind, Request, Response, Update};
use crate::events;
use crate::graph;
use crate::health::Verdict;
use crate::metrics::{self, Usage};
use crate::process;
use crate::setup;
use crate::state::{self, Saved, StateFile};
use crate::status::{
    Activity, BlockReason, ContainerRef, DepState, EventData, EventKind, FailReason, Failure,
    Interruption, Note, ProbeSample, Progress, ServiceState, ServiceStatus,
};

/// Memory and CPU are sampled only when someone looks: every second when a
/// service has `max_memory`...
const METRICS_LIMITS_EVERY: Duration = Duration::from_secs(1);
/// ...every five while a live watcher (the dashboard) is connected (/proc
/// counts CPU in 10 ms ticks, so a shorter window would make an idle
/// service's CPU flicker between 0 and 1 %), and on each status request that
/// finds the last sample older than this. A stack nobody looks at costs no
/// /proc reads at all.
const METRICS_WATCHED_EVERY: Duration = Duration::from_secs(5);
const METRICS_FRESH: Duration = Duration::from_secs(1);
/// While a client waits for an answer, waiters look again this often, to
/// say what is still going on.
const WAITER_TICK: Duration = Duration::from_secs(1);
/// Updates a slow live watcher may lag behind before it misses some.
const UPDATES_BACKLOG: usize = 1024;
/// At most this many unit reports are taken before a pass of `reconcile`.
const REPORTS_A_PASS: usize = 256;

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
        named: bool,
        failed: Vec<(ServiceId, crate::status::PrepareError)>,
        reply: mpsc::UnboundedSender<Response>,
    },
    /// A watched file of the service changed (`path`, relative to its dir).
    Watched {
        id: ServiceId,
        path: std::path::PathBuf,
    },
    /// A setup begun ahead of readiness is over.
    SetupAhead {
        id: ServiceId,
        token: u64,
        result: std::result::Result<(), crate::status::PrepareError>,
    },
    /// Each sampled service's process group use, tagged with its launch.
    Metrics(Vec<MetricsUse>),
    /// A scheduled job's timer fired (`token` names the timer).
    Due {
        id: ServiceId,
        token: u64,
    },
}

pub struct MetricsUse {
    id: ServiceId,
    gen: u64,
    usage: Usage,
}

/// One service: its definition, its state and its running unit.
struct Entry {
    spec: Arc<Service>,
    deps: Vec<ServiceId>,
    /// Index into the current config's tiers.
    tier: usize,
    svc: Svc,
    unit: Option<Unit>,
    /// Its setup, begun while it waits for its dependencies.
    ahead: Option<unit::Ahead>,
    /// Gone from services.toml: stopped, then forgotten.
    removed: bool,
    /// Memory and CPU of its process group at the last sample.
    usage: Option<Usage>,
    /// Its last probe results.
    history: metrics::History,
    /// Restarts asked for (`restart`, a reload); `svc.restarts` counts those
    /// fpctl did on its own.
    requested_restarts: u32,
    /// The services whose `stop` took this running dependent down: a
    /// `start` of any of them starts it again.
    taken_down_with: BTreeSet<ServiceId>,
    /// The engine's id of its container, once its unit learnt it.
    container_id: Option<String>,
    /// A scheduled job's timer, while it is on its schedule.
    timer: Option<schedule::Timer>,
    /// Up to when a supervisor kept its schedule (see
    /// `status::ScheduleStatus::seen_until`).
    seen_until: Option<f64>,
}

pub struct Supervisor {
    config: Arc<Config>,
    entries: BTreeMap<ServiceId, Entry>,
    /// All services in start order (removed ones last, so they stop first).
    order: Vec<ServiceId>,
    /// The services of each tier of the config in force.
    by_tier: Vec<Vec<ServiceId>>,
    /// Who depends on each service, in the config in force.
    dependents: BTreeMap<ServiceId, Vec<ServiceId>>,
    next_gen: u64,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports_rx: mpsc::UnboundedReceiver<Report>,
    waiters: Vec<Waiter>,
    /// Services fed an input since waiters last looked; `all_changed` when
    /// a request or a timer may have changed any of them.
    changed: BTreeSet<ServiceId>,
    all_changed: bool,
    /// Something changed that the rules between services may act on; an
    /// idle probe that changes nothing does not cost a pass over them all.
    unsettled: bool,
    marker: String,
    /// Some service of the config in force has `max_memory`.
    limits: bool,
    /// Exit once everything is stopped.
    exiting: bool,
    dirty: bool,
    events: events::Log,
    /// Digest of the services.toml in force (see `control::file_digest`).
    digest: Option<String>,
    /// Its text, for commands that must act on the running stack while the
    /// file on disk does not validate (`Request::Config`).
    source: Option<String>,
    /// Services whose next launch may replace a stale copy on their port
    /// (`start --replace`).
    replace: BTreeSet<ServiceId>,
    /// The file watches of services with `watch`, for the config in force.
    watches: Option<super::watch::Watches>,
    /// Who may run a setup now (`max_parallel_setup`, shared folders).
    gate: Arc<setup::Gate>,
    /// Numbers setups begun ahead, so a late result matches its own.
    next_ahead: u64,
    /// What last stopped services, for starts that were waiting on them.
    stopped_by: Option<Interruption>,
    /// Live watchers (the HTTP API's stream) subscribe here.
    updates: broadcast::Sender<Update>,
    /// The config in force, for readers outside the dispatcher (the API).
    config_tx: watch::Sender<Arc<Config>>,
    sampler: SharedSampler,
    /// When memory and CPU were last sampled.
    sampled_at: Option<Instant>,
    /// The HTTP API, which a reload may move.
    api: Option<crate::api::Api>,
    /// Starts units: real processes, or a test double.
    launcher: Arc<dyn unit::Launcher>,
    /// Reloads asked for while another is in flight, in order: each
    /// compares the file with what the one before it installed, and
    /// answers once what it changed has settled.
    queued_reloads: std::collections::VecDeque<(bool, mpsc::UnboundedSender<Response>)>,
    /// The last start that started anything, for `fpctl analyze`.
    start_log: Option<StartLog>,
}

impl Supervisor {
    pub fn new(
        config: Arc<Config>,
        launcher: Arc<dyn unit::Launcher>,
    ) -> (Self, mpsc::UnboundedSender<Msg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let marker = instance_marker(&config);
        let events = events::Log::open(&config);
        let mut sup = Supervisor {
            config: Arc::clone(&config),
            entries: BTreeMap::new(),
            order: Vec::new(),
            by_tier: Vec::new(),
            dependents: BTreeMap::new(),
            next_gen: 0,
            tx: tx.clone(),
            rx,
            reports_tx,
            reports_rx,
            waiters: Vec::new(),
            changed: BTreeSet::new(),
            all_changed: true,
            unsettled: true,
            marker,
            limits: false,
            exiting: false,
            dirty: true,
            events,
            digest: None,
            source: None,
            watches: None,
            replace: BTreeSet::new(),
            gate: setup::Gate::new(config.project.max_parallel_setup),
            next_ahead: 0,
            stopped_by: None,
            updates: broadcast::channel(UPDATES_BACKLOG).0,
            config_tx: watch::Sender::new(Arc::clone(&config)),
            sampler: Default::default(),
            sampled_at: None,
            api: None,
            launcher,
            queued_reloads: Default::default(),
            start_log: None,
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
                    // A setup begun for the old definition is not this one's.
                    if e.spec.setup != spec.setup || e.spec.dir != spec.dir {
                        e.ahead = None;
                    }
                    // A changed schedule sets its timer again.
                    if e.spec.schedule != spec.schedule {
                        e.timer = None;
                    }
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
                            ahead: None,
                            removed: false,
                            usage: None,
                            history: metrics::History::default(),
                            requested_restarts: 0,
                            taken_down_with: BTreeSet::new(),
                            container_id: None,
                            timer: None,
                            seen_until: None,
                        },
                    );
                }
            }
        }
        self.by_tier = vec![Vec::new(); config.tiers.len()];
        self.dependents.clear();
        for svc in &config.services {
            let id = ServiceId::new(&svc.name);
            self.by_tier[svc.tier].push(id.clone());
            for &d in &svc.depends_on {
                let dep = ServiceId::new(&config.services[d].name);
                self.dependents.entry(dep).or_default().push(id.clone());
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
        self.limits = self.entries.values().any(|e| e.spec.max_memory.is_some());
        self.digest = crate::control::file_digest(&config.path);
        self.source = std::fs::read_to_string(&config.path).ok();
        self.config_tx.send_replace(Arc::clone(&config));
        self.config = config;
        self.dirty = true;
        for e in self.entries.values_mut() {
            e.svc.on_schedule = e.spec.schedule.is_some();
        }
        for id in self.order.clone() {
            self.sync_schedule(&id);
        }
        // A reload may change what a service shows (its port, its tier).
        for id in self.order.clone() {
            self.publish_service(&id);
        }
    }

    /// Where state changes, probe results and events are published.
    pub fn updates(&self) -> broadcast::Sender<Update> {
        self.updates.clone()
    }

    /// Let reloads apply `[project] api` and `api_token` to this API.
    pub fn attach_api(&mut self, api: crate::api::Api) {
        self.api = Some(api);
    }

    /// The config in force, following reloads.
    pub fn config_watch(&self) -> watch::Receiver<Arc<Config>> {
        self.config_tx.subscribe()
    }

    /// How the file watcher tells of a change: as a message.
    fn watch_notify(&self) -> super::watch::Notify {
        let tx = self.tx.clone();
        Box::new(move |id, path| tx.send(Msg::Watched { id, path }).is_ok())
    }

    /// Send to live watchers, if there are any.
    fn publish(&self, update: impl FnOnce() -> Update) {
        if self.updates.receiver_count() > 0 {
            let _ = self.updates.send(update());
        }
    }

    fn gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    /// Handle messages until asked to exit and everything is stopped.
    ///
    /// At idle the loop wakes only for what arrives: probe reports, client
    /// requests, signals. Its own timers (state.json bursts, trimming, the
    /// waiters' progress tick, metrics samples) are armed only while they
    /// have something to do.
    pub async fn run(mut self) {
        self.watches = super::watch::start(&self.config, self.watch_notify());
        self.reconcile();
        self.persist();
        // state.json is written once per burst: at most every PERSIST_EVERY,
        // and before any final answer (see `persist.rs` for why a kill
        // between two writes loses nothing).
        let mut flush_at: Option<tokio::time::Instant> = None;
        // Once a burst is over, what it used and no longer needs goes back.
        let mut trim_at: Option<tokio::time::Instant> = None;
        let mut tick_at: Option<tokio::time::Instant> = None;
        let mut sample_at: Option<tokio::time::Instant> = None;
        let pending = |at: Option<tokio::time::Instant>| {
            tokio::time::sleep_until(at.unwrap_or_else(tokio::time::Instant::now))
        };
        loop {
            tokio::select! {
                Some(msg) = self.rx.recv() => {
                    self.all_changed = true;
                    self.unsettled = true;
                    self.handle(msg);
                }
                Some(report) = self.reports_rx.recv() => {
                    self.report(report);
                    // What the units reported meanwhile is taken in the same
                    // pass: at a thousand services, a pass per report made a
                    // start quadratic. Requests stay one a pass, so that a
                    // waiter sees each one's effect before the next.
                    for _ in 1..REPORTS_A_PASS {
                        let Ok(report) = self.reports_rx.try_recv() else {
                            break;
                        };
                        self.report(report);
                    }
                }
                _ = pending(flush_at), if flush_at.is_some() => {}
                _ = pending(trim_at), if trim_at.is_some() => {
                    trim_at = None;
                    process::trim_resident();
                }
                // Waiters look at every service again, to say "still ...".
                _ = pending(tick_at), if tick_at.is_some() => {
                    tick_at = None;
                    self.all_changed = true;
                }
                _ = pending(sample_at), if sample_at.is_some() => {
                    sample_at = None;
                    self.sample_metrics();
                }
                else => break,
            }
            if std::mem::take(&mut self.unsettled) {
                self.reconcile();
                self.forget_removed();
            }
            let now = tokio::time::Instant::now();
            if self.dirty {
                trim_at = Some(now + TRIM_AFTER);
            }
            self.notify_waiters();
            while self.next_reload() {
                self.reconcile();
                self.forget_removed();
                self.notify_waiters();
            }
            if self.dirty {
                let due = *flush_at.get_or_insert(now + PERSIST_EVERY);
                if now >= due {
                    self.persist();
                }
            }
            if !self.dirty {
                flush_at = None;
            }
            if self.waiters.is_empty() {
                tick_at = None;
            } else if tick_at.is_none() {
                tick_at = Some(now + WAITER_TICK);
            }
            if sample_at.is_none() {
                sample_at = self.metrics_every().map(unit::next_tick);
            }
            if self.exiting && self.quiet() && self.waiters.is_empty() {
                break;
            }
        }
        self.launcher.sweep_all(&self.marker);
        self.persist();
    }

    /// Nothing of ours runs and nothing is scheduled.
    fn quiet(&self) -> bool {
        self.entries
            .values()
            .all(|e| !e.svc.active() && e.unit.is_none() && e.ahead.is_none())
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
            Msg::Shutdown => {
                self.stopped_by = Some(Interruption::Signal);
                self.stop_all();
            }
            Msg::Reload => {
                if !self.exiting {
                    // Nobody reads the answer, but the reload stays in
                    // flight until it is done, for any that follow.
                    let (tx, mut rx) = mpsc::unbounded_channel();
                    tokio::spawn(async move { while rx.recv().await.is_some() {} });
                    self.reload_when_free(false, tx);
                }
            }
            Msg::SetupsDone {
                services,
                named,
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
                    self.restart(services, named, failed, reply);
                }
            }
            Msg::SetupAhead { id, token, result } => self.ahead_done(&id, token, result),
            Msg::Watched { id, path } => {
                // A running service restarts, and a failed one gets another
                // chance (the edit may be the fix); a stopped one stays down.
                let wanted = self
                    .entries
                    .get(&id)
                    .is_some_and(|e| e.svc.active() || matches!(e.svc.phase, Phase::Failed(_)));
                if self.exiting || !wanted {
                    return;
                }
                self.record(
                    &id,
                    EventKind::Watch,
                    EventData::Watch { path: path.clone() },
                );
                self.effect(&id, Effect::Note(Note::Watched { path }));
                let (reply, _) = mpsc::unbounded_channel();
                self.restart_request(vec![id], false, reply);
            }
            Msg::Metrics(usage) => self.metrics(usage),
            Msg::Due { id, token } => self.due(&id, token),
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
            self.unsettled = true;
            // A stop waiter looks at whether a unit still runs.
            self.changed.insert(r.id.clone());
        }
        if e.svc.gen != r.gen {
            return;
        }
        if let UnitEvent::Container { id } = r.event {
            e.container_id = Some(id);
            return self.publish_service(&r.id);
        }
        if let UnitEvent::Spawned { .. } = r.event {
            e.container_id = None;
        }
        let input = match r.event {
            UnitEvent::External(p) => Input::External(p),
            UnitEvent::PrepareFailed(reason) => Input::PrepareFailed(reason),
            UnitEvent::Spawned { pid, ticks, at } => {
                let (command, container) = match e.spec.in_container() {
                    Some(c) => (
                        e.spec.container_line(),
                        Some(Box::new(ContainerRef {
                            name: c.name.clone(),
                            image: c.tag.clone(),
                            id: None,
                        })),
                    ),
                    None => (shell_words::join(&e.spec.argv), None),
                };
                self.record(
                    &r.id,
                    EventKind::Spawned,
                    EventData::Spawned {
                        pid,
                        command,
                        container,
                    },
                );
                Input::Spawned { pid, ticks, at }
            }
            UnitEvent::Probed(p) => {
                // A booting service is polled every few ms; only the probe
                // that finds it up is kept, so the history shows its life,
                // not its boot.
                if e.svc.phase != Phase::Starting || p.verdict == Verdict::Healthy {
                    let (ts, latency_ms) = (state::now_unix(), p.latency.as_secs_f64() * 1000.0);
                    e.history.push(ts, p.verdict, latency_ms);
                    self.publish(|| Update::Probe {
                        service: r.id.to_string(),
                        sample: ProbeSample {
                            ts,
                            verdict: p.verdict.as_str().into(),
                            latency_ms,
                        },
                    });
                }
                Input::Probed(p)
            }
            UnitEvent::StartTimeout { elsewhere } => Input::StartTimeout { elsewhere },
            UnitEvent::AliveFor => Input::AliveFor,
            // Taken above.
            UnitEvent::Container { .. } => return,
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
            self.changed.insert(id.clone());
            self.entries.remove(&id);
            self.order.retain(|x| x != &id);
        }
    }

    /// Feed one service's state machine and carry out its effects.
    fn input(&mut self, id: &ServiceId, input: Input) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        self.changed.insert(id.clone());
        let before = status::shown(&e.svc);
        let effects = e.svc.handle(&e.spec, input, Instant::now());
        if before.3 != e.svc.pid {
            // What was measured belonged to another process.
            e.usage = None;
        }
        let rescheduled = self.sync_schedule(id);
        self.note_start_step(id);
        let changed = rescheduled || before != status::shown(&self.entries[id].svc);
        if changed || !effects.is_empty() {
            self.dirty = true;
            self.unsettled = true;
        }
        // Every change a service shows is published, in order, before the
        // events of its effects: a subscriber misses none.
        if changed {
            self.publish_service(id);
        }
        for effect in effects {
            self.effect(id, effect);
        }
    }

    fn effect(&mut self, id: &ServiceId, effect: Effect) {
        match effect {
            Effect::Launch => {
                let gen = self.entries[id].svc.gen;
                let mut launch = self.launch_of(id, gen);
                launch.replace |= self.replace.remove(id);
                launch.ahead = self.entries.get_mut(id).expect("entry").ahead.take();
                let unit = self.launcher.launch(launch, self.reports_tx.clone());
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
            Effect::Note(note) => {
                let spec = &self.entries[id].spec;
                if let Ok(log) = crate::service_log::open(&self.config.log_path(id.as_str())) {
                    let text = spec.redact(&note.to_string());
                    crate::service_log::note(&log, spec.log_timestamps, &text);
                }
            }
            Effect::Record(kind, data) => self.record(id, kind, data),
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
            replace: self.entries[id].spec.replace_stale,
            gate: Arc::clone(&self.gate),
            ahead: None,
        }
    }

    /// Advance every service that can move: stop what was asked to stop
    /// once its dependents are down, block what cannot start, launch what is
    /// ready.
    fn reconcile(&mut self) {
        // Each service is looked up once, and only one that may move is
        // looked at further: a pass runs after every change.
        for pos in (0..self.order.len()).rev() {
            let e = &self.entries[&self.order[pos]];
            if e.svc.goal == Goal::Run || e.svc.phase == Phase::Stopping {
                continue;
            }
            let id = self.order[pos].clone();
            // Dependents that are being stopped too go first. One that stays
            // (a `restart` of its dependency alone) does not hold it up.
            let dependents_down = self
                .dependents
                .get(&id)
                .into_iter()
                .flatten()
                .filter_map(|d| self.entries.get(d))
                .filter(|d| !d.removed)
                .all(|d| !d.svc.going_down());
            if dependents_down {
                self.input(&id, Input::BeginStop);
            }
        }
        // A disabled service starts on demand: when a service that waits
        // to start depends on it. Dependents come later in start order, so
        // a walk backwards reaches a chain of them in one pass.
        for pos in (0..self.order.len()).rev() {
            let e = &self.entries[&self.order[pos]];
            let waits = e.svc.goal == Goal::Run
                && (e.svc.phase == Phase::Waiting
                    || matches!(
                        e.svc.phase,
                        Phase::Blocked(BlockReason::Dependency {
                            state: DepState::Disabled,
                            ..
                        })
                    ));
            if !waits || e.removed {
                continue;
            }
            let id = self.order[pos].clone();
            let on_demand: Vec<ServiceId> = e
                .deps
                .iter()
                .filter(|d| {
                    self.entries.get(*d).is_some_and(|dep| {
                        dep.spec.disabled && dep.svc.phase == Phase::Idle && !dep.removed
                    })
                })
                .cloned()
                .collect();
            if on_demand.is_empty() {
                continue;
            }
            let joins = self.start_log.as_ref().is_some_and(|l| l.contains(&id));
            for d in on_demand {
                self.input(&d, Input::Start);
                if joins {
                    self.join_start_record(&d);
                }
            }
        }
        // Starts, in start order, so tier by tier: what the earlier tiers
        // hold is folded in once, as each tier begins, rather than looked up
        // again for each of its services (a pass stays linear in the number
        // of services).
        let mut earlier = Earlier::default();
        for pos in 0..self.order.len() {
            let e = &self.entries[&self.order[pos]];
            let blocked = matches!(e.svc.phase, Phase::Blocked(_));
            if !blocked && (e.svc.phase != Phase::Waiting || e.unit.is_some()) {
                continue;
            }
            let id = self.order[pos].clone();
            let tier = e.tier;
            // A blocker that came back (by a restart, or by itself) lets a
            // blocked dependent start.
            if blocked && self.blocked_by(&id, earlier.at(tier, self)).is_none() {
                self.input(&id, Input::Start);
            }
            let e = &self.entries[&id];
            if e.svc.phase != Phase::Waiting || e.unit.is_some() {
                continue;
            }
            if let Some(reason) = self.blocked_by(&id, earlier.at(tier, self)) {
                self.input(&id, Input::Block(reason));
                continue;
            }
            self.set_up_ahead(&id);
            let e = &self.entries[&id];
            if e.svc.phase != Phase::Waiting {
                continue;
            }
            let deps_ready = e.deps.iter().all(|d| self.entries[d].svc.ready());
            if deps_ready && earlier.at(tier, self).all_ready {
                if e.spec.schedule.is_some() && !e.svc.run_now {
                    // Its timer runs it.
                    self.input(&id, Input::Schedule);
                    continue;
                }
                let gen = self.gen();
                self.input(&id, Input::Launch { gen });
            }
        }
        self.cancel_stale_aheads();
    }

    /// Why `id` cannot start: a dependency that gave up or is down, or a
    /// wanted service of an earlier tier that gave up.
    fn blocked_by(&self, id: &ServiceId, earlier: &Earlier) -> Option<BlockReason> {
        let e = &self.entries[id];
        for d in &e.deps {
            let dep = &self.entries[d];
            if dep.svc.broken() || (dep.svc.phase == Phase::Idle && !dep.svc.ready()) {
                let (service, state) = (d.to_string(), dep_state(dep));
                return Some(BlockReason::Dependency { service, state });
            }
        }
        earlier
            .broken
            .as_ref()
            .map(|(name, state)| BlockReason::EarlierTier {
                service: name.to_string(),
                state: *state,
            })
    }

    /// Sample the process groups of running services, off the dispatcher.
    /// How often memory and CPU are sampled on a timer now: never, unless
    /// a service has `max_memory` or a live watcher is connected.
    fn metrics_every(&self) -> Option<Duration> {
        if self.limits {
            Some(METRICS_LIMITS_EVERY)
        } else if self.updates.receiver_count() > 0 {
            Some(METRICS_WATCHED_EVERY)
        } else {
            None
        }
    }

    /// Sample the running services' process groups, off the dispatcher
    /// (a /proc walk of a large stack takes milliseconds).
    fn sample_metrics(&mut self) {
        let Some((targets, sampler)) = self.sample_targets() else {
            return;
        };
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let usage = measure(&sampler, targets);
            let _ = tx.send(Msg::Metrics(usage));
        });
    }

    /// Sample now, in place, unless the last sample is fresh: a status
    /// request answers with what is true now.
    pub(super) fn sample_if_stale(&mut self) {
        if self.sampled_at.is_some_and(|t| t.elapsed() < METRICS_FRESH) {
            return;
        }
        if let Some((targets, sampler)) = self.sample_targets() {
            let usage = measure(&sampler, targets);
            self.metrics(usage);
        }
    }

    fn sample_targets(&mut self) -> Option<(Vec<SampleTarget>, SharedSampler)> {
        let targets: Vec<SampleTarget> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.svc.phase, Phase::Running { .. } | Phase::Starting))
            // A container's processes are the engine's, not the client's
            // group: its memory and CPU are not the client's to report.
            .filter(|(_, e)| e.spec.in_container().is_none())
            .filter_map(|(id, e)| Some((id.clone(), e.svc.gen, e.svc.pid?)))
            .collect();
        if targets.is_empty() {
            return None;
        }
        self.sampled_at = Some(Instant::now());
        Some((targets, Arc::clone(&self.sampler)))
    }

    /// Record a sample, and restart what exceeds its `max_memory`.
    fn metrics(&mut self, usage: Vec<MetricsUse>) {
        // Live watchers hear of a sample only when it changes what they show.
        let shown = |u: Option<Usage>| {
            u.map(|u| {
                (
                    u.rss_bytes >> 16,
                    u.cpu_percent.map(|c| (c * 10.0).round() as i64),
                )
            })
        };
        let mut changed = Vec::new();
        for m in usage {
            let Some(e) = self.entries.get_mut(&m.id) else {
                continue;
            };
            if e.svc.gen != m.gen || !matches!(e.svc.phase, Phase::Running { .. } | Phase::Starting)
            {
                continue;
            }
            if shown(e.usage) != shown(Some(m.usage)) {
                changed.push(m.id.clone());
            }
            e.usage = Some(m.usage);
            if let Some(limit) = e.spec.max_memory {
                if m.usage.rss_bytes > limit {
                    let rss = m.usage.rss_bytes;
                    self.input(&m.id, Input::MemoryOver { rss, limit });
                }
            }
        }
        for id in changed {
            self.publish_service(&id);
        }
    }

    /// A start that takes `started` from down to up begins a new record
    /// of the last start (one that starts nothing keeps the previous one).
    fn begin_start_record(&mut self, started: &[ServiceId]) {
        let waiting: Vec<&ServiceId> = started
            .iter()
            .filter(|id| self.entries[*id].svc.phase == Phase::Waiting)
            .collect();
        if waiting.is_empty() {
            return;
        }
        let mut log = StartLog::new(state::now_unix());
        for id in waiting {
            log.join(id);
        }
        self.start_log = Some(log);
    }

    /// `id` is started for the current start (on demand, for a dependent).
    fn join_start_record(&mut self, id: &ServiceId) {
        if let Some(log) = self.start_log.as_mut() {
            log.join(id);
        }
    }

    /// Keep the first launch, spawn and readiness of a service of the
    /// current start, as they happen; a later restart changes nothing.
    fn note_start_step(&mut self, id: &ServiceId) {
        let Some(log) = self.start_log.as_mut() else {
            return;
        };
        let Some(s) = log.get(id) else {
            return;
        };
        let e = &self.entries[id];
        let now = state::now_unix();
        let launched = s.launched.is_none() && e.svc.phase == Phase::Preparing;
        let spawned = s.spawned.is_none() && s.launched.is_some() && e.svc.pid.is_some();
        let ready = s.ready.is_none() && e.svc.ready();
        if launched {
            // Of the services of this start that it waited for (its
            // dependencies and the earlier tiers), the one ready last.
            let after = log.waited_for(&e.deps, e.tier);
            let s = log.get_mut(id).expect("looked up above");
            s.launched = Some(now);
            s.after = after;
        }
        if spawned {
            log.get_mut(id).expect("looked up above").spawned = Some(now);
        }
        if ready {
            log.ready(id, e.tier, now);
        }
    }

    /// Record an event: its facts, and its words (secrets masked in both).
    fn record(&mut self, id: &ServiceId, kind: EventKind, data: EventData) {
        let data = match self.entries.get(id) {
            Some(e) => data.masked(|t| e.spec.redact(t)),
            None => data,
        };
        let event = events::Event {
            ts: state::now_unix(),
            service: id.to_string(),
            kind,
            detail: data.to_string(),
            data: Some(data),
        };
        self.events.append(&event);
        self.publish(|| Update::Event(event));
    }
}

/// What the tiers before one hold, for the tier rule: whether every wanted
/// service of theirs is ready, and the first (by name) that gave up.
/// Folded one tier at a time as a pass of `reconcile` moves up the tiers, so
/// each service is looked at once per pass.
struct Earlier {
    /// Tiers `0..upto` are folded in.
    upto: usize,
    all_ready: bool,
    broken: Option<(ServiceId, DepState)>,
}

impl Default for Earlier {
    fn default() -> Self {
        Earlier {
            upto: 0,
            all_ready: true,
            broken: None,
        }
    }
}

impl Earlier {
    /// The view from `tier`. Tiers come in order in a pass; only a removed
    /// service (listed last, with its old tier) looks back, and it gets a
    /// view of its own.
    fn at(&mut self, tier: usize, sup: &Supervisor) -> &Earlier {
        if tier < self.upto {
            *self = Earlier::default();
        }
        while self.upto < tier.min(sup.by_tier.len()) {
            for id in &sup.by_tier[self.upto] {
                let Some(j) = sup.entries.get(id) else {
                    continue;
                };
                if j.removed || !j.svc.wanted() {
                    continue;
                }
                self.all_ready &= j.svc.ready();
                if j.svc.broken() && self.broken.as_ref().is_none_or(|(first, _)| id < first) {
                    self.broken = Some((id.clone(), dep_state(j)));
                }
            }
            self.upto += 1;
        }
        self
    }
}

/// What a blocker is, as its dependents are told.
fn dep_state(j: &Entry) -> DepState {
    match j.svc.phase {
        Phase::Blocked(_) => DepState::Blocked,
        Phase::Idle if j.spec.disabled => DepState::Disabled,
        Phase::Idle => DepState::Stopped,
        _ => DepState::Failed,
    }
}

/// The longest a change waits before `state.json` records it.
const PERSIST_EVERY: Duration = Duration::from_millis(50);
/// How long after the last change of a burst memory is given back.
const TRIM_AFTER: Duration = Duration::from_secs(1);

/// A marker unique to this project folder, shared by all its services.
pub fn instance_marker(config: &Config) -> String {
    process::project_marker(&config.root)
}

/// A running service to sample: its launch and its process group.
type SampleTarget = (ServiceId, u64, i32);
type SharedSampler = Arc<std::sync::Mutex<metrics::Sampler>>;

/// Each target's process group use, tagged with its launch.
fn measure(
    sampler: &std::sync::Mutex<metrics::Sampler>,
    targets: Vec<SampleTarget>,
) -> Vec<MetricsUse> {
    let pgids: Vec<i32> = targets.iter().map(|t| t.2).collect();
    let Ok(by_group) = sampler.lock().map(|mut s| s.sample(&pgids)) else {
        return Vec::new();
    };
    targets
        .into_iter()
        .filter_map(|(id, gen, pgid)| {
            let usage = *by_group.get(&pgid)?;
            Some(MetricsUse { id, gen, usage })
        })
        .collect()
}

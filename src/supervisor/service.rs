//! One service's life as a pure state machine.
//!
//! [`Svc::handle`] takes an [`Input`] (a request, a unit's report, a timer)
//! and returns the [`Effect`]s the dispatcher must carry out: launch a unit,
//! ask it to stop, schedule a restart, write a log note, record an event.
//! Nothing here touches processes, files or clocks (the time is passed in),
//! so every transition is unit-tested below without spawning anything.
//!
//! A service's state is its [`Phase`] (what it is doing) and its [`Goal`]
//! (what it was asked to do). The goal only matters while a unit runs: a
//! stop waits for dependents to go down first, and a restart starts again
//! once the stop is complete.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{RestartPolicy, Service};
use crate::health::{ProbeResult, Verdict};
use crate::process::Exit;
use crate::status::{
    Activity, BlockReason, Cause, Elsewhere, EventData, EventKind, FailReason, Note, Reason,
    ServiceState,
};

/// A crash after this long online starts a new crash-loop count.
pub const RESTART_WINDOW: Duration = Duration::from_secs(30);
/// Backoff between crash restarts: none for the first, then doubling.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// A service's identity: its name. Indices into a config change when the
/// file is edited; the name does not.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceId(Arc<str>);

impl ServiceId {
    pub fn new(name: &str) -> Self {
        ServiceId(Arc::from(name))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ServiceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a service is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Not running, on purpose (never started, or stopped).
    Idle,
    /// Wanted; waiting for dependencies or an earlier tier.
    Waiting,
    /// Cannot start: a dependency or an earlier tier gave up.
    Blocked(BlockReason),
    /// Port check and setup running.
    Preparing,
    /// Spawned, not yet healthy.
    Starting,
    /// Up; `fails` counts failed probes in a row.
    Running {
        health: Health,
        fails: u32,
    },
    /// fpctl is stopping it so that the crash path restarts it (a failed
    /// liveness check, `max_memory`).
    Recycling(Cause),
    /// Exited; a restart is scheduled after `delay`.
    Backoff {
        delay: Duration,
    },
    /// Its unit is stopping it (signal, grace, SIGKILL, sweep).
    Stopping,
    Failed(FailReason),
    /// A oneshot that exited 0.
    Completed,
    /// Healthy on its port though fpctl did not start it.
    External,
    /// A scheduled job between runs: the dispatcher's timer says when the
    /// next one is due.
    Scheduled,
}

/// What a running service's probes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Online,
    Degraded,
    Offline,
}

impl Health {
    fn state(self) -> ServiceState {
        match self {
            Health::Online => ServiceState::Online,
            Health::Degraded => ServiceState::Degraded,
            Health::Offline => ServiceState::Offline,
        }
    }
}

/// What the service was asked to do, while a unit of it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    Run,
    /// Stop once its dependents are down.
    Stop,
    /// Stop once its dependents are down, then start again.
    Restart,
}

/// Something that happens to a service.
#[derive(Debug, Clone)]
pub enum Input {
    /// `start`: wanted up.
    Start,
    /// `restart`: stop if running, then start.
    Restart,
    /// `stop`: wanted down (once dependents are down).
    Stop,
    /// The dispatcher found its dependencies ready: launch unit `gen`.
    Launch {
        gen: u64,
    },
    /// The dispatcher found it cannot start.
    Block(BlockReason),
    /// The dispatcher found its dependents down: stop now.
    BeginStop,
    /// Its unit's port check found a healthy service already there.
    External(ProbeResult),
    /// Its unit's port check, setup or spawn failed.
    PrepareFailed(crate::status::PrepareError),
    Spawned {
        pid: i32,
        ticks: Option<u64>,
        at: f64,
    },
    Probed(ProbeResult),
    StartTimeout {
        /// Ports its processes listen on instead of `port`.
        elsewhere: Option<Elsewhere>,
    },
    /// A service without a health check stayed up through the grace period.
    AliveFor,
    MemoryOver {
        rss: u64,
        limit: u64,
    },
    /// The unit is over: its process (if any) exited and its tree is swept.
    /// `exit` is None when nothing was spawned or the status is unknown.
    Ended {
        pid: Option<i32>,
        exit: Option<Exit>,
    },
    /// The backoff is over; launch unit `gen`.
    RestartDue {
        gen: u64,
    },
    /// `start JOB` naming a scheduled job: run it now, and resume its
    /// schedule if `stop` paused it.
    RunNow,
    /// `stop JOB` naming a scheduled job: no runs until `start JOB` (a
    /// `Stop` follows, for a run in progress).
    Pause,
    /// The schedule's timer: a run came due at `due` (Unix seconds).
    Due {
        due: f64,
    },
    /// The dispatcher found a scheduled job's dependencies ready, and no
    /// run asked for: it waits for its timer.
    Schedule,
}

/// What the dispatcher must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Start a unit (prepare, spawn, watch) with the service's `gen`.
    Launch,
    /// Ask the unit to stop gracefully.
    Stop,
    /// Ask the unit to SIGKILL at once.
    Kill,
    /// Send `RestartDue` after this delay.
    RestartAfter(Duration),
    /// A line of fpctl's own in the service's log.
    Note(Note),
    /// An entry in the event history.
    Record(EventKind, EventData),
}

/// One service, as the supervisor sees it.
#[derive(Debug, Clone)]
pub struct Svc {
    pub phase: Phase,
    pub goal: Goal,
    /// The launch this state is about; reports of other launches are stale.
    pub gen: u64,
    pub pid: Option<i32>,
    pub ticks: Option<u64>,
    /// Unix time when the current process started.
    pub started_at: Option<f64>,
    /// When the current launch began (for the crash window).
    pub started: Option<Instant>,
    /// Restarts in a row (reset by `start`, `restart` and a long run).
    pub streak: u32,
    /// Restarts it did on its own (after an exit) since the supervisor took
    /// it over; requested ones are counted by the supervisor.
    pub restarts: u32,
    /// What it is doing, or what its last probe said.
    pub activity: Option<Activity>,
    pub latency_ms: Option<f64>,
    /// How many stops completed; a stop waiter is done once this moved.
    pub stops: u64,
    /// Runs on a schedule (its spec has one).
    pub on_schedule: bool,
    /// A scheduled job's next launch is a run asked for (`start JOB`, a
    /// timer, `run_on_start`, `catch_up`), not only its scheduling.
    pub run_now: bool,
    /// `stop JOB` paused its schedule.
    pub paused: bool,
    /// A run came due during a run and waits (`concurrency = "queue"`).
    pub queued: bool,
    /// How its last run went.
    pub last_run: Option<crate::status::LastRun>,
    /// How many runs ended; a start waiter reports a run that failed once
    /// this moved.
    pub runs: u64,
    /// Runs were missed while no supervisor ran since this time (Unix
    /// seconds): the next plain `start` runs it once (`catch_up`).
    pub missed_since: Option<f64>,
}

impl Default for Svc {
    fn default() -> Self {
        Svc::new()
    }
}

impl Svc {
    pub fn new() -> Self {
        Svc {
            phase: Phase::Idle,
            goal: Goal::Run,
            gen: 0,
            pid: None,
            ticks: None,
            started_at: None,
            started: None,
            streak: 0,
            restarts: 0,
            activity: None,
            latency_ms: None,
            stops: 0,
            on_schedule: false,
            run_now: false,
            paused: false,
            queued: false,
            last_run: None,
            runs: 0,
            missed_since: None,
        }
    }

    /// The state users see.
    pub fn public(&self) -> ServiceState {
        match &self.phase {
            Phase::Preparing | Phase::Starting | Phase::Running { .. } if self.on_schedule => {
                ServiceState::Running
            }
            Phase::Scheduled => ServiceState::Scheduled,
            Phase::Idle | Phase::Stopping => ServiceState::Stopped,
            Phase::Waiting | Phase::Preparing | Phase::Starting => ServiceState::Starting,
            Phase::Running { health, .. } => health.state(),
            Phase::Recycling(_) | Phase::Backoff { .. } => ServiceState::Offline,
            Phase::External => ServiceState::Online,
            Phase::Failed(_) => ServiceState::Failed,
            Phase::Blocked(_) => ServiceState::Blocked,
            Phase::Completed => ServiceState::Completed,
        }
    }

    /// Ready for dependents to start (a scheduled job: once it waits for
    /// its timer, or `stop` paused it).
    pub fn ready(&self) -> bool {
        (self.on_schedule && self.paused && self.phase == Phase::Idle)
            || matches!(
                self.phase,
                Phase::Running {
                    health: Health::Online,
                    ..
                } | Phase::External
                    | Phase::Completed
                    | Phase::Scheduled
            )
    }

    /// Gave up, so dependents cannot start.
    pub fn broken(&self) -> bool {
        matches!(self.phase, Phase::Failed(_) | Phase::Blocked(_))
    }

    /// Some process of it may be running, or a restart is pending.
    pub fn active(&self) -> bool {
        matches!(
            self.phase,
            Phase::Preparing
                | Phase::Starting
                | Phase::Running { .. }
                | Phase::Recycling(_)
                | Phase::Backoff { .. }
                | Phase::Stopping
        )
    }

    /// Asked to stop, or stopping.
    pub fn going_down(&self) -> bool {
        self.goal != Goal::Run || self.phase == Phase::Stopping
    }

    /// Wanted by the user (counts for the tier rule).
    pub fn wanted(&self) -> bool {
        self.phase != Phase::Idle && self.goal == Goal::Run
    }

    /// Done moving, as far as a `start` waiter is concerned.
    pub fn settled_up(&self) -> bool {
        self.goal == Goal::Run
            && matches!(
                self.phase,
                Phase::Running { .. }
                    | Phase::External
                    | Phase::Completed
                    | Phase::Scheduled
                    | Phase::Failed(_)
                    | Phase::Blocked(_)
                    | Phase::Idle
            )
    }

    /// Why it failed or is blocked.
    pub fn reason(&self) -> Option<Reason> {
        match &self.phase {
            Phase::Failed(r) => Some(Reason::Failed(r.clone())),
            Phase::Blocked(r) => Some(Reason::Blocked(r.clone())),
            _ => None,
        }
    }

    /// What a progress line says the service is doing now (a failed or
    /// blocked one: its [`reason`](Self::reason)).
    pub fn doing(&self) -> Option<Activity> {
        match &self.phase {
            Phase::Waiting => Some(Activity::Waiting),
            Phase::Preparing => Some(Activity::Preparing),
            Phase::Starting => self.pid.map(|pid| Activity::Launched { pid }),
            Phase::Stopping => Some(Activity::Stopping),
            // Stopped by its own success exit: say so until it starts again.
            Phase::Idle => match &self.activity {
                Some(a @ Activity::ExitedSuccess { .. }) => Some(a.clone()),
                _ => None,
            },
            Phase::Failed(_) | Phase::Blocked(_) | Phase::Scheduled => None,
            _ => self.activity.clone(),
        }
    }

    /// The last probe's answer, while starting or running.
    pub fn last_probe(&self) -> Option<&str> {
        match &self.activity {
            Some(Activity::Probed { answer }) => Some(answer),
            _ => None,
        }
    }

    /// Apply `input`; return what the dispatcher must do.
    pub fn handle(&mut self, spec: &Service, input: Input, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.on_schedule = spec.schedule.is_some();
        match input {
            // A paused schedule resumes only by `start JOB` (`RunNow`).
            Input::Start if self.paused && self.phase == Phase::Idle => {}
            Input::Start => match self.phase {
                Phase::Idle | Phase::Failed(_) | Phase::Blocked(_) => {
                    self.phase = Phase::Waiting;
                    self.goal = Goal::Run;
                    self.streak = 0;
                    self.activity = None;
                    if let Some(schedule) = &spec.schedule {
                        self.run_now = schedule.run_on_start;
                        if let Some(last_due) = self.missed_since.take() {
                            self.run_now = true;
                            fx.push(Effect::Record(
                                EventKind::CatchUp,
                                EventData::CatchUp { last_due },
                            ));
                        }
                    }
                }
                // A stop in progress is overridden: start again once down.
                Phase::Stopping => self.goal = Goal::Restart,
                _ if self.goal == Goal::Stop => self.goal = Goal::Run,
                _ => {}
            },
            // A restart of everything leaves a paused schedule paused.
            Input::Restart if self.paused && self.phase == Phase::Idle => {}
            Input::Restart => {
                self.streak = 0;
                if self.active() {
                    self.goal = Goal::Restart;
                } else {
                    self.phase = Phase::Waiting;
                    self.goal = Goal::Run;
                    self.activity = None;
                }
            }
            Input::RunNow => {
                let resumed = std::mem::take(&mut self.paused);
                fx.push(Effect::Record(
                    EventKind::RunNow,
                    EventData::Schedule { resumed },
                ));
                match self.phase {
                    Phase::Idle
                    | Phase::Failed(_)
                    | Phase::Blocked(_)
                    | Phase::Scheduled
                    | Phase::Completed => {
                        self.phase = Phase::Waiting;
                        self.goal = Goal::Run;
                        self.streak = 0;
                        self.activity = None;
                        self.run_now = true;
                    }
                    Phase::Waiting => self.run_now = true,
                    Phase::Stopping => {
                        self.goal = Goal::Restart;
                        self.run_now = true;
                    }
                    _ if self.goal == Goal::Stop => self.goal = Goal::Run,
                    // A run being stopped by a restart: the next one goes
                    // once it is down.
                    _ if self.goal == Goal::Restart => self.run_now = true,
                    // A run is on: it is the run asked for.
                    _ => {}
                }
            }
            Input::Pause => {
                if !self.paused {
                    self.paused = true;
                    fx.push(Effect::Record(
                        EventKind::Paused,
                        EventData::Schedule { resumed: false },
                    ));
                }
                self.queued = false;
                self.run_now = false;
            }
            Input::Due { due } => match self.phase {
                _ if self.paused || self.goal != Goal::Run => {}
                Phase::Scheduled => {
                    self.phase = Phase::Waiting;
                    self.run_now = true;
                    self.activity = None;
                }
                Phase::Waiting if !self.run_now => self.run_now = true,
                Phase::Waiting | Phase::Preparing | Phase::Starting | Phase::Running { .. } => {
                    let queue = spec
                        .schedule
                        .as_ref()
                        .is_some_and(|s| s.concurrency == crate::config::Concurrency::Queue);
                    let kind = if queue && !self.queued {
                        self.queued = true;
                        EventKind::Queued
                    } else {
                        EventKind::Skipped
                    };
                    fx.push(Effect::Record(kind, EventData::Overlap { due }));
                }
                _ => {}
            },
            Input::Schedule => {
                if self.phase == Phase::Waiting {
                    self.phase = Phase::Scheduled;
                    self.activity = None;
                }
            }
            Input::Stop => match self.phase {
                Phase::Waiting
                | Phase::Scheduled
                | Phase::Blocked(_)
                | Phase::Failed(_)
                | Phase::External
                | Phase::Completed => {
                    self.phase = Phase::Idle;
                    self.goal = Goal::Run;
                    self.activity = None;
                    self.latency_ms = None;
                }
                _ if self.active() => self.goal = Goal::Stop,
                _ => {}
            },
            Input::Launch { gen } | Input::RestartDue { gen } => {
                if matches!(input, Input::RestartDue { .. })
                    && !matches!(self.phase, Phase::Backoff { .. })
                {
                    return fx;
                }
                self.gen = gen;
                self.run_now = false;
                self.phase = Phase::Preparing;
                self.activity = Some(Activity::Preparing);
                self.started = Some(now);
                self.pid = None;
                self.ticks = None;
                self.started_at = None;
                fx.push(Effect::Launch);
            }
            Input::Block(reason) => {
                fx.push(Effect::Record(
                    EventKind::Blocked,
                    EventData::Blocked {
                        reason: reason.clone(),
                    },
                ));
                self.phase = Phase::Blocked(reason);
            }
            Input::BeginStop => match self.phase {
                Phase::Preparing
                | Phase::Starting
                | Phase::Running { .. }
                | Phase::Recycling(_) => {
                    self.phase = Phase::Stopping;
                    fx.push(Effect::Stop);
                }
                Phase::Backoff { .. } => {
                    // Nothing runs: the unit ended before the backoff.
                    self.phase = Phase::Stopping;
                    self.finish_stop(&mut fx);
                }
                _ => {}
            },
            Input::External(probe) => {
                if self.phase == Phase::Preparing {
                    let answer = probe.detail.clone();
                    fx.push(Effect::Record(
                        EventKind::External,
                        EventData::Probe {
                            answer: answer.clone(),
                        },
                    ));
                    self.phase = Phase::External;
                    self.activity = Some(Activity::External { answer });
                    self.latency_ms = Some(probe.latency.as_secs_f64() * 1000.0);
                }
            }
            Input::PrepareFailed(reason) => {
                // Waiting: a setup begun ahead of readiness failed.
                if matches!(
                    self.phase,
                    Phase::Waiting | Phase::Preparing | Phase::Starting
                ) {
                    let reason = FailReason::prepare(reason);
                    if self.on_schedule && self.goal == Goal::Run {
                        self.run_over(None, Some(reason), now, &mut fx);
                    } else {
                        self.fail(reason, &mut fx);
                    }
                }
            }
            Input::Spawned { pid, ticks, at } => {
                self.pid = Some(pid);
                self.ticks = ticks;
                self.started_at = Some(at);
                self.started = Some(now);
                self.activity = None;
                if self.phase == Phase::Preparing {
                    self.phase = Phase::Starting;
                }
            }
            Input::Probed(result) => self.probed(spec, result, &mut fx),
            Input::StartTimeout { elsewhere } => {
                if matches!(self.phase, Phase::Starting | Phase::Preparing) {
                    let last = self.last_probe().unwrap_or("no answer").to_string();
                    let after_ms = spec.start_timeout.as_millis() as u64;
                    let reason = FailReason::start_timeout(after_ms, last, elsewhere);
                    self.fail(reason, &mut fx);
                    fx.push(Effect::Kill);
                }
            }
            Input::AliveFor => {
                if self.phase == Phase::Starting {
                    self.phase = Phase::Running {
                        health: Health::Online,
                        fails: 0,
                    };
                    self.activity = Some(Activity::Running);
                    fx.push(Effect::Record(
                        EventKind::Online,
                        EventData::Probe {
                            answer: "running".into(),
                        },
                    ));
                }
            }
            Input::MemoryOver { rss, limit } => {
                if matches!(self.phase, Phase::Starting | Phase::Running { .. }) {
                    fx.push(Effect::Record(
                        EventKind::Memory,
                        EventData::Memory { rss, limit },
                    ));
                    self.recycle(Cause::Memory { rss, limit }, &mut fx);
                }
            }
            Input::Ended { pid, exit } => self.ended(spec, pid, exit, now, &mut fx),
        }
        fx
    }

    fn fail(&mut self, reason: FailReason, fx: &mut Vec<Effect>) {
        fx.push(Effect::Note(Note::Failed(reason.clone())));
        fx.push(Effect::Record(
            EventKind::Failed,
            EventData::Failed {
                reason: reason.clone(),
            },
        ));
        self.phase = Phase::Failed(reason);
    }

    /// A scheduled job's run is over (`failed`: why it failed): it is
    /// recorded as the last run, and the job waits for its next one, or
    /// runs again at once for a run that waited.
    fn run_over(
        &mut self,
        exit: Option<Exit>,
        failed: Option<FailReason>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        let duration_s = self
            .started
            .map(|t| crate::status::tenth(now.saturating_duration_since(t).as_secs_f64()))
            .unwrap_or(0.0);
        if let Some(reason) = &failed {
            fx.push(Effect::Note(Note::Failed(reason.clone())));
            fx.push(Effect::Record(
                EventKind::Failed,
                EventData::Failed {
                    reason: reason.clone(),
                },
            ));
        }
        self.runs += 1;
        self.last_run = Some(crate::status::LastRun {
            started: self.started_at,
            duration_s,
            success: failed.is_none(),
            exit,
            reason: failed,
        });
        self.pid = None;
        self.ticks = None;
        self.started_at = None;
        self.latency_ms = None;
        if std::mem::take(&mut self.queued) {
            self.phase = Phase::Waiting;
            self.run_now = true;
        } else {
            self.phase = Phase::Scheduled;
        }
    }

    fn recycle(&mut self, reason: Cause, fx: &mut Vec<Effect>) {
        self.phase = Phase::Recycling(reason);
        fx.push(Effect::Stop);
    }

    fn probed(&mut self, spec: &Service, result: ProbeResult, fx: &mut Vec<Effect>) {
        // fpctl could not probe (its own shortage): nothing is known of the
        // service, so nothing changes.
        if result.verdict == Verdict::Inconclusive {
            return;
        }
        let retries = spec.health.as_ref().map(|h| h.retries).unwrap_or(1);
        let was = self.public();
        self.latency_ms = Some(result.latency.as_secs_f64() * 1000.0);
        self.activity = Some(Activity::Probed {
            answer: result.detail.clone(),
        });
        match (&self.phase, result.verdict) {
            (Phase::Starting | Phase::Running { .. }, Verdict::Healthy) => {
                self.phase = Phase::Running {
                    health: Health::Online,
                    fails: 0,
                };
            }
            (Phase::Running { health, fails }, verdict) => {
                let fails = fails + 1;
                let mut health = *health;
                if fails >= retries {
                    health = if verdict == Verdict::Unhealthy {
                        Health::Degraded
                    } else {
                        Health::Offline
                    };
                }
                self.phase = Phase::Running { health, fails };
                if health == Health::Offline && spec.restart != RestartPolicy::No {
                    // Liveness failed: restart it through the crash path.
                    let now = self.public();
                    if now != was {
                        fx.push(Effect::Record(
                            EventKind::Offline,
                            EventData::Probe {
                                answer: result.detail.clone(),
                            },
                        ));
                    }
                    let reason = Cause::Liveness {
                        retries,
                        last_probe: result.detail,
                    };
                    self.recycle(reason, fx);
                    return;
                }
            }
            _ => {}
        }
        let now = self.public();
        if now != was {
            let kind = match now {
                ServiceState::Online => EventKind::Online,
                ServiceState::Degraded => EventKind::Degraded,
                _ => EventKind::Offline,
            };
            fx.push(Effect::Record(
                kind,
                EventData::Probe {
                    answer: result.detail,
                },
            ));
        }
    }

    fn ended(
        &mut self,
        spec: &Service,
        pid: Option<i32>,
        exit: Option<Exit>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) {
        if let Some(pid) = pid {
            fx.push(Effect::Note(Note::Exited { pid, exit }));
            fx.push(Effect::Record(
                EventKind::Exited,
                EventData::Exited { pid, exit },
            ));
        }
        self.pid = None;
        self.ticks = None;
        match self.phase.clone() {
            Phase::Stopping => self.finish_stop(fx),
            Phase::Starting | Phase::Running { .. } | Phase::Recycling(_) | Phase::Preparing
                if self.goal != Goal::Run =>
            {
                // Went down by itself while a stop was waiting for dependents.
                self.phase = Phase::Stopping;
                self.finish_stop(fx);
            }
            Phase::Starting | Phase::Running { .. } if self.on_schedule => {
                let exit = exit.unwrap_or(Exit::Unknown);
                self.activity = None;
                if exit.success() {
                    fx.push(Effect::Record(
                        EventKind::Completed,
                        EventData::Completed { exit },
                    ));
                    self.run_over(Some(exit), None, now, fx);
                } else {
                    self.run_over(Some(exit), Some(FailReason::Oneshot { exit }), now, fx);
                }
            }
            Phase::Starting | Phase::Running { .. } if spec.oneshot => {
                let exit = exit.unwrap_or(Exit::Unknown);
                self.activity = Some(Activity::Exited { exit });
                if succeeded(spec, exit) {
                    self.phase = Phase::Completed;
                    fx.push(Effect::Record(
                        EventKind::Completed,
                        EventData::Completed { exit },
                    ));
                } else {
                    self.fail(FailReason::Oneshot { exit }, fx);
                }
            }
            // Done on purpose: stopped, restarted only under `always`.
            Phase::Starting | Phase::Running { .. }
                if spec.restart != RestartPolicy::Always
                    && exit.is_some_and(|e| succeeded(spec, e)) =>
            {
                let Some(Exit::Code(code)) = exit else {
                    unreachable!("a success exit is a code")
                };
                self.phase = Phase::Idle;
                self.started_at = None;
                self.latency_ms = None;
                self.activity = Some(Activity::ExitedSuccess { code });
                fx.push(Effect::Record(
                    EventKind::Stopped,
                    EventData::Stopped { again: false },
                ));
            }
            Phase::Starting | Phase::Running { .. } | Phase::Recycling(_) => {
                self.crashed(spec, exit, now, fx)
            }
            // Already failed or stopped: nothing more to decide.
            _ => {}
        }
    }

    /// A service that should run went down: restart it or give up.
    fn crashed(&mut self, spec: &Service, exit: Option<Exit>, now: Instant, fx: &mut Vec<Effect>) {
        if self
            .started
            .is_some_and(|t| now.saturating_duration_since(t) >= RESTART_WINDOW)
        {
            self.streak = 0;
        }
        let went = match exit {
            Some(exit) => Cause::Exit { exit },
            None => Cause::Unsupervised,
        };
        let (restart, why) = match &self.phase {
            Phase::Recycling(reason) => (true, reason.clone()),
            _ => {
                let clean = exit.is_some_and(|e| succeeded(spec, e));
                let restart = match spec.restart {
                    RestartPolicy::Always => true,
                    RestartPolicy::OnFailure => !clean,
                    RestartPolicy::No => false,
                };
                (restart, went)
            }
        };
        if !restart {
            let policy = spec.restart;
            self.fail(FailReason::not_restarted(why, policy), fx);
        } else if self.streak >= spec.max_restarts {
            let max_restarts = spec.max_restarts;
            self.fail(FailReason::gave_up(why, max_restarts), fx);
        } else {
            let delay = backoff(self.streak);
            self.streak += 1;
            self.restarts += 1;
            self.phase = Phase::Backoff { delay };
            let delay_ms = delay.as_millis() as u64;
            let (attempt, max) = (self.streak, spec.max_restarts);
            fx.push(Effect::Note(Note::Restarting {
                attempt,
                max,
                delay_ms,
            }));
            fx.push(Effect::Record(
                EventKind::Restart,
                EventData::Restart {
                    attempt,
                    max_restarts: max,
                    delay_ms,
                    why: why.clone(),
                },
            ));
            self.activity = Some(Activity::Restarting { why, delay_ms });
            fx.push(Effect::RestartAfter(delay));
        }
    }

    fn finish_stop(&mut self, fx: &mut Vec<Effect>) {
        let again = self.goal == Goal::Restart;
        self.phase = if again { Phase::Waiting } else { Phase::Idle };
        self.goal = Goal::Run;
        self.pid = None;
        self.ticks = None;
        self.started_at = None;
        self.activity = None;
        self.latency_ms = None;
        self.stops += 1;
        fx.push(Effect::Record(
            EventKind::Stopped,
            EventData::Stopped { again },
        ));
    }
}

/// Whether `exit` is one of the service's `success_exit_codes`.
fn succeeded(spec: &Service, exit: Exit) -> bool {
    matches!(exit, Exit::Code(c) if spec.success_exit_codes.contains(&c))
}

/// The delay before restart number `streak + 1` in a row.
pub fn backoff(streak: u32) -> Duration {
    if streak == 0 {
        Duration::ZERO
    } else {
        BACKOFF_BASE
            .saturating_mul(1 << (streak - 1).min(16))
            .min(BACKOFF_CAP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use crate::status::{DepState, PrepareError};
    use std::path::Path;

    fn spec_from(extra: &str) -> Service {
        let text = format!("[services.web]\ncommand = \"web\"\n{extra}\n");
        let config = load_str(Path::new("/tmp/fpctl-unit/services.toml"), text).expect("valid");
        config.services[0].clone()
    }

    fn spec() -> Service {
        spec_from("health = { tcp = 7000 }\nmax_restarts = 2")
    }

    fn probe(verdict: Verdict) -> ProbeResult {
        ProbeResult {
            verdict,
            detail: format!("{verdict:?}"),
            latency: Duration::from_millis(2),
        }
    }

    fn kinds(fx: &[Effect]) -> Vec<&'static str> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Record(k, _) => Some(k.as_str()),
                _ => None,
            })
            .collect()
    }

    fn notes(fx: &[Effect]) -> Vec<String> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Note(n) => Some(n.to_string()),
                _ => None,
            })
            .collect()
    }

    /// One service under test: its definition, its state and the time the
    /// inputs arrive at.
    struct Case {
        spec: Service,
        s: Svc,
        now: Instant,
    }

    impl Case {
        /// A service that has not been asked for anything yet.
        fn new(spec: Service) -> Case {
            Case {
                spec,
                s: Svc::new(),
                now: Instant::now(),
            }
        }

        /// Already in `phase`.
        fn in_phase(spec: Service, phase: Phase) -> Case {
            let mut c = Case::new(spec);
            c.s.phase = phase;
            c
        }

        /// Launched (generation 1) and spawned as `pid`.
        fn spawned(spec: Service, pid: i32) -> Case {
            let mut c = Case::new(spec);
            c.on(Input::Launch { gen: 1 });
            c.spawn(pid);
            c
        }

        /// Driven to `Running Online` with pid 42.
        fn running(spec: Service) -> Case {
            let mut c = Case::new(spec);
            c.on(Input::Start);
            c.on(Input::Launch { gen: 7 });
            c.on(Input::Spawned {
                pid: 42,
                ticks: Some(1),
                at: 0.0,
            });
            c.probed(Verdict::Healthy);
            assert_eq!(c.s.public(), ServiceState::Online);
            c
        }

        fn on(&mut self, input: Input) -> Vec<Effect> {
            self.s.handle(&self.spec, input, self.now)
        }

        fn spawn(&mut self, pid: i32) -> Vec<Effect> {
            self.on(Input::Spawned {
                pid,
                ticks: None,
                at: 0.0,
            })
        }

        fn probed(&mut self, verdict: Verdict) -> Vec<Effect> {
            self.on(Input::Probed(probe(verdict)))
        }

        fn ended(&mut self, pid: Option<i32>, exit: Option<Exit>) -> Vec<Effect> {
            self.on(Input::Ended { pid, exit })
        }

        /// The current process exits with code 1.
        fn crash(&mut self) -> Vec<Effect> {
            self.ended(self.s.pid, Some(Exit::Code(1)))
        }
    }

    fn prepare_failed() -> Phase {
        Phase::Failed(FailReason::prepare(PrepareError::SetupStep {
            step: "x".into(),
            exit: Exit::Code(1),
        }))
    }

    #[test]
    fn start_makes_an_idle_failed_or_blocked_service_wait() {
        for phase in [
            Phase::Idle,
            prepare_failed(),
            Phase::Blocked(BlockReason::Dependency {
                service: "db".into(),
                state: DepState::Failed,
            }),
        ] {
            let mut c = Case::in_phase(spec(), phase);
            c.s.streak = 3;
            assert!(c.on(Input::Start).is_empty());
            assert_eq!(c.s.phase, Phase::Waiting);
            assert_eq!(c.s.streak, 0, "start resets the count in a row");
        }
    }

    #[test]
    fn start_during_a_stop_starts_again_once_down_and_cancels_a_pending_stop() {
        let mut c = Case::running(spec());
        c.on(Input::Stop);
        assert_eq!(c.s.goal, Goal::Stop);
        c.on(Input::Start);
        assert_eq!(c.s.goal, Goal::Run, "a pending stop is cancelled");
        c.on(Input::Stop);
        assert_eq!(c.on(Input::BeginStop), [Effect::Stop]);
        c.on(Input::Start);
        assert_eq!(c.s.goal, Goal::Restart);
        let fx = c.ended(Some(42), Some(Exit::Signal(15)));
        assert_eq!(c.s.phase, Phase::Waiting);
        assert_eq!(c.s.goal, Goal::Run);
        assert_eq!(kinds(&fx), ["exited", "stopped"]);
    }

    #[test]
    fn restart_of_a_running_service_stops_it_then_waits_to_start() {
        let mut c = Case::running(spec());
        c.s.streak = 2;
        c.on(Input::Restart);
        assert_eq!((c.s.goal, c.s.streak), (Goal::Restart, 0));
        assert!(c.s.going_down());
        assert_eq!(c.on(Input::BeginStop), [Effect::Stop]);
        assert_eq!(c.s.public(), ServiceState::Stopped);
        let stops = c.s.stops;
        c.ended(Some(42), Some(Exit::Code(0)));
        assert_eq!((c.s.phase.clone(), c.s.stops), (Phase::Waiting, stops + 1));
        assert_eq!(c.s.pid, None);
    }

    #[test]
    fn restart_of_a_stopped_service_waits_to_start() {
        let mut c = Case::new(spec());
        c.on(Input::Restart);
        assert_eq!((c.s.phase.clone(), c.s.goal), (Phase::Waiting, Goal::Run));
    }

    #[test]
    fn stop_of_a_service_with_nothing_running_is_immediate() {
        for phase in [
            Phase::Waiting,
            Phase::External,
            Phase::Completed,
            prepare_failed(),
        ] {
            let mut c = Case::in_phase(spec(), phase);
            assert!(c.on(Input::Stop).is_empty());
            assert_eq!(c.s.phase, Phase::Idle);
        }
    }

    #[test]
    fn stop_of_a_running_service_waits_for_begin_stop() {
        let mut c = Case::running(spec());
        assert!(c.on(Input::Stop).is_empty());
        assert_eq!(
            c.s.public(),
            ServiceState::Online,
            "still up until dependents are down"
        );
        assert!(!c.s.wanted());
        assert_eq!(c.on(Input::BeginStop), [Effect::Stop]);
        assert_eq!(c.s.phase, Phase::Stopping);
        // A second BeginStop while stopping does nothing.
        assert!(c.on(Input::BeginStop).is_empty());
        let fx = c.ended(Some(42), Some(Exit::Signal(15)));
        assert_eq!(c.s.phase, Phase::Idle);
        assert_eq!(notes(&fx), ["process 42 killed by SIGTERM"]);
    }

    #[test]
    fn stop_during_prepare_ends_the_unit() {
        let mut c = Case::new(spec());
        c.on(Input::Start);
        c.on(Input::Launch { gen: 1 });
        c.on(Input::Stop);
        assert_eq!(c.on(Input::BeginStop), [Effect::Stop]);
        let fx = c.ended(None, None);
        assert_eq!(c.s.phase, Phase::Idle);
        assert!(notes(&fx).is_empty(), "nothing was spawned: {fx:?}");
    }

    #[test]
    fn stop_during_backoff_needs_no_unit() {
        let mut c = Case::running(spec());
        c.crash();
        assert!(matches!(c.s.phase, Phase::Backoff { .. }));
        c.on(Input::Stop);
        let fx = c.on(Input::BeginStop);
        assert_eq!(c.s.phase, Phase::Idle);
        assert_eq!(kinds(&fx), ["stopped"]);
        // The restart timer that fires later is ignored.
        assert!(c.on(Input::RestartDue { gen: 9 }).is_empty());
        assert_eq!(c.s.phase, Phase::Idle);
    }

    #[test]
    fn launch_prepares_with_the_given_generation() {
        let mut c = Case::new(spec());
        c.on(Input::Start);
        let fx = c.on(Input::Launch { gen: 11 });
        assert_eq!(fx, [Effect::Launch]);
        assert_eq!((c.s.phase.clone(), c.s.gen), (Phase::Preparing, 11));
        assert_eq!(c.s.public(), ServiceState::Starting);
    }

    #[test]
    fn block_records_the_reason() {
        let mut c = Case::new(spec());
        c.on(Input::Start);
        let reason = BlockReason::Dependency {
            service: "db".into(),
            state: DepState::Failed,
        };
        let fx = c.on(Input::Block(reason));
        assert_eq!(
            fx,
            [Effect::Record(
                EventKind::Blocked,
                EventData::Blocked {
                    reason: BlockReason::Dependency {
                        service: "db".into(),
                        state: DepState::Failed,
                    }
                }
            )]
        );
        assert!(c.s.broken());
        assert_eq!(c.s.public(), ServiceState::Blocked);
    }

    #[test]
    fn a_healthy_service_on_the_port_becomes_external() {
        let mut c = Case::new(spec());
        c.on(Input::Launch { gen: 1 });
        let fx = c.on(Input::External(probe(Verdict::Healthy)));
        assert_eq!(kinds(&fx), ["external"]);
        assert_eq!(c.s.phase, Phase::External);
        assert!(c.s.ready());
    }

    #[test]
    fn a_failed_prepare_fails_the_service_with_its_words() {
        let mut c = Case::new(spec());
        c.on(Input::Launch { gen: 1 });
        let fx = c.on(Input::PrepareFailed(PrepareError::SetupStep {
            step: "x".into(),
            exit: Exit::Code(7),
        }));
        assert_eq!(kinds(&fx), ["failed"]);
        assert_eq!(notes(&fx), ["failed: setup step `x` exited with code 7"]);
        assert_eq!(c.s.public(), ServiceState::Failed);
    }

    #[test]
    fn spawned_then_healthy_is_online() {
        let mut c = Case::spawned(spec(), 5);
        assert_eq!((c.s.phase.clone(), c.s.pid), (Phase::Starting, Some(5)));
        assert_eq!(
            c.s.doing().map(|a| a.to_string()).as_deref(),
            Some("launched as pid 5, waiting for health")
        );
        // Not healthy yet: still starting, no event.
        let fx = c.probed(Verdict::Down);
        assert!(fx.is_empty());
        assert_eq!(c.s.phase, Phase::Starting);
        let fx = c.probed(Verdict::Healthy);
        assert_eq!(kinds(&fx), ["online"]);
        assert!(c.s.ready());
    }

    #[test]
    fn failed_probes_degrade_after_retries_and_recover() {
        let mut c = Case::running(spec_from(
            "health = { tcp = 7000, retries = 2 }\nrestart = \"no\"",
        ));
        assert!(c.probed(Verdict::Unhealthy).is_empty());
        assert_eq!(
            c.s.public(),
            ServiceState::Online,
            "one failure is tolerated"
        );
        let fx = c.probed(Verdict::Unhealthy);
        assert_eq!(kinds(&fx), ["degraded"]);
        let fx = c.probed(Verdict::Down);
        assert_eq!(kinds(&fx), ["offline"]);
        assert!(
            !fx.contains(&Effect::Stop),
            "restart = no: no liveness kill"
        );
        let fx = c.probed(Verdict::Healthy);
        assert_eq!(kinds(&fx), ["online"]);
    }

    #[test]
    fn an_inconclusive_probe_never_counts_against_a_service() {
        let mut c = Case::running(spec_from("health = { tcp = 7000, retries = 1 }"));
        for _ in 0..5 {
            assert!(c.probed(Verdict::Inconclusive).is_empty());
        }
        assert_eq!(c.s.public(), ServiceState::Online);
        // Nor does it reset a count of real failures in a row.
        let mut c = Case::running(spec_from("health = { tcp = 7000, retries = 2 }"));
        assert!(c.probed(Verdict::Down).is_empty());
        assert!(c.probed(Verdict::Inconclusive).is_empty());
        let fx = c.probed(Verdict::Down);
        assert!(fx.contains(&Effect::Stop), "{fx:?}");
        // Nor does one make a starting service ready.
        let mut c = Case::spawned(spec(), 5);
        assert!(c.probed(Verdict::Inconclusive).is_empty());
        assert_eq!(c.s.phase, Phase::Starting);
    }

    #[test]
    fn a_failed_liveness_check_recycles_the_service_and_restarts_it() {
        let mut c = Case::running(spec_from("health = { tcp = 7000, retries = 1 }"));
        let fx = c.probed(Verdict::Down);
        assert!(fx.contains(&Effect::Stop));
        assert!(matches!(
            c.s.phase,
            Phase::Recycling(Cause::Liveness { .. })
        ));
        // Even a clean exit is restarted: fpctl stopped it.
        let fx = c.ended(Some(42), Some(Exit::Code(0)));
        assert!(fx.contains(&Effect::RestartAfter(Duration::ZERO)), "{fx:?}");
        assert!(c
            .s
            .activity
            .as_ref()
            .unwrap()
            .to_string()
            .contains("health check failed 1 times"));
    }

    #[test]
    fn start_timeout_fails_and_kills() {
        let mut c = Case::spawned(spec(), 9);
        c.probed(Verdict::Down);
        let fx = c.on(Input::StartTimeout { elsewhere: None });
        assert!(fx.contains(&Effect::Kill));
        assert_eq!(kinds(&fx), ["failed"]);
        assert!(c.s.reason().unwrap().to_string().contains("start_timeout"));
        // The kill's exit is noted with the real pid and changes nothing.
        let fx = c.ended(Some(9), Some(Exit::Signal(9)));
        assert_eq!(notes(&fx), ["process 9 killed by SIGKILL"]);
        assert_eq!(c.s.public(), ServiceState::Failed);
        // A late timeout once online does nothing.
        let mut c = Case::running(spec());
        assert!(c.on(Input::StartTimeout { elsewhere: None }).is_empty());
    }

    #[test]
    fn without_a_health_check_alive_for_the_grace_is_online() {
        let mut c = Case::spawned(spec_from(""), 3);
        let fx = c.on(Input::AliveFor);
        assert_eq!(kinds(&fx), ["online"]);
        assert!(c.s.ready());
        assert!(c.on(Input::AliveFor).is_empty());
    }

    #[test]
    fn memory_over_the_limit_recycles() {
        let mut c = Case::running(spec());
        let fx = c.on(Input::MemoryOver {
            rss: 3 << 20,
            limit: 1 << 20,
        });
        assert_eq!(kinds(&fx), ["memory"]);
        assert!(fx.contains(&Effect::Stop));
        assert_eq!(c.s.public(), ServiceState::Offline);
    }

    #[test]
    fn crashes_back_off_count_in_a_row_and_give_up() {
        let mut c = Case::running(spec()); // max_restarts = 2
        let fx = c.crash();
        assert!(fx.contains(&Effect::RestartAfter(Duration::ZERO)));
        assert_eq!(notes(&fx)[1], "restart 1 of 2 in 0ms");
        assert_eq!((c.s.streak, c.s.restarts), (1, 1));
        assert_eq!(c.s.public(), ServiceState::Offline);
        // A late RestartDue is taken only in backoff.
        assert_eq!(c.on(Input::RestartDue { gen: 8 }), [Effect::Launch]);
        c.spawn(43);
        let fx = c.crash();
        assert!(fx.contains(&Effect::RestartAfter(BACKOFF_BASE)));
        assert_eq!(notes(&fx)[1], "restart 2 of 2 in 100ms");
        c.on(Input::RestartDue { gen: 9 });
        c.spawn(44);
        let fx = c.crash();
        assert_eq!(kinds(&fx), ["exited", "failed"]);
        assert_eq!(
            c.s.reason().unwrap().to_string(),
            "exited with code 1; gave up after 2 restarts (max_restarts)"
        );
        assert_eq!((c.s.streak, c.s.restarts), (2, 2));
    }

    #[test]
    fn a_long_run_resets_the_count_in_a_row() {
        let mut c = Case::running(spec());
        c.s.streak = 2;
        c.now += RESTART_WINDOW;
        c.crash();
        assert!(matches!(c.s.phase, Phase::Backoff { .. }));
        assert_eq!(c.s.streak, 1);
    }

    #[test]
    fn the_restart_policy_decides_after_an_exit() {
        let mut c = Case::running(spec_from("restart = \"no\""));
        c.crash();
        assert_eq!(
            c.s.reason().unwrap().to_string(),
            "exited with code 1 (restart = \"no\")"
        );
        let on_failure = spec_from("restart = \"on-failure\"");
        let mut c = Case::running(on_failure.clone());
        c.ended(Some(42), Some(Exit::Code(0)));
        assert_eq!(c.s.phase, Phase::Idle);
        assert_eq!(
            c.s.doing().unwrap().to_string(),
            "exited with success code 0"
        );
        let mut c = Case::running(on_failure);
        c.crash();
        assert!(matches!(c.s.phase, Phase::Backoff { .. }));
    }

    #[test]
    fn a_oneshot_completes_or_fails() {
        for (exit, state) in [
            (Exit::Code(0), ServiceState::Completed),
            (Exit::Code(3), ServiceState::Failed),
        ] {
            let mut c = Case::spawned(spec_from("oneshot = true"), 4);
            c.ended(Some(4), Some(exit));
            assert_eq!(c.s.public(), state);
        }
    }

    #[test]
    fn success_exit_codes_decide_what_a_oneshot_exit_means() {
        for (exit, state) in [
            (Exit::Code(3), ServiceState::Completed),
            (Exit::Code(0), ServiceState::Completed),
            (Exit::Code(1), ServiceState::Failed),
            (Exit::Signal(15), ServiceState::Failed),
        ] {
            let spec = spec_from("oneshot = true\nsuccess_exit_codes = [0, 3]");
            let mut c = Case::spawned(spec, 4);
            c.ended(Some(4), Some(exit));
            assert_eq!(c.s.public(), state, "{exit:?}");
        }
        // Listing codes replaces the default: 0 is a failure unless listed.
        let mut c = Case::spawned(spec_from("oneshot = true\nsuccess_exit_codes = [3]"), 4);
        c.ended(Some(4), Some(Exit::Code(0)));
        assert_eq!(c.s.public(), ServiceState::Failed);
    }

    #[test]
    fn a_success_exit_stops_a_service_unless_it_restarts_always() {
        for policy in ["no", "on-failure"] {
            let spec = spec_from(&format!(
                "restart = \"{policy}\"\nsuccess_exit_codes = [0, 3]"
            ));
            let mut c = Case::running(spec);
            let fx = c.ended(Some(42), Some(Exit::Code(3)));
            assert_eq!(c.s.phase, Phase::Idle, "{policy}");
            assert_eq!(c.s.public(), ServiceState::Stopped);
            assert_eq!(c.s.doing(), Some(Activity::ExitedSuccess { code: 3 }));
            assert_eq!(
                c.s.doing().unwrap().to_string(),
                "exited with success code 3"
            );
            assert_eq!(kinds(&fx), ["exited", "stopped"]);
            assert!(!fx.iter().any(|e| matches!(e, Effect::RestartAfter(_))));
            // A start forgets it.
            c.on(Input::Start);
            assert_eq!(c.s.doing(), Some(Activity::Waiting));
        }
        let spec = spec_from("restart = \"always\"\nsuccess_exit_codes = [0, 3]");
        let mut c = Case::running(spec);
        let fx = c.ended(Some(42), Some(Exit::Code(3)));
        assert!(matches!(c.s.phase, Phase::Backoff { .. }));
        assert!(fx.iter().any(|e| matches!(e, Effect::RestartAfter(_))));
        // A code not listed is a failure, restarted under on-failure.
        let spec = spec_from("success_exit_codes = [3]");
        let mut c = Case::running(spec);
        c.ended(Some(42), Some(Exit::Code(0)));
        assert!(matches!(c.s.phase, Phase::Backoff { .. }));
    }

    #[test]
    fn an_exit_while_a_stop_waits_for_dependents_is_the_stop() {
        let mut c = Case::running(spec());
        c.on(Input::Stop);
        let fx = c.crash();
        assert_eq!(c.s.phase, Phase::Idle);
        assert!(!fx.iter().any(|e| matches!(e, Effect::RestartAfter(_))));
    }

    #[test]
    fn a_death_nobody_saw_is_said_so_with_the_recorded_pid() {
        let mut c = Case::in_phase(
            spec(),
            Phase::Running {
                health: Health::Offline,
                fails: 0,
            },
        );
        let fx = c.ended(Some(77), None);
        assert_eq!(
            notes(&fx)[0],
            "process 77 died while no supervisor was running"
        );
        assert!(matches!(c.s.phase, Phase::Backoff { .. }));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), BACKOFF_BASE);
        assert_eq!(backoff(3), BACKOFF_BASE * 4);
        assert_eq!(backoff(40), BACKOFF_CAP);
    }

    fn job(schedule: &str) -> Service {
        spec_from(&format!("oneshot = true\nschedule = {{ {schedule} }}"))
    }

    #[test]
    fn a_started_job_is_scheduled_not_run_unless_run_on_start() {
        let mut c = Case::new(job("every = \"1m\""));
        c.on(Input::Start);
        assert!(!c.s.run_now);
        c.on(Input::Schedule);
        assert_eq!(c.s.public(), ServiceState::Scheduled);
        assert!(c.s.ready() && c.s.settled_up());

        let mut c = Case::new(job("every = \"1m\", run_on_start = true"));
        c.on(Input::Start);
        assert!(c.s.run_now, "run_on_start asks for a run");
    }

    #[test]
    fn a_due_job_runs_and_its_result_becomes_the_last_run() {
        let mut c = Case::in_phase(job("every = \"1m\""), Phase::Scheduled);
        c.on(Input::Due { due: 100.0 });
        assert_eq!(c.s.phase, Phase::Waiting);
        assert!(c.s.run_now);
        c.on(Input::Launch { gen: 1 });
        c.spawn(4);
        assert_eq!(c.s.public(), ServiceState::Running);
        let fx = c.ended(Some(4), Some(Exit::Code(3)));
        assert!(kinds(&fx).contains(&"failed"), "{fx:?}");
        assert_eq!(
            c.s.phase,
            Phase::Scheduled,
            "a failed run keeps the schedule"
        );
        let last = c.s.last_run.clone().expect("a last run");
        assert!(!last.success);
        assert_eq!(last.exit, Some(Exit::Code(3)));
    }

    #[test]
    fn a_run_due_during_a_run_is_skipped_or_queued() {
        let mut c = Case::spawned(job("every = \"1s\""), 4);
        let fx = c.on(Input::Due { due: 1.0 });
        assert_eq!(kinds(&fx), ["skipped"]);
        assert!(!c.s.queued);

        let mut c = Case::spawned(job("every = \"1s\", concurrency = \"queue\""), 4);
        assert_eq!(kinds(&c.on(Input::Due { due: 1.0 })), ["queued"]);
        assert_eq!(
            kinds(&c.on(Input::Due { due: 2.0 })),
            ["skipped"],
            "one waits at most"
        );
        c.ended(Some(4), Some(Exit::Code(0)));
        assert_eq!(c.s.phase, Phase::Waiting, "the queued run goes at once");
        assert!(c.s.run_now && !c.s.queued);
    }

    #[test]
    fn pause_holds_a_job_until_run_now() {
        let mut c = Case::in_phase(job("every = \"1s\""), Phase::Scheduled);
        assert_eq!(kinds(&c.on(Input::Pause)), ["paused"]);
        c.on(Input::Stop);
        assert_eq!(c.s.phase, Phase::Idle);
        assert!(c.s.ready(), "a paused job does not block dependents");
        c.on(Input::Start);
        assert_eq!(c.s.phase, Phase::Idle, "a plain start leaves it paused");
        c.on(Input::Due { due: 1.0 });
        assert_eq!(c.s.phase, Phase::Idle);
        c.on(Input::RunNow);
        assert!(!c.s.paused && c.s.run_now);
        assert_eq!(c.s.phase, Phase::Waiting);
    }

    #[test]
    fn a_restart_naming_a_running_job_runs_it_again_once_it_is_down() {
        let running = Phase::Running {
            health: Health::Online,
            fails: 0,
        };
        let mut c = Case::in_phase(job("every = \"1h\""), running);
        c.on(Input::Restart);
        assert_eq!(c.s.goal, Goal::Restart);
        assert_eq!(kinds(&c.on(Input::RunNow)), ["run_now"]);
        assert!(c.s.run_now, "the run after the restart goes at once");
    }

    #[test]
    fn a_restart_of_everything_leaves_a_paused_job_paused() {
        let mut c = Case::in_phase(job("every = \"1s\""), Phase::Scheduled);
        c.on(Input::Pause);
        c.on(Input::Stop);
        c.on(Input::Restart);
        assert_eq!(c.s.phase, Phase::Idle);
        assert!(c.s.paused && !c.s.run_now);
    }

    #[test]
    fn a_missed_run_is_made_up_for_at_the_next_start() {
        let mut c = Case::new(job("every = \"1s\", catch_up = true"));
        c.s.missed_since = Some(10.0);
        let fx = c.on(Input::Start);
        assert_eq!(kinds(&fx), ["catch_up"]);
        assert!(c.s.run_now && c.s.missed_since.is_none());
    }
}

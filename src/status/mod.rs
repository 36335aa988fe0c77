//! The status model: what fpctl knows about each service, as data. The
//! supervisor produces it, `check` observes it (see [`observe`]), and every
//! surface only renders it: `check` and `check --json`, the HTTP API and its
//! stream, `/metrics`, `state.json`, `events.jsonl`, the control socket's
//! subscription. No I/O, no colour and no English here: the words for
//! people are in `output`, which implements `Display` for these types.
//!
//! One [`ServiceStatus`] per service, in one [`Snapshot`] of the stack. A
//! new field is added here (and to the table in `output` if people should
//! see it), and every surface has it.

mod chain;
mod event;
pub mod observe;
mod reason;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use chain::{AnalysedService, Analysis, StartRecord, StartedService};
pub use event::{Event, EventData, EventKind};
pub use reason::{
    Activity, BlockReason, Cause, DepState, Elsewhere, EngineStep, FailReason, Holder,
    Interruption, IoStep, Listener, NotReplaced, Note, PrepareError, Reason, Refused, Replaced,
};

/// The states of a service, exactly these (SPEC.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    Online,
    Degraded,
    Offline,
    Starting,
    Failed,
    Blocked,
    Stopped,
    Completed,
    /// A scheduled job between runs.
    Scheduled,
    /// A scheduled job while a run goes.
    Running,
}

impl ServiceState {
    pub const ALL: [ServiceState; 10] = [
        ServiceState::Online,
        ServiceState::Degraded,
        ServiceState::Offline,
        ServiceState::Starting,
        ServiceState::Failed,
        ServiceState::Blocked,
        ServiceState::Stopped,
        ServiceState::Completed,
        ServiceState::Scheduled,
        ServiceState::Running,
    ];

    /// The state's name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Online => "online",
            ServiceState::Degraded => "degraded",
            ServiceState::Offline => "offline",
            ServiceState::Starting => "starting",
            ServiceState::Failed => "failed",
            ServiceState::Blocked => "blocked",
            ServiceState::Stopped => "stopped",
            ServiceState::Completed => "completed",
            ServiceState::Scheduled => "scheduled",
            ServiceState::Running => "running",
        }
    }

    /// Counts as success for exit codes (a scheduled job's status says
    /// more: see [`ServiceStatus::is_ok`]).
    pub fn is_ok(self) -> bool {
        matches!(
            self,
            ServiceState::Online
                | ServiceState::Completed
                | ServiceState::Scheduled
                | ServiceState::Running
        )
    }
}

/// One service, as every surface shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceStatus {
    /// (Absent in `state.json`, where it is the key.)
    #[serde(default)]
    pub name: String,
    /// The name of its tier.
    #[serde(default)]
    pub tier: String,
    pub state: ServiceState,
    /// Its process (group leader), when one runs.
    pub pid: Option<i32>,
    /// The port of the config in force (of the supervisor, not of the file
    /// on disk).
    #[serde(default)]
    pub port: Option<u16>,
    /// Restarts fpctl did on its own (after an exit, a crash, a failed
    /// liveness check or `max_memory`) since the supervisor took the
    /// service over; requested ones count only in `restarts_total`.
    #[serde(default)]
    pub restarts: u32,
    /// Restarts in a row, the count `max_restarts` limits; `start` resets it.
    #[serde(default)]
    pub restarts_in_row: u32,
    /// Seconds since its process started (0.1 s).
    #[serde(default)]
    pub uptime_s: Option<f64>,
    /// In words, for people: the reason when failed or blocked, else what
    /// it is doing or the last probe's answer. Programs read `reason` and
    /// `activity`.
    #[serde(default)]
    pub detail: Option<String>,
    /// Why it is failed or blocked.
    #[serde(default)]
    pub reason: Option<Reason>,
    /// Latency of the last probe, ms (0.1 ms).
    #[serde(default)]
    pub latency_ms: Option<f64>,
    /// Answering on its port, but not started by fpctl.
    #[serde(default)]
    pub external: bool,
    /// The replicated service it is an instance of, and which one.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub replica: Option<u32>,
    /// Resident memory of its process group, at the last sample.
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    /// CPU use of its process group since the previous sample, % of one
    /// core (0.1 %).
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// Every restart under this supervisor: crashes and requested ones.
    #[serde(default)]
    pub restarts_total: u32,
    /// What it is doing, or its last probe's answer, as data (what `detail`
    /// says in words when it is neither failed nor blocked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
    /// The container it runs in (container services only): its name and
    /// image, and the engine's id while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerRef>,
    /// Its schedule (scheduled jobs only): the next run, the last one, and
    /// whether `stop` paused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleStatus>,
}

/// A scheduled job between and during its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleStatus {
    /// When it runs, in words: `every 30m`, `cron "*/15 * * * *"`.
    pub when: String,
    /// Unix time of its next run (none while paused or stopped).
    #[serde(default)]
    pub next_run: Option<f64>,
    /// `fpctl stop JOB` paused it until the next `fpctl start JOB`.
    #[serde(default)]
    pub paused: bool,
    /// A run came due while one ran and waits (`concurrency = "queue"`).
    #[serde(default)]
    pub queued: bool,
    /// A failed last run makes `check` fail.
    #[serde(default)]
    pub critical: bool,
    /// Unix time up to which a supervisor kept the schedule: the time the
    /// job last came due (run, skipped or queued), or the time its timer
    /// was set. A `catch_up` after a supervisor restart counts missed runs
    /// from here.
    #[serde(default)]
    pub seen_until: Option<f64>,
    /// The last run that ended.
    #[serde(default)]
    pub last_run: Option<LastRun>,
}

/// How a scheduled job's last run went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LastRun {
    /// Unix time its process started (none: it failed before one did).
    #[serde(default)]
    pub started: Option<f64>,
    /// Seconds it took (0.1 s).
    pub duration_s: f64,
    pub success: bool,
    /// How its process ended (none: it never ran, or ended unseen).
    #[serde(default)]
    pub exit: Option<crate::process::Exit>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailReason>,
}

impl ScheduleStatus {
    /// The last run failed and the job is `critical`.
    pub fn critical_failure(&self) -> bool {
        self.critical && self.last_run.as_ref().is_some_and(|r| !r.success)
    }
}

impl ServiceStatus {
    /// A service nothing is known of yet: stopped, no process.
    pub fn new(name: impl Into<String>, tier: impl Into<String>) -> ServiceStatus {
        ServiceStatus {
            name: name.into(),
            tier: tier.into(),
            state: ServiceState::Stopped,
            pid: None,
            port: None,
            restarts: 0,
            restarts_in_row: 0,
            uptime_s: None,
            detail: None,
            reason: None,
            latency_ms: None,
            external: false,
            group: None,
            replica: None,
            rss_bytes: None,
            cpu_percent: None,
            restarts_total: 0,
            activity: None,
            container: None,
            schedule: None,
        }
    }

    /// Counts as success for `check`'s exit code: a scheduled job by its
    /// last run, and that only when it is `critical`; any other service by
    /// its state.
    pub fn is_ok(&self) -> bool {
        match &self.schedule {
            Some(s) => !s.critical_failure(),
            None => self.state.is_ok(),
        }
    }
}

/// The container a service runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContainerRef {
    /// Its name (`fpctl-MARKER-SERVICE`).
    pub name: String,
    /// The image it runs.
    pub image: String,
    /// The engine's id of the container, once it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// How many services are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub online: usize,
    pub degraded: usize,
    pub offline: usize,
    pub starting: usize,
    pub failed: usize,
    pub blocked: usize,
    pub stopped: usize,
    pub completed: usize,
    #[serde(default)]
    pub scheduled: usize,
    #[serde(default)]
    pub running: usize,
}

impl Summary {
    pub fn of<'a>(states: impl IntoIterator<Item = &'a ServiceStatus>) -> Summary {
        let mut s = Summary::default();
        for st in states {
            *s.count_mut(st.state) += 1;
        }
        s
    }

    pub fn count(&self, state: ServiceState) -> usize {
        match state {
            ServiceState::Online => self.online,
            ServiceState::Degraded => self.degraded,
            ServiceState::Offline => self.offline,
            ServiceState::Starting => self.starting,
            ServiceState::Failed => self.failed,
            ServiceState::Blocked => self.blocked,
            ServiceState::Stopped => self.stopped,
            ServiceState::Completed => self.completed,
            ServiceState::Scheduled => self.scheduled,
            ServiceState::Running => self.running,
        }
    }

    fn count_mut(&mut self, state: ServiceState) -> &mut usize {
        match state {
            ServiceState::Online => &mut self.online,
            ServiceState::Degraded => &mut self.degraded,
            ServiceState::Offline => &mut self.offline,
            ServiceState::Starting => &mut self.starting,
            ServiceState::Failed => &mut self.failed,
            ServiceState::Blocked => &mut self.blocked,
            ServiceState::Stopped => &mut self.stopped,
            ServiceState::Completed => &mut self.completed,
            ServiceState::Scheduled => &mut self.scheduled,
            ServiceState::Running => &mut self.running,
        }
    }
}

/// The whole stack at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Snapshot {
    /// In the order of services.toml.
    pub services: Vec<ServiceStatus>,
    pub summary: Summary,
    /// The supervisor's pid, when one runs.
    #[serde(default)]
    pub supervisor_pid: Option<i32>,
    /// `[project] name`.
    #[serde(default)]
    pub project: String,
}

impl Snapshot {
    pub fn new(
        project: impl Into<String>,
        supervisor_pid: Option<i32>,
        services: Vec<ServiceStatus>,
    ) -> Snapshot {
        Snapshot {
            summary: Summary::of(&services),
            services,
            supervisor_pid,
            project: project.into(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&ServiceStatus> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// One health probe's outcome, as kept in each service's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeSample {
    /// Unix time, seconds.
    pub ts: f64,
    /// healthy, unhealthy or down.
    pub verdict: String,
    pub latency_ms: f64,
}

/// One line of progress of `start`, `restart`, `stop` or `reload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Progress {
    pub service: String,
    pub state: ServiceState,
    /// In words (secrets masked).
    pub detail: Option<String>,
    /// What it is doing, as data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
    pub elapsed_ms: u64,
}

/// A service a request could not bring where it was asked to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    pub service: String,
    pub state: ServiceState,
    /// The reason in words (secrets masked).
    pub reason: String,
    /// Its log.
    pub log: std::path::PathBuf,
}

/// Round to one decimal, as every surface shows times and percentages.
pub fn tenth(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

//! One entry of the event history: what happened to a service, when, and
//! the facts of it as data. `events.jsonl`, `fpctl events --json`, the API
//! and the subscriptions carry the same [`Event`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::reason::{BlockReason, Cause, FailReason};
use crate::process::Exit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Unix time, seconds.
    pub ts: f64,
    pub service: String,
    pub kind: EventKind,
    /// In words, for people (secrets masked).
    pub detail: String,
    /// The facts, for programs. Absent in events an earlier fpctl wrote:
    /// those have only their words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<EventData>,
}

/// What happened to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Spawned,
    Exited,
    Online,
    Degraded,
    Offline,
    /// A restart is scheduled after a crash.
    Restart,
    Failed,
    Blocked,
    Completed,
    Stopped,
    Adopted,
    External,
    /// Over `max_memory`.
    Memory,
    /// Changed, added or removed by a reload.
    Reload,
    /// Restarted because a watched file changed.
    Watch,
    /// A scheduled run came due while the previous one ran, and was skipped.
    Skipped,
    /// A scheduled run came due while the previous one ran, and waits.
    Queued,
    /// `start JOB`: a scheduled job runs now (and its schedule resumes).
    RunNow,
    /// `stop JOB`: a scheduled job's schedule is paused.
    Paused,
    /// Runs came due while no supervisor ran: one runs now (`catch_up`).
    CatchUp,
    /// Written by a newer fpctl.
    #[serde(other)]
    Other,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Spawned => "spawned",
            EventKind::Exited => "exited",
            EventKind::Online => "online",
            EventKind::Degraded => "degraded",
            EventKind::Offline => "offline",
            EventKind::Restart => "restart",
            EventKind::Failed => "failed",
            EventKind::Blocked => "blocked",
            EventKind::Completed => "completed",
            EventKind::Stopped => "stopped",
            EventKind::Adopted => "adopted",
            EventKind::External => "external",
            EventKind::Memory => "memory",
            EventKind::Reload => "reload",
            EventKind::Watch => "watch",
            EventKind::Skipped => "skipped",
            EventKind::Queued => "queued",
            EventKind::RunNow => "run_now",
            EventKind::Paused => "paused",
            EventKind::CatchUp => "catch_up",
            EventKind::Other => "other",
        }
    }
}

/// The facts of an event, tagged with what they are about (`"what":
/// "spawned"`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum EventData {
    /// spawned: its process and command (for a container service, the
    /// container's command, empty for the image's own) and its container.
    Spawned {
        pid: i32,
        command: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<Box<super::ContainerRef>>,
    },
    /// exited: its process and how (none: it died while no supervisor ran).
    Exited { pid: i32, exit: Option<Exit> },
    /// restart: the attempt in a row, the bound, the delay and why.
    Restart {
        attempt: u32,
        max_restarts: u32,
        delay_ms: u64,
        why: Cause,
    },
    /// failed.
    Failed { reason: FailReason },
    /// blocked.
    Blocked { reason: BlockReason },
    /// completed: a oneshot's exit.
    Completed { exit: Exit },
    /// stopped: whether it starts again (a restart).
    Stopped { again: bool },
    /// adopted: the process taken over.
    Adopted { pid: i32 },
    /// memory: over `max_memory`.
    Memory { rss: u64, limit: u64 },
    /// watch: the first file that changed, relative to its dir.
    Watch { path: std::path::PathBuf },
    /// online, degraded, offline, external: the probe's answer.
    Probe { answer: String },
    /// reload: what changed.
    Reload { change: crate::control::Change },
    /// skipped, queued: the time the run came due (Unix seconds).
    Overlap { due: f64 },
    /// run_now (`resumed`: the schedule was paused), paused.
    Schedule { resumed: bool },
    /// catch_up: when the job last came due before (Unix seconds).
    CatchUp { last_due: f64 },
}

impl EventData {
    /// The same facts with `mask` applied to every text in them (secrets).
    pub fn masked(self, mask: impl Fn(&str) -> String) -> EventData {
        match self {
            EventData::Spawned {
                pid,
                command,
                container,
            } => EventData::Spawned {
                pid,
                command: mask(&command),
                container,
            },
            EventData::Restart {
                attempt,
                max_restarts,
                delay_ms,
                why,
            } => EventData::Restart {
                attempt,
                max_restarts,
                delay_ms,
                why: why.masked(mask),
            },
            EventData::Failed { reason } => EventData::Failed {
                reason: reason.masked(mask),
            },
            EventData::Probe { answer } => EventData::Probe {
                answer: mask(&answer),
            },
            other => other,
        }
    }
}

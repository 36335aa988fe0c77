//! Why a service is where it is, as data: why it failed or is blocked
//! ([`Reason`]), what it is doing ([`Activity`]), and the lines fpctl writes
//! into its log ([`Note`]). `output` words them; [`Reason::masked`] is the
//! one place secrets are taken out of them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::RestartPolicy;
use crate::process::Exit;

/// Why a service is failed or blocked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Reason {
    Failed(FailReason),
    Blocked(BlockReason),
}

/// Why fpctl gave up on a service. Each variant keeps the fields in words
/// that earlier versions had (`message`, `why`, `elsewhere`), beside the
/// facts as data (`what`…, `cause`, `listeners`), so that readers of either
/// find theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailReason {
    /// The port check, setup or spawn failed.
    Prepare {
        /// In words.
        message: String,
        #[serde(flatten)]
        error: PrepareError,
    },
    /// Not healthy within `start_timeout`.
    StartTimeout {
        after_ms: u64,
        /// The last probe's answer.
        last_probe: String,
        /// Where its processes listen instead of its port, in words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        elsewhere: Option<String>,
        /// The same, as data.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        listeners: Option<Elsewhere>,
    },
    /// It went down, and the restart policy says not to restart.
    NotRestarted {
        /// In words.
        why: String,
        cause: Cause,
        policy: RestartPolicy,
    },
    /// Restarted `max_restarts` times in a row.
    GaveUp {
        /// In words.
        why: String,
        cause: Cause,
        max_restarts: u32,
    },
    /// A oneshot that exited with a failure.
    Oneshot { exit: Exit },
    /// As an earlier supervisor recorded it (in words).
    Recorded { message: String },
}

/// A service's processes listen on other ports than its own (the usual
/// cause of a start timeout: the program ignores `PORT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Elsewhere {
    /// Each process that listens, and where.
    pub listeners: Vec<Listener>,
    /// The port it should listen on.
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Listener {
    pub pid: i32,
    pub ports: Vec<u16>,
}

/// Why a running service went down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Cause {
    /// Its process exited.
    Exit { exit: Exit },
    /// It died while no supervisor ran: nobody saw how.
    Unsupervised,
    /// Its health check failed `retries` times in a row; fpctl stopped it.
    Liveness { retries: u32, last_probe: String },
    /// Over `max_memory`; fpctl stopped it.
    Memory { rss: u64, limit: u64 },
}

/// What went wrong before a service's process could run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum PrepareError {
    /// Something that does not answer as the service should holds its port.
    PortTaken {
        port: u16,
        /// The service whose port it is.
        service: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder: Option<Holder>,
        /// Why `--replace` left it alone, when it was asked to stop it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_replaced: Option<NotReplaced>,
        /// Whether the holder runs the service's own command (then
        /// `--replace` would stop it).
        #[serde(default)]
        same_command: bool,
    },
    /// A setup step exited with a failure.
    SetupStep { step: String, exit: Exit },
    /// fpctl itself could not do a step: the step and the system's error.
    Io { step: IoStep, error: String },
    /// A container service's image could not be had: not on this machine
    /// and the pull failed, or its build failed.
    Image {
        image: String,
        /// The build context, when it is built.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        build: Option<String>,
        /// The command that failed, and how.
        step: String,
        exit: Exit,
    },
    /// The container engine could not do what fpctl asked (none answers,
    /// or it refused a step): the step and its answer.
    Engine { step: EngineStep, error: String },
}

/// A step fpctl asks of the container engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EngineStep {
    /// Find an engine that answers.
    Connect,
    /// List the service's containers left by an earlier run.
    Find,
    /// Remove them.
    Remove,
    /// Ask whether the image is here.
    Inspect,
}

/// Why `--replace` left a process on the port alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotReplaced {
    /// It is one of this supervisor's own processes.
    OwnProcess,
    /// It runs another command than the service's: not a stale copy.
    OtherCommand,
}

/// A stale copy of a service that `--replace` stopped: the process, its
/// command, and every process signalled (it and its descendants, never a
/// group or session), with the signals sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub pid: i32,
    pub command: String,
    pub port: u16,
    pub descendants: Vec<i32>,
    /// `SIGTERM`, or `SIGTERM, then SIGKILL`.
    pub signals: Vec<&'static str>,
}

/// A process that holds a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Holder {
    pub pid: i32,
    pub command: String,
}

/// A step of fpctl's own that can fail for want of the system's help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IoStep {
    OpenLog,
    Spawn,
    RunSetup,
    RecordSetup,
}

/// Why a service cannot start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BlockReason {
    /// A dependency gave up, or is stopped or disabled.
    Dependency { service: String, state: DepState },
    /// A service of an earlier tier gave up.
    EarlierTier { service: String, state: DepState },
}

/// What a blocker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DepState {
    Failed,
    Blocked,
    Stopped,
    Disabled,
}

impl DepState {
    pub fn as_str(self) -> &'static str {
        match self {
            DepState::Failed => "failed",
            DepState::Blocked => "blocked",
            DepState::Stopped => "stopped",
            DepState::Disabled => "disabled",
        }
    }
}

/// What a service that is neither failed nor blocked is doing, or what its
/// last probe said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "doing", rename_all = "snake_case")]
pub enum Activity {
    /// Wanted, waiting for its dependencies or an earlier tier.
    Waiting,
    /// Its setup runs while its dependencies come up.
    SettingUpAhead,
    /// Port check and setup.
    Preparing,
    /// Spawned, waiting for its health check.
    Launched {
        pid: i32,
    },
    /// Up, with no health check to ask.
    Running,
    /// The last probe's answer.
    Probed {
        answer: String,
    },
    /// Taken over from an earlier supervisor.
    Adopted,
    /// Healthy on its port, though fpctl did not start it.
    External {
        answer: String,
    },
    /// Went down; restarts after the backoff.
    Restarting {
        why: Cause,
        delay_ms: u64,
    },
    Stopping,
    /// A oneshot's end.
    Exited {
        exit: Exit,
    },
    /// A long-running service that exited with one of its
    /// `success_exit_codes`: stopped, not restarted (unless `always`).
    ExitedSuccess {
        code: i32,
    },
    /// `disabled = true`.
    Disabled,
    /// In services.toml on disk, not in the config the supervisor runs.
    NotInRunningConfig,
    /// Its setup has run for `secs`: the step, and the last line it wrote.
    StillSettingUp {
        secs: u64,
        step: String,
        last: Option<String>,
    },
    /// It has waited for its health check for `secs`.
    StillWaiting {
        secs: u64,
        last_probe: Option<String>,
    },
    /// A start that ended with it stopped.
    Interrupted {
        by: Interruption,
    },
}

/// What cut a start short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interruption {
    /// `fpctl stop`.
    Stop,
    /// A signal to the supervisor.
    Signal,
    /// Something else stopped it.
    Other,
}

/// A line fpctl writes into a service's log, as data.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    Starting {
        command: String,
    },
    Failed(FailReason),
    Exited {
        pid: i32,
        exit: Option<Exit>,
    },
    Restarting {
        attempt: u32,
        max: u32,
        delay_ms: u64,
    },
    /// A `restart` whose setup failed: the old process keeps serving.
    RestartRefused(Refused),
    Watched {
        path: std::path::PathBuf,
    },
    Replaced(Replaced),
    /// A container of the service that an earlier run left, removed.
    RemovedLeftover {
        id: String,
        name: String,
    },
    /// The service's running container, started with the same settings by
    /// an earlier supervisor, taken over.
    AdoptingContainer {
        name: String,
        command: String,
    },
}

/// A restart that did not happen: its setup failed, and the process that
/// ran (if one did) keeps running the previous version.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub error: PrepareError,
    pub keeps: Option<i32>,
}

impl Activity {
    pub fn masked(self, mask: impl Fn(&str) -> String) -> Activity {
        match self {
            Activity::Probed { answer } => Activity::Probed {
                answer: mask(&answer),
            },
            Activity::External { answer } => Activity::External {
                answer: mask(&answer),
            },
            Activity::Restarting { why, delay_ms } => Activity::Restarting {
                why: why.masked(mask),
                delay_ms,
            },
            Activity::StillSettingUp { secs, step, last } => Activity::StillSettingUp {
                secs,
                step: mask(&step),
                last: last.map(|l| mask(&l)),
            },
            Activity::StillWaiting { secs, last_probe } => Activity::StillWaiting {
                secs,
                last_probe: last_probe.map(|l| mask(&l)),
            },
            other => other,
        }
    }
}

impl Reason {
    /// The same reason with `mask` applied to every text in it (secrets).
    pub fn masked(self, mask: impl Fn(&str) -> String) -> Reason {
        match self {
            Reason::Blocked(b) => Reason::Blocked(b),
            Reason::Failed(f) => Reason::Failed(f.masked(mask)),
        }
    }
}

impl FailReason {
    pub fn prepare(error: PrepareError) -> FailReason {
        FailReason::Prepare {
            message: error.to_string(),
            error,
        }
    }

    pub fn start_timeout(
        after_ms: u64,
        last_probe: String,
        listeners: Option<Elsewhere>,
    ) -> FailReason {
        FailReason::StartTimeout {
            after_ms,
            last_probe,
            elsewhere: listeners.as_ref().map(Elsewhere::to_string),
            listeners,
        }
    }

    pub fn not_restarted(cause: Cause, policy: RestartPolicy) -> FailReason {
        FailReason::NotRestarted {
            why: cause.to_string(),
            cause,
            policy,
        }
    }

    pub fn gave_up(cause: Cause, max_restarts: u32) -> FailReason {
        FailReason::GaveUp {
            why: cause.to_string(),
            cause,
            max_restarts,
        }
    }

    pub fn masked(self, mask: impl Fn(&str) -> String) -> FailReason {
        match self {
            FailReason::Prepare { message, error } => FailReason::Prepare {
                message: mask(&message),
                error: error.masked(&mask),
            },
            FailReason::Recorded { message } => FailReason::Recorded {
                message: mask(&message),
            },
            FailReason::StartTimeout {
                after_ms,
                last_probe,
                elsewhere,
                listeners,
            } => FailReason::StartTimeout {
                after_ms,
                last_probe: mask(&last_probe),
                elsewhere,
                listeners,
            },
            FailReason::NotRestarted { why, cause, policy } => FailReason::NotRestarted {
                why: mask(&why),
                cause: cause.masked(&mask),
                policy,
            },
            FailReason::GaveUp {
                why,
                cause,
                max_restarts,
            } => FailReason::GaveUp {
                why: mask(&why),
                cause: cause.masked(&mask),
                max_restarts,
            },
            other @ FailReason::Oneshot { .. } => other,
        }
    }
}

impl Cause {
    pub fn masked(self, mask: impl Fn(&str) -> String) -> Cause {
        match self {
            Cause::Liveness {
                retries,
                last_probe,
            } => Cause::Liveness {
                retries,
                last_probe: mask(&last_probe),
            },
            other => other,
        }
    }
}

impl PrepareError {
    pub fn masked(self, mask: impl Fn(&str) -> String) -> PrepareError {
        match self {
            PrepareError::PortTaken {
                port,
                service,
                holder,
                not_replaced,
                same_command,
            } => PrepareError::PortTaken {
                port,
                service,
                holder: holder.map(|h| Holder {
                    pid: h.pid,
                    command: mask(&h.command),
                }),
                not_replaced,
                same_command,
            },
            PrepareError::SetupStep { step, exit } => PrepareError::SetupStep {
                step: mask(&step),
                exit,
            },
            PrepareError::Io { step, error } => PrepareError::Io {
                step,
                error: mask(&error),
            },
            PrepareError::Image {
                image,
                build,
                step,
                exit,
            } => PrepareError::Image {
                image,
                build,
                step: mask(&step),
                exit,
            },
            PrepareError::Engine { step, error } => PrepareError::Engine {
                step,
                error: mask(&error),
            },
        }
    }
}

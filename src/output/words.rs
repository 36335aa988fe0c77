//! The words for the status model: `Display` for every reason, activity,
//! note and event fact. The model (`status`) holds data only; whoever shows
//! it to people formats it, and this is the one place the wording lives.

use std::fmt::{self, Display, Formatter};
use std::time::Duration;

use super::{bytes_short, duration_short};
use crate::config::RestartPolicy;
use crate::status::{
    Activity, BlockReason, Cause, ContainerRef, Elsewhere, EngineStep, EventData, FailReason,
    Interruption, IoStep, NotReplaced, Note, PrepareError, Reason, Refused, Replaced,
    ServiceStatus,
};

fn ms(ms: u64) -> String {
    duration_short(Duration::from_millis(ms))
}

impl ServiceStatus {
    /// The words of the detail column: why it failed or is blocked, else
    /// what it is doing or its last probe's answer.
    pub fn describe(&self) -> Option<String> {
        let own = match (&self.reason, &self.activity) {
            (Some(r), _) => Some(r.to_string()),
            (None, Some(a)) => Some(a.to_string()),
            (None, None) => None,
        };
        match &self.schedule {
            None => own,
            Some(s) => {
                let words = s.to_string();
                Some(match own.filter(|o| !o.is_empty()) {
                    Some(o) if !words.is_empty() => format!("{o}; {words}"),
                    Some(o) => o,
                    None => words,
                })
                .filter(|w| !w.is_empty())
            }
        }
    }
}

/// A Unix time as the local clock shows it, `14:05:07`.
pub fn clock(ts: f64) -> String {
    match jiff::Timestamp::from_microsecond((ts * 1e6) as i64) {
        Ok(t) => t
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%H:%M:%S")
            .to_string(),
        Err(_) => "?".into(),
    }
}

impl Display for crate::status::ScheduleStatus {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.paused {
            parts.push("paused until `start`".to_string());
        } else if let Some(next) = self.next_run {
            parts.push(format!("next run {}", clock(next)));
        }
        if self.queued {
            parts.push("a run waits".into());
        }
        if let Some(last) = &self.last_run {
            parts.push(last.to_string());
        }
        f.write_str(&parts.join("; "))
    }
}

impl Display for crate::status::LastRun {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let took = duration_short(Duration::from_secs_f64(self.duration_s.max(0.0)));
        let at = self.started.map(clock).unwrap_or_else(|| "start".into());
        if self.success {
            write!(f, "last run ok at {at} ({took})")
        } else {
            write!(f, "last run failed at {at} ({took})")?;
            match (&self.reason, &self.exit) {
                (Some(r), _) => write!(f, ": {r}"),
                (None, Some(e)) => write!(f, ": {e}"),
                (None, None) => Ok(()),
            }
        }
    }
}

/// How many characters of a container's id people are shown, as `docker
/// ps` shows them.
const SHORT_ID: usize = 12;

/// `image redis:7, container 0123456789ab` (the image alone until the
/// engine gave the container's id).
impl Display for ContainerRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "image {}", self.image)?;
        match &self.id {
            Some(id) => {
                let short: String = id.chars().take(SHORT_ID).collect();
                write!(f, ", container {short}")
            }
            None => Ok(()),
        }
    }
}

impl Display for Reason {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Failed(r) => r.fmt(f),
            Reason::Blocked(r) => r.fmt(f),
        }
    }
}

impl Display for FailReason {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Prepare { error, .. } => error.fmt(f),
            FailReason::Recorded { message } => f.write_str(message),
            FailReason::StartTimeout {
                after_ms,
                last_probe,
                listeners: elsewhere,
                ..
            } => {
                write!(
                    f,
                    "not healthy after {} (start_timeout); last probe: {last_probe}",
                    ms(*after_ms)
                )?;
                match elsewhere {
                    Some(e) => write!(f, "; {e}"),
                    None => Ok(()),
                }
            }
            FailReason::NotRestarted {
                cause: why, policy, ..
            } => {
                let policy = match policy {
                    RestartPolicy::No => "restart = \"no\"",
                    _ => "restart = \"on-failure\" does not restart a clean exit",
                };
                write!(f, "{why} ({policy})")
            }
            FailReason::GaveUp {
                cause: why,
                max_restarts,
                ..
            } => write!(
                f,
                "{why}; gave up after {max_restarts} restart{} (max_restarts)",
                if *max_restarts == 1 { "" } else { "s" }
            ),
            FailReason::Oneshot { exit } => exit.fmt(f),
        }
    }
}

impl Display for Elsewhere {
    /// `pid 7 listens on 3000, not 3311`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let each: Vec<String> = self
            .listeners
            .iter()
            .map(|l| {
                let ports: Vec<String> = l.ports.iter().map(u16::to_string).collect();
                format!("pid {} listens on {}", l.pid, ports.join(", "))
            })
            .collect();
        write!(f, "{}, not {}", each.join("; "), self.port)
    }
}

impl Display for Cause {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Exit { exit } => exit.fmt(f),
            Cause::Unsupervised => f.write_str("died while no supervisor was running"),
            Cause::Liveness {
                retries,
                last_probe,
            } => write!(f, "health check failed {retries} times: {last_probe}"),
            Cause::Memory { rss, limit } => write!(
                f,
                "memory {} over max_memory {}",
                bytes_short(*rss),
                bytes_short(*limit)
            ),
        }
    }
}

impl Display for PrepareError {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            PrepareError::PortTaken {
                port,
                service,
                holder,
                not_replaced,
                same_command,
            } => {
                write!(f, "port {port} is already in use")?;
                if let Some(h) = holder {
                    write!(f, " by pid {} ({})", h.pid, h.command)?;
                }
                write!(f, ", and it does not answer as \"{service}\" should")?;
                let another = format!("give \"{service}\" another port in services.toml");
                match (not_replaced, same_command, holder) {
                    (Some(NotReplaced::OwnProcess), ..) => write!(
                        f,
                        "; left alone: it is a process of this supervisor; {another}"
                    ),
                    (Some(NotReplaced::OtherCommand), ..) => write!(
                        f,
                        "; left alone: its command line is not the command of \"{service}\", so it is not a stale copy; {another}"
                    ),
                    (None, true, _) => f.write_str(
                        "; it runs this service's own command, so it is likely a stale copy: \
                         `fpctl start --replace` stops it and starts this one (or set \
                         replace_stale = true)",
                    ),
                    (None, false, Some(_)) => write!(f, "; stop that process, or {another}"),
                    (None, false, None) => write!(
                        f,
                        "; `fpctl ports` shows what holds it; stop that, or {another}"
                    ),
                }
            }
            PrepareError::SetupStep { step, exit } => write!(f, "setup step `{step}` {exit}"),
            PrepareError::Io { step, error } => {
                let what = match step {
                    IoStep::OpenLog => "cannot open its log",
                    IoStep::Spawn => "cannot start it",
                    IoStep::RunSetup => "cannot run its setup",
                    IoStep::RecordSetup => "cannot record its setup",
                };
                write!(f, "{what}: {error}")
            }
            PrepareError::Image {
                image,
                build: Some(dir),
                step,
                exit,
            } => write!(f, "cannot build image \"{image}\" from {dir}: `{step}` {exit}"),
            PrepareError::Image {
                image,
                build: None,
                step,
                exit,
            } => write!(
                f,
                "image \"{image}\" is not on this machine and cannot be pulled: `{step}` {exit}; pull or build it, or correct the name"
            ),
            PrepareError::Engine { step, error } => {
                let what = match step {
                    EngineStep::Connect => "no container engine",
                    EngineStep::Find => "cannot list its containers",
                    EngineStep::Remove => "cannot remove its leftover containers",
                    EngineStep::Inspect => "cannot inspect its image",
                };
                write!(f, "{what}: {error}")
            }
        }
    }
}

impl Display for BlockReason {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            BlockReason::Dependency { service, state } => {
                write!(f, "dependency \"{service}\" is {}", state.as_str())
            }
            BlockReason::EarlierTier { service, state } => {
                write!(f, "\"{service}\" in an earlier tier is {}", state.as_str())
            }
        }
    }
}

impl Display for Activity {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Activity::Waiting => f.write_str("waiting for dependencies"),
            Activity::SettingUpAhead => {
                f.write_str("setting up (its dependencies are not ready yet)")
            }
            Activity::Preparing => f.write_str("preparing (port check, setup)"),
            Activity::Launched { pid } => write!(f, "launched as pid {pid}, waiting for health"),
            Activity::Running => f.write_str("running"),
            Activity::Probed { answer } => f.write_str(answer),
            Activity::Adopted => f.write_str("adopted"),
            Activity::External { answer } if answer.is_empty() => f.write_str("external"),
            Activity::External { answer } => write!(f, "external: {answer}"),
            Activity::Restarting { why, delay_ms } => {
                write!(f, "{why}; restarting in {}", ms(*delay_ms))
            }
            Activity::Stopping => f.write_str("stopping"),
            Activity::Exited { exit } => exit.fmt(f),
            Activity::ExitedSuccess { code } => write!(f, "exited with success code {code}"),
            Activity::Disabled => f.write_str("disabled"),
            Activity::NotInRunningConfig => {
                f.write_str("not in the running config; `fpctl reload` applies it")
            }
            Activity::StillSettingUp { secs, step, last } => {
                write!(f, "setting up ({secs}s): {step}")?;
                match last {
                    Some(l) => write!(f, ": {l}"),
                    None => Ok(()),
                }
            }
            Activity::StillWaiting { secs, last_probe } => write!(
                f,
                "still waiting ({secs}s): {}",
                last_probe.as_deref().unwrap_or("no answer yet")
            ),
            Activity::Interrupted { by } => f.write_str(match by {
                Interruption::Stop => "stopped by `fpctl stop` while starting",
                Interruption::Signal => "the supervisor was told to stop while starting",
                Interruption::Other => "stopped while starting",
            }),
        }
    }
}

impl Display for Note {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Note::Starting { command } => write!(f, "starting: {command}"),
            Note::Failed(reason) => write!(f, "failed: {reason}"),
            Note::Exited { pid, exit } => match exit {
                Some(exit) => write!(f, "process {pid} {exit}"),
                None => write!(f, "process {pid} {}", Cause::Unsupervised),
            },
            Note::Restarting {
                attempt,
                max,
                delay_ms,
            } => write!(f, "restart {attempt} of {max} in {}", ms(*delay_ms)),
            Note::RestartRefused(refused) => write!(f, "restart refused: {refused}"),
            Note::Watched { path } => {
                write!(f, "{} changed: restarting", path.display())
            }
            Note::Replaced(r) => r.fmt(f),
            Note::RemovedLeftover { id, name } => {
                let id: String = id.chars().take(12).collect();
                write!(f, "removed container {id} ({name}) left by an earlier run")
            }
            Note::AdoptingContainer { name, command } => write!(
                f,
                "adopting the running container {name} (same settings): {command}"
            ),
        }
    }
}

impl Display for Replaced {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let whom = match self.descendants.len() {
            0 => format!("pid {}", self.pid),
            n => {
                let pids: Vec<String> = self.descendants.iter().map(i32::to_string).collect();
                format!(
                    "pid {} and its {n} descendant{} (pid {})",
                    self.pid,
                    if n == 1 { "" } else { "s" },
                    pids.join(", ")
                )
            }
        };
        write!(
            f,
            "replaced a stale copy: pid {} ({}) held port {} without answering; signalled {whom} (not its process group) with {}",
            self.pid,
            self.command,
            self.port,
            self.signals.join(", then ")
        )
    }
}

impl Display for Refused {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)?;
        match self.keeps {
            Some(pid) => write!(f, "; pid {pid} keeps running the previous version"),
            None => Ok(()),
        }
    }
}

impl Display for EventData {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            EventData::Spawned {
                pid,
                command,
                container: Some(c),
            } => {
                write!(f, "pid {pid}: container {} from image {}", c.name, c.image)?;
                match command.as_str() {
                    "" => Ok(()),
                    command => write!(f, ": {command}"),
                }
            }
            EventData::Spawned {
                pid,
                command,
                container: None,
            } => write!(f, "pid {pid}: {command}"),
            EventData::Exited { pid, exit } => match exit {
                Some(exit) => write!(f, "pid {pid} {exit}"),
                None => write!(f, "pid {pid} {}", Cause::Unsupervised),
            },
            EventData::Restart {
                attempt,
                max_restarts,
                delay_ms,
                why,
            } => write!(
                f,
                "restart {attempt} of {max_restarts} in {}: {why}",
                ms(*delay_ms)
            ),
            EventData::Failed { reason } => reason.fmt(f),
            EventData::Blocked { reason } => reason.fmt(f),
            EventData::Completed { exit } => exit.fmt(f),
            EventData::Stopped { again } => f.write_str(if *again { "for a restart" } else { "" }),
            EventData::Adopted { pid } => write!(f, "pid {pid}"),
            EventData::Memory { rss, limit } => Cause::Memory {
                rss: *rss,
                limit: *limit,
            }
            .fmt(f),
            EventData::Watch { path } => write!(f, "{} changed: restarting", path.display()),
            EventData::Probe { answer } => f.write_str(answer),
            EventData::Reload { change } => change.fmt(f),
            EventData::Overlap { due } => {
                write!(f, "run due at {} while the last one runs", clock(*due))
            }
            EventData::Schedule { resumed: true } => f.write_str("schedule resumed"),
            EventData::Schedule { resumed: false } => f.write_str(""),
            EventData::CatchUp { last_due } => {
                write!(f, "runs were missed since {}", clock(*last_due))
            }
        }
    }
}

impl Display for crate::control::Change {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        use crate::control::ChangeKind;
        match self.kind {
            ChangeKind::Added => write!(f, "+ {}", self.service),
            ChangeKind::Removed => write!(f, "- {}", self.service),
            ChangeKind::Changed => {
                let all: Vec<&str> = self
                    .reasons
                    .iter()
                    .chain(&self.live)
                    .map(String::as_str)
                    .collect();
                let restart = if self.reasons.is_empty() {
                    "; no restart"
                } else {
                    ""
                };
                write!(
                    f,
                    "~ {} ({} changed{restart})",
                    self.service,
                    all.join(", ")
                )
            }
        }
    }
}

impl Display for crate::control::ApiChange {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let off = |a: &Option<String>| a.clone().unwrap_or_else(|| "off".into());
        let mut parts = Vec::new();
        if self.from != self.to {
            parts.push(format!("api: {} -> {}", off(&self.from), off(&self.to)));
        }
        if self.token {
            parts.push("api_token changed".into());
        }
        if let Some(now) = self.read_only {
            parts.push(format!("api_read_only: {} -> {now}", !now));
        }
        write!(f, "~ [project] {}", parts.join(", "))
    }
}

//! The `fpctl_*` tools: their arguments (with JSON Schemas), annotations and
//! what each does. Each answers the status model's types as JSON
//! (`structuredContent`) plus a short text; a failed operation or a bad
//! argument is a tool error (`isError`), never a protocol error.

// A step's error is the tool's answer, built once per call and returned as
// is: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use rmcp::handler::server::tool::schema_for_input;
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam, Tool, ToolAnnotations};
use rmcp::service::{RequestContext, RoleServer};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::backend::{self, Backend};
use super::bound;
use crate::config::{defaults, Config, Probe};
use crate::control::{ErrorKind, Request, Response, Update};
use crate::health::{self, Verdict};
use crate::status::{ServiceState, ServiceStatus, Snapshot, Summary};

/// Lines of log a `fpctl_logs` answer carries at most.
const MAX_LOG_LINES: usize = 2000;
/// Lines of each service's log read back when `grep` or `since` filters
/// them (the newest).
const SCAN_LINES: usize = 50_000;
/// Events an answer carries at most.
const MAX_EVENTS: usize = 2000;
/// The longest wait, in seconds.
const MAX_WAIT_S: f64 = 600.0;
/// Lines of a service's log shown with a service that did not get where
/// it was asked to.
const TAIL_LINES: usize = 20;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusArgs {
    /// Only these services (a replicated service's name means all its
    /// instances); default: all.
    #[serde(default)]
    services: Vec<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NameArgs {
    /// The service.
    name: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsArgs {
    /// Only this service's log (a replicated service: all its instances');
    /// default: every service's.
    #[serde(default)]
    name: Option<String>,
    /// How many lines, the newest, in all (at most 2000).
    #[serde(default = "default_tail")]
    tail: usize,
    /// Only lines recorded since then: a duration ago (`10m`, `2h30m`) or a
    /// time (RFC 3339). Needs `log_timestamps`.
    #[serde(default)]
    since: Option<String>,
    /// Only lines that match this regular expression.
    #[serde(default)]
    grep: Option<String>,
}

fn default_tail() -> usize {
    100
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsArgs {
    /// Only this service's events; default: all.
    #[serde(default)]
    name: Option<String>,
    /// How many, the newest (at most 2000).
    #[serde(default = "default_limit")]
    limit: usize,
    /// Only events since then: a duration ago (`10m`) or a time (RFC 3339).
    #[serde(default)]
    since: Option<String>,
}

fn default_limit() -> usize {
    50
}

#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    /// Online (a oneshot: completed).
    #[default]
    Online,
    /// Stopped (no process).
    Stopped,
    /// Completed (oneshots).
    Completed,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitArgs {
    /// The services to wait for; default: every service that `start`
    /// starts.
    #[serde(default)]
    services: Vec<String>,
    /// The state to wait for.
    #[serde(default)]
    until: Until,
    /// How long to wait at most, seconds (at most 600).
    #[serde(default = "default_wait")]
    timeout_s: f64,
}

fn default_wait() -> f64 {
    60.0
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartArgs {
    /// The services to start with their dependencies; `["*"]`: every
    /// service.
    services: Vec<String>,
    /// Also start the services of this profile.
    #[serde(default)]
    profile: Option<String>,
    /// Wait until they are online (or say why one is not).
    #[serde(default = "default_true")]
    wait: bool,
    /// How long to wait at most, seconds (at most 600); what is still
    /// starting then goes on.
    #[serde(default = "default_wait")]
    timeout_s: f64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartArgs {
    /// The services to restart; `["*"]`: every service.
    services: Vec<String>,
    /// Wait until they are online again (or say why one is not).
    #[serde(default = "default_true")]
    wait: bool,
    /// How long to wait at most, seconds (at most 600).
    #[serde(default = "default_wait")]
    timeout_s: f64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopArgs {
    /// The services to stop (their dependents stop first); `["*"]`: every
    /// service, which needs `confirm: true`. The supervisor keeps running.
    services: Vec<String>,
    /// Required with `["*"]`.
    #[serde(default)]
    confirm: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadArgs {
    /// Only say what would change (the default); `false` applies it.
    #[serde(default = "default_true")]
    dry_run: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// Every tool, in the order they are listed.
pub fn catalog() -> Vec<Tool> {
    let read = || ToolAnnotations::new().read_only(true).open_world(false);
    let change = |destructive: bool, idempotent: bool| {
        ToolAnnotations::new()
            .read_only(false)
            .destructive(destructive)
            .idempotent(idempotent)
            .open_world(false)
    };
    vec![
        tool::<StatusArgs>(
            "fpctl_status",
            "The status of every service (or of those named): state, pid, port, restarts, \
             uptime, reason when failed or blocked, last probe, and the summary. The same model \
             as `fpctl check --json`. At most 64 KiB.",
            read(),
        ),
        tool::<NameArgs>(
            "fpctl_service",
            "One service: its status, settings (secrets redacted), dependencies, dependents and \
             its recent probe results (oldest first).",
            read(),
        ),
        tool::<LogsArgs>(
            "fpctl_logs",
            "Log lines of one service or of all, merged in time order (oldest first), each with \
             its service and recorded time: the newest `tail` lines (100; at most 2000), filtered \
             by `since` and `grep`. `truncated` says when lines were left out. At most 64 KiB.",
            read(),
        ),
        tool::<EventsArgs>(
            "fpctl_events",
            "The event history in time order (oldest first): starts, exits, health changes, \
             restarts, failures and their reasons, as data. The newest `limit` (50; at most \
             2000).",
            read(),
        ),
        tool::<WaitArgs>(
            "fpctl_wait",
            "Wait, on the supervisor's live status (no polling), until the services are online \
             (or stopped, or completed), up to `timeout_s` (60; at most 600); sends progress \
             notifications. Never ok for a failed or blocked service: for each one that did not \
             get there, the reason, its last probe and its last 20 log lines.",
            read(),
        ),
        tool::<StartArgs>(
            "fpctl_start",
            "Start services and their dependencies (`[\"*\"]`: every service) under the \
             background supervisor and, with `wait` (default), wait until they are online: the \
             progress, each failure with its reason and last log lines, and the status rows.",
            change(false, true),
        ),
        tool::<RestartArgs>(
            "fpctl_restart",
            "Stop and start services again (`[\"*\"]`: every service) and, with `wait` \
             (default), wait until they are online: progress, failures and status rows.",
            change(true, false),
        ),
        tool::<StopArgs>(
            "fpctl_stop",
            "Stop services; their dependents stop first. `[\"*\"]` stops every service and \
             needs `confirm: true`; the supervisor keeps running. Says what stopped, dependents \
             included.",
            change(true, true),
        ),
        tool::<NameArgs>(
            "fpctl_probe",
            "Run a service's health check once, now: verdict (healthy, unhealthy, down), \
             latency and detail.",
            read(),
        ),
        tool::<ReloadArgs>(
            "fpctl_reload",
            "Compare services.toml with what runs: with `dry_run` (default true) only the plan \
             (added, removed, changed services and why); with `dry_run: false` apply it and \
             report.",
            change(true, false),
        ),
        tool::<NoArgs>(
            "fpctl_ports",
            "Every configured port: free, held by its service, or held by a foreign pid and \
             command (a conflict).",
            read(),
        ),
        tool::<NoArgs>(
            "fpctl_graph",
            "Tiers, start levels and dependency edges, with each service's current state.",
            read(),
        ),
        tool::<NoArgs>(
            "fpctl_validate",
            "Check services.toml on disk: ok with a summary, or every error with file:line:column.",
            read(),
        ),
    ]
}

fn tool<T: JsonSchema + 'static>(
    name: &'static str,
    description: &'static str,
    annotations: ToolAnnotations,
) -> Tool {
    let schema = schema_for_input::<T>().expect("the argument types have object schemas");
    Tool::new(name, description, schema).with_annotations(annotations)
}

pub fn is_read_only(tool: &Tool) -> bool {
    tool.annotations
        .as_ref()
        .and_then(|a| a.read_only_hint)
        .unwrap_or(false)
}

/// The text of a result, for an error that goes elsewhere.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A tool's answer: the JSON and its text, bounded.
fn answer(value: Value, text: String, error: bool) -> CallToolResult {
    let text = bound::short(text);
    let value = bound::fit(value, bound::MAX_ANSWER - text.len() - 512);
    let mut r = if error {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    r.structured_content = Some(value);
    r
}

/// A tool error: what went wrong, in words and as `{"error": …}`.
fn failure(message: impl Into<String>) -> CallToolResult {
    let message = message.into();
    answer(json!({ "error": message }), message, true)
}

/// Unknown names, said as every command says them (with the nearest name).
pub fn check_names(config: &Config, names: &[String]) -> Result<(), crate::graph::SelectError> {
    let named: Vec<String> = names.iter().filter(|n| *n != "*").cloned().collect();
    if named.is_empty() {
        return Ok(());
    }
    crate::graph::select(config, &named, &[]).map(|_| ())
}

/// The rows of `snapshot` that `names` mean (a replicated service's name:
/// its instances); all with none.
fn rows(snapshot: &Snapshot, names: &[String]) -> Vec<ServiceStatus> {
    if names.is_empty() || names.iter().any(|n| n == "*") {
        return snapshot.services.clone();
    }
    snapshot
        .services
        .iter()
        .filter(|s| names.contains(&s.name) || s.group.as_ref().is_some_and(|g| names.contains(g)))
        .cloned()
        .collect()
}

/// One line per service, for people.
fn status_lines(rows: &[ServiceStatus]) -> String {
    let mut out = String::new();
    for s in rows {
        let pid = s.pid.map(|p| format!(" pid {p}")).unwrap_or_default();
        let detail = s
            .detail
            .as_deref()
            .map(|d| format!(" — {d}"))
            .unwrap_or_default();
        let container = s
            .container
            .as_ref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{}: {}{pid}{container}{detail}\n",
            s.name,
            s.state.as_str()
        ));
    }
    out
}

fn summary_line(summary: &Summary) -> String {
    let parts: Vec<String> = ServiceState::ALL
        .iter()
        .filter(|&&st| summary.count(st) > 0)
        .map(|&st| format!("{} {}", summary.count(st), st.as_str()))
        .collect();
    if parts.is_empty() {
        "no services".into()
    } else {
        parts.join(", ")
    }
}

fn parse_args<T: DeserializeOwned>(args: Value) -> Result<T, CallToolResult> {
    serde_json::from_value(args).map_err(|e| failure(format!("bad arguments: {e}")))
}

fn since(text: Option<&str>) -> Result<Option<SystemTime>, CallToolResult> {
    text.map(crate::commands::parse_since)
        .transpose()
        .map_err(|e| failure(format!("since: {e}")))
}

fn timeout(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds.clamp(0.0, MAX_WAIT_S))
}

/// One call of a tool.
pub struct Call<'a> {
    pub backend: &'a Backend,
    pub context: &'a RequestContext<RoleServer>,
}

/// Try a step; a failure is the tool's answer.
macro_rules! attempt {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return e,
        }
    };
}

/// A supervisor's refusal as a tool error.
fn refused(e: impl std::fmt::Display) -> CallToolResult {
    failure(e.to_string())
}

impl Call<'_> {
    pub async fn run(&self, name: &str, args: Value) -> CallToolResult {
        match name {
            "fpctl_status" => self.status(attempt!(parse_args(args))).await,
            "fpctl_service" => self.service(attempt!(parse_args(args))).await,
            "fpctl_logs" => self.logs(attempt!(parse_args(args))).await,
            "fpctl_events" => self.events(attempt!(parse_args(args))).await,
            "fpctl_wait" => self.wait(attempt!(parse_args(args))).await,
            "fpctl_start" => self.start(attempt!(parse_args(args))).await,
            "fpctl_restart" => self.restart(attempt!(parse_args(args))).await,
            "fpctl_stop" => self.stop(attempt!(parse_args(args))).await,
            "fpctl_probe" => self.probe(attempt!(parse_args(args))).await,
            "fpctl_reload" => self.reload(attempt!(parse_args(args))).await,
            "fpctl_ports" => self.ports().await,
            "fpctl_graph" => self.graph().await,
            "fpctl_validate" => self.validate().await,
            other => failure(format!("no tool named \"{other}\"")),
        }
    }

    async fn config(&self) -> Result<std::sync::Arc<Config>, CallToolResult> {
        self.backend.config().await.map_err(refused)
    }

    async fn snapshot(&self) -> Result<Snapshot, CallToolResult> {
        self.backend
            .snapshot()
            .await
            .map(|(s, _)| s)
            .map_err(refused)
    }

    /// Send a progress notification, when the client asked for them.
    async fn progress(&self, done: f64, total: Option<f64>, message: String) {
        let Some(token) = self.context.meta.get_progress_token() else {
            return;
        };
        let mut p = ProgressNotificationParam::new(token, done).with_message(message);
        if let Some(t) = total {
            p = p.with_total(t);
        }
        let _ = self.context.peer.notify_progress(p).await;
    }

    async fn status(&self, args: StatusArgs) -> CallToolResult {
        let snapshot = attempt!(self.snapshot().await);
        if !args.services.is_empty() {
            let known: Vec<&str> = snapshot
                .services
                .iter()
                .flat_map(|s| std::iter::once(s.name.as_str()).chain(s.group.as_deref()))
                .collect();
            for name in &args.services {
                if !known.contains(&name.as_str()) {
                    let hint = crate::config::suggest(name, known.iter().copied())
                        .map(|n| format!(" (did you mean \"{n}\"?)"))
                        .unwrap_or_default();
                    return failure(format!("no service named \"{name}\"{hint}"));
                }
            }
        }
        let mine = rows(&snapshot, &args.services);
        let snapshot = Snapshot::new(snapshot.project, snapshot.supervisor_pid, mine);
        let text = format!(
            "{}\n{}",
            summary_line(&snapshot.summary),
            status_lines(&snapshot.services)
        );
        answer(json!(snapshot), text, false)
    }

    async fn service(&self, args: NameArgs) -> CallToolResult {
        let config = attempt!(self.config().await);
        attempt!(check_names(&config, std::slice::from_ref(&args.name)).map_err(refused));
        let names = config.expand_names(std::slice::from_ref(&args.name));
        let snapshot = attempt!(self.snapshot().await);
        let mine = rows(&snapshot, std::slice::from_ref(&args.name));
        let first = names.first().cloned().unwrap_or_else(|| args.name.clone());
        let settings = config
            .service(&first)
            .map(|(i, _)| crate::api::routes::settings(&config, i))
            .unwrap_or(Value::Null);
        let probes = match self
            .backend
            .ask(Request::History {
                services: names.clone(),
            })
            .await
            .1
        {
            Response::History { histories } => json!(histories),
            _ => Value::Null,
        };
        let text = format!(
            "{}settings: {}",
            status_lines(&mine),
            serde_json::to_string(&settings).unwrap_or_default()
        );
        let status = if names.len() == 1 && names[0] == args.name {
            json!(mine.first())
        } else {
            json!({ "instances": mine })
        };
        answer(
            json!({
                "name": args.name,
                "status": status,
                "settings": settings,
                "probes": probes,
            }),
            text,
            false,
        )
    }

    async fn logs(&self, args: LogsArgs) -> CallToolResult {
        let config = attempt!(self.config().await);
        let names: Vec<String> = match &args.name {
            Some(n) => {
                attempt!(check_names(&config, std::slice::from_ref(n)).map_err(refused));
                config.expand_names(std::slice::from_ref(n))
            }
            None => config.services.iter().map(|s| s.name.clone()).collect(),
        };
        let since = attempt!(since(args.since.as_deref()));
        let grep = match args.grep.as_deref().map(regex::Regex::new).transpose() {
            Ok(g) => g,
            Err(e) => return failure(format!("grep: {e}")),
        };
        let tail = args.tail.clamp(1, MAX_LOG_LINES);
        let paths: Vec<_> = names.iter().map(|n| config.log_path(n)).collect();
        let filtered = grep.is_some() || since.is_some();
        let (merged, untimed) = tokio::task::spawn_blocking(move || {
            let mut untimed = false;
            let logs: Vec<Vec<crate::service_log::Line>> = paths
                .iter()
                .map(|p| {
                    let end = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                    let n = if filtered { SCAN_LINES } else { tail };
                    let h =
                        crate::service_log::history_of(p, end, Some(n), since).unwrap_or_default();
                    untimed |= h.untimed;
                    h.lines
                        .into_iter()
                        .filter(|l| {
                            grep.as_ref()
                                .is_none_or(|g| g.is_match(&String::from_utf8_lossy(&l.text)))
                        })
                        .collect()
                })
                .collect();
            (crate::service_log::merge(logs), untimed)
        })
        .await
        .unwrap_or_default();
        let total = merged.len();
        let kept = &merged[total.saturating_sub(tail)..];
        let mut text = String::new();
        let lines: Vec<Value> = kept
            .iter()
            .map(|(k, l)| {
                let line = String::from_utf8_lossy(&l.text).into_owned();
                text.push_str(&format!("{} | {line}\n", names[*k]));
                json!({
                    "service": names[*k],
                    "time": l.time.map(|t| humantime::format_rfc3339_millis(t).to_string()),
                    "text": line,
                })
            })
            .collect();
        let mut value = json!({
            "lines": lines,
            "truncated": total > kept.len(),
            "omitted": total - kept.len(),
        });
        if untimed {
            value["note"] = json!(
                "lines without a recorded time are left out: `since` cannot place them \
                 (log_timestamps = true records times)"
            );
        }
        if lines.is_empty() {
            text = "no lines".into();
        }
        // The text repeats the JSON's lines: keep it to the newest.
        let text = newest_text(text);
        answer(value, text, false)
    }

    async fn events(&self, args: EventsArgs) -> CallToolResult {
        let config = attempt!(self.config().await);
        if let Some(n) = &args.name {
            attempt!(check_names(&config, std::slice::from_ref(n)).map_err(refused));
        }
        let since = attempt!(since(args.since.as_deref())).map(|t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        });
        let limit = args.limit.clamp(1, MAX_EVENTS);
        let wanted = args
            .name
            .as_ref()
            .map(|n| config.expand_names(std::slice::from_ref(n)));
        let path = crate::events::path(&config);
        let mut all: Vec<crate::status::Event> =
            tokio::task::spawn_blocking(move || crate::events::read_all(&path))
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|e| wanted.as_ref().is_none_or(|w| w.contains(&e.service)))
                .filter(|e| since.is_none_or(|s| e.ts >= s))
                .collect();
        let total = all.len();
        all.drain(..total.saturating_sub(limit));
        let mut text = String::new();
        for e in &all {
            text.push_str(&format!(
                "{} {} {}: {}\n",
                crate::events::format_ts(e.ts),
                e.service,
                e.kind.as_str(),
                e.detail
            ));
        }
        if all.is_empty() {
            text = "no events".into();
        }
        let value = json!({
            "events": all,
            "truncated": total > all.len(),
            "omitted": total - all.len(),
        });
        answer(value, newest_text(text), false)
    }

    /// Why each of `names` is not where it was asked to be: its status, its
    /// last probe and its last log lines.
    async fn why_not(&self, config: &Config, rows: &[ServiceStatus]) -> Vec<Value> {
        if rows.is_empty() {
            return Vec::new();
        }
        let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
        let histories = match self
            .backend
            .ask(Request::History {
                services: names.clone(),
            })
            .await
            .1
        {
            Response::History { histories } => histories,
            _ => Default::default(),
        };
        let mut out = Vec::new();
        for r in rows {
            let path = config.log_path(&r.name);
            let p = path.clone();
            let tail =
                tokio::task::spawn_blocking(move || crate::service_log::last_lines(&p, TAIL_LINES))
                    .await
                    .unwrap_or_default();
            let (lines, _) = crate::service_log::texts_and_times(tail.lines());
            out.push(json!({
                "service": r.name,
                "state": r.state,
                "reason": r.reason,
                "detail": r.detail,
                "last_probe": histories.get(&r.name).and_then(|h| h.last()),
                "log_tail": lines,
                "log": path,
            }));
        }
        out
    }

    async fn wait(&self, args: WaitArgs) -> CallToolResult {
        let config = attempt!(self.config().await);
        attempt!(check_names(&config, &args.services).map_err(refused));
        let names: Vec<String> =
            if args.services.is_empty() || args.services.iter().any(|s| s == "*") {
                let all = crate::graph::select(&config, &[], &[]).unwrap_or_default();
                all.into_iter()
                    .map(|i| config.services[i].name.clone())
                    .collect()
            } else {
                config.expand_names(&args.services)
            };
        let deadline = Instant::now() + timeout(args.timeout_s);
        let reached = |s: &ServiceStatus| match args.until {
            Until::Online => s.state == ServiceState::Online || s.state == ServiceState::Completed,
            Until::Stopped => {
                s.state == ServiceState::Stopped || s.state == ServiceState::Completed
            }
            Until::Completed => s.state == ServiceState::Completed,
        };
        // Failed and blocked stay so until someone acts: waiting longer
        // changes nothing, and they are never an ok.
        let stuck =
            |s: &ServiceStatus| matches!(s.state, ServiceState::Failed | ServiceState::Blocked);
        let mut live = self.backend.subscribe();
        let mut snapshot: Option<Snapshot> = None;
        let mut timed_out = false;
        let mut last_count = usize::MAX;
        loop {
            if let Some(snap) = &snapshot {
                let mine: Vec<&ServiceStatus> = snap
                    .services
                    .iter()
                    .filter(|s| names.contains(&s.name))
                    .collect();
                let done = mine.iter().filter(|s| reached(s)).count();
                if done != last_count {
                    last_count = done;
                    let waiting: Vec<String> = mine
                        .iter()
                        .filter(|s| !reached(s))
                        .map(|s| format!("{} {}", s.name, s.state.as_str()))
                        .collect();
                    self.progress(
                        done as f64,
                        Some(names.len() as f64),
                        format!(
                            "{done}/{} there; waiting for: {}",
                            names.len(),
                            waiting.join(", ")
                        ),
                    )
                    .await;
                }
                if mine.iter().all(|s| reached(s) || stuck(s)) {
                    break;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::select! {
                r = live.rx.recv() => r,
                () = tokio::time::sleep(left) => { timed_out = true; break; }
                () = self.context.ct.cancelled() => return failure("cancelled"),
            };
            match next {
                Some(Response::Status { snapshot: s, .. }) => snapshot = Some(s),
                Some(Response::Update(u)) => {
                    if let (Some(snap), Update::Service(_)) = (&mut snapshot, &u) {
                        backend::apply(snap, &u);
                    }
                }
                Some(Response::Error { message, .. }) => return failure(message),
                Some(_) => {}
                None => return failure(backend::GONE),
            }
        }
        drop(live);
        let snap = snapshot.unwrap_or_else(|| Snapshot::new("", None, Vec::new()));
        let mine: Vec<ServiceStatus> = snap
            .services
            .iter()
            .filter(|s| names.contains(&s.name))
            .cloned()
            .collect();
        let missing: Vec<ServiceStatus> = mine.iter().filter(|s| !reached(s)).cloned().collect();
        let ok = missing.is_empty();
        let not_reached = self.why_not(&config, &missing).await;
        let until = serde_json::to_value(args.until).unwrap_or_default();
        let until = until.as_str().unwrap_or("online");
        let mut text = if ok {
            format!("ok: {} {until}\n", names.join(", "))
        } else if timed_out {
            format!(
                "not {until} after {}s:\n",
                args.timeout_s.clamp(0.0, MAX_WAIT_S)
            )
        } else {
            format!("not {until}:\n")
        };
        text.push_str(&why_text(&not_reached));
        let value = json!({
            "ok": ok,
            "until": until,
            "timed_out": timed_out,
            "services": mine,
            "not_reached": not_reached,
        });
        answer(value, text, !ok)
    }

    /// Drive a start or restart: progress notifications, then the outcome
    /// with the rows of `names`; past the timeout, it goes on in the
    /// background.
    async fn drive(
        &self,
        request: Request,
        names: &[String],
        wait: bool,
        seconds: f64,
        verb: &str,
    ) -> CallToolResult {
        let config = attempt!(self.config().await);
        let mut rx = self.backend.send(request);
        let mut progress = Vec::new();
        let mut timed_out = false;
        let last = if wait {
            let deadline = tokio::time::Instant::now() + timeout(seconds);
            loop {
                let next = tokio::select! {
                    r = rx.recv() => r,
                    () = tokio::time::sleep_until(deadline) => { timed_out = true; break None; }
                };
                match next {
                    Some(Response::Progress(p)) => {
                        let message = format!("{}: {}", p.service, p.state.as_str());
                        progress.push(p);
                        self.progress(progress.len() as f64, None, message).await;
                    }
                    Some(Response::Plan { .. }) => {}
                    Some(last) => break Some(last),
                    None => break Some(Response::error(ErrorKind::Internal, backend::GONE)),
                }
            }
        } else {
            None
        };
        if last.is_none() {
            // What is under way goes on without us.
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
        }
        let (ok, failures) = match last {
            Some(Response::Done { ok, failures }) => (Some(ok), failures),
            Some(Response::Error { message, .. }) => return failure(message),
            Some(other) => return failure(format!("unexpected answer: {other:?}")),
            None => (None, Vec::new()),
        };
        let snapshot = attempt!(self.snapshot().await);
        let mine = rows(&snapshot, names);
        let failed: Vec<ServiceStatus> = failures
            .iter()
            .filter_map(|f| snapshot.get(&f.service).cloned())
            .collect();
        let why = self.why_not(&config, &failed).await;
        let mut text = match ok {
            Some(true) => format!("{verb}: ok\n"),
            Some(false) => format!("{verb}: failed\n"),
            None if timed_out => format!("{verb}: still under way after {seconds}s\n"),
            None => format!("{verb}: under way (not waiting)\n"),
        };
        text.push_str(&status_lines(&mine));
        text.push_str(&why_text(&why));
        let value = json!({
            "ok": ok,
            "timed_out": timed_out,
            "progress": progress,
            "failures": failures,
            "why": why,
            "services": mine,
        });
        answer(value, text, ok == Some(false))
    }

    /// The config and the services a start or restart asks for: the
    /// names as given, or none for `["*"]` (every one).
    async fn asked(
        &self,
        services: &[String],
        verb: &str,
    ) -> Result<(std::sync::Arc<Config>, Vec<String>), CallToolResult> {
        if services.is_empty() {
            return Err(failure(format!(
                "services: name the services to {verb}, or [\"*\"] for every one"
            )));
        }
        let config = self.config().await?;
        check_names(&config, services).map_err(refused)?;
        let all = services.iter().any(|s| s == "*");
        Ok((config, if all { Vec::new() } else { services.to_vec() }))
    }

    async fn start(&self, args: StartArgs) -> CallToolResult {
        let (config, services) = attempt!(self.asked(&args.services, "start").await);
        let profiles: Vec<String> = args.profile.into_iter().collect();
        let selected: Vec<String> = crate::graph::select(&config, &services, &profiles)
            .unwrap_or_default()
            .into_iter()
            .map(|i| config.services[i].name.clone())
            .collect();
        let request = Request::Start {
            services,
            profiles,
            replace: false,
        };
        self.drive(request, &selected, args.wait, args.timeout_s, "start")
            .await
    }

    async fn restart(&self, args: RestartArgs) -> CallToolResult {
        let (config, services) = attempt!(self.asked(&args.services, "restart").await);
        let names = if services.is_empty() {
            Vec::new()
        } else {
            config.expand_names(&services)
        };
        self.drive(
            Request::Restart { services },
            &names,
            args.wait,
            args.timeout_s,
            "restart",
        )
        .await
    }

    async fn stop(&self, args: StopArgs) -> CallToolResult {
        if args.services.is_empty() {
            return failure("services: name the services to stop, or [\"*\"] with confirm: true");
        }
        let config = attempt!(self.config().await);
        attempt!(check_names(&config, &args.services).map_err(refused));
        let all = args.services.iter().any(|s| s == "*");
        if all && !args.confirm {
            return failure(
                "stopping every service needs confirm: true (or name the services to stop)",
            );
        }
        // Every service by name: the supervisor itself keeps running.
        let services: Vec<String> = if all {
            config.services.iter().map(|s| s.name.clone()).collect()
        } else {
            args.services.clone()
        };
        let (before, last) = self.backend.ask(Request::Stop { services }).await;
        let (ok, failures) = match last {
            Response::Done { ok, failures } => (ok, failures),
            Response::Error { message, .. } => return failure(message),
            other => return failure(format!("unexpected answer: {other:?}")),
        };
        let mut stopped: Vec<String> = Vec::new();
        for r in &before {
            if let Response::Progress(p) = r {
                if p.state == ServiceState::Stopped && !stopped.contains(&p.service) {
                    stopped.push(p.service.clone());
                }
            }
        }
        let named = config.expand_names(&args.services);
        let dependents: Vec<&String> = stopped.iter().filter(|s| !named.contains(s)).collect();
        let snapshot = attempt!(self.snapshot().await);
        let mut names: BTreeSet<String> = stopped.iter().cloned().collect();
        names.extend(if all { Vec::new() } else { named.clone() });
        let mine: Vec<ServiceStatus> = if all {
            snapshot.services.clone()
        } else {
            snapshot
                .services
                .iter()
                .filter(|s| names.contains(&s.name))
                .cloned()
                .collect()
        };
        let mut text = format!(
            "stopped: {}\n",
            if stopped.is_empty() {
                "nothing (already stopped)".to_string()
            } else {
                stopped.join(", ")
            }
        );
        if !dependents.is_empty() {
            text.push_str(&format!(
                "dependents stopped with them: {}\n",
                dependents
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for f in &failures {
            text.push_str(&format!("{}: {}\n", f.service, f.reason));
        }
        let value = json!({
            "ok": ok,
            "stopped": stopped,
            "dependents": dependents,
            "failures": failures,
            "services": mine,
        });
        answer(value, text, !ok)
    }

    async fn probe(&self, args: NameArgs) -> CallToolResult {
        let config = attempt!(self.config().await);
        attempt!(check_names(&config, std::slice::from_ref(&args.name)).map_err(refused));
        let snapshot = self.snapshot().await.ok();
        let mut results = Vec::new();
        let mut text = String::new();
        for instance in config.expand_names(std::slice::from_ref(&args.name)) {
            let Some((_, svc)) = config.service(&instance) else {
                continue;
            };
            let (probe, timeout) = match (&svc.health, svc.port) {
                (Some(h), _) => (h.probe.clone(), h.timeout),
                (None, Some(port)) => (Probe::Tcp { port }, defaults::HEALTH_TIMEOUT),
                (None, None) => {
                    return failure(format!(
                        "service \"{instance}\" has neither a health check nor a port to probe"
                    ))
                }
            };
            let mut result = health::probe(svc, &probe, timeout).await;
            // A log check proves only a live run ready.
            let live = snapshot
                .as_ref()
                .and_then(|s| s.get(&instance))
                .is_some_and(|s| s.pid.is_some());
            if !live {
                crate::commands::no_live_run(svc, &mut result);
            }
            let detail = svc.redact(result.detail.trim());
            text.push_str(&format!(
                "{instance}: {} ({:.1} ms) {detail}\n",
                result.verdict.as_str(),
                result.latency.as_secs_f64() * 1000.0
            ));
            results.push(json!({
                "service": instance,
                "verdict": result.verdict.as_str(),
                "healthy": result.verdict == Verdict::Healthy,
                "latency_ms": crate::status::tenth(result.latency.as_secs_f64() * 1000.0),
                "detail": detail,
            }));
        }
        let ok = results.iter().all(|r| r["healthy"] == true);
        answer(json!({ "ok": ok, "probes": results }), text, false)
    }

    async fn reload(&self, args: ReloadArgs) -> CallToolResult {
        let (before, last) = self
            .backend
            .ask(Request::Reload {
                dry_run: args.dry_run,
            })
            .await;
        let (ok, failures) = match last {
            Response::Done { ok, failures } => (ok, failures),
            Response::Error { message, .. } => return failure(message),
            other => return failure(format!("unexpected answer: {other:?}")),
        };
        let mut changes = Vec::new();
        let mut api = None;
        let mut progress = Vec::new();
        for r in before {
            match r {
                Response::Plan { changes: c, api: a } => {
                    changes.extend(c);
                    api = api.or(a);
                }
                Response::Progress(p) => progress.push(p),
                _ => {}
            }
        }
        let mut text = if changes.is_empty() {
            "no changes\n".to_string()
        } else {
            String::new()
        };
        for c in &changes {
            let kind = serde_json::to_value(c.kind).unwrap_or_default();
            text.push_str(&format!(
                "{}: {}{}\n",
                c.service,
                kind.as_str().unwrap_or_default(),
                if c.reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.reasons.join(", "))
                }
            ));
        }
        if args.dry_run {
            text.push_str("dry run: nothing was changed\n");
        }
        for f in &failures {
            text.push_str(&format!("{}: {}\n", f.service, f.reason));
        }
        let value = json!({
            "ok": ok,
            "dry_run": args.dry_run,
            "changes": changes,
            "api": api,
            "progress": progress,
            "failures": failures,
        });
        answer(value, text, !ok)
    }

    async fn ports(&self) -> CallToolResult {
        let config = attempt!(self.config().await);
        let report = tokio::task::spawn_blocking(move || {
            crate::ports::report(&config, &crate::ports::Registry::open(&config.root))
        })
        .await;
        let Ok(report) = report else {
            return failure("the port report failed");
        };
        let mut text = String::new();
        for p in &report.ports {
            let held = serde_json::to_string(&p.holder).unwrap_or_default();
            text.push_str(&format!("{} {}: {held}\n", p.port, p.service));
            if let Some(c) = &p.conflict {
                text.push_str(&format!("  conflict: {c}\n"));
            }
        }
        let conflicts = report.conflicts();
        let mut value = json!(report);
        value["conflicts"] = json!(conflicts);
        answer(value, text, false)
    }

    async fn graph(&self) -> CallToolResult {
        let config = attempt!(self.config().await);
        let mut model = crate::api::view::graph_model(&config);
        if let Ok(snapshot) = self.snapshot().await {
            if let Some(services) = model["services"].as_object_mut() {
                for (name, node) in services.iter_mut() {
                    node["state"] = json!(snapshot.get(name).map(|s| s.state));
                }
            }
        }
        let text = crate::output::graph_text(&config, &{
            let all = (0..config.services.len()).collect();
            crate::graph::plan(&config, &all)
        });
        answer(model, text, false)
    }

    async fn validate(&self) -> CallToolResult {
        let path = self.backend.path();
        let loaded = tokio::task::spawn_blocking(move || crate::config::load(Some(&path))).await;
        let Ok(loaded) = loaded else {
            return failure("validation failed");
        };
        match loaded {
            Ok(config) => {
                let warnings = config.port_env_conflicts();
                let text = format!(
                    "ok: {} ({} services, {} tiers)\n{}",
                    config.path.display(),
                    config.services.len(),
                    config.tiers.len(),
                    warnings.join("\n")
                );
                answer(
                    json!({
                        "ok": true,
                        "file": config.path,
                        "services": config.services.len(),
                        "tiers": config.tiers.len(),
                        "warnings": warnings,
                    }),
                    text,
                    false,
                )
            }
            Err(crate::config::ConfigError::Invalid {
                path,
                text,
                diagnostics,
            }) => {
                let errors: Vec<Value> = diagnostics
                    .iter()
                    .map(|d| {
                        let (line, column) = d
                            .span
                            .as_ref()
                            .map(|s| crate::config::line_col(&text, s.start))
                            .unwrap_or((1, 1));
                        json!({
                            "file": path,
                            "line": line,
                            "column": column,
                            "message": d.message,
                        })
                    })
                    .collect();
                let words: String = errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{}:{}:{}: {}\n",
                            path.display(),
                            e["line"],
                            e["column"],
                            e["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect();
                answer(json!({ "ok": false, "errors": errors }), words, false)
            }
            Err(e) => {
                let message = e.to_string();
                answer(
                    json!({ "ok": false, "errors": [{ "message": message }] }),
                    message,
                    false,
                )
            }
        }
    }
}

/// The reasons of services that did not get there, in words.
fn why_text(why: &[Value]) -> String {
    let mut out = String::new();
    for w in why {
        out.push_str(&format!(
            "{}: {}{}\n",
            w["service"].as_str().unwrap_or_default(),
            w["state"].as_str().unwrap_or_default(),
            w["detail"]
                .as_str()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default()
        ));
        if let Some(lines) = w["log_tail"].as_array() {
            for l in lines.iter().rev().take(5).rev() {
                out.push_str(&format!("  | {}\n", l.as_str().unwrap_or_default()));
            }
        }
    }
    out
}

/// The newest part of a text that lists lines oldest first.
fn newest_text(text: String) -> String {
    if text.len() <= bound::MAX_TEXT {
        return text;
    }
    let mut start = text.len() - (bound::MAX_TEXT - 64);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let start = text[start..].find('\n').map_or(start, |i| start + i + 1);
    format!("… (older lines in the JSON)\n{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_prefixed_annotated_and_only_four_change_the_stack() {
        let tools = catalog();
        assert_eq!(tools.len(), 13);
        for t in &tools {
            assert!(t.name.starts_with("fpctl_"), "{}", t.name);
            assert_eq!(
                t.input_schema.get("type"),
                Some(&json!("object")),
                "{}",
                t.name
            );
            assert!(t.annotations.is_some(), "{}", t.name);
        }
        let changing: Vec<&str> = tools
            .iter()
            .filter(|t| !is_read_only(t))
            .map(|t| t.name.as_ref())
            .collect();
        assert_eq!(
            changing,
            ["fpctl_start", "fpctl_restart", "fpctl_stop", "fpctl_reload"]
        );
    }

    #[test]
    fn arguments_take_their_defaults_and_refuse_unknown_fields() {
        let logs: LogsArgs = serde_json::from_value(json!({})).unwrap();
        assert_eq!((logs.tail, logs.name, logs.grep), (100, None, None));
        let wait: WaitArgs = serde_json::from_value(json!({})).unwrap();
        assert!(wait.until == Until::Online && wait.timeout_s == 60.0);
        let reload: ReloadArgs = serde_json::from_value(json!({})).unwrap();
        assert!(reload.dry_run, "a reload is a dry run unless asked");
        assert!(serde_json::from_value::<StatusArgs>(json!({"servics": []})).is_err());
        assert!(serde_json::from_value::<StartArgs>(json!({})).is_err());
    }
}

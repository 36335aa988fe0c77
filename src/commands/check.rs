//! `fpctl check`: the truth about every service, whether or not a supervisor
//! runs. Every service is probed directly, all at once; a running supervisor
//! adds what only it knows (failed, blocked, restarts, pids).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, Probe};
use crate::control::{Request, Response, ServiceState, ServiceStatus};
use crate::health::{self, ProbeResult, Verdict};
use crate::output::{self, Row};
use crate::state::{self, StateFile};
use crate::{graph, process};
use crate::{Error, Outcome, Result};

pub fn check(
    file: Option<&Path>,
    services: Vec<String>,
    json: bool,
    wide: bool,
    wait: Option<Duration>,
    profiles: Vec<String>,
) -> Result<Outcome> {
    let (config, running) = super::load_running(file)?;
    let config = Arc::new(config);
    // Which rows to show, and which of them decide the exit code.
    let (shown, counted): (Vec<usize>, Vec<usize>) = if services.is_empty() {
        let counted = graph::select(&config, &[], &profiles)?;
        (
            (0..config.services.len()).collect(),
            counted.into_iter().collect(),
        )
    } else {
        let mut idx = Vec::new();
        for name in &config.expand_names(&services) {
            let (i, _) = config.service(name).ok_or_else(|| {
                Error::Usage(
                    graph::select(&config, std::slice::from_ref(name), &[])
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                )
            })?;
            idx.push(i);
        }
        (idx.clone(), idx)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::other("cannot start the async runtime", e))?;
    // One probe connection per service, all at once.
    let _ = process::raise_fd_limit();
    let rows = rt.block_on(async {
        process::init();
        let deadline = wait.map(|w| Instant::now() + w);
        loop {
            let rows = snapshot(&config, &shown, running).await;
            let counted_rows = || rows.iter().filter(|r| counted.contains(&r.index));
            let all_ok = counted_rows().all(|r| r.state.is_ok());
            let hopeless = counted_rows()
                .any(|r| matches!(r.state, ServiceState::Failed | ServiceState::Blocked));
            match deadline {
                Some(d) if !all_ok && !hopeless && Instant::now() < d => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => break rows,
            }
        }
    });
    let ok = rows
        .iter()
        .filter(|r| counted.contains(&r.index))
        .all(|r| r.state.is_ok());
    if json {
        println!("{}", output::status_json(&config, &rows));
    } else {
        print!("{}", output::status_table(&config, &rows, wide));
    }
    Ok(if ok {
        Outcome::Success
    } else {
        Outcome::NotOnline
    })
}

/// One look at the given services.
async fn snapshot(config: &Arc<Config>, shown: &[usize], running: bool) -> Vec<Row> {
    let (from_supervisor, digest) = supervisor_status(config).unzip();
    // The file changed since the supervisor read it: its ports and commands
    // may not be the running ones, so only the supervisor's own view counts.
    // (Unless `config` is the running one, read from the supervisor.)
    let stale = !running
        && digest
            .flatten()
            .is_some_and(|d| crate::control::file_digest(&config.path).is_some_and(|now| now != d));
    if stale {
        note_stale_once(config);
    }
    let saved = if from_supervisor.is_none() {
        state::read(config)
    } else {
        None
    };
    let mut probes = tokio::task::JoinSet::new();
    for &i in shown.iter().filter(|_| !stale) {
        let config = Arc::clone(config);
        probes.spawn(async move { (i, probe_one(&config, i).await) });
    }
    let mut results: HashMap<usize, Option<ProbeResult>> = HashMap::new();
    while let Some(Ok((i, r))) = probes.join_next().await {
        results.insert(i, r);
    }
    // A log check proves only a live run ready: with no process of the
    // current run, the lines it matched are an earlier run's.
    for (&i, result) in results.iter_mut() {
        let svc = &config.services[i];
        let live = match &from_supervisor {
            Some(statuses) => statuses.get(&svc.name).and_then(|s| s.pid).is_some(),
            None => live_in_saved_state(saved.as_ref(), &svc.name),
        };
        if let Some(r) = result.as_mut().filter(|_| !live) {
            no_live_run(svc, r);
        }
    }
    shown
        .iter()
        .map(|&i| {
            let probe = results.remove(&i).flatten();
            let status = from_supervisor
                .as_ref()
                .and_then(|m| m.get(&config.services[i].name));
            let mut row = row(config, i, probe, status, saved.as_ref());
            if stale && status.is_none() {
                row.state = ServiceState::Stopped;
                row.detail = Some("not in the running config; `fpctl reload` applies it".into());
            }
            // Secret values never reach the detail.
            row.detail = row.detail.map(|d| config.services[i].redact(&d));
            row
        })
        .collect()
}

async fn probe_one(config: &Config, i: usize) -> Option<ProbeResult> {
    let svc = &config.services[i];
    if svc.disabled {
        return None;
    }
    match (&svc.health, svc.port) {
        (Some(h), _) => Some(health::probe(svc, &h.probe, h.timeout).await),
        (None, Some(port)) if !svc.oneshot => {
            let tcp = Probe::Tcp { port };
            Some(health::probe(svc, &tcp, crate::config::defaults::HEALTH_TIMEOUT).await)
        }
        _ => None,
    }
}

/// Say once per `check` that the file on disk is not the one running.
fn note_stale_once(config: &Config) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        eprintln!(
            "note: {} changed since the supervisor read it; this shows the running config. \
             `fpctl reload --dry-run` shows what would change, `fpctl reload` applies it",
            config.path.display()
        )
    });
}

/// What the supervisor knows, and the digest of the config it runs.
fn supervisor_status(config: &Config) -> Option<(HashMap<String, ServiceStatus>, Option<String>)> {
    // A supervisor that died is replaced here, adopting what it left running.
    let mut client = super::supervisor_if_needed(config).ok().flatten()?;
    client.set_timeout(Some(Duration::from_secs(5)));
    match client.request(Request::Status, |_| {}) {
        Ok(Response::Status {
            services,
            config_digest,
            ..
        }) => Some((
            services.into_iter().map(|s| (s.name.clone(), s)).collect(),
            config_digest,
        )),
        _ => None,
    }
}

/// Combine a live probe with what the supervisor (or its saved state) knows.
fn row(
    config: &Config,
    i: usize,
    probe: Option<ProbeResult>,
    sup: Option<&ServiceStatus>,
    saved: Option<&StateFile>,
) -> Row {
    let svc = &config.services[i];
    let mut row = Row {
        index: i,
        state: ServiceState::Offline,
        pid: None,
        port: svc.port,
        restarts: 0,
        restarts_in_row: 0,
        reason: None,
        uptime_s: None,
        detail: None,
        latency_ms: probe.as_ref().map(|p| p.latency.as_secs_f64() * 1000.0),
        external: false,
        rss_bytes: None,
        cpu_percent: None,
        restarts_total: 0,
    };
    if svc.disabled {
        row.state = ServiceState::Stopped;
        row.detail = Some("disabled".into());
        return row;
    }
    let verdict = probe.as_ref().map(|p| p.verdict);
    let probed = |v: Verdict| match v {
        Verdict::Healthy => ServiceState::Online,
        Verdict::Unhealthy => ServiceState::Degraded,
        Verdict::Down | Verdict::Inconclusive => ServiceState::Offline,
    };
    row.detail = probe
        .as_ref()
        .map(|p| p.detail.clone())
        .filter(|d| !d.is_empty());
    if let Some(st) = sup {
        row.pid = st.pid;
        row.port = st.port;
        row.restarts = st.restarts;
        row.restarts_in_row = st.restarts_in_row;
        row.uptime_s = st.uptime_s;
        row.external = st.external;
        row.rss_bytes = st.rss_bytes;
        row.cpu_percent = st.cpu_percent;
        row.restarts_total = st.restarts_total;
        row.state = match (st.state, verdict) {
            (ServiceState::Failed | ServiceState::Blocked | ServiceState::Completed, _) => {
                row.detail = st.detail.clone();
                row.reason = st.reason.clone();
                st.state
            }
            (ServiceState::Stopped, Some(Verdict::Healthy)) => {
                row.external = true;
                ServiceState::Online
            }
            (ServiceState::Starting, Some(Verdict::Healthy)) => ServiceState::Online,
            (ServiceState::Stopped | ServiceState::Starting, _) => {
                row.detail = st.detail.clone().or(row.detail.take());
                st.state
            }
            (_, Some(v)) => probed(v),
            (s, None) => {
                row.detail = st.detail.clone();
                s
            }
        };
        return row;
    }
    // No supervisor: the saved state tells which pid is ours, if still alive.
    let rec = saved.and_then(|s| s.services.get(&svc.name));
    let alive = rec
        .and_then(|r| Some((r.pid?, r.ticks?)))
        .filter(|&(pid, ticks)| process::is_same_process(pid, ticks));
    if let (Some((pid, _)), Some(rec)) = (alive, rec) {
        row.pid = Some(pid);
        row.restarts = rec.restarts;
        row.restarts_total = rec.restarts;
        row.restarts_in_row = rec.restarts_in_row.unwrap_or(0);
        row.uptime_s = rec.started_at.map(|t| (state::now_unix() - t).max(0.0));
    }
    // What the last supervisor left it as, when that was on purpose or final.
    let settled = rec.map(|r| r.state).filter(|s| {
        matches!(
            s,
            ServiceState::Stopped
                | ServiceState::Completed
                | ServiceState::Failed
                | ServiceState::Blocked
        )
    });
    row.state = match (verdict, settled) {
        (Some(Verdict::Healthy), _) => ServiceState::Online,
        (_, Some(s)) if alive.is_none() => {
            row.detail = rec.and_then(|r| r.detail.clone()).or(row.detail.take());
            s
        }
        (Some(v), _) => probed(v),
        (None, _) if alive.is_some() => ServiceState::Online,
        (None, _) => ServiceState::Offline,
    };
    row.external = row.state.is_ok() && alive.is_none() && !svc.oneshot;
    if row.external {
        row.detail = Some(
            format!("external: {}", row.detail.clone().unwrap_or_default())
                .trim_end_matches(": ")
                .to_string(),
        );
    }
    row
}

/// Whether the saved state records a process of `service` that still runs
/// (the very process: pid and start time).
pub(super) fn live_in_saved_state(saved: Option<&crate::state::StateFile>, service: &str) -> bool {
    saved
        .and_then(|s| s.services.get(service))
        .and_then(|r| Some((r.pid?, r.ticks?)))
        .is_some_and(|(pid, ticks)| crate::process::is_same_process(pid, ticks))
}

/// A `log` check of a service with no live run fails: the lines in its log
/// belong to a run that is over, whatever they say.
pub(super) fn no_live_run(svc: &crate::config::Service, result: &mut crate::health::ProbeResult) {
    if let Some(crate::config::Health {
        probe: crate::config::Probe::Log { .. },
        ..
    }) = &svc.health
    {
        result.verdict = crate::health::Verdict::Down;
        result.detail = format!(
            "no live run of \"{}\": a log check proves only the current run ready",
            svc.name
        );
    }
}

//! `fpctl check`: the truth about every service, whether or not a supervisor
//! runs. Every service is probed directly, all at once; a running supervisor
//! adds what only it knows (failed, blocked, restarts, pids).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, Probe};
use crate::control::{Request, Response};
use crate::health::{self, ProbeResult};
use crate::output;
use crate::state;
use crate::status::observe::{observe, Probed, Recorded};
use crate::status::{Activity, ServiceState, ServiceStatus, Snapshot};
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
    let counted: Vec<&str> = counted
        .iter()
        .map(|&i| config.services[i].name.as_str())
        .collect();
    let snapshot = rt.block_on(async {
        process::init();
        let deadline = wait.map(|w| Instant::now() + w);
        loop {
            let snapshot = look(&config, &shown, running).await;
            let counted_rows = || {
                snapshot
                    .services
                    .iter()
                    .filter(|r| counted.contains(&r.name.as_str()))
            };
            let all_ok = counted_rows().filter(|r| !resting(r)).all(|r| r.is_ok());
            let hopeless = counted_rows().any(|r| {
                matches!(r.state, ServiceState::Failed | ServiceState::Blocked) && !r.is_ok()
            });
            match deadline {
                Some(d) if !all_ok && !hopeless && Instant::now() < d => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => break snapshot,
            }
        }
    });
    let ok = snapshot
        .services
        .iter()
        .filter(|r| counted.contains(&r.name.as_str()))
        .filter(|r| !resting(r))
        .all(|r| r.is_ok());
    if json {
        let json = serde_json::to_string(&snapshot).expect("a snapshot serialises");
        println!("{json}");
    } else {
        print!("{}", output::status_table(&config, &snapshot, wide));
    }
    Ok(if ok {
        Outcome::Success
    } else {
        Outcome::NotOnline
    })
}

/// A disabled service that is not running: where it should be, so it
/// never fails `check` (it runs only when named or needed by a dependent,
/// and a dependent that runs without it fails on its own).
fn resting(row: &ServiceStatus) -> bool {
    row.state == ServiceState::Stopped && row.activity == Some(Activity::Disabled)
}

/// One look at the given services.
async fn look(config: &Arc<Config>, shown: &[usize], running: bool) -> Snapshot {
    let (from_supervisor, digest, supervisor_pid) = match supervisor_status(config) {
        Some((statuses, digest, pid)) => (Some(statuses), digest, pid),
        None => (None, None, None),
    };
    // The file changed since the supervisor read it: its ports and commands
    // may not be the running ones, so only the supervisor's own view counts.
    // (Unless `config` is the running one, read from the supervisor.)
    let stale = !running
        && digest
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
    let now = state::now_unix();
    let services = shown
        .iter()
        .map(|&i| {
            let svc = &config.services[i];
            let probe = results.remove(&i).flatten().map(|r| Probed {
                verdict: r.verdict,
                answer: r.detail,
                latency_ms: r.latency.as_secs_f64() * 1000.0,
            });
            let live = from_supervisor.as_ref().and_then(|m| m.get(&svc.name));
            let recorded = saved
                .as_ref()
                .and_then(|s| s.services.get(&svc.name))
                .map(|r| Recorded {
                    status: &r.status,
                    alive: r.live_pid().is_some(),
                    started_at: r.started_at,
                });
            let tier = &config.tiers[svc.tier].name;
            let mut st = observe(svc, tier, probe, live, recorded, now);
            if stale && live.is_none() {
                st.state = ServiceState::Stopped;
                st.activity = Some(Activity::NotInRunningConfig);
                st.detail = None;
            }
            // Secret values never reach what is shown.
            st.activity = st.activity.map(|a| a.masked(|t| svc.redact(t)));
            st.detail = st
                .detail
                .clone()
                .or_else(|| st.describe())
                .map(|d| svc.redact(&d));
            st
        })
        .collect();
    Snapshot::new(config.project.name.clone(), supervisor_pid, services)
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

/// What the supervisor knows, the digest of the config it runs, and its pid.
type Known = (HashMap<String, ServiceStatus>, Option<String>, Option<i32>);

fn supervisor_status(config: &Config) -> Option<Known> {
    // A supervisor that died is replaced here, adopting what it left running.
    let mut client = super::supervisor_if_needed(config).ok().flatten()?;
    client.set_timeout(Some(Duration::from_secs(5)));
    match client.request(Request::Status, |_| {}) {
        Ok(Response::Status {
            snapshot,
            config_digest,
        }) => Some((
            snapshot
                .services
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect(),
            config_digest,
            snapshot.supervisor_pid,
        )),
        _ => None,
    }
}

/// Whether the saved state records a process of `service` that still runs
/// (the very process: pid and start time).
pub(super) fn live_in_saved_state(saved: Option<&crate::state::StateFile>, service: &str) -> bool {
    saved
        .and_then(|s| s.services.get(service))
        .is_some_and(|r| r.live_pid().is_some())
}

/// A `log` check of a service with no live run fails: the lines in its log
/// belong to a run that is over, whatever they say.
pub fn no_live_run(svc: &crate::config::Service, result: &mut crate::health::ProbeResult) {
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

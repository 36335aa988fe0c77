//! `fpctl probe SVC [--wait[=DUR]]`: run one service's health check from
//! here, print what it answered, and exit 0 when it passes. Made for scripts
//! and for systemd's ExecStartPost, which waits on it before dependents start.
//! A replicated service's name probes every instance: all must pass.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{defaults, Config, Probe, Service};
use crate::control::{Client, Request, Response};
use crate::graph;
use crate::health::{self, ProbeResult, Verdict};
use crate::{state, Error, Outcome, Result};

/// Time between probes while waiting (a starting service answers within
/// milliseconds of being ready, as `start` sees it).
const RETRY: Duration = Duration::from_millis(50);

pub fn probe(file: Option<&Path>, name: &str, wait: Option<Duration>) -> Result<Outcome> {
    let (config, _) = super::load_running(file)?;
    // The same "no service named … (did you mean …)" as every command.
    graph::select(&config, &[name.to_string()], &[])?;
    let mut targets = Vec::new();
    for instance in config.expand_names(&[name.to_string()]) {
        let (_, svc) = config
            .service(&instance)
            .ok_or_else(|| Error::Usage(format!("no service named \"{instance}\"")))?;
        let (probe, timeout) = match (&svc.health, svc.port) {
            (Some(h), _) => (h.probe.clone(), h.timeout),
            (None, Some(port)) => (Probe::Tcp { port }, defaults::HEALTH_TIMEOUT),
            (None, None) => {
                return Err(Error::Usage(format!(
                    "service \"{instance}\" has neither a health check nor a port to probe: add health = {{ ... }} or port = N to it"
                )))
            }
        };
        targets.push((svc, probe, timeout));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::other("cannot start the async runtime", e))?;
    let deadline = wait.map(|w| Instant::now() + w);
    let results = rt.block_on(async {
        crate::process::init();
        loop {
            let mut results = Vec::with_capacity(targets.len());
            for (svc, probe, timeout) in &targets {
                results.push(health::probe(svc, probe, *timeout).await);
            }
            judge_log_checks(&config, &targets, &mut results);
            let all = results.iter().all(|r| r.verdict == Verdict::Healthy);
            match deadline {
                Some(d) if !all && Instant::now() + RETRY < d => {
                    tokio::time::sleep(RETRY).await;
                }
                _ => break results,
            }
        }
    });
    for ((svc, _, _), result) in targets.iter().zip(&results) {
        let detail = svc.redact(result.detail.trim());
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        println!("{}: {}{detail}", svc.name, result.verdict.as_str());
    }
    Ok(if results.iter().all(|r| r.verdict == Verdict::Healthy) {
        Outcome::Success
    } else {
        Outcome::NotOnline
    })
}

/// A passing log check counts only while a process of the service's
/// current run is alive, as the supervisor (or, with none running, its
/// saved state) knows it.
fn judge_log_checks(
    config: &Config,
    targets: &[(&Service, Probe, Duration)],
    results: &mut [ProbeResult],
) {
    let logged = |(svc, _, _): &&(&Service, Probe, Duration)| {
        matches!(
            svc.health.as_ref().map(|h| &h.probe),
            Some(Probe::Log { .. })
        )
    };
    if !targets.iter().any(|t| logged(&t)) {
        return;
    }
    let from_supervisor = Client::connect(&state::socket_path(config)).and_then(|mut c| {
        c.set_timeout(Some(Duration::from_secs(5)));
        match c.request(Request::Status, |_| {}) {
            Ok(Response::Status { snapshot, .. }) => Some(snapshot.services),
            _ => None,
        }
    });
    let saved = from_supervisor
        .is_none()
        .then(|| state::read(config))
        .flatten();
    for ((svc, _, _), result) in targets.iter().zip(results.iter_mut()) {
        let live = match &from_supervisor {
            Some(statuses) => statuses
                .iter()
                .any(|s| s.name == svc.name && s.pid.is_some()),
            None => super::check::live_in_saved_state(saved.as_ref(), &svc.name),
        };
        if !live {
            super::check::no_live_run(svc, result);
        }
    }
}

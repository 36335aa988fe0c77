//! `fpctl probe SVC [--wait[=DUR]]`: run one service's health check from
//! here, print what it answered, and exit 0 when it passes. Made for scripts
//! and for systemd's ExecStartPost, which waits on it before dependents start.

use std::path::Path;
use std::time::{Duration, Instant};

use super::load;
use crate::config::{defaults, Probe};
use crate::graph;
use crate::health::{self, Verdict};
use crate::{Error, Outcome, Result};

/// Time between probes while waiting (a starting service answers within
/// milliseconds of being ready, as `start` sees it).
const RETRY: Duration = Duration::from_millis(50);

pub fn probe(file: Option<&Path>, name: &str, wait: Option<Duration>) -> Result<Outcome> {
    let config = load(file)?;
    let (_, svc) = config.service(name).ok_or_else(|| {
        graph::select(&config, &[name.to_string()], &[])
            .err()
            .map(Error::from)
            .unwrap_or_else(|| Error::Usage(format!("no service named \"{name}\"")))
    })?;
    let (probe, timeout) = match (&svc.health, svc.port) {
        (Some(h), _) => (h.probe.clone(), h.timeout),
        (None, Some(port)) => (Probe::Tcp { port }, defaults::HEALTH_TIMEOUT),
        (None, None) => {
            return Err(Error::Usage(format!(
                "service \"{name}\" has neither a health check nor a port to probe: add health = {{ ... }} or port = N to it"
            )))
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::other("cannot start the async runtime", e))?;
    let deadline = wait.map(|w| Instant::now() + w);
    let result = rt.block_on(async {
        crate::process::init();
        loop {
            let r = health::probe(svc, &probe, timeout).await;
            match deadline {
                Some(d) if r.verdict != Verdict::Healthy && Instant::now() + RETRY < d => {
                    tokio::time::sleep(RETRY).await;
                }
                _ => break r,
            }
        }
    });
    let state = match result.verdict {
        Verdict::Healthy => "healthy",
        Verdict::Unhealthy => "unhealthy",
        Verdict::Down => "down",
        Verdict::Inconclusive => "inconclusive",
    };
    let detail = svc.redact(result.detail.trim());
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    };
    println!("{name}: {state}{detail}");
    Ok(if result.verdict == Verdict::Healthy {
        Outcome::Success
    } else {
        Outcome::NotOnline
    })
}

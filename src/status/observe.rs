//! What `check` says of a service: the truth table that combines a live
//! probe with what the supervisor knows (or, with no supervisor, what the
//! last one recorded). Pure: the probe, the statuses and the time are passed
//! in, and the table tests below cover probe verdict × live state × saved
//! state.
//!
//! The rules, in short:
//! - the supervisor's word is final for what only it can know: failed,
//!   blocked, completed, and a stop or start in progress;
//! - otherwise the probe decides: healthy is online, an answer that says
//!   unhealthy is degraded, no answer is offline;
//! - a healthy answer where fpctl runs nothing is `external`;
//! - with no supervisor, a recorded process counts only if it is still the
//!   very process recorded, and a state the last supervisor left on
//!   purpose (stopped, completed, failed, blocked) stands unless something
//!   healthy answers.

use super::{tenth, Activity, ServiceState, ServiceStatus};
use crate::config::Service;
use crate::health::Verdict;

/// One probe's answer, as `check` made it just now.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    pub verdict: Verdict,
    pub answer: String,
    pub latency_ms: f64,
}

/// What the last supervisor recorded of a service, and whether its process
/// is still the very process recorded.
#[derive(Debug, Clone, Copy)]
pub struct Recorded<'a> {
    pub status: &'a ServiceStatus,
    pub alive: bool,
    /// Unix time its process started.
    pub started_at: Option<f64>,
}

/// The status of `svc` (of tier `tier`) from a probe (None: it has nothing
/// to probe), the supervisor's status of it (`live`), or else the last
/// supervisor's record; `now` is the Unix time. `detail` is left to the
/// caller: the words are `output`'s.
pub fn observe(
    svc: &Service,
    tier: &str,
    probe: Option<Probed>,
    live: Option<&ServiceStatus>,
    recorded: Option<Recorded<'_>>,
    now: f64,
) -> ServiceStatus {
    let mut st = ServiceStatus::new(&svc.name, tier);
    st.state = ServiceState::Offline;
    st.port = svc.port;
    st.group = svc.group.as_ref().map(|(g, _)| g.clone());
    st.replica = svc.group.as_ref().map(|(_, i)| *i);
    st.latency_ms = probe.as_ref().map(|p| tenth(p.latency_ms));
    // A disabled service runs only when started by name or for a
    // dependent; otherwise it is stopped, whatever answers on its port.
    let runs = live.is_some_and(|l| l.state != ServiceState::Stopped);
    if svc.disabled && !runs {
        st.state = ServiceState::Stopped;
        st.activity = Some(Activity::Disabled);
        return st;
    }
    let verdict = probe.as_ref().map(|p| p.verdict);
    let answered = probe
        .as_ref()
        .filter(|p| !p.answer.is_empty())
        .map(|p| Activity::Probed {
            answer: p.answer.clone(),
        });
    let probed = |v: Verdict| match v {
        Verdict::Healthy => ServiceState::Online,
        Verdict::Unhealthy => ServiceState::Degraded,
        _ => ServiceState::Offline,
    };
    st.activity = answered.clone();
    if let Some(live) = live {
        st.pid = live.pid;
        st.port = live.port;
        st.restarts = live.restarts;
        st.restarts_in_row = live.restarts_in_row;
        st.uptime_s = live.uptime_s;
        st.external = live.external;
        st.rss_bytes = live.rss_bytes;
        st.cpu_percent = live.cpu_percent;
        st.restarts_total = live.restarts_total;
        st.container = live.container.clone();
        st.schedule = live.schedule.clone();
        st.state = match (live.state, verdict) {
            (
                ServiceState::Failed
                | ServiceState::Blocked
                | ServiceState::Completed
                | ServiceState::Scheduled
                | ServiceState::Running,
                _,
            ) => {
                st.activity = live.activity.clone();
                st.detail = live.detail.clone();
                st.reason = live.reason.clone();
                live.state
            }
            (ServiceState::Stopped, Some(Verdict::Healthy)) => {
                st.external = true;
                ServiceState::Online
            }
            (ServiceState::Starting, Some(Verdict::Healthy)) => ServiceState::Online,
            (ServiceState::Stopped | ServiceState::Starting, _) => {
                if live.activity.is_some() {
                    st.activity = live.activity.clone();
                    st.detail = live.detail.clone();
                }
                live.state
            }
            (_, Some(v)) if v != Verdict::Inconclusive => probed(v),
            (s, _) => {
                st.activity = live.activity.clone();
                st.detail = live.detail.clone();
                s
            }
        };
        return st;
    }
    // What the last supervisor kept of a schedule; no timer runs now.
    st.schedule = recorded
        .and_then(|r| r.status.schedule.clone())
        .map(|mut s| {
            s.next_run = None;
            s.queued = false;
            s
        });
    let alive = recorded.filter(|r| r.alive);
    if let Some(rec) = alive {
        st.pid = rec.status.pid;
        st.restarts = rec.status.restarts;
        st.restarts_total = rec.status.restarts;
        st.restarts_in_row = rec.status.restarts_in_row;
        st.uptime_s = rec.started_at.map(|t| tenth((now - t).max(0.0)));
    }
    // What the last supervisor left it as, when that was on purpose or final.
    let settled = recorded.map(|r| r.status.state).filter(|s| {
        matches!(
            s,
            ServiceState::Stopped
                | ServiceState::Completed
                | ServiceState::Failed
                | ServiceState::Blocked
        )
    });
    st.state = match (verdict, settled) {
        (Some(Verdict::Healthy), _) => ServiceState::Online,
        (_, Some(s)) if alive.is_none() => {
            let rec = recorded.expect("settled comes from a record").status;
            st.reason = rec.reason.clone();
            if rec.activity.is_some() || rec.detail.is_some() {
                st.activity = rec.activity.clone();
                st.detail = rec.detail.clone();
            }
            s
        }
        (Some(v), _) if v != Verdict::Inconclusive => probed(v),
        (_, _) if alive.is_some() => ServiceState::Online,
        (_, _) => ServiceState::Offline,
    };
    st.external = st.state == ServiceState::Online && alive.is_none() && !svc.oneshot;
    if st.external {
        st.activity = Some(Activity::External {
            answer: answered
                .map(|a| match a {
                    Activity::Probed { answer } => answer,
                    _ => String::new(),
                })
                .unwrap_or_default(),
        });
        st.detail = None;
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{FailReason, Reason};
    use std::path::Path;

    fn svc(extra: &str) -> Service {
        let text = format!("[services.web]\ncommand = \"web\"\nport = 7001\n{extra}\n");
        let config = crate::config::load_str(Path::new("/tmp/fpctl-observe/services.toml"), text)
            .expect("valid");
        config.services[0].clone()
    }

    fn probe(verdict: Verdict) -> Option<Probed> {
        Some(Probed {
            verdict,
            answer: verdict.as_str().into(),
            latency_ms: 1.26,
        })
    }

    fn status(state: ServiceState) -> ServiceStatus {
        let mut s = ServiceStatus::new("web", "default");
        s.state = state;
        s
    }

    const NOW: f64 = 1000.0;

    /// The state `check` shows for each probe verdict and live state.
    #[test]
    fn with_a_supervisor_its_word_is_final_where_only_it_knows() {
        use ServiceState::*;
        use Verdict::*;
        let table = [
            // live, probe, shown
            (Failed, Some(Healthy), Failed),
            (Blocked, Some(Healthy), Blocked),
            (Completed, Some(Down), Completed),
            (Stopped, Some(Healthy), Online), // external
            (Stopped, Some(Down), Stopped),
            (Starting, Some(Healthy), Online),
            (Starting, Some(Down), Starting),
            (Online, Some(Unhealthy), Degraded),
            (Online, Some(Down), Offline),
            (Degraded, Some(Healthy), Online),
            (Online, None, Online),
            (Offline, None, Offline),
            // fpctl could not probe: the supervisor's word stands.
            (Online, Some(Inconclusive), Online),
        ];
        for (live, verdict, shown) in table {
            let st = observe(
                &svc(""),
                "default",
                verdict.and_then(probe),
                Some(&status(live)),
                None,
                NOW,
            );
            assert_eq!(st.state, shown, "live {live:?}, probe {verdict:?}");
            assert_eq!(
                st.external,
                live == Stopped && verdict == Some(Healthy),
                "external, live {live:?}, probe {verdict:?}"
            );
        }
    }

    #[test]
    fn a_failed_service_keeps_its_reason_and_the_supervisors_counts() {
        let mut live = status(ServiceState::Failed);
        live.reason = Some(Reason::Failed(FailReason::Recorded {
            message: "gave up".into(),
        }));
        live.restarts = 3;
        live.restarts_total = 4;
        let st = observe(
            &svc(""),
            "default",
            probe(Verdict::Down),
            Some(&live),
            None,
            NOW,
        );
        assert_eq!(st.reason, live.reason);
        assert_eq!((st.restarts, st.restarts_total), (3, 4));
        assert_eq!(st.latency_ms, Some(1.3), "rounded to 0.1 ms");
    }

    /// Without a supervisor: probe verdict × recorded state × whether the
    /// recorded process still lives.
    #[test]
    fn without_a_supervisor_the_record_counts_only_while_true() {
        use ServiceState::*;
        use Verdict::*;
        let table = [
            // probe, recorded, alive, shown, external
            (Some(Healthy), None, false, Online, true),
            (Some(Down), None, false, Offline, false),
            (Some(Unhealthy), None, false, Degraded, false),
            (None, None, false, Offline, false),
            (Some(Healthy), Some(Online), true, Online, false),
            (None, Some(Online), true, Online, false),
            (Some(Down), Some(Online), true, Offline, false),
            (Some(Down), Some(Stopped), false, Stopped, false),
            (Some(Down), Some(Failed), false, Failed, false),
            (Some(Healthy), Some(Failed), false, Online, true),
            (None, Some(Completed), false, Completed, false),
            (Some(Down), Some(Online), false, Offline, false),
        ];
        for (verdict, rec, alive, shown, external) in table {
            let record = rec.map(status);
            let recorded = record.as_ref().map(|s| Recorded {
                status: s,
                alive,
                started_at: Some(NOW - 12.34),
            });
            let st = observe(
                &svc(""),
                "default",
                verdict.and_then(probe),
                None,
                recorded,
                NOW,
            );
            let case = format!("probe {verdict:?}, recorded {rec:?}, alive {alive}");
            assert_eq!(st.state, shown, "{case}");
            assert_eq!(st.external, external, "{case}");
            assert_eq!(st.uptime_s.is_some(), alive, "{case}");
        }
    }

    #[test]
    fn a_disabled_service_is_stopped_whatever_answers() {
        let st = observe(
            &svc("disabled = true"),
            "default",
            probe(Verdict::Healthy),
            None,
            None,
            NOW,
        );
        assert_eq!(st.state, ServiceState::Stopped);
        assert_eq!(st.activity, Some(Activity::Disabled));
    }

    #[test]
    fn a_healthy_oneshot_without_a_process_is_not_external() {
        let st = observe(
            &svc("oneshot = true"),
            "default",
            probe(Verdict::Healthy),
            None,
            None,
            NOW,
        );
        assert_eq!(st.state, ServiceState::Online);
        assert!(!st.external);
    }
}

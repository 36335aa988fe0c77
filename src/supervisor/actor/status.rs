//! A service's status as the supervisor knows it: the one place an entry
//! becomes a [`ServiceStatus`] of the status model, secrets masked, for
//! every surface (the socket's answers and subscriptions, the API, the
//! state file).

use super::*;
use crate::status::{self, Snapshot};

impl Supervisor {
    pub(super) fn status_of(&self, id: &ServiceId, e: &Entry) -> ServiceStatus {
        let s = &e.svc;
        let mask = |t: &str| e.spec.redact(t);
        let reason = s.reason().map(|r| r.masked(mask));
        let activity = match s.doing() {
            None if s.phase == Phase::Idle && e.spec.disabled => Some(Activity::Disabled),
            a => a.map(|a| a.masked(mask)),
        };
        let running = s.pid.is_some();
        let mut st = ServiceStatus {
            name: id.to_string(),
            tier: self
                .config
                .tiers
                .get(e.tier)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            state: s.public(),
            pid: s.pid,
            port: e.spec.port,
            restarts: s.restarts,
            restarts_in_row: s.streak,
            uptime_s: s
                .started_at
                .filter(|_| running)
                .map(|t| status::tenth((state::now_unix() - t).max(0.0))),
            detail: None,
            reason,
            latency_ms: s.latency_ms.map(status::tenth),
            external: matches!(s.phase, Phase::External),
            group: e.spec.group.as_ref().map(|(g, _)| g.clone()),
            replica: e.spec.group.as_ref().map(|(_, i)| *i),
            rss_bytes: e.usage.filter(|_| running).map(|u| u.rss_bytes),
            cpu_percent: e
                .usage
                .filter(|_| running)
                .and_then(|u| u.cpu_percent)
                .map(status::tenth),
            restarts_total: s.restarts + e.requested_restarts,
            activity,
            container: e.spec.in_container().map(|c| status::ContainerRef {
                name: c.name.clone(),
                image: c.tag.clone(),
                id: e.container_id.clone().filter(|_| running),
            }),
            schedule: self.schedule_status(e),
        };
        st.detail = st.describe();
        st
    }

    /// Every service of the config in force, in file order.
    pub(super) fn statuses(&self) -> Vec<ServiceStatus> {
        self.config
            .services
            .iter()
            .filter_map(|svc| {
                let (id, e) = self.entries.get_key_value(svc.name.as_str())?;
                Some(self.status_of(id, e))
            })
            .collect()
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        Snapshot::new(
            self.config.project.name.clone(),
            Some(std::process::id() as i32),
            self.statuses(),
        )
    }

    /// Tell live watchers that `id` shows something new.
    pub(super) fn publish_service(&self, id: &ServiceId) {
        if let Some((id, e)) = self.entries.get_key_value(id) {
            self.publish(|| Update::Service(Box::new(self.status_of(id, e))));
        }
    }
}

/// The parts of a service's status whose change is published.
pub(super) type Shown = (
    ServiceState,
    Option<Activity>,
    Option<crate::status::Reason>,
    Option<i32>,
    u32,
    u32,
    (bool, bool, Option<crate::status::LastRun>),
);

/// What a service shows, to tell whether an input changed it (latency is
/// left out: each probe result is published on its own).
pub(super) fn shown(svc: &Svc) -> Shown {
    (
        svc.public(),
        svc.doing(),
        svc.reason(),
        svc.pid,
        svc.streak,
        svc.restarts,
        (svc.paused, svc.queued, svc.last_run.clone()),
    )
}

//! The record of the current start as the dispatcher keeps it: the
//! [`StartRecord`] that `fpctl analyze` reads, with an index by service and
//! the last service ready in each tier, so that noting a step costs the
//! same at a thousand services as at ten (every input notes one).

use std::collections::HashMap;

use crate::status::{ServiceState, StartRecord, StartedService};
use crate::supervisor::service::ServiceId;

pub(super) struct StartLog {
    record: StartRecord,
    at: HashMap<ServiceId, usize>,
    /// Per tier, the service of this start that became ready last.
    tier_ready: Vec<Option<(f64, ServiceId)>>,
}

impl StartLog {
    pub(super) fn new(began: f64) -> StartLog {
        StartLog {
            record: StartRecord {
                began,
                services: Vec::new(),
            },
            at: HashMap::new(),
            tier_ready: Vec::new(),
        }
    }

    pub(super) fn record(&self) -> &StartRecord {
        &self.record
    }

    pub(super) fn contains(&self, id: &ServiceId) -> bool {
        self.at.contains_key(id)
    }

    pub(super) fn get(&self, id: &ServiceId) -> Option<&StartedService> {
        self.at.get(id).map(|&i| &self.record.services[i])
    }

    pub(super) fn get_mut(&mut self, id: &ServiceId) -> Option<&mut StartedService> {
        self.at.get(id).map(|&i| &mut self.record.services[i])
    }

    /// `id` is one of this start's services (at most once).
    pub(super) fn join(&mut self, id: &ServiceId) {
        if self.contains(id) {
            return;
        }
        self.at.insert(id.clone(), self.record.services.len());
        self.record.services.push(StartedService {
            name: id.to_string(),
            launched: None,
            spawned: None,
            ready: None,
            after: None,
            state: ServiceState::Starting,
        });
    }

    /// `id`, of `tier`, became ready at `t`.
    pub(super) fn ready(&mut self, id: &ServiceId, tier: usize, t: f64) {
        if let Some(s) = self.get_mut(id) {
            s.ready = Some(t);
        }
        if self.tier_ready.len() <= tier {
            self.tier_ready.resize(tier + 1, None);
        }
        let last = &mut self.tier_ready[tier];
        if last.as_ref().is_none_or(|(at, _)| *at <= t) {
            *last = Some((t, id.clone()));
        }
    }

    /// Of `deps` and the services of the tiers before `tier`, the one of
    /// this start that became ready last.
    pub(super) fn waited_for<'a>(
        &self,
        deps: impl IntoIterator<Item = &'a ServiceId>,
        tier: usize,
    ) -> Option<String> {
        let deps = deps
            .into_iter()
            .filter_map(|d| self.get(d).and_then(|s| Some((s.ready?, d))));
        let earlier = self
            .tier_ready
            .iter()
            .take(tier)
            .flatten()
            .map(|(t, id)| (*t, id));
        deps.chain(earlier)
            .max_by(|a, b| a.0.partial_cmp(&b.0).expect("times are finite"))
            .map(|(_, id)| id.to_string())
    }
}

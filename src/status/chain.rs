//! The record of the last start, as the supervisor kept it: when the start
//! was asked for and, for each service it started, when it launched,
//! spawned and became ready, and which service it waited for last. `fpctl
//! analyze` derives the critical chain from it (`critical_chain`); nothing
//! here is measured again or guessed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ServiceState;

/// The last start that started anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StartRecord {
    /// Unix time the start was asked for (seconds).
    pub began: f64,
    /// The services it started (and those started on demand for them), in
    /// the order they were taken in.
    pub services: Vec<StartedService>,
}

/// One service of a start. Times are Unix seconds, as the supervisor saw
/// each step happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StartedService {
    pub name: String,
    /// When its dependencies and earlier tiers were ready and its launch
    /// (port check, setup) began.
    pub launched: Option<f64>,
    /// When its process was spawned.
    pub spawned: Option<f64>,
    /// When it was first online (or completed, or found external).
    pub ready: Option<f64>,
    /// The service of this start that became ready last before its launch:
    /// the one it waited for (a dependency, or a service of an earlier
    /// tier). None when it waited for nothing of this start.
    pub after: Option<String>,
    /// Its state when the record was read.
    pub state: ServiceState,
}

impl StartRecord {
    pub fn get(&self, name: &str) -> Option<&StartedService> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut StartedService> {
        self.services.iter_mut().find(|s| s.name == name)
    }

    /// The chain that bounded the start: the service ready last, then the
    /// one it waited for, and so on back to one that waited for nothing.
    /// Empty when nothing became ready.
    pub fn critical_chain(&self) -> Vec<&StartedService> {
        let last = self
            .services
            .iter()
            .filter(|s| s.ready.is_some())
            .max_by(|a, b| a.ready.partial_cmp(&b.ready).expect("times are finite"));
        let mut chain = Vec::new();
        let mut at = last;
        while let Some(s) = at {
            if chain.iter().any(|c: &&StartedService| c.name == s.name) {
                break;
            }
            chain.push(s);
            at = s.after.as_deref().and_then(|n| self.get(n));
        }
        chain
    }
}

impl StartedService {
    /// Milliseconds from the start's beginning to `t`.
    fn since(began: f64, t: Option<f64>) -> Option<u64> {
        t.map(|t| ((t - began).max(0.0) * 1000.0).round() as u64)
    }

    /// From the start's beginning to ready, ms.
    pub fn ready_ms(&self, began: f64) -> Option<u64> {
        Self::since(began, self.ready)
    }

    /// From its launch to ready, ms (setup included).
    pub fn launch_to_ready_ms(&self) -> Option<u64> {
        self.launched.and_then(|l| Self::since(l, self.ready))
    }

    /// From its spawn to ready, ms: its own start-up time.
    pub fn spawn_to_ready_ms(&self) -> Option<u64> {
        self.spawned.and_then(|s| Self::since(s, self.ready))
    }

    /// From the start's beginning to its launch, ms: what it waited for.
    pub fn launched_ms(&self, began: f64) -> Option<u64> {
        Self::since(began, self.launched)
    }
}

/// `fpctl analyze --json`: the record in milliseconds from the start's
/// beginning, and the critical chain by name (ready last first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Analysis {
    /// Unix time the start was asked for.
    pub began: f64,
    /// From the beginning to the last service ready, ms.
    pub total_ms: Option<u64>,
    /// The chain that bounded the total: the service ready last, then each
    /// one it waited for.
    pub critical_chain: Vec<String>,
    pub services: Vec<AnalysedService>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnalysedService {
    pub name: String,
    pub state: ServiceState,
    /// Launched (its dependencies ready), ms after the beginning.
    pub launched_ms: Option<u64>,
    /// Online (or completed), ms after the beginning.
    pub ready_ms: Option<u64>,
    /// Its own start-up: from its spawn to ready, ms.
    pub spawn_to_ready_ms: Option<u64>,
    /// From its launch to ready, ms (its setup included).
    pub launch_to_ready_ms: Option<u64>,
    /// The service it waited for last.
    pub after: Option<String>,
}

impl Analysis {
    pub fn of(record: &StartRecord) -> Analysis {
        let began = record.began;
        let chain = record.critical_chain();
        Analysis {
            began,
            total_ms: chain.first().and_then(|s| s.ready_ms(began)),
            critical_chain: chain.iter().map(|s| s.name.clone()).collect(),
            services: record
                .services
                .iter()
                .map(|s| AnalysedService {
                    name: s.name.clone(),
                    state: s.state,
                    launched_ms: s.launched_ms(began),
                    ready_ms: s.ready_ms(began),
                    spawn_to_ready_ms: s.spawn_to_ready_ms(),
                    launch_to_ready_ms: s.launch_to_ready_ms(),
                    after: s.after.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, launched: f64, ready: Option<f64>, after: Option<&str>) -> StartedService {
        StartedService {
            name: name.into(),
            launched: Some(launched),
            spawned: Some(launched + 0.01),
            ready,
            after: after.map(Into::into),
            state: ServiceState::Online,
        }
    }

    #[test]
    fn the_chain_runs_back_from_the_service_ready_last() {
        let record = StartRecord {
            began: 100.0,
            services: vec![
                svc("db", 100.0, Some(100.5), None),
                svc("cache", 100.0, Some(100.2), None),
                svc("api", 100.5, Some(102.5), Some("db")),
                svc("web", 102.5, Some(103.0), Some("api")),
                svc("side", 100.2, Some(100.4), Some("cache")),
                svc("broken", 100.0, None, None),
            ],
        };
        let names: Vec<&str> = record
            .critical_chain()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["web", "api", "db"]);
        let a = Analysis::of(&record);
        assert_eq!(a.total_ms, Some(3000));
        let api = a.services.iter().find(|s| s.name == "api").unwrap();
        assert_eq!(api.ready_ms, Some(2500));
        assert_eq!(api.launched_ms, Some(500));
        assert_eq!(api.spawn_to_ready_ms, Some(1990));
        assert_eq!(api.launch_to_ready_ms, Some(2000));
    }

    #[test]
    fn nothing_ready_is_an_empty_chain() {
        let record = StartRecord {
            began: 1.0,
            services: vec![svc("db", 1.0, None, None)],
        };
        assert!(record.critical_chain().is_empty());
        assert_eq!(Analysis::of(&record).total_ms, None);
    }
}

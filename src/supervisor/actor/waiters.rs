//! Waiters: a request that waits for its services to settle, with a
//! progress line whenever one of them changes, one every [`STILL`] for a
//! setup or a health wait that goes on (its step, its last output, the last
//! probe's answer), and one final answer.

use std::collections::HashMap;

use super::*;

/// How often a step that is still running is reported.
pub(super) const STILL: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq)]
pub(super) enum WaitFor {
    Up,
    Down,
}

pub(super) struct Waiter {
    targets: Vec<ServiceId>,
    /// What each target waits for.
    wait_for: Vec<WaitFor>,
    /// The answer to a reload: the next one waits until this one is done.
    pub(super) reload: bool,
    reply: mpsc::UnboundedSender<Response>,
    since: Instant,
    shown: Vec<Option<(ServiceState, Option<String>)>>,
    /// When each target's last line was sent.
    said: Vec<Instant>,
    /// Each target's `stops` when the request came.
    stops_before: Vec<u64>,
    /// Each scheduled job's `runs` when the request came.
    runs_before: Vec<u64>,
    /// Known before waiting (a restart whose setup failed).
    pub(super) failures: Vec<Failure>,
    /// Each target's position in `targets`.
    index: HashMap<ServiceId, usize>,
    /// Not looked at yet: every target is news.
    fresh: bool,
    /// Whether each target has settled, as last looked at, and how many
    /// have not: only the targets that changed are looked at again.
    settled: Vec<bool>,
    unsettled: usize,
}

impl Supervisor {
    pub(super) fn add_waiter(
        &mut self,
        targets: Vec<ServiceId>,
        wait_for: WaitFor,
        reply: mpsc::UnboundedSender<Response>,
    ) {
        let each = targets.into_iter().map(|id| (id, wait_for)).collect();
        self.add_waiter_each(each, reply);
    }

    /// A waiter whose targets wait for different things (a reload: what it
    /// started up, what it removed down).
    pub(super) fn add_waiter_each(
        &mut self,
        targets: Vec<(ServiceId, WaitFor)>,
        reply: mpsc::UnboundedSender<Response>,
    ) {
        let (targets, wait_for): (Vec<ServiceId>, Vec<WaitFor>) = targets.into_iter().unzip();
        let n = targets.len();
        let targets_index = targets
            .iter()
            .enumerate()
            .map(|(k, id)| (id.clone(), k))
            .collect();
        let stops_before = targets
            .iter()
            .map(|id| self.entries.get(id).map_or(0, |e| e.svc.stops))
            .collect();
        let runs_before = targets
            .iter()
            .map(|id| self.entries.get(id).map_or(0, |e| e.svc.runs))
            .collect();
        self.waiters.push(Waiter {
            runs_before,
            targets,
            wait_for,
            reload: false,
            reply,
            since: Instant::now(),
            shown: vec![None; n],
            said: vec![Instant::now(); n],
            stops_before,
            failures: Vec::new(),
            index: targets_index,
            fresh: true,
            settled: vec![false; n],
            unsettled: n,
        });
    }

    /// Progress lines and final answers. Only what changed since the last
    /// call is looked at, so that a start of a thousand services costs
    /// about linearly in its events, not in events times services.
    pub(super) fn notify_waiters(&mut self) {
        let mut waiters = std::mem::take(&mut self.waiters);
        let changed = std::mem::take(&mut self.changed);
        let all = std::mem::replace(&mut self.all_changed, false);
        waiters.retain_mut(|w| {
            let elapsed_ms = w.since.elapsed().as_millis() as u64;
            let news: Vec<usize> = if all || w.fresh {
                (0..w.targets.len()).collect()
            } else {
                changed
                    .iter()
                    .filter_map(|id| w.index.get(id).copied())
                    .collect()
            };
            // A waiter with no targets (every setup failed) answers at once.
            let first = std::mem::replace(&mut w.fresh, false);
            if news.is_empty() && !first {
                return true;
            }
            for &k in &news {
                let id = &w.targets[k];
                let Some(e) = self.entries.get(id) else {
                    continue;
                };
                let doing = if setting_up_ahead(e) {
                    Some(Activity::SettingUpAhead)
                } else {
                    e.svc.doing()
                };
                let words = match (e.svc.reason(), &doing) {
                    (Some(r), _) => Some(r.to_string()),
                    (None, Some(a)) => Some(a.to_string()),
                    (None, None) => None,
                };
                let now = (e.svc.public(), words.map(|w| e.spec.redact(&w)));
                if w.shown[k].as_ref() != Some(&now) {
                    let progress = Progress {
                        service: id.to_string(),
                        state: now.0,
                        detail: now.1.clone(),
                        activity: doing.map(|a| a.masked(|t| e.spec.redact(t))),
                        elapsed_ms,
                    };
                    if w.reply.send(Response::Progress(progress)).is_err() {
                        return false; // the client went away
                    }
                    w.shown[k] = Some(now);
                    w.said[k] = Instant::now();
                } else if w.said[k].elapsed() >= STILL {
                    w.said[k] = Instant::now();
                    if let Some(still) = self.still(id, e, w.since) {
                        let still = still.masked(|t| e.spec.redact(t));
                        let progress = Progress {
                            service: id.to_string(),
                            state: e.svc.public(),
                            detail: Some(still.to_string()),
                            activity: Some(still),
                            elapsed_ms,
                        };
                        if w.reply.send(Response::Progress(progress)).is_err() {
                            return false;
                        }
                    }
                }
            }
            for &k in &news {
                let now = match self.entries.get(&w.targets[k]) {
                    None => true,
                    Some(e) => match w.wait_for[k] {
                        WaitFor::Up => e.svc.settled_up(),
                        WaitFor::Down => {
                            (!e.svc.active() && e.svc.goal == Goal::Run && e.unit.is_none())
                                || e.svc.stops > w.stops_before[k]
                        }
                    },
                };
                if now != w.settled[k] {
                    w.settled[k] = now;
                    if now {
                        w.unsettled -= 1;
                    } else {
                        w.unsettled += 1;
                    }
                }
            }
            if w.unsettled > 0 {
                return true;
            }
            // Whoever reads state.json after the answer sees what it says.
            if self.dirty {
                self.persist();
            }
            let failures: Vec<Failure> = std::mem::take(&mut w.failures)
                .into_iter()
                .chain(
                    w.targets
                        .iter()
                        .zip(&w.wait_for)
                        .zip(&w.runs_before)
                        .filter(|((_, wait_for), _)| **wait_for == WaitFor::Up)
                        .filter_map(|((id, _), runs)| Some((id, self.entries.get(id)?, *runs)))
                        .filter(|(_, e, runs_before)| {
                            !e.svc.ready() || failed_run_since(e, *runs_before)
                        })
                        .map(|(id, e, runs_before)| Failure {
                            service: id.to_string(),
                            state: e.svc.public(),
                            reason: e.spec.redact(&match (e.svc.reason(), &e.svc.activity) {
                                _ if failed_run_since(e, runs_before) => e
                                    .svc
                                    .last_run
                                    .as_ref()
                                    .map(|r| r.to_string())
                                    .unwrap_or_default(),
                                (Some(r), _) => r.to_string(),
                                (None, Some(a)) => a.to_string(),
                                (None, None) => Activity::Interrupted {
                                    by: self
                                        .stopped_by
                                        .filter(|_| e.svc.phase == Phase::Idle)
                                        .unwrap_or(Interruption::Other),
                                }
                                .to_string(),
                            }),
                            log: self.config.log_path(id.as_str()),
                        }),
                )
                .collect();
            let _ = w.reply.send(Response::Done {
                ok: failures.is_empty(),
                failures,
            });
            false
        });
        self.waiters = waiters;
    }
}

/// A scheduled job ran while the request waited, and its last run failed.
fn failed_run_since(e: &Entry, runs_before: u64) -> bool {
    e.svc.runs > runs_before && e.svc.last_run.as_ref().is_some_and(|r| !r.success)
}

/// Waiting for its dependencies while its setup runs ahead.
fn setting_up_ahead(e: &Entry) -> bool {
    e.svc.phase == Phase::Waiting && e.ahead.as_ref().is_some_and(|a| !a.finished)
}

impl Supervisor {
    /// What a service that is still setting up or waiting for health is
    /// doing, for a line every [`STILL`].
    fn still(&self, id: &ServiceId, e: &Entry, since: Instant) -> Option<Activity> {
        let secs = |from: Instant| from.elapsed().as_secs();
        let setting_up = e.svc.phase == Phase::Preparing || setting_up_ahead(e);
        if setting_up {
            let (step, last) =
                crate::service_log::setup_status(&self.config.log_path(id.as_str()))?;
            return Some(Activity::StillSettingUp {
                secs: secs(since),
                step,
                last,
            });
        }
        if e.svc.phase == Phase::Starting {
            let from = e.svc.started.unwrap_or(since);
            return Some(Activity::StillWaiting {
                secs: secs(from),
                last_probe: e.svc.last_probe().map(str::to_string),
            });
        }
        None
    }
}

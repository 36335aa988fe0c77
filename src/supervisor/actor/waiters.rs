//! Waiters: a request that waits for its services to settle, with a
//! progress line whenever one of them changes, and one final answer.

use super::*;

#[derive(Clone, Copy, PartialEq)]
pub(super) enum WaitFor {
    Up,
    Down,
}

pub(super) struct Waiter {
    targets: Vec<ServiceId>,
    wait_for: WaitFor,
    reply: mpsc::UnboundedSender<Response>,
    since: Instant,
    shown: Vec<Option<(ServiceState, Option<String>)>>,
    /// Each target's `stops` when the request came.
    stops_before: Vec<u64>,
    /// Known before waiting (a restart whose setup failed).
    pub(super) failures: Vec<Failure>,
}

impl Supervisor {
    pub(super) fn add_waiter(
        &mut self,
        targets: Vec<ServiceId>,
        wait_for: WaitFor,
        reply: mpsc::UnboundedSender<Response>,
    ) {
        let n = targets.len();
        let stops_before = targets
            .iter()
            .map(|id| self.entries.get(id).map_or(0, |e| e.svc.stops))
            .collect();
        self.waiters.push(Waiter {
            targets,
            wait_for,
            reply,
            since: Instant::now(),
            shown: vec![None; n],
            stops_before,
            failures: Vec::new(),
        });
    }

    pub(super) fn notify_waiters(&mut self) {
        let mut waiters = std::mem::take(&mut self.waiters);
        waiters.retain_mut(|w| {
            let elapsed_ms = w.since.elapsed().as_millis() as u64;
            for (k, id) in w.targets.iter().enumerate() {
                let Some(e) = self.entries.get(id) else {
                    continue;
                };
                let now = (e.svc.public(), e.svc.label().map(|l| e.spec.redact(&l)));
                if w.shown[k].as_ref() != Some(&now) {
                    let progress = Progress {
                        service: id.to_string(),
                        state: now.0,
                        detail: now.1.clone(),
                        elapsed_ms,
                    };
                    if w.reply.send(Response::Progress(progress)).is_err() {
                        return false; // the client went away
                    }
                    w.shown[k] = Some(now);
                }
            }
            let settled = w.targets.iter().enumerate().all(|(k, id)| {
                let Some(e) = self.entries.get(id) else {
                    return true;
                };
                match w.wait_for {
                    WaitFor::Up => e.svc.settled_up(),
                    WaitFor::Down => {
                        (!e.svc.active() && e.svc.goal == Goal::Run && e.unit.is_none())
                            || e.svc.stops > w.stops_before[k]
                    }
                }
            });
            if !settled {
                return true;
            }
            let failures: Vec<Failure> = std::mem::take(&mut w.failures)
                .into_iter()
                .chain(
                    w.targets
                        .iter()
                        .filter_map(|id| Some((id, self.entries.get(id)?)))
                        .filter(|(_, e)| w.wait_for == WaitFor::Up && !e.svc.ready())
                        .map(|(id, e)| Failure {
                            service: id.to_string(),
                            state: e.svc.public(),
                            reason: e.spec.redact(
                                &e.svc
                                    .reason()
                                    .or_else(|| e.svc.detail.clone())
                                    .unwrap_or_default(),
                            ),
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

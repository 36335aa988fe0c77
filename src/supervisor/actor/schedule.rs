//! The timers of scheduled jobs. A job has one timer while it is on its
//! schedule (waiting for its next run, or running one); the timer is a
//! task that sleeps until the next run and sends `Msg::Due`, tagged with a
//! token so that a timer replaced or disarmed meanwhile is ignored. The
//! dispatcher keeps the timer in step with the job's state after every
//! input ([`Supervisor::sync_schedule`]); what a due run does (run, skip,
//! queue) is the state machine's (`Input::Due`).

use super::*;
use crate::config::{Schedule, When};

/// A job's armed timer.
pub(super) struct Timer {
    /// Unix time it fires.
    pub next_run: f64,
    pub token: u64,
    task: tokio::task::AbortHandle,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The first time a job comes due once its timer is set at `now`: an
/// `every` job keeps its cadence from the last time it came due, when that
/// is still ahead.
pub(super) fn first_due(schedule: &Schedule, seen_until: Option<f64>, now: f64) -> Option<f64> {
    match (&schedule.when, seen_until) {
        (When::Every(d), Some(seen)) if seen + d.as_secs_f64() > now => {
            Some(seen + d.as_secs_f64())
        }
        _ => schedule.next_after(now),
    }
}

/// The time after `due` that the job comes due next, never in the past (a
/// timer that fires late, after a suspend, does not fire again for each
/// time it missed).
pub(super) fn due_after(schedule: &Schedule, due: f64, now: f64) -> Option<f64> {
    match schedule.next_after(due) {
        Some(next) if next > now => Some(next),
        _ => schedule.next_after(now),
    }
}

impl Supervisor {
    /// Arm or disarm `id`'s timer to follow its state; whether what it
    /// shows changed (its next run).
    pub(super) fn sync_schedule(&mut self, id: &ServiceId) -> bool {
        let exiting = self.exiting;
        let Some(e) = self.entries.get_mut(id) else {
            return false;
        };
        let Some(schedule) = e.spec.schedule.clone() else {
            return e.timer.take().is_some();
        };
        let s = &e.svc;
        let on = !e.removed
            && !exiting
            && !s.paused
            && s.goal == Goal::Run
            && match s.phase {
                Phase::Scheduled | Phase::Preparing | Phase::Starting | Phase::Running { .. } => {
                    true
                }
                Phase::Waiting => s.run_now,
                _ => false,
            };
        match (on, e.timer.is_some()) {
            (true, false) => {
                let now = state::now_unix();
                let next = first_due(&schedule, e.seen_until, now);
                e.seen_until = Some(e.seen_until.map_or(now, |t| t.max(now)));
                match next {
                    Some(next) => self.arm(id, next),
                    None => tracing::warn!(service = %id, "its schedule has no next run"),
                }
                true
            }
            (false, true) => {
                e.timer = None;
                true
            }
            _ => false,
        }
    }

    fn arm(&mut self, id: &ServiceId, next_run: f64) {
        let token = self.gen();
        let delay = Duration::from_secs_f64((next_run - state::now_unix()).clamp(0.0, 1e9));
        let (tx, job) = (self.tx.clone(), id.clone());
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Msg::Due { id: job, token });
        })
        .abort_handle();
        if let Some(e) = self.entries.get_mut(id) {
            e.timer = Some(Timer {
                next_run,
                token,
                task,
            });
        }
    }

    /// `id`'s timer fired: the run comes due, and the timer is set for the
    /// one after.
    pub(super) fn due(&mut self, id: &ServiceId, token: u64) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        let Some(due) = e
            .timer
            .as_ref()
            .filter(|t| t.token == token)
            .map(|t| t.next_run)
        else {
            return;
        };
        let Some(schedule) = e.spec.schedule.clone() else {
            return;
        };
        let now = state::now_unix();
        if now < due {
            // The monotonic clock ran ahead of the wall clock.
            self.arm(id, due);
            return;
        }
        e.seen_until = Some(due);
        match due_after(&schedule, due, now) {
            Some(next) => self.arm(id, next),
            None => e.timer = None,
        }
        self.dirty = true;
        self.input(id, Input::Due { due });
        self.publish_service(id);
    }

    /// The schedule of `id`, as every surface shows it.
    pub(super) fn schedule_status(&self, e: &Entry) -> Option<crate::status::ScheduleStatus> {
        let schedule = e.spec.schedule.as_ref()?;
        let s = &e.svc;
        Some(crate::status::ScheduleStatus {
            when: schedule.describe(),
            next_run: e.timer.as_ref().map(|t| status_time(t.next_run)),
            paused: s.paused,
            queued: s.queued,
            critical: schedule.critical,
            seen_until: e.seen_until,
            last_run: s.last_run.clone().map(|mut r| {
                r.reason = r.reason.map(|r| r.masked(|t| e.spec.redact(t)));
                r
            }),
        })
    }

    /// Take over what the last supervisor kept of `id`'s schedule: whether
    /// it was paused, its last run, and how far it had seen; and, with
    /// `catch_up`, whether a run came due while no supervisor ran.
    pub(super) fn restore_schedule(&mut self, id: &ServiceId, saved: &ServiceStatus) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        let (Some(schedule), Some(kept)) = (e.spec.schedule.as_ref(), saved.schedule.as_ref())
        else {
            return;
        };
        e.svc.paused = kept.paused;
        e.svc.last_run = kept.last_run.clone();
        e.seen_until = kept.seen_until;
        let now = state::now_unix();
        if let Some(seen) = kept
            .seen_until
            .filter(|_| schedule.catch_up && !kept.paused)
        {
            if schedule.next_after(seen).is_some_and(|next| next <= now) {
                e.svc.missed_since = Some(seen);
            }
        }
    }
}

/// Times are shown to the millisecond.
fn status_time(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

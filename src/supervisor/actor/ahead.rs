//! Setups ahead of readiness: a wanted service's setup starts as soon as it
//! is wanted, while its dependencies are still coming up. Installing
//! packages needs nothing running, so a stack pays for its slowest install,
//! not for the sum of them. The launch still waits for the dependencies;
//! its unit then waits for the setup begun here ([`unit::Ahead`]).
//!
//! [`setup::Gate`] bounds how many run at once and keeps two services that
//! share a `.venv` or `node_modules` from installing into it together.

use super::*;

impl Supervisor {
    /// Begin the setup of a waiting service that has one, once.
    pub(super) fn set_up_ahead(&mut self, id: &ServiceId) {
        let e = &self.entries[id];
        if e.ahead.is_some() || !setup::has_setup(&e.spec) {
            return;
        }
        self.next_ahead += 1;
        let token = self.next_ahead;
        let l = self.launch_of(id, 0);
        let tx = self.tx.clone();
        let (done_tx, done) = tokio::sync::watch::channel(None);
        let task = tokio::spawn(async move {
            let result = unit::setup_only(&l).await;
            let _ = done_tx.send(Some(result.clone()));
            let _ = tx.send(Msg::SetupAhead {
                id: l.id,
                token,
                result,
            });
        });
        let ahead = unit::Ahead::new(token, task, done);
        self.entries.get_mut(id).expect("entry").ahead = Some(ahead);
    }

    /// A setup begun ahead is over. One that failed while its service still
    /// waits fails the service now (and blocks its dependents), rather than
    /// when its dependencies are up.
    pub(super) fn ahead_done(
        &mut self,
        id: &ServiceId,
        token: u64,
        result: Result<(), crate::status::PrepareError>,
    ) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        let Some(ahead) = e.ahead.as_mut().filter(|a| a.token == token) else {
            return;
        };
        ahead.finished = true;
        if let Err(reason) = result {
            if e.svc.phase == Phase::Waiting {
                self.input(id, Input::PrepareFailed(reason));
            }
        }
    }

    /// Drop the setups of services that no longer wait (stopped, blocked,
    /// failed): their processes carry the service's marker.
    pub(super) fn cancel_stale_aheads(&mut self) {
        let marker = &self.marker;
        for (id, e) in self.entries.iter_mut() {
            if e.svc.phase == Phase::Waiting || e.ahead.is_none() {
                continue;
            }
            if let Some(ahead) = e.ahead.take() {
                if !ahead.finished {
                    drop(ahead);
                    unit::kill_marked(&format!("{marker}:{id}"));
                }
            }
        }
    }
}

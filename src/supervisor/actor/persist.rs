//! What outlives a supervisor: `state.json`, written after every change,
//! and the adoption of what an earlier supervisor left running.

use super::*;

impl Supervisor {
    /// Take over what an earlier supervisor of this project left running, as
    /// recorded in its state file. A process is adopted only if its pid still
    /// names the very process recorded (same start time), so a reused pid is
    /// never touched; one that died meanwhile is handled as a crash.
    ///
    /// `state.json` is written once per burst of changes, so a supervisor
    /// killed mid-burst may have spawned processes it never recorded. Such a
    /// supervisor left its pid in the file (a clean exit clears it); then
    /// every process group leader carrying the project's marker is looked
    /// at: one running a service's command is adopted as that service's
    /// process, any other (a setup step cut short) is killed with its group.
    pub fn adopt(&mut self, saved: &StateFile) {
        let mut unrecorded = if saved.supervisor_pid.is_some() {
            let recorded: BTreeSet<i32> = saved
                .services
                .values()
                .filter_map(|r| r.status.pid)
                .collect();
            let ours = |m: &process::MarkedLeader| {
                m.marker
                    .strip_prefix(&format!("{}:", self.marker))
                    .is_some_and(|name| self.entries.contains_key(name))
            };
            process::marked_leaders(&format!("{}:", self.marker))
                .into_iter()
                .filter(|m| !recorded.contains(&m.pid) && ours(m))
                .collect()
        } else {
            Vec::new()
        };
        let ids: Vec<ServiceId> = self.order.clone();
        for id in ids {
            let Some(rec) = saved.services.get(id.as_str()) else {
                continue;
            };
            self.restore_schedule(&id, &rec.status);
            let gen = self.gen();
            let marker = format!("{}:{}", self.marker, id);
            let e = self.entries.get_mut(&id).expect("every id has an entry");
            let recorded = match (rec.status.pid, rec.ticks) {
                (Some(pid), Some(ticks)) if process::is_same_process(pid, ticks) => {
                    Some((pid, ticks))
                }
                _ => None,
            };
            // A container service's process is the engine's client.
            let runs = |argv: &[String]| match e.spec.in_container() {
                Some(c) => crate::container::is_client_of(argv, &c.name),
                None => argv == e.spec.argv.as_slice(),
            };
            let found = unrecorded
                .iter()
                .position(|m| recorded.is_none() && m.marker == marker && runs(&m.argv))
                .map(|k| unrecorded.swap_remove(k));
            let alive = recorded.or(found.as_ref().map(|m| (m.pid, m.ticks)));
            let started_at = match found {
                Some(_) => Some(state::now_unix()),
                None => rec.started_at,
            };
            let was_wanted = matches!(
                rec.status.state,
                ServiceState::Online
                    | ServiceState::Degraded
                    | ServiceState::Offline
                    | ServiceState::Starting
            );
            // The counts are "since the supervisor took the service over":
            // a supervisor that takes over from one that died (or adopts a
            // running process) goes on counting; after a clean exit (`fpctl
            // stop`) the next one starts from 0.
            if saved.supervisor_pid.is_some() || alive.is_some() {
                e.svc.restarts = rec.status.restarts;
                e.svc.streak = rec.status.restarts_in_row;
            }
            if let (Some((pid, _)), Some(c)) = (alive, e.spec.in_container()) {
                // The engine's client of a container service. Its container
                // is looked at again when the service starts: attached to
                // when it runs with the same settings, else replaced. The
                // client goes; the container does not go with it.
                tracing::info!(service = %id, pid, container = %c.name, "letting its start take over the container");
                process::signal_pid(pid, nix::sys::signal::Signal::SIGKILL);
                continue;
            }
            match alive {
                Some((pid, ticks)) => match process::watch_foreign(pid) {
                    Ok(exit) => {
                        tracing::info!(service = %id, pid, "adopted");
                        let s = &mut e.svc;
                        s.gen = gen;
                        s.pid = Some(pid);
                        s.ticks = Some(ticks);
                        s.started_at = started_at;
                        let age = started_at
                            .map(|t| (state::now_unix() - t).max(0.0))
                            .unwrap_or(0.0);
                        s.started = Instant::now()
                            .checked_sub(Duration::from_secs_f64(age))
                            .or(Some(Instant::now()));
                        // Online until its probes say otherwise; a oneshot is
                        // still running.
                        s.phase = if e.spec.oneshot {
                            Phase::Starting
                        } else {
                            Phase::Running {
                                health: crate::supervisor::service::Health::Online,
                                fails: 0,
                            }
                        };
                        s.activity = Some(Activity::Adopted);
                        let launch = self.launch_of(&id, gen);
                        let e = self.entries.get_mut(&id).expect("entry");
                        e.unit = Some(unit::adopt(launch, self.reports_tx.clone(), pid, exit));
                        self.record(&id, EventKind::Adopted, EventData::Adopted { pid });
                    }
                    Err(e) => {
                        tracing::warn!(service = %id, pid, "cannot watch adopted process: {e}")
                    }
                },
                None if was_wanted && rec.status.pid.is_some() && !rec.status.external => {
                    // It died while nobody supervised it: the restart policy decides.
                    tracing::info!(service = %id, "recorded process is gone");
                    e.svc.gen = gen;
                    e.svc.phase = Phase::Running {
                        health: crate::supervisor::service::Health::Offline,
                        fails: 0,
                    };
                    let pid = rec.status.pid;
                    self.input(&id, Input::Ended { pid, exit: None });
                }
                None => {
                    // What it failed of is kept as data (as words, from a
                    // state file of an earlier fpctl).
                    let failed = match &rec.status.reason {
                        Some(crate::status::Reason::Failed(r)) => r.clone(),
                        _ => FailReason::Recorded {
                            message: rec.status.detail.clone().unwrap_or_default(),
                        },
                    };
                    e.svc.phase = match rec.status.state {
                        ServiceState::Completed => Phase::Completed,
                        ServiceState::Failed => Phase::Failed(failed),
                        _ => Phase::Idle,
                    };
                }
            }
        }
        for m in unrecorded {
            if process::is_same_process(m.pid, m.ticks) {
                tracing::info!(pid = m.pid, marker = %m.marker, "killing an unrecorded leftover");
                process::signal_group(m.pid, Signal::SIGKILL);
            }
        }
        self.dirty = true;
    }

    pub(super) fn persist(&mut self) {
        self.dirty = false;
        let mut file = StateFile {
            supervisor_pid: Some(std::process::id() as i32),
            supervisor_ticks: process::start_ticks(std::process::id() as i32),
            services: Default::default(),
        };
        for svc in &self.config.services {
            let Some((id, e)) = self.entries.get_key_value(svc.name.as_str()) else {
                continue;
            };
            let saved = Saved {
                status: self.status_of(id, e),
                ticks: e.svc.ticks,
                started_at: e.svc.started_at,
            };
            file.services.insert(svc.name.clone(), saved);
        }
        if self.exiting && self.quiet() {
            file.supervisor_pid = None;
            file.supervisor_ticks = None;
        }
        if let Err(e) = state::write(&self.config, &file) {
            tracing::error!("cannot write state: {e}");
        }
    }
}

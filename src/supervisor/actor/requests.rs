//! Client requests: start, restart (setup first), stop, status and reload.
//! Each turns into inputs of the services it names; a waiter answers.

use super::*;

impl Supervisor {
    pub(super) fn request(&mut self, request: Request, reply: mpsc::UnboundedSender<Response>) {
        if self.exiting {
            let _ = reply.send(Response::error(
                ErrorKind::ShuttingDown,
                "the supervisor is shutting down",
            ));
            return;
        }
        // A replicated service's name means all its instances.
        let request = match request {
            Request::Start {
                services,
                profiles,
                replace,
            } => Request::Start {
                services: self.config.expand_names(&services),
                profiles,
                replace,
            },
            Request::Restart { services } => Request::Restart {
                services: self.config.expand_names(&services),
            },
            Request::Stop { services } => Request::Stop {
                services: self.config.expand_names(&services),
            },
            other => other,
        };
        match request {
            Request::Status => {
                self.sample_if_stale();
                let _ = reply.send(Response::Status {
                    snapshot: self.snapshot(),
                    config_digest: self.digest.clone(),
                });
            }
            Request::Start {
                services,
                profiles,
                replace,
            } => match graph::select(&self.config, &services, &profiles) {
                Ok(selected) => {
                    let mut ids = self.ids(selected);
                    // What a `stop` of these took down with them comes back.
                    let named: BTreeSet<ServiceId> = ids.iter().cloned().collect();
                    let back: Vec<usize> = self
                        .entries
                        .iter()
                        .filter(|(_, e)| !e.taken_down_with.is_disjoint(&named))
                        .filter_map(|(id, _)| self.config.service(id.as_str()).map(|(i, _)| i))
                        .collect();
                    if !back.is_empty() {
                        for id in self.ids(graph::with_dependencies(&self.config, back)) {
                            if !ids.contains(&id) {
                                ids.push(id);
                            }
                        }
                    }
                    for id in &ids {
                        if let Some(e) = self.entries.get_mut(id) {
                            e.taken_down_with.clear();
                        }
                    }
                    if replace {
                        self.replace.extend(ids.iter().cloned());
                    }
                    // What this start takes from down to up is its record.
                    let down: Vec<ServiceId> = ids
                        .iter()
                        .filter(|id| {
                            self.entries.get(*id).is_some_and(|e| {
                                matches!(
                                    e.svc.phase,
                                    Phase::Idle | Phase::Failed(_) | Phase::Blocked(_)
                                )
                            })
                        })
                        .cloned()
                        .collect();
                    for id in &ids {
                        // A scheduled job named runs now; one started
                        // with others waits for its timer.
                        let scheduled = self
                            .entries
                            .get(id)
                            .is_some_and(|e| e.spec.schedule.is_some());
                        if scheduled && services.iter().any(|n| n == id.as_str()) {
                            self.input(id, Input::RunNow);
                        } else {
                            self.input(id, Input::Start);
                        }
                    }
                    self.begin_start_record(&down);
                    self.add_waiter(ids, WaitFor::Up, reply);
                }
                Err(e) => self.refuse(&reply, ErrorKind::UnknownService, e),
            },
            Request::Restart { services } => match graph::select(&self.config, &services, &[]) {
                // None named: every service a plain `start` selects, as
                // `docker compose restart` restarts them all.
                Ok(selected) if services.is_empty() => {
                    let ids = self.ids(selected);
                    self.restart_request(ids, false, reply);
                }
                Ok(_) => {
                    let ids: Vec<ServiceId> = services.iter().map(|n| ServiceId::new(n)).collect();
                    self.restart_request(ids, true, reply);
                }
                Err(e) => self.refuse(&reply, ErrorKind::UnknownService, e),
            },
            Request::Stop { services } if services.is_empty() => {
                self.stopped_by = Some(Interruption::Stop);
                self.stop_all();
                let all = self.entries.keys().cloned().collect();
                self.add_waiter(all, WaitFor::Down, reply);
            }
            Request::Stop { services } => match graph::select(&self.config, &services, &[]) {
                Ok(_) => {
                    self.stopped_by = Some(Interruption::Stop);
                    let roots: Vec<usize> = services
                        .iter()
                        .filter_map(|n| self.config.service(n).map(|(i, _)| i))
                        .collect();
                    let named: BTreeSet<ServiceId> =
                        self.ids(roots.iter().copied()).into_iter().collect();
                    let ids = self.ids(graph::with_dependents(&self.config, roots));
                    for id in &ids {
                        // A dependent that ran is taken down with them, and
                        // a later `start` of them brings it back.
                        if let Some(e) = self.entries.get_mut(id) {
                            if named.contains(id) {
                                e.taken_down_with.clear();
                            } else if e.svc.active()
                                || matches!(
                                    e.svc.phase,
                                    Phase::Waiting | Phase::External | Phase::Blocked(_)
                                )
                            {
                                e.taken_down_with.extend(named.iter().cloned());
                            }
                        }
                        // A scheduled job named is paused until `start` names it.
                        if named.contains(id)
                            && self
                                .entries
                                .get(id)
                                .is_some_and(|e| e.spec.schedule.is_some())
                        {
                            self.input(id, Input::Pause);
                        }
                        self.input(id, Input::Stop);
                    }
                    self.add_waiter(ids, WaitFor::Down, reply);
                }
                Err(e) => self.refuse(&reply, ErrorKind::UnknownService, e),
            },
            Request::Reload { dry_run } => self.reload_when_free(dry_run, reply),
            Request::History { services } => {
                let histories = self
                    .config
                    .services
                    .iter()
                    .filter(|svc| services.is_empty() || services.contains(&svc.name))
                    .filter_map(|svc| {
                        let e = self.entries.get(svc.name.as_str())?;
                        Some((svc.name.clone(), e.history.to_vec()))
                    })
                    .collect();
                let _ = reply.send(Response::History { histories });
            }
            Request::Analyze => {
                let record = self
                    .start_log
                    .as_ref()
                    .map(|l| l.record().clone())
                    .map(|mut r| {
                        for s in &mut r.services {
                            if let Some(e) = self.entries.get(s.name.as_str()) {
                                s.state = e.svc.public();
                            }
                        }
                        r
                    });
                let _ = reply.send(Response::Analysis { record });
            }
            Request::Config => match &self.source {
                Some(text) => {
                    let _ = reply.send(Response::Config {
                        path: self.config.path.clone(),
                        text: text.clone(),
                    });
                }
                None => self.refuse(
                    &reply,
                    ErrorKind::Internal,
                    "the supervisor did not keep the text of its services.toml",
                ),
            },
            // The socket's connection handler answers these; a transport
            // without an HTTP API has none to offer, and a subscription
            // needs a connection of its own.
            Request::Api => self.refuse(
                &reply,
                ErrorKind::Internal,
                "the HTTP API is not available in this supervisor",
            ),
            Request::Subscribe => self.refuse(
                &reply,
                ErrorKind::BadRequest,
                "a subscription is made on the control socket",
            ),
        }
    }

    /// Restart `ids`. A running service's setup runs first, while it
    /// serves: a broken setup must not take a working service down.
    /// `named`: the request named `ids`, so a scheduled job among them
    /// runs now, as `start JOB` runs it.
    pub(super) fn restart_request(
        &mut self,
        ids: Vec<ServiceId>,
        named: bool,
        reply: mpsc::UnboundedSender<Response>,
    ) {
        let setups: Vec<Launch> = ids
            .iter()
            .filter(|id| {
                let e = &self.entries[*id];
                e.svc.active() && e.spec.setup != crate::config::Setup::None
            })
            .map(|id| self.launch_of(id, 0))
            .collect();
        if setups.is_empty() {
            self.restart(ids, named, Vec::new(), reply);
            return;
        }
        let tx = self.tx.clone();
        tokio::spawn(async move {
            // In parallel, as far as the setup gate lets them.
            let mut running = tokio::task::JoinSet::new();
            for l in setups {
                running.spawn(async move { unit::setup_only(&l).await.err().map(|r| (l.id, r)) });
            }
            let mut failed = Vec::new();
            while let Some(done) = running.join_next().await {
                failed.extend(done.ok().flatten());
            }
            let _ = tx.send(Msg::SetupsDone {
                services: ids,
                named,
                failed,
                reply,
            });
        });
    }

    /// Restart `ids`, except those whose setup failed (they keep running
    /// and are reported as failures of this request).
    pub(super) fn restart(
        &mut self,
        ids: Vec<ServiceId>,
        named: bool,
        failed: Vec<(ServiceId, crate::status::PrepareError)>,
        reply: mpsc::UnboundedSender<Response>,
    ) {
        let mut failures = Vec::new();
        for (id, error) in failed {
            let Some(e) = self.entries.get(&id) else {
                continue;
            };
            let refused = crate::status::Refused {
                error,
                keeps: e.svc.pid,
            };
            failures.push(Failure {
                service: id.to_string(),
                state: e.svc.public(),
                reason: e.spec.redact(&refused.to_string()),
                log: self.config.log_path(id.as_str()),
            });
            self.effect(&id, Effect::Note(Note::RestartRefused(refused)));
        }
        let go: Vec<ServiceId> = ids
            .into_iter()
            .filter(|id| !failures.iter().any(|f| f.service == id.as_str()))
            .collect();
        for id in &go {
            if let Some(e) = self.entries.get_mut(id) {
                e.requested_restarts += 1;
            }
            self.input(id, Input::Restart);
            if named
                && self
                    .entries
                    .get(id)
                    .is_some_and(|e| e.spec.schedule.is_some())
            {
                self.input(id, Input::RunNow);
            }
        }
        // Their dependencies must be up too.
        let roots = go
            .iter()
            .filter_map(|id| self.config.service(id.as_str()).map(|(i, _)| i));
        let targets = self.ids(graph::with_dependencies(&self.config, roots));
        for id in &targets {
            self.input(id, Input::Start);
        }
        self.add_waiter(targets, WaitFor::Up, reply);
        if let Some(w) = self.waiters.last_mut() {
            w.failures = failures;
        }
    }

    pub(super) fn refuse(
        &self,
        reply: &mpsc::UnboundedSender<Response>,
        kind: ErrorKind,
        e: impl std::fmt::Display,
    ) {
        let _ = reply.send(Response::error(kind, e.to_string()));
    }

    pub(super) fn ids(&self, indices: impl IntoIterator<Item = usize>) -> Vec<ServiceId> {
        indices
            .into_iter()
            .map(|i| ServiceId::new(&self.config.services[i].name))
            .collect()
    }

    /// A reload now, or after the reload in flight has answered: two at
    /// once would both compare the file with the config in force, and the
    /// second would answer "done" while the first's restarts still run. A
    /// dry run changes nothing and answers at once.
    pub(super) fn reload_when_free(
        &mut self,
        dry_run: bool,
        reply: mpsc::UnboundedSender<Response>,
    ) {
        if !dry_run && (self.reloading() || !self.queued_reloads.is_empty()) {
            self.queued_reloads.push_back((dry_run, reply));
        } else {
            self.reload(dry_run, reply);
        }
    }

    fn reloading(&self) -> bool {
        self.waiters.iter().any(|w| w.reload)
    }

    /// Start the next queued reload once none is in flight; true when one
    /// was taken from the queue.
    pub(super) fn next_reload(&mut self) -> bool {
        if self.reloading() {
            return false;
        }
        let Some((dry_run, reply)) = self.queued_reloads.pop_front() else {
            return false;
        };
        if self.exiting {
            self.refuse(
                &reply,
                ErrorKind::ShuttingDown,
                "the supervisor is shutting down",
            );
        } else {
            self.reload(dry_run, reply);
        }
        true
    }

    /// Re-read services.toml and apply the difference; the reply lists the
    /// plan, then (unless a dry run) waits until the changed services settle
    /// and the removed ones have stopped.
    pub(super) fn reload(&mut self, dry_run: bool, reply: mpsc::UnboundedSender<Response>) {
        let new = match crate::config::load(Some(&self.config.path)) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::warn!("reload refused: {e}");
                self.refuse(&reply, ErrorKind::InvalidConfig, e);
                return;
            }
        };
        let plan = reload::plan(&self.config, &new, |svc| setup::stale(&new, svc));
        let api = self.api.as_ref().and_then(|a| a.plan(&new));
        let _ = reply.send(Response::Plan {
            changes: plan.changes.clone(),
            api: api.clone(),
        });
        if dry_run {
            let _ = reply.send(Response::Done {
                ok: true,
                failures: Vec::new(),
            });
            return;
        }
        // The API first: if its new address cannot be bound, nothing changes.
        if let (Some(a), Some(_)) = (&self.api, &api) {
            if let Err(e) = a.apply(&new) {
                let still = a.address().map_or_else(
                    || "the API is off".to_string(),
                    |at| format!("the API still listens on {at}"),
                );
                let message = format!("reload refused: {e}; nothing changed, {still}");
                tracing::warn!("{message}");
                self.refuse(&reply, ErrorKind::Internal, message);
                return;
            }
        }
        tracing::info!(changes = plan.changes.len(), "reloading services.toml");
        self.apply(plan, new, reply);
    }

    pub(super) fn apply(
        &mut self,
        plan: Plan,
        new: Arc<Config>,
        reply: mpsc::UnboundedSender<Response>,
    ) {
        self.install(new);
        // Watches follow the new globs and dirs.
        self.watches = None;
        self.watches = super::super::watch::start(&self.config, self.watch_notify());
        let mut targets = Vec::new();
        let mut removed = Vec::new();
        for change in &plan.changes {
            let id = ServiceId::new(&change.service);
            self.record(
                &id,
                EventKind::Reload,
                EventData::Reload {
                    change: change.clone(),
                },
            );
            let Some(e) = self.entries.get(&id) else {
                continue;
            };
            match change.kind {
                ChangeKind::Removed => {
                    self.input(&id, Input::Stop);
                    removed.push(id);
                }
                ChangeKind::Added => {
                    let selected = graph::select(&self.config, &[], &[]).unwrap_or_default();
                    if self
                        .config
                        .service(id.as_str())
                        .is_some_and(|(i, _)| selected.contains(&i))
                    {
                        targets.push(id);
                    }
                }
                // Settings applied around the process: nothing restarts.
                ChangeKind::Changed if !change.restarts() => {}
                // What runs restarts with its new definition; what gave up
                // gets another chance; what is stopped stays stopped.
                ChangeKind::Changed if e.svc.active() => {
                    self.input(&id, Input::Restart);
                    if let Some(e) = self.entries.get_mut(&id) {
                        e.requested_restarts += 1;
                    }
                    targets.push(id);
                }
                ChangeKind::Changed if e.svc.broken() || e.svc.phase == Phase::Waiting => {
                    targets.push(id)
                }
                ChangeKind::Changed => {}
            }
        }
        // They, and what they depend on, must be up.
        let roots: Vec<usize> = targets
            .iter()
            .filter_map(|id| self.config.service(id.as_str()).map(|(i, _)| i))
            .collect();
        let ids = self.ids(graph::with_dependencies(&self.config, roots));
        for id in &ids {
            self.input(id, Input::Start);
        }
        let each = ids
            .into_iter()
            .map(|id| (id, WaitFor::Up))
            .chain(removed.into_iter().map(|id| (id, WaitFor::Down)))
            .collect();
        self.add_waiter_each(each, reply);
        if let Some(w) = self.waiters.last_mut() {
            w.reload = true;
        }
    }

    pub(super) fn stop_all(&mut self) {
        self.exiting = true;
        let ids: Vec<ServiceId> = self.entries.keys().cloned().collect();
        for id in ids {
            self.input(&id, Input::Stop);
        }
    }
}

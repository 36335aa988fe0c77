//! One `[services.NAME]` table: its name, tier, fields, `watch` and
//! `container`.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use nix::sys::signal::Signal;
use toml::Spanned;

use super::values::{suggest, valid_env_name};
use super::{Declared, Validator};
use crate::config::raw::{RawRestart, RawService};
use crate::config::{defaults, looks_secret, Container, RestartPolicy, Service, Tier};

impl Validator<'_> {
    pub(super) fn service_name(&mut self, name: &Spanned<String>) {
        let n = name.get_ref();
        let ok = !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !n.starts_with('.');
        if !ok {
            self.error(
                name.span(),
                format!(
                    "invalid service name {n:?}: use 1-64 letters, digits, '-', '_' or '.', not starting with '.'"
                ),
            );
        }
    }

    /// The service's tier, and whether it is unknown (reported: a wrong
    /// name, or a `tier` or `[[tier]]` left out for its type).
    pub(super) fn service_tier(
        &mut self,
        name: &str,
        svc: &RawService,
        tiers: &[Tier],
    ) -> (usize, bool) {
        let Some(t) = &svc.tier else {
            return (0, self.dropped.meant(&["services", name], "tier"));
        };
        match self.tier_index.get(t.get_ref()) {
            Some(&i) => (i, false),
            // A [[tier]] with a type error may have been this one.
            None if self.dropped.under(&["tier"]) => (0, true),
            None => {
                let names: Vec<&str> = tiers.iter().map(|x| x.name.as_str()).collect();
                let hint = suggest(t.get_ref(), names.iter().copied())
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                self.error(
                    t.span(),
                    format!(
                        "unknown tier \"{}\" of service \"{name}\"{hint}; declared tiers: {}",
                        t.get_ref(),
                        names.join(", ")
                    ),
                );
                (0, true)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn service(
        &mut self,
        i: usize,
        svc: &RawService,
        declared: &[Declared],
        index: &HashMap<&str, Vec<usize>>,
        port_vars: &Arc<crate::env_block::SharedEnv>,
        tiers: &[Tier],
    ) -> (Service, Vec<Range<usize>>) {
        let me = &declared[i];
        let name = me.name.clone();
        let header = me.span.clone();
        // As written in the file (an instance's is its service's).
        let written = me.group.as_ref().map_or(name.clone(), |(g, _)| g.clone());
        let table = ["services", written.as_str()];
        let dropped = |v: &Self, field: &str| v.dropped.contains(&[table[0], table[1], field]);
        let health = ["services", written.as_str(), "health"];
        // Variables an error already reported leaves unknown here.
        self.unset_ok_here.clear();
        if me.port_broken {
            self.unset_ok_here.insert("PORT".into());
        }
        for scope in [
            &["project", "env"][..],
            &["services", written.as_str(), "env"],
        ] {
            self.unset_ok_here.extend(self.dropped.children(scope));
        }
        self.unset_ok_all_here = dropped(self, "env")
            || dropped(self, "env_file")
            || self.dropped.contains(&["project", "env"])
            || self.dropped.contains(&["project"]);

        let dir = match &svc.dir {
            Some(d) => {
                // `${VAR}` in dir: from fpctl's environment, the .env or the
                // port variables, as in `command` (not the service's own env).
                let expanded = self.expand_at(d.get_ref(), d.span(), &[], &name);
                let p = self.root.join(&expanded);
                if !p.is_dir() {
                    self.error(
                        d.span(),
                        format!(
                            "dir \"{}\" of service \"{name}\" is not a folder ({})",
                            d.get_ref(),
                            p.display()
                        ),
                    );
                }
                p
            }
            None => self.root.to_path_buf(),
        };

        // Environment: PORT, every FPCTL_PORT_*, env_file, then env.
        let mut env: Vec<(String, String)> = Vec::new();
        let mut secret_keys = Vec::new();
        let mut env_files = Vec::new();
        let mut env_keys = Vec::new();
        // Where the program listens where it runs: in a bridge container,
        // its container_port.
        if let Some(p) = me.port {
            env.push(("PORT".into(), me.inner_port.unwrap_or(p).to_string()));
        }
        if let Some((_, replica)) = &me.group {
            env.push(("FPCTL_REPLICA".into(), replica.to_string()));
        }
        if let Some(files) = &svc.env_file {
            let span = files.span();
            for f in files.get_ref().clone().into_vec() {
                env_files.push(self.root.join(&f));
                match crate::config::dotenv::read(&self.root.join(&f)) {
                    Ok(pairs) => {
                        for (k, v) in pairs {
                            secret_keys.push(k.clone());
                            env.push((k, v));
                        }
                    }
                    Err(e) => {
                        self.error(
                            span.clone(),
                            format!("env_file \"{f}\" of service \"{name}\": {e}"),
                        );
                        // Its variables are unknown: using them is no error.
                        self.unset_ok_all_here = true;
                    }
                }
            }
        }
        let project_env = std::mem::take(&mut self.project_env);
        let entries = project_env.iter().map(|(k, v)| (k, v)).chain(&svc.env);
        // How many levels deep each value refers to others above it.
        let mut depths: HashMap<&str, usize> = HashMap::new();
        for (key, value) in entries {
            let k = key.get_ref();
            if !valid_env_name(k) {
                self.error(
                    key.span(),
                    format!("invalid environment variable name {k:?} in service \"{name}\""),
                );
                continue;
            }
            let raw_value = value.get_ref().to_env_string();
            let depth = crate::config::expand::references(&raw_value)
                .iter()
                .filter_map(|n| depths.get(n).map(|d| d + 1))
                .max()
                .unwrap_or(0);
            let too_deep = depth > crate::config::expand::MAX_DEPTH;
            // A value refused here is empty: what uses it is not refused again.
            depths.insert(k, if too_deep { 0 } else { depth });
            let expanded = if too_deep {
                self.error(
                    value.span(),
                    format!(
                        "in service \"{name}\": env {k} refers to values that refer to others, {depth} levels deep; at most {} are allowed",
                        crate::config::expand::MAX_DEPTH
                    ),
                );
                String::new()
            } else {
                self.expand_at(&raw_value, value.span(), &env, &name)
            };
            if looks_secret(k) {
                secret_keys.push(k.clone());
            }
            env_keys.push(k.clone());
            env.push((k.clone(), expanded));
        }
        self.project_env = project_env;

        let container_table = ["services", written.as_str(), "container"];
        let argv = if svc.command.is_none()
            && (svc.container.is_some()
                || self.dropped.meant(&table, "command")
                || self.dropped.meant(&table, "container"))
        {
            Vec::new()
        } else {
            self.command(svc, &header, &name, &env)
        };
        let setup = self.setup(svc.setup.as_ref(), &name);
        let health_dropped = ["http", "tcp", "exec", "log", "container"]
            .iter()
            .any(|k| self.dropped.meant(&health, k));
        let (health, start_timeout) = self.health(
            svc.health.as_ref(),
            (me.port, me.port_broken),
            &name,
            &env,
            (svc.oneshot, health_dropped),
        );
        if let (Some(h), Some(raw)) = (&health, &svc.health) {
            if matches!(h.probe, crate::config::Probe::Container) && svc.container.is_none() {
                self.error(
                    raw.span(),
                    format!("health container = true of service \"{name}\" needs a [services.{name}.container] table: it reads the image's HEALTHCHECK"),
                );
            }
        }

        // Dependencies.
        let mut depends_on = Vec::new();
        let mut dep_spans = Vec::new();
        for dep in &svc.depends_on {
            let d = dep.get_ref();
            match index.get(d.as_str()).map(Vec::as_slice) {
                None | Some([]) => {
                    let hint = suggest(d, declared.iter().map(|x| x.name.as_str()))
                        .map(|s| format!(" (did you mean \"{s}\"?)"))
                        .unwrap_or_default();
                    self.error(
                        dep.span(),
                        format!("unknown dependency \"{d}\" of service \"{name}\"{hint}"),
                    );
                }
                Some(js) if js.iter().any(|&j| declared[j].raw == me.raw) => {
                    self.error(dep.span(), format!("service \"{name}\" depends on itself"));
                }
                Some(js) => {
                    let j = js[0];
                    if declared[j].tier > me.tier && !me.tier_broken && !declared[j].tier_broken {
                        self.error(
                            dep.span(),
                            format!(
                                "service \"{name}\" in tier \"{}\" depends on \"{d}\" in the later tier \"{}\"; a dependency must be in the same or an earlier tier",
                                tiers[me.tier].name, tiers[declared[j].tier].name
                            ),
                        );
                    } else {
                        for &j in js {
                            if !depends_on.contains(&j) {
                                depends_on.push(j);
                                dep_spans.push(dep.span());
                            }
                        }
                    }
                }
            }
        }

        let restart = match svc.restart.as_ref().map(|r| *r.get_ref()) {
            None | Some(RawRestart::OnFailure) => RestartPolicy::OnFailure,
            Some(RawRestart::No) => RestartPolicy::No,
            Some(RawRestart::Always) => RestartPolicy::Always,
        };
        let max_restarts = match &svc.max_restarts {
            None => defaults::MAX_RESTARTS,
            Some(m) => self.count(m, "max_restarts", &format!("service \"{name}\""), 0),
        };
        let stop_signal = match &svc.stop_signal {
            None => Signal::SIGTERM,
            Some(s) => self.signal(s, &name),
        };
        let stop_timeout = self.duration(
            svc.stop_timeout.as_ref(),
            "stop_timeout",
            &name,
            defaults::STOP_TIMEOUT,
        );
        let success_exit_codes = self.success_exit_codes(svc.success_exit_codes.as_ref(), &name);
        let profiles = svc.profiles.iter().map(|p| p.get_ref().clone()).collect();
        let max_memory = svc
            .max_memory
            .as_ref()
            .map(|m| self.size(m, "max_memory", &format!("service \"{name}\"")));
        let log_rotation = match (&svc.log_max_size, &svc.log_keep) {
            (None, None) => self.project_rotation,
            (size, keep) => {
                let max_size = match size {
                    Some(v) => Some(self.size(v, "log_max_size", &format!("service \"{name}\""))),
                    None => self.project_rotation.map(|r| r.max_size),
                };
                let keep = keep
                    .as_ref()
                    .map(|k| self.count(k, "log_keep", &format!("service \"{name}\""), 1))
                    .or(self.project_rotation.map(|r| r.keep))
                    .unwrap_or(defaults::LOG_KEEP);
                match max_size {
                    Some(max_size) => Some(crate::config::LogRotation { max_size, keep }),
                    None => {
                        let span = keep_span(&svc.log_keep);
                        self.error(
                            span,
                            format!("log_keep of service \"{name}\" needs log_max_size"),
                        );
                        None
                    }
                }
            }
        };

        // A key left out of the table was meant as one of its fields: its
        // error is enough, with no second one about image or build.
        let image_meant = !self.dropped.children(&container_table).is_empty();
        let container = svc.container.as_ref().map(|c| {
            let runs = svc.command.is_none() || self.all_in_containers;
            let image_of = me.group.as_ref().map_or(name.as_str(), |(g, _)| g.as_str());
            self.container(c, &name, image_of, runs, me.port, &env, image_meant)
        });
        let watch = self.watch(&svc.watch, &name);
        let watch_debounce = self.duration(
            svc.watch_debounce.as_ref(),
            "watch_debounce",
            &name,
            defaults::WATCH_DEBOUNCE,
        );
        let schedule = svc
            .schedule
            .as_ref()
            .and_then(|raw| self.schedule(raw, &name, svc.oneshot));
        let service = Service {
            schedule,
            group: me.group.clone(),
            watch,
            watch_debounce,
            replace_stale: svc.replace_stale,
            env_files,
            env_keys,
            container,
            name,
            tier: me.tier,
            port_env: Arc::clone(port_vars),
            argv,
            dir,
            port: me.port,
            port_auto: me.port_auto,
            env,
            secret_keys,
            secret_values: Arc::clone(&self.dotenv_secrets),
            depends_on,
            setup,
            health,
            restart,
            max_restarts,
            stop_signal,
            stop_timeout,
            start_timeout,
            profiles,
            oneshot: svc.oneshot,
            success_exit_codes,
            disabled: svc.disabled,
            max_memory,
            log_rotation,
            log_timestamps: svc.log_timestamps.unwrap_or(self.project_timestamps),
        };
        (service, dep_spans)
    }

    /// `schedule = { ... }`: on a oneshot only; one of `cron` and `every`.
    pub(super) fn schedule(
        &mut self,
        raw: &Spanned<crate::config::raw::RawSchedule>,
        name: &str,
        oneshot: bool,
    ) -> Option<crate::config::Schedule> {
        use crate::config::{Concurrency, Schedule, When};
        let r = raw.get_ref();
        if !oneshot {
            self.error(
                raw.span(),
                format!("schedule of service \"{name}\" needs oneshot = true: only a job that exits runs on a schedule"),
            );
            return None;
        }
        let when = match (&r.cron, &r.every) {
            (Some(c), None) => {
                let parsed = croner::parser::CronParser::builder()
                    .seconds(croner::parser::Seconds::Optional)
                    .year(croner::parser::Year::Disallowed)
                    .build()
                    .parse(c.get_ref().trim());
                match parsed {
                    Ok(cron) => When::Cron {
                        expr: c.get_ref().trim().to_string(),
                        cron: Box::new(cron),
                    },
                    Err(e) => {
                        self.error(
                            c.span(),
                            format!("invalid cron expression {:?} of service \"{name}\": {e} (write 5 fields, \"MIN HOUR DAY MONTH WEEKDAY\", or 6 with seconds first)", c.get_ref()),
                        );
                        return None;
                    }
                }
            }
            (None, Some(e)) => When::Every(self.duration(
                Some(e),
                "schedule every",
                name,
                std::time::Duration::from_secs(60),
            )),
            (Some(_), Some(e)) => {
                self.error(
                    e.span(),
                    format!("schedule of service \"{name}\" has both cron and every: give one"),
                );
                return None;
            }
            (None, None) => {
                let meant = self.dropped.meant(&["services", name, "schedule"], "cron")
                    || self.dropped.meant(&["services", name, "schedule"], "every");
                if !meant {
                    self.error(
                        raw.span(),
                        format!("schedule of service \"{name}\" needs cron = \"MIN HOUR DAY MONTH WEEKDAY\" or every = \"30m\""),
                    );
                }
                return None;
            }
        };
        let timezone = r.timezone.as_ref().and_then(|tz| {
            match jiff::tz::TimeZone::get(tz.get_ref()) {
                Ok(_) => Some(tz.get_ref().clone()),
                Err(_) => {
                    self.error(
                        tz.span(),
                        format!("unknown time zone {:?} of service \"{name}\": use an IANA name like \"Europe/Berlin\" or \"UTC\"", tz.get_ref()),
                    );
                    None
                }
            }
        });
        if let (Some(tz), When::Every(_)) = (&r.timezone, &when) {
            self.error(
                tz.span(),
                format!("timezone of service \"{name}\" applies to cron only: every counts time, not the clock"),
            );
        }
        Some(Schedule {
            when,
            timezone,
            run_on_start: r.run_on_start.unwrap_or(false),
            concurrency: match r.concurrency {
                Some(crate::config::raw::RawConcurrency::Queue) => Concurrency::Queue,
                _ => Concurrency::Skip,
            },
            catch_up: r.catch_up.unwrap_or(false),
            critical: r.critical.unwrap_or(false),
        })
    }

    /// `success_exit_codes`: a non-empty list of exit codes (0-255).
    pub(super) fn success_exit_codes(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<i64>>>>,
        name: &str,
    ) -> Vec<i32> {
        let Some(raw) = raw else {
            return defaults::SUCCESS_EXIT_CODES.to_vec();
        };
        if raw.get_ref().is_empty() {
            self.error(
                raw.span(),
                format!("success_exit_codes of service \"{name}\" is empty: list the exit codes that mean success, like [0, 3]"),
            );
            return defaults::SUCCESS_EXIT_CODES.to_vec();
        }
        let mut codes = Vec::new();
        for code in raw.get_ref() {
            let c = *code.get_ref();
            if (0..=255).contains(&c) {
                if !codes.contains(&(c as i32)) {
                    codes.push(c as i32);
                }
            } else {
                self.error(
                    code.span(),
                    format!(
                        "success exit code {c} of service \"{name}\" is not an exit code (0-255)"
                    ),
                );
            }
        }
        codes
    }

    /// `watch` globs: each must parse; `!` in front excludes.
    pub(super) fn watch(&mut self, raw: &[Spanned<String>], name: &str) -> Vec<String> {
        for glob in raw {
            let pattern = glob.get_ref();
            let body = pattern.strip_prefix('!').unwrap_or(pattern);
            if body.is_empty() || body.starts_with('/') || body.split('/').any(|c| c == "..") {
                self.error(
                    glob.span(),
                    format!("watch pattern {pattern:?} of service \"{name}\" must be a glob relative to the service's dir, like \"src/**/*.py\""),
                );
            } else if let Err(e) = globset::Glob::new(body) {
                self.error(
                    glob.span(),
                    format!(
                        "invalid watch pattern {pattern:?} of service \"{name}\": {}",
                        e.kind()
                    ),
                );
            }
        }
        raw.iter().map(|g| g.get_ref().clone()).collect()
    }

    /// `image_meant`: an image or build was written but left out (its type,
    /// a misspelt key), and reported.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn container(
        &mut self,
        raw: &Spanned<crate::config::raw::RawContainer>,
        name: &str,
        image_of: &str,
        runs: bool,
        port: Option<u16>,
        env: &[(String, String)],
        image_meant: bool,
    ) -> Container {
        let c = raw.get_ref();
        let image = c.image.as_ref().and_then(|i| {
            let ok = !i.get_ref().trim().is_empty() && !i.get_ref().contains(char::is_whitespace);
            if !ok {
                self.error(
                    i.span(),
                    format!("container image of service \"{name}\" must be an image reference like \"redis:7\" (no spaces)"),
                );
            }
            ok.then(|| i.get_ref().clone())
        });
        let build = c.build.as_ref().and_then(|b| {
            let p = self.root.join(b.get_ref());
            if p.is_dir() {
                Some(crate::config::normalize_path(&p))
            } else {
                self.error(
                    b.span(),
                    format!(
                        "container build of service \"{name}\" is not a folder ({}); give the folder holding its Dockerfile",
                        p.display()
                    ),
                );
                None
            }
        });
        if c.image.is_none() && c.build.is_none() && !image_meant {
            self.error(
                raw.span(),
                format!("container of service \"{name}\" needs image = \"...\", build = \"DIR\", or both"),
            );
        }
        let target = c.target.as_ref().map(|t| {
            if c.build.is_none() {
                self.error(
                    t.span(),
                    format!("container target of service \"{name}\" names a build stage: it needs build = \"DIR\""),
                );
            }
            t.get_ref().clone()
        });
        let mut words = |a: &toml::Spanned<crate::config::raw::StringOrList>, what: &str| match a
            .get_ref()
        {
            crate::config::raw::StringOrList::One(s) => self.split(s, a.span(), env, name, what),
            crate::config::raw::StringOrList::Many(v) => v
                .iter()
                .map(|w| self.expand_at(w, a.span(), env, name))
                .collect(),
        };
        let entrypoint = c
            .entrypoint
            .as_ref()
            .map(|a| words(a, "container entrypoint"));
        let args = c.args.as_ref().map(|a| words(a, "container args"));
        let container_port = c.container_port.as_ref().and_then(|p| {
            match u16::try_from(*p.get_ref()).ok().filter(|&p| p > 0) {
                Some(_) if port.is_none() => {
                    self.error(
                        p.span(),
                        format!("container_port of service \"{name}\" needs port: the host port it is published on"),
                    );
                    None
                }
                Some(p) => Some(p),
                None => {
                    self.error(
                        p.span(),
                        format!("container_port of service \"{name}\" must be a port from 1 to 65535"),
                    );
                    None
                }
            }
        });
        let mut volumes = Vec::new();
        for v in &c.volumes {
            match volume(self.root, v.get_ref()) {
                Ok(v) => volumes.push(v),
                Err(why) => self.error(
                    v.span(),
                    format!("volume {:?} of service \"{name}\" {why}", v.get_ref()),
                ),
            }
        }
        let network = match c.network {
            Some(crate::config::raw::RawNetwork::Host) => crate::config::Network::Host,
            None | Some(crate::config::raw::RawNetwork::Bridge) => crate::config::Network::Bridge,
        };
        if network == crate::config::Network::Host
            && container_port.is_some_and(|p| Some(p) != port)
        {
            let span = c
                .container_port
                .as_ref()
                .map(|p| p.span())
                .unwrap_or(raw.span());
            self.error(
                span,
                format!("container_port of service \"{name}\" does not apply with network = \"host\": the program listens on port itself"),
            );
        }
        let tag = image.clone().unwrap_or_else(|| {
            format!(
                "localhost/fpctl-{}-{}:latest",
                crate::config::dns_name(&self.project_name),
                crate::config::dns_name(image_of)
            )
        });
        Container {
            image,
            build,
            target,
            entrypoint,
            args,
            container_port,
            volumes,
            init: c.init.unwrap_or(true),
            network,
            runs,
            tag,
            runtime: self.runtime,
            name: format!("fpctl-{}-{name}", crate::config::project_marker(self.root)),
        }
    }
}

/// A `volumes` entry as `-v` takes it: `HOST:CONTAINER[:OPTIONS]`, with a
/// host path (`./data`, `/srv/x`) made absolute from services.toml's
/// folder; a named volume (`pgdata:/var/lib/postgresql/data`) or a lone
/// container path (an anonymous volume) as written.
fn volume(root: &std::path::Path, v: &str) -> Result<String, &'static str> {
    let mut parts: Vec<&str> = v.split(':').collect();
    if v.trim().is_empty() || parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
        return Err(
            "must be HOST:CONTAINER, HOST:CONTAINER:ro, NAME:CONTAINER or a container path",
        );
    }
    if parts.len() == 1 {
        return if parts[0].starts_with('/') {
            Ok(v.to_string())
        } else {
            Err("needs a container path starting with '/'")
        };
    }
    if !parts[1].starts_with('/') {
        return Err("needs a container path starting with '/' after the ':'");
    }
    let host = parts[0];
    let is_path = host.starts_with('/') || host.starts_with('.') || host.contains('/');
    let absolute;
    if is_path {
        absolute = crate::config::normalize_path(&root.join(host))
            .display()
            .to_string();
        parts[0] = &absolute;
    }
    Ok(parts.join(":"))
}

pub(super) fn keep_span(keep: &Option<Spanned<i64>>) -> Range<usize> {
    keep.as_ref().map(|k| k.span()).unwrap_or(0..0)
}

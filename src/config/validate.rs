//! From the raw document to a resolved [`Config`], collecting every problem.
//!
//! Each check pushes a [`Diagnostic`] with the span of the offending value and
//! goes on, so one run of `fpctl validate` lists all that needs fixing. Only a
//! TOML syntax or type error stops early: without a document there is nothing
//! to check further.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use toml::Spanned;

use super::raw::{
    IntOrList, RawFile, RawHealth, RawRestart, RawService, Scalar, ScalarOrList, StringOrList,
};
use super::{
    defaults, expand, host_var_name, looks_secret, port_var_name, ports_var_name, Config,
    Container, Diagnostic, ExpandError, Health, Hosts, PortBook, PortRange, Probe, Project,
    RestartPolicy, Service, Setup, Tier,
};

pub fn validate(
    path: &Path,
    root: &Path,
    text: &str,
    dotenv: &[(String, String)],
    hosts: Hosts,
    book: &dyn PortBook,
    scale: &crate::scale::Counts,
) -> Result<Config, Vec<Diagnostic>> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let message = e.message().trim();
        vec![Diagnostic {
            message: e
                .span()
                .and_then(|span| super::words::explain(text, span, message))
                .unwrap_or_else(|| message.to_string()),
            span: e.span(),
        }]
    })?;
    let mut v = Validator {
        scale,
        root,
        diags: Vec::new(),
        port_vars: Arc::from(Vec::new()),
        project_rotation: None,
        project_timestamps: false,
        project_env: Vec::new(),
        dotenv,
        dotenv_secrets: dotenv
            .iter()
            .filter(|(k, _)| looks_secret(k))
            .map(|(_, v)| v.clone())
            .collect(),
        log_dir: PathBuf::new(),
        hosts,
    };
    let config = v.file(path, raw, book);
    if v.diags.is_empty() {
        Ok(config)
    } else {
        v.diags
            .sort_by_key(|d| d.span.as_ref().map(|s| s.start).unwrap_or(0));
        Err(v.diags)
    }
}

struct Validator<'a> {
    /// `fpctl scale` counts, over `replicas`.
    scale: &'a crate::scale::Counts,
    root: &'a Path,
    diags: Vec<Diagnostic>,
    /// `FPCTL_PORT_*` of every service, once known.
    port_vars: Arc<[(String, String)]>,
    project_rotation: Option<super::LogRotation>,
    project_timestamps: bool,
    /// `[project] env`, applied to every service before its own.
    project_env: Vec<(Spanned<String>, Spanned<Scalar>)>,
    /// `.env` (or `--env-file`): looked up last, after fpctl's environment.
    dotenv: &'a [(String, String)],
    dotenv_secrets: Arc<[String]>,
    log_dir: PathBuf,
    hosts: Hosts,
}

/// What the second pass needs to know about every service.
struct Declared {
    name: String,
    span: Range<usize>,
    port: Option<u16>,
    port_auto: bool,
    tier: usize,
    /// Index into the file's services.
    raw: usize,
    /// A replica: the service's written name and the instance's number.
    group: Option<(String, u32)>,
}

/// More instances than this are surely a typo.
const MAX_REPLICAS: u32 = 1000;

/// What a service's `port` says.
enum PortSpec {
    Fixed(u16),
    Auto(PortRange),
    Invalid,
}

impl Validator<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diags.push(Diagnostic::at(span, message));
    }

    fn file(&mut self, path: &Path, raw: RawFile, book: &dyn PortBook) -> Config {
        let project = self.project(raw.project);
        self.project_rotation = project.log_rotation;
        self.project_timestamps = project.log_timestamps;
        self.log_dir = project.log_dir.clone();
        let tiers = self.tiers(raw.tier);
        if raw.services.is_empty() {
            self.error(
                0..0,
                "no services defined: add at least one [services.NAME] table with a command",
            );
        }

        // First pass: names, tiers and ports, which every service may refer
        // to. A service with `replicas = N` declares N instances here.
        let raw_services: Vec<(Spanned<String>, Spanned<RawService>)> =
            raw.services.into_iter().collect();
        let mut declared: Vec<Declared> = Vec::with_capacity(raw_services.len());
        let mut by_port: HashMap<u16, usize> = HashMap::new();
        let mut auto = Vec::new();
        for (r, (name, svc)) in raw_services.iter().enumerate() {
            self.service_name(name);
            let tier = self.service_tier(name.get_ref(), svc.get_ref(), &tiers);
            let replicas = svc.get_ref().replicas.as_ref().map(|n| {
                let count = match u32::try_from(*n.get_ref()) {
                    Ok(count) if (1..=MAX_REPLICAS).contains(&count) => count,
                    _ => {
                        self.error(
                            n.span(),
                            format!(
                                "replicas of service \"{}\" must be a whole number from 1 to {MAX_REPLICAS}",
                                name.get_ref()
                            ),
                        );
                        1
                    }
                };
                let count = self.scale.get(name.get_ref()).copied().unwrap_or(count);
                count.min(MAX_REPLICAS)
            });
            let spec = svc
                .get_ref()
                .port
                .as_ref()
                .map(|p| (p.span(), self.port(p, name.get_ref(), &tiers[tier])));
            for replica in replicas.map_or(vec![None], |n| (1..=n).map(Some).collect()) {
                let here = declared.len();
                let instance = match replica {
                    Some(i) => format!("{}-{i}", name.get_ref()),
                    None => name.get_ref().clone(),
                };
                let offset = replica.map_or(0, |i| i - 1);
                let port = match &spec {
                    None | Some((_, PortSpec::Invalid)) => None,
                    Some((span, PortSpec::Auto(range))) => {
                        auto.push((here, *range, span.clone()));
                        None
                    }
                    Some((span, PortSpec::Fixed(base))) => {
                        self.instance_port(*base, offset, span, &instance, &tiers[tier])
                            .and_then(|port| match by_port.get(&port) {
                                Some(&other) => {
                                    let other = declared[other].name.clone();
                                    self.error(
                                        span.clone(),
                                        format!("port {port} of service \"{instance}\" is already used by service \"{other}\""),
                                    );
                                    None
                                }
                                None => {
                                    by_port.insert(port, here);
                                    Some(port)
                                }
                            })
                    }
                };
                declared.push(Declared {
                    name: instance,
                    span: name.span(),
                    port,
                    port_auto: false,
                    tier,
                    raw: r,
                    group: replica.map(|i| (name.get_ref().clone(), i)),
                });
            }
        }
        // Then `port = "auto"`, in file order, around the fixed ones.
        for (i, range, span) in auto {
            let name = declared[i].name.clone();
            let taken = |p: u16| by_port.contains_key(&p);
            let kept = book
                .recorded(&name)
                .filter(|&p| range.contains(p) && !taken(p) && book.available(p, &name));
            let chosen = kept.or_else(|| {
                range
                    .iter()
                    .find(|&p| !taken(p) && book.available(p, &name))
            });
            match chosen {
                Some(port) => {
                    by_port.insert(port, i);
                    declared[i].port = Some(port);
                    declared[i].port_auto = true;
                }
                None => self.error(
                    span,
                    format!(
                        "no free port left in range {range} of tier \"{}\" for service \"{name}\"",
                        tiers[declared[i].tier].name
                    ),
                ),
            }
        }
        // Every name a dependency or a command may use: each service, each
        // instance, and a replicated service's name for all its instances.
        let mut index: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, d) in declared.iter().enumerate() {
            if let Some((group, _)) = &d.group {
                index.entry(group.as_str()).or_default().push(i);
            }
            let same = index.entry(d.name.as_str()).or_default();
            if !same.is_empty() {
                let first = same[0];
                self.diags.push(Diagnostic::at(
                    d.span.clone(),
                    format!(
                        "service name \"{}\" is also the name of an instance of \"{}\" (replicas); rename one of them",
                        d.name,
                        declared[first].group.as_ref().map_or(declared[first].name.as_str(), |(g, _)| g.as_str())
                    ),
                ));
            }
            same.push(i);
        }
        // One list shared by every service (a copy each would be quadratic).
        let port_vars = self.port_vars(&declared);
        self.port_vars = Arc::clone(&port_vars);

        let mut services = Vec::with_capacity(declared.len());
        let mut dep_spans = Vec::with_capacity(declared.len());
        for i in 0..declared.len() {
            let before = self.diags.len();
            let svc = raw_services[declared[i].raw].1.get_ref();
            let (service, spans) = self.service(i, svc, &declared, &index, &port_vars, &tiers);
            // Instances share their definition: report its problems once.
            if declared[i].group.as_ref().is_some_and(|(_, n)| *n > 1) {
                self.diags.truncate(before);
            }
            services.push(service);
            dep_spans.push(spans);
        }
        self.cycles(&services, &dep_spans);

        Config {
            path: path.to_path_buf(),
            root: self.root.to_path_buf(),
            project,
            tiers,
            services,
        }
    }

    fn project(&mut self, raw: Option<Spanned<super::raw::RawProject>>) -> Project {
        let mut raw = raw.map(Spanned::into_inner);
        if let Some(p) = raw.as_mut() {
            // A bad name is reported once here, not once per service.
            for (key, value) in std::mem::take(&mut p.env) {
                if valid_env_name(key.get_ref()) {
                    self.project_env.push((key, value));
                } else {
                    let message = format!(
                        "invalid environment variable name {:?} in [project] env",
                        key.get_ref()
                    );
                    self.error(key.span(), message);
                }
            }
        }
        let name = match raw.as_ref().and_then(|p| p.name.as_ref()) {
            Some(n) if n.get_ref().trim().is_empty() => {
                self.error(n.span(), "project name must not be empty");
                String::new()
            }
            Some(n) => n.get_ref().clone(),
            None => self
                .root
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "fpctl".into()),
        };
        let log_dir = match raw.as_ref().and_then(|p| p.log_dir.as_ref()) {
            Some(d) if d.get_ref().trim().is_empty() => {
                self.error(d.span(), "log_dir must not be empty");
                PathBuf::new()
            }
            Some(d) => self.root.join(d.get_ref()),
            None => self.root.join(defaults::LOG_DIR),
        };
        let max_size = raw
            .as_ref()
            .and_then(|p| p.log_max_size.as_ref())
            .map(|v| self.size(v, "log_max_size", "the project"));
        let keep = raw
            .as_ref()
            .and_then(|p| p.log_keep.as_ref())
            .map(|k| self.count(k, "log_keep", "the project", 1));
        if keep.is_some() && max_size.is_none() {
            let span = raw
                .as_ref()
                .and_then(|p| p.log_keep.as_ref())
                .map(|k| k.span())
                .unwrap_or(0..0);
            self.error(
                span,
                "log_keep needs log_max_size (rotation happens only with a size limit)",
            );
        }
        let log_rotation = max_size.map(|max_size| super::LogRotation {
            max_size,
            keep: keep.unwrap_or(defaults::LOG_KEEP),
        });
        let max_parallel_setup = raw
            .as_ref()
            .and_then(|p| p.max_parallel_setup.as_ref())
            .map(|v| self.count(v, "max_parallel_setup", "the project", 1) as usize)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            });
        let api = self.api(raw.as_ref());
        let log_timestamps = raw.as_ref().and_then(|p| p.log_timestamps).unwrap_or(false);
        Project {
            name,
            log_dir,
            log_rotation,
            log_timestamps,
            max_parallel_setup,
            api,
        }
    }

    /// `api`, `api_token`, `api_read_only`. A bind beyond loopback needs a
    /// configured token: a generated one would protect nothing remote users
    /// could be told about safely.
    fn api(&mut self, raw: Option<&super::raw::RawProject>) -> super::ApiSettings {
        let Some(raw) = raw else {
            return super::ApiSettings::default();
        };
        let token = raw.api_token.as_ref().and_then(|t| {
            let lookup = |k: &str| std::env::var(k).ok();
            match super::expand(t.get_ref(), &lookup) {
                Ok(v) if v.len() >= 16 => Some(v),
                Ok(_) => {
                    self.error(t.span(), "api_token must be at least 16 characters");
                    None
                }
                Err(e) => {
                    self.error(t.span(), format!("api_token: {e}"));
                    None
                }
            }
        });
        let listen = raw.api.as_ref().and_then(|a| {
            let text = a.get_ref().trim();
            let parsed = text
                .parse::<std::net::SocketAddr>()
                .or_else(|_| text.replacen("localhost", "127.0.0.1", 1).parse());
            match parsed {
                Err(_) => {
                    self.error(
                        a.span(),
                        format!("api: \"{text}\" is not an address:port (write it like \"127.0.0.1:7070\")"),
                    );
                    None
                }
                Ok(addr) if !addr.ip().is_loopback() && token.is_none() => {
                    self.error(
                        a.span(),
                        format!("api: {addr} is not a loopback address; listening there needs api_token in [project] (or bind 127.0.0.1)"),
                    );
                    None
                }
                Ok(addr) => Some(addr),
            }
        });
        super::ApiSettings {
            listen,
            token,
            read_only: raw.api_read_only.unwrap_or(false),
        }
    }

    fn tiers(&mut self, raw: Vec<Spanned<super::raw::RawTier>>) -> Vec<Tier> {
        let mut tiers: Vec<Tier> = Vec::with_capacity(raw.len().max(1));
        for t in raw {
            let t = t.into_inner();
            let name = t.name.get_ref();
            if name.trim().is_empty() {
                self.error(t.name.span(), "tier name must not be empty");
            } else if tiers.iter().any(|x| &x.name == name) {
                self.error(t.name.span(), format!("tier \"{name}\" is declared twice"));
            }
            let ports = t.ports.as_ref().and_then(|r| {
                let range = parse_port_range(r.get_ref());
                if range.is_none() {
                    self.error(
                        r.span(),
                        format!(
                            "ports of tier \"{name}\" must be a range like \"8000-8099\" (first-last, within 1-65535), found {:?}",
                            r.get_ref()
                        ),
                    );
                }
                range
            });
            tiers.push(Tier {
                name: name.clone(),
                title: t.title,
                ports,
            });
        }
        if tiers.is_empty() {
            tiers.push(Tier {
                name: defaults::TIER_NAME.into(),
                title: None,
                ports: None,
            });
        }
        tiers
    }

    /// A service's `port`: a number in 1-65535 inside its tier's range, or
    /// "auto" where the tier has a range.
    fn port(&mut self, p: &Spanned<Scalar>, name: &str, tier: &Tier) -> PortSpec {
        let fixed = match p.get_ref() {
            Scalar::Int(n) if (1..=65535).contains(n) => *n as u16,
            Scalar::Int(n) => {
                self.error(
                    p.span(),
                    format!("port {n} of service \"{name}\" is out of range (1-65535)"),
                );
                return PortSpec::Invalid;
            }
            Scalar::Str(s) if s == "auto" => {
                return match tier.ports {
                    Some(range) => PortSpec::Auto(range),
                    None => {
                        self.error(
                            p.span(),
                            format!(
                                "port = \"auto\" of service \"{name}\" needs a port range on its tier: add ports = \"8000-8099\" to [[tier]] \"{}\"",
                                tier.name
                            ),
                        );
                        PortSpec::Invalid
                    }
                };
            }
            other => {
                self.error(
                    p.span(),
                    format!(
                        "port of service \"{name}\" must be an integer from 1 to 65535 or \"auto\", found {}",
                        describe(other)
                    ),
                );
                return PortSpec::Invalid;
            }
        };
        if let Some(range) = tier.ports.filter(|r| !r.contains(fixed)) {
            self.error(
                p.span(),
                format!(
                    "port {fixed} of service \"{name}\" is outside the range {range} of its tier \"{}\"",
                    tier.name
                ),
            );
        }
        PortSpec::Fixed(fixed)
    }

    /// The port of a service's instance `offset` (0 for the first): the
    /// written port plus the offset, which must stay a port in the tier.
    fn instance_port(
        &mut self,
        base: u16,
        offset: u32,
        span: &Range<usize>,
        instance: &str,
        tier: &Tier,
    ) -> Option<u16> {
        if offset == 0 {
            return Some(base);
        }
        let port = u32::from(base) + offset;
        let outside = match tier.ports {
            _ if port > 65535 => Some("1-65535".to_string()),
            Some(range) if !range.contains(port as u16) => {
                Some(format!("{range} of its tier \"{}\"", tier.name))
            }
            _ => None,
        };
        match outside {
            Some(range) => {
                self.error(
                    span.clone(),
                    format!("port {port} of replica \"{instance}\" (port + {offset}) is outside the range {range}"),
                );
                None
            }
            None => Some(port as u16),
        }
    }

    /// `FPCTL_PORT_<NAME>` and `FPCTL_HOST_<NAME>` of every service and
    /// instance with a port; for a replicated service, also its first
    /// instance's under its own name and `FPCTL_PORTS_<NAME>`, every
    /// instance's port separated by commas.
    fn port_vars(&self, declared: &[Declared]) -> Arc<[(String, String)]> {
        let host = |name: &str| match self.hosts {
            Hosts::Loopback => "127.0.0.1".to_string(),
            Hosts::ServiceNames => super::dns_name(name),
        };
        let mut vars = Vec::new();
        let mut groups: indexmap::IndexMap<&str, Vec<u16>> = indexmap::IndexMap::new();
        for d in declared {
            let Some(port) = d.port else { continue };
            vars.push((port_var_name(&d.name), port.to_string()));
            vars.push((host_var_name(&d.name), host(&d.name)));
            if let Some((group, _)) = &d.group {
                groups.entry(group.as_str()).or_default().push(port);
            }
        }
        for (group, ports) in groups {
            vars.push((port_var_name(group), ports[0].to_string()));
            vars.push((host_var_name(group), host(group)));
            let list: Vec<String> = ports.iter().map(u16::to_string).collect();
            vars.push((ports_var_name(group), list.join(",")));
        }
        vars.into()
    }

    fn service_name(&mut self, name: &Spanned<String>) {
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

    fn service_tier(&mut self, name: &str, svc: &RawService, tiers: &[Tier]) -> usize {
        let Some(t) = &svc.tier else { return 0 };
        match tiers.iter().position(|x| &x.name == t.get_ref()) {
            Some(i) => i,
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
                0
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn service(
        &mut self,
        i: usize,
        svc: &RawService,
        declared: &[Declared],
        index: &HashMap<&str, Vec<usize>>,
        port_vars: &Arc<[(String, String)]>,
        tiers: &[Tier],
    ) -> (Service, Vec<Range<usize>>) {
        let me = &declared[i];
        let name = me.name.clone();
        let header = me.span.clone();

        let dir = match &svc.dir {
            Some(d) => {
                let p = self.root.join(d.get_ref());
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
        if let Some(p) = me.port {
            env.push(("PORT".into(), p.to_string()));
        }
        if let Some((_, replica)) = &me.group {
            env.push(("FPCTL_REPLICA".into(), replica.to_string()));
        }
        if let Some(files) = &svc.env_file {
            let span = files.span();
            for f in files.get_ref().clone().into_vec() {
                env_files.push(self.root.join(&f));
                match super::dotenv::read(&self.root.join(&f)) {
                    Ok(pairs) => {
                        for (k, v) in pairs {
                            secret_keys.push(k.clone());
                            env.push((k, v));
                        }
                    }
                    Err(e) => self.error(
                        span.clone(),
                        format!("env_file \"{f}\" of service \"{name}\": {e}"),
                    ),
                }
            }
        }
        let project_env = std::mem::take(&mut self.project_env);
        let entries = project_env.iter().map(|(k, v)| (k, v)).chain(&svc.env);
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
            let expanded = self.expand_at(&raw_value, value.span(), &env, &name);
            if looks_secret(k) {
                secret_keys.push(k.clone());
            }
            env_keys.push(k.clone());
            env.push((k.clone(), expanded));
        }
        self.project_env = project_env;

        let argv = self.command(svc, &header, &name, &env);
        let setup = self.setup(svc.setup.as_ref(), &name);
        let (health, start_timeout) =
            self.health(svc.health.as_ref(), me.port, &name, &env, svc.oneshot);

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
                    if declared[j].tier > me.tier {
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
                    Some(max_size) => Some(super::LogRotation { max_size, keep }),
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

        let container = svc.container.as_ref().map(|c| self.container(c, &name));
        let watch = self.watch(&svc.watch, &name);
        let watch_debounce = self.duration(
            svc.watch_debounce.as_ref(),
            "watch_debounce",
            &name,
            defaults::WATCH_DEBOUNCE,
        );
        let service = Service {
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
            disabled: svc.disabled,
            max_memory,
            log_rotation,
            log_timestamps: svc.log_timestamps.unwrap_or(self.project_timestamps),
        };
        (service, dep_spans)
    }

    /// `watch` globs: each must parse; `!` in front excludes.
    fn watch(&mut self, raw: &[Spanned<String>], name: &str) -> Vec<String> {
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

    fn container(&mut self, raw: &Spanned<super::raw::RawContainer>, name: &str) -> Container {
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
                Some(p)
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
        if c.image.is_none() && c.build.is_none() {
            self.error(
                raw.span(),
                format!("container of service \"{name}\" needs image = \"...\", build = \"DIR\", or both"),
            );
        }
        Container { image, build }
    }

    fn expand_at(
        &mut self,
        s: &str,
        span: Range<usize>,
        env: &[(String, String)],
        name: &str,
    ) -> String {
        let shared = Arc::clone(&self.port_vars);
        let dotenv = self.dotenv;
        let lookup = |var: &str| -> Option<String> {
            env.iter()
                .rev()
                .chain(shared.iter())
                .find(|(k, _)| k == var)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(var).ok())
                .or_else(|| {
                    dotenv
                        .iter()
                        .rev()
                        .find(|(k, _)| k == var)
                        .map(|(_, v)| v.clone())
                })
        };
        match expand(s, &lookup) {
            // A NUL cannot be passed to exec or put in the environment.
            Ok(v) if v.contains('\0') => {
                self.error(
                    span,
                    format!("in service \"{name}\": {s:?} contains a NUL character"),
                );
                String::new()
            }
            Ok(v) => v,
            Err(ExpandError::Unset(var)) => {
                let env_names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
                let known: Vec<String> = env
                    .iter()
                    .chain(shared.iter())
                    .chain(dotenv)
                    .map(|(k, _)| k.clone())
                    .chain(env_names)
                    .collect();
                let message = match suggest(&var, known.iter().map(String::as_str)) {
                    Some(near) => format!(
                        "variable \"{var}\" is not set; did you mean \"{near}\"? (or write ${{{var}:-default}} to allow it unset)"
                    ),
                    None => ExpandError::Unset(var).to_string(),
                };
                self.error(span, format!("in service \"{name}\": {message}"));
                String::new()
            }
            Err(e) => {
                self.error(span, format!("in service \"{name}\": {e}"));
                String::new()
            }
        }
    }

    fn command(
        &mut self,
        svc: &RawService,
        header: &Range<usize>,
        name: &str,
        env: &[(String, String)],
    ) -> Vec<String> {
        let Some(cmd) = &svc.command else {
            self.error(header.clone(), format!("service \"{name}\" has no command"));
            return Vec::new();
        };
        let span = cmd.span();
        match cmd.get_ref() {
            StringOrList::One(s) if s.trim().is_empty() => {
                self.error(span, format!("command of service \"{name}\" is empty"));
                Vec::new()
            }
            StringOrList::One(s) if svc.shell => {
                let s = self.expand_at(s, span, env, name);
                vec!["sh".into(), "-c".into(), s]
            }
            StringOrList::One(s) => self.split(s, span, env, name, "command"),
            StringOrList::Many(v) if v.is_empty() || v[0].trim().is_empty() => {
                self.error(span, format!("command of service \"{name}\" is empty"));
                Vec::new()
            }
            StringOrList::Many(v) if svc.shell => {
                self.error(
                    span,
                    format!("service \"{name}\" has shell = true: write its command as one string"),
                );
                let _ = v;
                Vec::new()
            }
            StringOrList::Many(v) => v
                .iter()
                .map(|a| self.expand_at(a, span.clone(), env, name))
                .collect(),
        }
    }

    /// Split like a shell (no shell), then expand each word.
    fn split(
        &mut self,
        s: &str,
        span: Range<usize>,
        env: &[(String, String)],
        name: &str,
        what: &str,
    ) -> Vec<String> {
        match shell_words::split(s) {
            Ok(words) if words.is_empty() => {
                self.error(span, format!("{what} of service \"{name}\" is empty"));
                Vec::new()
            }
            Ok(words) => words
                .iter()
                .map(|w| self.expand_at(w, span.clone(), env, name))
                .collect(),
            Err(e) => {
                self.error(
                    span,
                    format!("{what} of service \"{name}\" cannot be split into words: {e}"),
                );
                Vec::new()
            }
        }
    }

    fn setup(&mut self, raw: Option<&Spanned<StringOrList>>, name: &str) -> Setup {
        let Some(raw) = raw else { return Setup::None };
        match raw.get_ref() {
            StringOrList::One(s) if s == "venv" => Setup::Venv,
            StringOrList::One(s) if s == "npm" => Setup::Npm,
            StringOrList::One(s) => {
                self.error(
                    raw.span(),
                    format!("setup {s:?} of service \"{name}\" is not known: use \"venv\", \"npm\" or a list of commands"),
                );
                Setup::None
            }
            StringOrList::Many(cmds) => {
                if cmds.iter().any(|c| c.trim().is_empty()) {
                    self.error(
                        raw.span(),
                        format!("setup of service \"{name}\" has an empty command"),
                    );
                }
                if cmds.is_empty() {
                    Setup::None
                } else {
                    Setup::Commands(cmds.clone())
                }
            }
        }
    }

    fn health(
        &mut self,
        raw: Option<&Spanned<RawHealth>>,
        port: Option<u16>,
        name: &str,
        env: &[(String, String)],
        oneshot: bool,
    ) -> (Option<Health>, Duration) {
        let Some(raw) = raw else {
            return (None, defaults::START_TIMEOUT);
        };
        let span = raw.span();
        let h = raw.get_ref();
        let start_timeout = self.duration(
            h.start_timeout.as_ref(),
            "start_timeout",
            name,
            defaults::START_TIMEOUT,
        );
        if oneshot {
            self.error(span, format!("service \"{name}\" is a oneshot: it is done when it exits 0 and takes no health check"));
            return (None, start_timeout);
        }
        let kinds = [
            h.http.is_some(),
            h.tcp.is_some(),
            h.exec.is_some(),
            h.log.is_some(),
        ];
        let count = kinds.iter().filter(|k| **k).count();
        if count != 1 {
            let what = if count == 0 {
                "needs one of"
            } else {
                "takes only one of"
            };
            self.error(
                span.clone(),
                format!("health of service \"{name}\" {what} http, tcp, exec or log"),
            );
            return (None, start_timeout);
        }
        if h.http.is_none() && (h.expect_status.is_some() || h.expect_json.is_some()) {
            self.error(span.clone(), format!("health of service \"{name}\": expect_status and expect_json apply only to http"));
        }
        if h.http.is_none() && h.insecure {
            self.error(
                span.clone(),
                format!("health of service \"{name}\": insecure applies only to https"),
            );
        }
        let probe = if let Some(http) = &h.http {
            self.http_probe(http, h, port, name, env)
        } else if let Some(tcp) = &h.tcp {
            match tcp.get_ref() {
                Scalar::Bool(true) => match port {
                    Some(port) => Some(Probe::Tcp { port }),
                    None => {
                        self.error(
                            tcp.span(),
                            format!("tcp = true needs a port, but service \"{name}\" has none"),
                        );
                        None
                    }
                },
                Scalar::Int(p) if (1..=65535).contains(p) => Some(Probe::Tcp { port: *p as u16 }),
                _ => {
                    self.error(
                        tcp.span(),
                        format!("tcp of service \"{name}\" must be a port (1-65535) or true"),
                    );
                    None
                }
            }
        } else if let Some(log) = &h.log {
            match regex::Regex::new(log.get_ref()) {
                Ok(pattern) => Some(Probe::Log {
                    pattern,
                    log: self.log_dir.join(format!("{name}.log")),
                }),
                Err(e) => {
                    let why = e.to_string();
                    let why = why.lines().last().unwrap_or_default().trim();
                    let why = why.trim_start_matches("error: ");
                    self.error(
                        log.span(),
                        format!("health log of service \"{name}\" is not a valid regular expression: {why}"),
                    );
                    None
                }
            }
        } else {
            let exec = h.exec.as_ref().expect("one kind is set");
            let argv = match exec.get_ref() {
                StringOrList::One(s) => self.split(s, exec.span(), env, name, "health exec"),
                StringOrList::Many(v) if v.is_empty() => {
                    self.error(
                        exec.span(),
                        format!("health exec of service \"{name}\" is empty"),
                    );
                    Vec::new()
                }
                StringOrList::Many(v) => v
                    .iter()
                    .map(|a| self.expand_at(a, exec.span(), env, name))
                    .collect(),
            };
            Some(Probe::Exec { argv })
        };
        let interval = self.duration(
            h.interval.as_ref(),
            "interval",
            name,
            defaults::HEALTH_INTERVAL,
        );
        let timeout = self.duration(
            h.timeout.as_ref(),
            "timeout",
            name,
            defaults::HEALTH_TIMEOUT,
        );
        let retries = match &h.retries {
            None => defaults::HEALTH_RETRIES,
            Some(r) => self.count(r, "retries", &format!("service \"{name}\""), 1),
        };
        (
            probe.map(|probe| Health {
                probe,
                interval,
                timeout,
                retries,
            }),
            start_timeout,
        )
    }

    fn http_probe(
        &mut self,
        http: &Spanned<String>,
        h: &RawHealth,
        port: Option<u16>,
        name: &str,
        env: &[(String, String)],
    ) -> Option<Probe> {
        let target = self.expand_at(http.get_ref(), http.span(), env, name);
        let url = if target.starts_with('/') {
            match port {
                Some(p) => format!("http://127.0.0.1:{p}{target}"),
                None => {
                    self.error(http.span(), format!("health http path of service \"{name}\" needs a port; give the service a port or a full URL"));
                    return None;
                }
            }
        } else if target.starts_with("http://") || target.starts_with("https://") {
            target
        } else {
            self.error(http.span(), format!("health http of service \"{name}\" must be a path starting with '/' or an http:// or https:// URL"));
            return None;
        };
        if url
            .parse::<hyper::Uri>()
            .map_or(true, |u| u.host().is_none())
        {
            self.error(
                http.span(),
                format!("health http of service \"{name}\" is not a valid URL: {url}"),
            );
            return None;
        }
        let mut expect_status = Vec::new();
        if let Some(s) = &h.expect_status {
            let codes = match s.get_ref() {
                IntOrList::One(c) => vec![*c],
                IntOrList::Many(v) => v.clone(),
            };
            for c in codes {
                if (100..=599).contains(&c) {
                    expect_status.push(c as u16);
                } else {
                    self.error(s.span(), format!("expect_status {c} of service \"{name}\" is not an HTTP status (100-599)"));
                }
            }
        }
        let mut expect_json = Vec::new();
        if let Some(fields) = &h.expect_json {
            for (field, values) in fields.get_ref() {
                let accepted = match values.get_ref() {
                    ScalarOrList::One(v) => vec![v.to_json()],
                    ScalarOrList::Many(v) => v.iter().map(Scalar::to_json).collect(),
                };
                if accepted.is_empty() {
                    self.error(
                        values.span(),
                        format!(
                            "expect_json field \"{field}\" of service \"{name}\" accepts no value"
                        ),
                    );
                }
                expect_json.push((field.clone(), accepted));
            }
        }
        if h.insecure && !url.starts_with("https://") {
            self.error(
                http.span(),
                format!("health of service \"{name}\": insecure applies only to https:// URLs"),
            );
        }
        Some(Probe::Http {
            url,
            expect_status,
            expect_json,
            insecure: h.insecure,
        })
    }

    /// A size like `512MB`, `1.5GiB`, `64k` or a number of bytes.
    fn size(&mut self, v: &Spanned<Scalar>, what: &str, whose: &str) -> u64 {
        let parsed = match v.get_ref() {
            Scalar::Int(n) if *n > 0 => Some(*n as u64),
            Scalar::Str(s) => parse_size(s),
            _ => None,
        };
        match parsed {
            Some(n) if n > 0 => n,
            _ => {
                self.error(
                    v.span(),
                    format!(
                        "invalid {what} {} of {whose}: write a size like \"512MB\", \"1GiB\" or \"64KB\"",
                        v.get_ref().to_env_string()
                    ),
                );
                1
            }
        }
    }

    fn count(&mut self, v: &Spanned<i64>, what: &str, whose: &str, min: i64) -> u32 {
        let n = *v.get_ref();
        if n < min || n > i64::from(u32::MAX) {
            self.error(
                v.span(),
                format!(
                    "{what} of {whose} must be a whole number from {min} to {}",
                    u32::MAX
                ),
            );
            return min as u32;
        }
        n as u32
    }

    fn signal(&mut self, s: &Spanned<Scalar>, name: &str) -> Signal {
        let parsed = match s.get_ref() {
            Scalar::Str(text) => {
                let upper = text.trim().to_ascii_uppercase();
                let full = if upper.starts_with("SIG") {
                    upper
                } else {
                    format!("SIG{upper}")
                };
                Signal::from_str(&full).ok()
            }
            Scalar::Int(n) => i32::try_from(*n)
                .ok()
                .and_then(|n| Signal::try_from(n).ok()),
            _ => None,
        };
        parsed
            .filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP))
            .unwrap_or_else(|| {
                self.error(
                    s.span(),
                    format!(
                        "unknown stop_signal {} of service \"{name}\" (use a name like \"SIGTERM\", \"SIGINT\" or \"SIGQUIT\")",
                        s.get_ref().to_env_string()
                    ),
                );
                Signal::SIGTERM
            })
    }

    fn duration(
        &mut self,
        v: Option<&Spanned<Scalar>>,
        what: &str,
        name: &str,
        default: Duration,
    ) -> Duration {
        let Some(v) = v else { return default };
        let parsed = match v.get_ref() {
            Scalar::Str(s) => humantime::parse_duration(s.trim()).map_err(|e| e.to_string()),
            Scalar::Int(n) if *n >= 0 => Ok(Duration::from_secs(*n as u64)),
            Scalar::Float(f) if *f >= 0.0 && f.is_finite() && *f < 1e9 => {
                Ok(Duration::from_secs_f64(*f))
            }
            _ => Err("expected a duration like \"500ms\", \"2s\" or \"1m\"".into()),
        };
        match parsed {
            Ok(d) if d.is_zero() && what != "stop_timeout" => {
                self.error(
                    v.span(),
                    format!("{what} of service \"{name}\" must be greater than zero"),
                );
                default
            }
            Ok(d) if d > Duration::from_secs(365 * 24 * 3600) => {
                self.error(
                    v.span(),
                    format!("{what} of service \"{name}\" is longer than a year"),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(
                    v.span(),
                    format!("invalid {what} {} of service \"{name}\": {e} (write it like \"500ms\", \"2s\" or \"1m\")", v.get_ref().to_env_string()),
                );
                default
            }
        }
    }

    /// Report every dependency cycle once, as `a -> b -> c -> a`.
    fn cycles(&mut self, services: &[Service], dep_spans: &[Vec<Range<usize>>]) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let n = services.len();
        let mut mark = vec![Mark::New; n];
        let mut reported: Vec<Vec<usize>> = Vec::new();
        // Iterative DFS: stack of (node, next edge index).
        for start in 0..n {
            if mark[start] != Mark::New {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            mark[start] = Mark::Active;
            while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
                if let Some(&next) = services[node].depends_on.get(*edge) {
                    *edge += 1;
                    match mark[next] {
                        Mark::New => {
                            mark[next] = Mark::Active;
                            stack.push((next, 0));
                        }
                        Mark::Active => {
                            let from = stack
                                .iter()
                                .position(|(x, _)| *x == next)
                                .expect("active node is on the stack");
                            let cycle: Vec<usize> = stack[from..].iter().map(|(x, _)| *x).collect();
                            let mut key = cycle.clone();
                            key.sort_unstable();
                            if !reported.contains(&key) {
                                reported.push(key);
                                let mut names: Vec<&str> =
                                    cycle.iter().map(|&x| services[x].name.as_str()).collect();
                                names.push(&services[next].name);
                                let (first, first_edge) = stack[from];
                                let span = dep_spans[first][first_edge - 1].clone();
                                self.error(
                                    span,
                                    format!("dependency cycle: {}", names.join(" -> ")),
                                );
                            }
                        }
                        Mark::Done => {}
                    }
                } else {
                    mark[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
    }
}

fn valid_env_name(k: &str) -> bool {
    !(k.is_empty() || k.contains('=') || k.contains('\0'))
}

fn keep_span(keep: &Option<Spanned<i64>>) -> Range<usize> {
    keep.as_ref().map(|k| k.span()).unwrap_or(0..0)
}

/// `512MB`, `1.5GiB`, `64k`, `100`: decimal (KB, MB, GB) and binary (KiB,
/// MiB, GiB; K, M, G) units, case-insensitive.
/// `"8000-8099"` (or a single port `"8000"`).
fn parse_port_range(s: &str) -> Option<PortRange> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let first: u16 = a.trim().parse().ok()?;
    let last: u16 = b.trim().parse().ok()?;
    (first >= 1 && first <= last).then_some(PortRange { first, last })
}

/// A value as a person would name it in an error: `the string "eighty"`.
fn describe(v: &Scalar) -> String {
    match v {
        Scalar::Str(s) => format!("the string {s:?}"),
        Scalar::Int(i) => format!("the integer {i}"),
        Scalar::Float(f) => format!("the number {f}"),
        Scalar::Bool(b) => format!("the boolean {b}"),
    }
}

pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = num * mult;
    (bytes.is_finite() && (1.0..1e18).contains(&bytes)).then_some(bytes as u64)
}

/// The closest candidate to a misspelt name, if any is close enough.
pub fn suggest<'a>(wrong: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(wrong, c), c))
        .filter(|(d, c)| *d <= (c.len().max(wrong.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

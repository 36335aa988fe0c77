//! From the raw document to a resolved [`Config`], collecting every problem.
//!
//! Each check pushes a [`Diagnostic`] with the span of the offending value and
//! goes on, so one run of `fpctl validate` lists all that needs fixing. Only a
//! TOML syntax error stops early: without a document there is nothing to
//! check further. A value of the wrong type is reported and left out
//! (`typed.rs`), and so is what follows from an error already reported: a
//! bad `port` is one error, not also an unset `${PORT}`, an unset
//! `${FPCTL_PORT_X}` in other services and a health path without a port.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::env_block::SharedEnv;

use toml::Spanned;

use super::raw::{RawFile, RawService, Scalar};
use super::{looks_secret, Config, Diagnostic, Hosts, PortBook};

mod command;
mod deps;
mod health;
mod project;
mod services;
mod tiers;
mod typed;
mod values;

use tiers::PortSpec;
pub use values::suggest;

pub fn validate(
    path: &Path,
    root: &Path,
    text: &str,
    dotenv: &[(String, String)],
    hosts: Hosts,
    book: &dyn PortBook,
    overrides: &crate::scale::Overrides,
) -> Result<Config, Vec<Diagnostic>> {
    let typed::Typed {
        raw,
        diags,
        dropped,
    } = typed::read(text).map_err(sorted)?;
    let mut v = Validator {
        scale: &overrides.counts,
        all_in_containers: overrides.containers || hosts == Hosts::ServiceNames,
        root,
        diags,
        dropped,
        unset_ok: HashSet::new(),
        unset_ok_here: HashSet::new(),
        unset_ok_all_here: false,
        port_vars: Arc::default(),
        project_rotation: None,
        project_timestamps: false,
        project_env: Vec::new(),
        dotenv,
        // fpctl's own environment is looked up like `.env`: its secrets that
        // the file uses are hidden the same way.
        dotenv_secrets: dotenv
            .iter()
            .filter(|(k, _)| looks_secret(k))
            .map(|(_, v)| v.clone())
            .chain(
                super::expand::references(text)
                    .into_iter()
                    .filter(|k| looks_secret(k))
                    .filter_map(|k| std::env::var(k).ok()),
            )
            .collect(),
        log_dir: PathBuf::new(),
        hosts,
        project_name: String::new(),
        runtime: Default::default(),
        expanded: 0,
        tier_index: HashMap::new(),
        port_var_index: Arc::default(),
    };
    let config = v.file(path, raw, book);
    if v.diags.is_empty() {
        Ok(config)
    } else {
        Err(sorted(v.diags))
    }
}

/// In file order.
fn sorted(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort_by_key(|d| d.span.as_ref().map(|s| s.start).unwrap_or(0));
    diags
}

struct Validator<'a> {
    /// `fpctl scale` counts, over `replicas`.
    scale: &'a crate::scale::Counts,
    /// Every service with a container table runs in it (`start
    /// --containers`, or an export, where everything runs in a container).
    all_in_containers: bool,
    root: &'a Path,
    diags: Vec<Diagnostic>,
    /// Entries left out for a type error (already reported).
    dropped: typed::Dropped,
    /// Variables whose values an error already reported leaves unknown
    /// (`FPCTL_PORT_X` of a service whose port is wrong): using them is no
    /// second error.
    unset_ok: HashSet<String>,
    /// The same for the service being checked (`PORT`, its dropped `env`
    /// keys), or all of its variables (its env table or env_file is bad).
    unset_ok_here: HashSet<String>,
    unset_ok_all_here: bool,
    /// `FPCTL_PORT_*` of every service, once known.
    port_vars: Arc<SharedEnv>,
    project_rotation: Option<super::LogRotation>,
    project_timestamps: bool,
    /// `[project] env`, applied to every service before its own.
    project_env: Vec<(Spanned<String>, Spanned<Scalar>)>,
    /// `.env` (or `--env-file`): looked up last, after fpctl's environment.
    dotenv: &'a [(String, String)],
    dotenv_secrets: Arc<[String]>,
    log_dir: PathBuf,
    hosts: Hosts,
    /// `[project] name` (the tag of a built image names it).
    project_name: String,
    runtime: super::ContainerRuntime,
    /// Bytes made by `${VAR}` expansion so far, in the whole file.
    expanded: usize,
    /// The same, by name (a lookup per `${VAR}` must not scan them all).
    port_var_index: Arc<HashMap<String, String>>,
    /// Each declared tier's position, by name.
    tier_index: HashMap<String, usize>,
}

/// What the second pass needs to know about every service.
struct Declared {
    name: String,
    span: Range<usize>,
    port: Option<u16>,
    port_auto: bool,
    /// A port was written but is wrong (reported): nothing that needs it
    /// is reported again.
    port_broken: bool,
    tier: usize,
    /// Its tier is unknown (reported): it checks against no tier.
    tier_broken: bool,
    /// Index into the file's services.
    raw: usize,
    /// A replica: the service's written name and the instance's number.
    group: Option<(String, u32)>,
    /// It runs in a container of its own network namespace (bridge).
    bridged: bool,
    /// Where its program listens where it runs, when that is not `port`:
    /// `container_port` in a bridge container; in an export, a replica's
    /// first port (every replica listens on one port there).
    inner_port: Option<u16>,
}

/// What the first pass reads of a service's container table.
fn container_placement(svc: &RawService, all_in_containers: bool) -> (bool, Option<u16>) {
    let Some(c) = &svc.container else {
        return (false, None);
    };
    let c = c.get_ref();
    let runs = svc.command.is_none() || all_in_containers;
    let bridged = runs && c.network != Some(super::raw::RawNetwork::Host);
    let port = c
        .container_port
        .as_ref()
        .and_then(|p| u16::try_from(*p.get_ref()).ok())
        .filter(|&p| p > 0);
    (bridged, port.filter(|_| bridged))
}

/// More instances than this are surely a typo.
const MAX_REPLICAS: u32 = 1000;

impl Validator<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diags.push(Diagnostic::at(span, message));
    }

    fn file(&mut self, path: &Path, raw: RawFile, book: &dyn PortBook) -> Config {
        let project = self.project(raw.project);
        self.project_rotation = project.log_rotation;
        self.project_timestamps = project.log_timestamps;
        self.log_dir = project.log_dir.clone();
        self.project_name = project.name.clone();
        self.runtime = project.container_runtime;
        let tiers = self.tiers(raw.tier);
        // No "no services" when they were there with a type error.
        if raw.services.is_empty()
            && !self.dropped.top_level()
            && !self.dropped.under(&["services"])
        {
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
            let (tier, tier_broken) = self.service_tier(name.get_ref(), svc.get_ref(), &tiers);
            let port_written = svc.get_ref().port.is_some()
                || self.dropped.meant(&["services", name.get_ref()], "port");
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
            let spec = svc.get_ref().port.as_ref().map(|p| {
                let known = (!tier_broken).then(|| &tiers[tier]);
                (p.span(), self.port(p, name.get_ref(), known))
            });
            let (bridged, container_port) =
                container_placement(svc.get_ref(), self.all_in_containers);
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
                        let known = (!tier_broken).then(|| &tiers[tier]);
                        self.instance_port(*base, offset, span, &instance, known)
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
                    port_broken: port_written,
                    tier,
                    tier_broken,
                    raw: r,
                    group: replica.map(|i| (name.get_ref().clone(), i)),
                    bridged,
                    inner_port: container_port,
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
        // In an export every replica listens on the first one's port.
        if self.hosts == Hosts::ServiceNames {
            let inner: Vec<Option<u16>> = {
                let mut first: HashMap<&str, Option<u16>> = HashMap::new();
                declared
                    .iter()
                    .map(|d| {
                        let own = d.inner_port.or(d.port);
                        match &d.group {
                            Some((group, _)) => *first.entry(group.as_str()).or_insert(own),
                            None => own,
                        }
                    })
                    .collect()
            };
            for (d, port) in declared.iter_mut().zip(inner) {
                d.inner_port = port;
            }
        }
        // A written port that resolved to none is broken, and so are the
        // variables that would hold it.
        for d in &mut declared {
            d.port_broken &= d.port.is_none();
            if d.port_broken {
                let names = std::iter::once(d.name.as_str())
                    .chain(d.group.as_ref().map(|(g, _)| g.as_str()));
                for n in names {
                    self.unset_ok.insert(crate::config::port_var_name(n));
                    self.unset_ok.insert(crate::config::host_var_name(n));
                    self.unset_ok.insert(crate::config::ports_var_name(n));
                }
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
        // One list shared by every service (a copy each would be quadratic),
        // and one more for those in bridge containers, which reach the
        // others through the bridge's gateway.
        let port_vars = self.port_vars(&declared, false);
        let bridge_vars = if self.hosts == Hosts::Loopback && declared.iter().any(|d| d.bridged) {
            self.port_vars(&declared, true)
        } else {
            Arc::clone(&port_vars)
        };
        self.port_vars = Arc::clone(&port_vars);
        let mut by_name = HashMap::with_capacity(port_vars.len());
        for (k, v) in port_vars.iter() {
            by_name.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self.port_var_index = Arc::new(by_name);

        let mut services = Vec::with_capacity(declared.len());
        let mut dep_spans = Vec::with_capacity(declared.len());
        for i in 0..declared.len() {
            let before = self.diags.len();
            let svc = raw_services[declared[i].raw].1.get_ref();
            let vars = if declared[i].bridged {
                &bridge_vars
            } else {
                &port_vars
            };
            self.port_vars = Arc::clone(vars);
            let (service, spans) = self.service(i, svc, &declared, &index, vars, &tiers);
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
}

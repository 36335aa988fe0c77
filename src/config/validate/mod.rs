//! From the raw document to a resolved [`Config`], collecting every problem.
//!
//! Each check pushes a [`Diagnostic`] with the span of the offending value and
//! goes on, so one run of `fpctl validate` lists all that needs fixing. Only a
//! TOML syntax or type error stops early: without a document there is nothing
//! to check further.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::raw::{RawFile, RawService, Scalar};
use super::{looks_secret, Config, Diagnostic, Hosts, PortBook};

mod command;
mod deps;
mod health;
mod project;
mod services;
mod tiers;
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
        scale: &overrides.counts,
        all_in_containers: overrides.containers || hosts == Hosts::ServiceNames,
        root,
        diags: Vec::new(),
        port_vars: Arc::from(Vec::new()),
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
    /// Every service with a container table runs in it (`start
    /// --containers`, or an export, where everything runs in a container).
    all_in_containers: bool,
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
    /// `[project] name` (the tag of a built image names it).
    project_name: String,
    runtime: super::ContainerRuntime,
    /// Bytes made by `${VAR}` expansion so far, in the whole file.
    expanded: usize,
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

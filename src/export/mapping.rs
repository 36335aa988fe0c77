//! What every target shares: which services go out, the image each runs
//! from, the environment it sees, what its dependents wait for, how
//! durations are written, and the notes on what a target cannot express.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, Probe, Service, Setup};
use crate::graph;
use crate::{Error, Result};

/// Something the export could not carry over exactly. It is written as a
/// comment into the output and as a warning on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The service it is about; `None` for the whole stack.
    pub service: Option<String>,
    pub text: String,
}

impl Note {
    pub fn line(&self) -> String {
        match &self.service {
            Some(s) => format!("{s}: {}", self.text),
            None => self.text.clone(),
        }
    }
}

/// The services to export and everything the targets need to know about
/// them.
pub struct Plan<'a> {
    pub config: &'a Config,
    /// Service indices, in start order.
    pub services: Vec<usize>,
    pub notes: Vec<Note>,
    /// Each service's place in `services` (by config index), if exported.
    position: Vec<Option<usize>>,
    /// The exported services of each tier, in start order.
    by_tier: std::collections::BTreeMap<usize, Vec<usize>>,
}

/// What a dependent waits for before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The health check passes.
    Healthy,
    /// The oneshot exited 0.
    Completed,
    /// The process runs (a service without a health check).
    Started,
}

impl<'a> Plan<'a> {
    /// `names` and their dependencies, or every enabled service whose
    /// profiles match. With `all_profiles` (a target with profiles of its
    /// own), every enabled service when nothing is named.
    pub fn new(
        config: &'a Config,
        names: &[String],
        profiles: &[String],
        all_profiles: bool,
    ) -> Result<Self> {
        let selected: BTreeSet<usize> = if all_profiles && names.is_empty() && profiles.is_empty() {
            let roots = (0..config.services.len()).filter(|&i| !config.services[i].disabled);
            graph::with_dependencies(config, roots)
        } else {
            graph::select(config, names, profiles)?
        };
        let mut notes = Vec::new();
        for (i, s) in config.services.iter().enumerate() {
            if selected.contains(&i) {
                continue;
            }
            let why = if s.disabled {
                "left out: it is disabled".to_string()
            } else if !s.profiles.is_empty() && names.is_empty() {
                format!(
                    "left out: it belongs to profile {} (export with --profile {} to include it)",
                    s.profiles.join(", "),
                    s.profiles[0]
                )
            } else {
                "left out: not named on the command line".to_string()
            };
            notes.push(Note {
                service: Some(s.name.clone()),
                text: why,
            });
        }
        let services = graph::plan(config, &selected).start_order();
        let mut position = vec![None; config.services.len()];
        let mut by_tier = std::collections::BTreeMap::<usize, Vec<usize>>::new();
        for (k, &i) in services.iter().enumerate() {
            position[i] = Some(k);
            by_tier.entry(config.services[i].tier).or_default().push(i);
        }
        Ok(Plan {
            config,
            services,
            notes,
            position,
            by_tier,
        })
    }

    pub fn svc(&self, i: usize) -> &'a Service {
        &self.config.services[i]
    }

    pub fn note(&mut self, service: &str, text: impl Into<String>) {
        self.push(Some(service), text.into());
    }

    /// A note about the whole stack, given once.
    pub fn note_stack(&mut self, text: impl Into<String>) {
        self.push(None, text.into());
    }

    /// A service that runs from an image: its setup is the image's job.
    pub fn note_image_setup(&mut self, svc: &Service, image: &Image) {
        match &svc.setup {
            Setup::None => {}
            Setup::Commands(_) => self.note(
                &svc.name,
                "its setup commands do not run: do that work in the image's Dockerfile",
            ),
            Setup::Venv | Setup::Npm if image.generated.is_none() => self.note(
                &svc.name,
                "its venv/npm setup is assumed to be done by the image's Dockerfile",
            ),
            Setup::Venv | Setup::Npm => {}
        }
    }

    /// A target without profiles gets the selected services alone.
    pub fn note_profiles(&mut self, svc: &Service) {
        if !svc.profiles.is_empty() {
            self.note(
                &svc.name,
                format!(
                    "it belongs to profile {}: included because it was selected for this export",
                    svc.profiles.join(", ")
                ),
            );
        }
    }

    fn push(&mut self, service: Option<&str>, text: String) {
        let note = Note {
            service: service.map(str::to_string),
            text,
        };
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// The notes about one service (or, with `None`, the whole stack).
    pub fn notes_for(&self, service: Option<&str>) -> Vec<&Note> {
        self.notes
            .iter()
            .filter(|n| n.service.as_deref() == service)
            .collect()
    }

    /// What `i` waits for: its dependencies, and (as fpctl starts a tier only
    /// once the tier before it is up) every exported service of the nearest
    /// earlier tier that has one, but for services of other profiles.
    pub fn waits_for(&self, i: usize) -> Vec<(usize, Gate)> {
        let me = self.svc(i);
        let mut deps: BTreeSet<usize> = me
            .depends_on
            .iter()
            .copied()
            .filter(|&d| self.position[d].is_some())
            .collect();
        if let Some((_, previous)) = self.by_tier.range(..me.tier).next_back() {
            for &j in previous {
                let other = self.svc(j);
                // A service of a profile the dependent is not in may be
                // absent where the stack runs (compose without --profile).
                let present = other.profiles.is_empty()
                    || other.profiles.iter().any(|p| me.profiles.contains(p));
                if present {
                    deps.insert(j);
                }
            }
        }
        let mut deps: Vec<usize> = deps.into_iter().collect();
        deps.sort_by_key(|&d| self.position[d]);
        deps.into_iter().map(|d| (d, gate(self.svc(d)))).collect()
    }

    /// Notes about literal loopback addresses that name another service's
    /// port: under compose or Kubernetes each service has its own address.
    pub fn check_loopback(&mut self, i: usize) {
        let svc = self.svc(i);
        let ports: Vec<(u16, &str)> = self
            .config
            .services
            .iter()
            .filter(|s| s.name != svc.name)
            .filter_map(|s| Some((s.port?, s.name.as_str())))
            .collect();
        let mut found = Vec::new();
        for (place, text) in written_values(svc) {
            let mut other_service = false;
            for host in ["127.0.0.1:", "localhost:"] {
                for (at, _) in text.match_indices(host) {
                    let digits: String = text[at + host.len()..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if let Some((port, other)) = digits
                        .parse::<u16>()
                        .ok()
                        .and_then(|p| ports.iter().find(|(q, _)| *q == p))
                    {
                        other_service = true;
                        let var = crate::config::host_var_name(other);
                        let pvar = crate::config::port_var_name(other);
                        found.push(format!(
                            "{place} reaches {other} at the literal {host}{port}, which is this container itself here: write ${{{var}}}:${{{pvar}}}"
                        ));
                    }
                }
            }
            if !other_service && text.contains("127.0.0.1") {
                found.push(format!(
                    "{place} has the literal address 127.0.0.1, which is this container itself here: a server listening there cannot be reached from other services (listen on 0.0.0.0)"
                ));
            }
        }
        let name = svc.name.clone();
        for f in found {
            self.note(&name, f);
        }
    }

    /// Notes about env_file values that expansion copied into the command or
    /// the env table: those would be written out in the clear.
    pub fn check_inlined_secrets(&mut self, i: usize) {
        let svc = self.svc(i);
        // Keys set by an env_file (and not overridden by the env table).
        let from_files: Vec<&str> = svc
            .secret_keys
            .iter()
            .filter(|k| !svc.env_keys.contains(k))
            .filter_map(|k| svc.env_value(k))
            .filter(|v| v.len() >= 3)
            .collect();
        let mut found = Vec::new();
        for (place, text) in written_values(svc) {
            if from_files.iter().any(|v| text.contains(v)) {
                found.push(format!(
                    "{place} holds a value from its env_file, expanded by ${{...}}; the export writes it in the clear: read the variable at run time instead"
                ));
            }
        }
        let name = svc.name.clone();
        for f in found {
            self.note(&name, f);
        }
    }
}

/// The command words and `env` table values of a service, named for notes.
fn written_values(svc: &Service) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = svc
        .argv
        .iter()
        .map(|w| ("its command".to_string(), w.clone()))
        .collect();
    for k in &svc.env_keys {
        if let Some(v) = svc.env_value(k) {
            out.push((format!("env {k}"), v.to_string()));
        }
    }
    out
}

/// `success_exit_codes` as written (`[0, 3]`), when it is not the
/// default: compose and Kubernetes know only 0 as success.
pub fn other_success_codes(svc: &Service) -> Option<String> {
    if svc.success_exit_codes == crate::config::defaults::SUCCESS_EXIT_CODES {
        return None;
    }
    let codes: Vec<String> = svc.success_exit_codes.iter().map(i32::to_string).collect();
    Some(format!("[{}]", codes.join(", ")))
}

pub fn gate(svc: &Service) -> Gate {
    if svc.oneshot {
        Gate::Completed
    } else if svc.health.is_some() {
        Gate::Healthy
    } else {
        Gate::Started
    }
}

/// The environment a service is given: `PORT`, every `FPCTL_PORT_*` and
/// `FPCTL_HOST_*`, then the `env` table (env_file values stay in their files).
pub fn environment(svc: &Service) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: &str| {
        out.retain(|(x, _)| x != k);
        out.push((k.to_string(), v.to_string()));
    };
    if let Some(p) = svc.port {
        put("PORT", &p.to_string());
    }
    for (k, v) in svc.port_env.iter() {
        put(k, v);
    }
    for k in &svc.env_keys {
        if let Some(v) = svc.env.iter().rev().find(|(x, _)| x == k).map(|(_, v)| v) {
            put(k, v);
        }
    }
    out
}

/// Where a service's program listens where it runs in a container: its
/// `PORT` (`container_port` in a bridge container; under compose and
/// Kubernetes, every replica listens on its first instance's port).
pub fn listen_port(svc: &Service) -> Option<u16> {
    svc.env
        .iter()
        .rev()
        .find(|(k, _)| k == "PORT")
        .and_then(|(_, v)| v.parse().ok())
        .or(svc.port)
}

/// The port a probe of this service aims at inside its container: its own
/// port becomes the one its program listens on there.
pub fn inside(svc: &Service, port: u16) -> u16 {
    match (svc.port, listen_port(svc)) {
        (Some(own), Some(inner)) if own == port => inner,
        _ => port,
    }
}

/// What the container runs: its `args`, else the service's `command`;
/// empty for the image's own CMD.
pub fn container_command(svc: &Service) -> &[String] {
    svc.container_command()
}

/// A replicated service is exported once, by its first instance, as one
/// service of N replicas; the other instances are left out.
pub fn replica_count(plan: &Plan, i: usize) -> Option<Option<usize>> {
    let svc = plan.svc(i);
    let (group, n) = svc.group.as_ref()?;
    if *n != 1 {
        return Some(None);
    }
    let count = plan
        .services
        .iter()
        .filter(|&&j| plan.svc(j).group.as_ref().is_some_and(|(g, _)| g == group))
        .count();
    Some(Some(count))
}

/// The name a service is known by in an export: a replica's, its service's.
pub fn exported_name(svc: &Service) -> &str {
    svc.group
        .as_ref()
        .map_or(svc.name.as_str(), |(g, _)| g.as_str())
}

/// What a container engine runs a service from.
#[derive(Debug, Clone)]
pub struct Image {
    /// A published image, or the tag a build gets.
    pub name: Option<String>,
    /// The build context.
    pub build: Option<PathBuf>,
    /// A Dockerfile fpctl writes (`--dockerfiles`): its file name in the
    /// output folder, and its text.
    pub generated: Option<(String, String)>,
}

/// The image of every exported service, or one error naming each service
/// that has none and what to add.
pub fn images(plan: &Plan, dockerfiles: bool) -> Result<Vec<(usize, Image)>> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for &i in &plan.services {
        let svc = plan.svc(i);
        let image = match &svc.container {
            Some(c) => Image {
                name: c.image.clone(),
                build: c.build.clone(),
                generated: None,
            },
            None if svc.dir.join("Dockerfile").is_file() => Image {
                name: None,
                build: Some(svc.dir.clone()),
                generated: None,
            },
            None => match (&svc.setup, dockerfiles) {
                (Setup::Venv | Setup::Npm, true) => Image {
                    name: None,
                    build: Some(svc.dir.clone()),
                    generated: Some((format!("{}.Dockerfile", svc.name), dockerfile(svc))),
                },
                (setup, _) => {
                    let dir = shown_dir(plan.config, &svc.dir);
                    let generate = if matches!(setup, Setup::Venv | Setup::Npm) {
                        ", or pass --dockerfiles to generate a minimal one for its setup"
                    } else {
                        ""
                    };
                    missing.push(format!(
                        "service \"{name}\" has no container image: add\n  [services.{name}.container]\n  image = \"NAME:TAG\"    # a published image, and/or\n  build = \"DIR\"         # a folder with a Dockerfile\nto {file}, or put a Dockerfile in {dir}{generate}",
                        name = svc.name,
                        file = plan.config.path.display(),
                    ));
                    continue;
                }
            },
        };
        out.push((i, image));
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(Error::Usage(missing.join("\n")))
    }
}

/// What a generated Dockerfile's `COPY . .` leaves out of the build: what
/// a setup makes on this machine (`.venv`, `node_modules`), fpctl's state,
/// version control and caches.
pub const DOCKERIGNORE: &str = "# Generated by fpctl export --dockerfiles: what `COPY . .` leaves out\n.venv\nvenv\nnode_modules\n.fpctl\n.git\n__pycache__\n*.pyc\n.env\n";

/// A minimal Dockerfile for a `venv` or `npm` service: its folder copied to
/// /app and its setup run at build time.
fn dockerfile(svc: &Service) -> String {
    let (from, run, env) = match svc.setup {
        Setup::Npm => (
            "node:lts-slim",
            "if [ -f package-lock.json ]; then npm ci; else npm install; fi",
            "PATH=/app/node_modules/.bin:$PATH",
        ),
        _ => (
            "python:3-slim",
            "python3 -m venv /app/.venv && if [ -f requirements.txt ]; then /app/.venv/bin/python -m pip install --no-cache-dir -r requirements.txt; fi",
            "PATH=/app/.venv/bin:$PATH VIRTUAL_ENV=/app/.venv",
        ),
    };
    format!(
        "# Generated by fpctl export --dockerfiles for service \"{name}\": its folder\n# copied to /app and its setup run at build time.\nFROM {from}\nWORKDIR /app\nCOPY . .\nRUN {run}\nENV {env}\n",
        name = svc.name
    )
}

/// `dir` relative to services.toml's folder, for messages.
fn shown_dir(config: &Config, dir: &Path) -> String {
    let rel = relative(&config.root, dir);
    if rel == "." {
        "its dir (the folder of services.toml)".into()
    } else {
        rel
    }
}

/// `path` written relative to the folder `from` (both absolute), with `/`.
pub fn relative(from: &Path, path: &Path) -> String {
    let (from, path) = (
        crate::config::normalize_path(from),
        crate::config::normalize_path(path),
    );
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = path.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// A duration as compose and systemd write it: `1s`, `1500ms`.
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Whole seconds, rounded up, at least `min` (Kubernetes counts in seconds).
pub fn whole_seconds(d: Duration, min: u64) -> u64 {
    let s = d.as_millis().div_ceil(1000) as u64;
    s.max(min)
}

/// An http probe's path and port on the service's own address, when it
/// probes the service itself (`None` for a URL on another host).
pub fn own_http(probe: &Probe) -> Option<(String, u16)> {
    let Probe::Http { url, .. } = probe else {
        return None;
    };
    let uri: hyper::Uri = url.parse().ok()?;
    let own = matches!(uri.host(), Some("127.0.0.1" | "localhost"));
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let default_port = if is_https(probe) { 443 } else { 80 };
    own.then_some((path, uri.port_u16().unwrap_or(default_port)))
}

/// Whether an http probe speaks TLS (Kubernetes' https probes, like
/// `insecure = true`, do not verify the certificate).
pub fn is_https(probe: &Probe) -> bool {
    matches!(probe, Probe::Http { url, .. } if url.starts_with("https://"))
}

/// The comment block that heads an exported file.
pub fn header(title: &str, notes: &[&Note]) -> String {
    let mut out = format!("# {title}\n# Generated by `fpctl export` from services.toml; edit that file and export again.\n");
    if !notes.is_empty() {
        out.push_str("#\n# Not carried over exactly:\n");
        let mut notes = notes.to_vec();
        // The whole stack's first.
        notes.sort_by_key(|n| n.service.is_some());
        for n in notes {
            out.push_str(&format!("#   - {}\n", n.line()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(relative(&p("/a/b"), &p("/a/b")), ".");
        assert_eq!(relative(&p("/a/b/deploy"), &p("/a/b/api")), "../api");
        assert_eq!(relative(&p("/a/b"), &p("/a/b/./api/.env")), "api/.env");
        assert_eq!(relative(&p("/x/y"), &p("/a/../a/b")), "../../a/b");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_text(Duration::from_secs(60)), "60s");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");
        assert_eq!(whole_seconds(Duration::from_millis(1500), 1), 2);
        assert_eq!(whole_seconds(Duration::from_millis(0), 1), 1);
        assert_eq!(whole_seconds(Duration::from_millis(0), 0), 0);
    }
}

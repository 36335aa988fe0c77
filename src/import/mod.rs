//! `fpctl import`: turn a Procfile, a docker compose file or a
//! process-compose file into a services.toml [`Draft`]. Each format has its
//! own file; this one tells them apart and holds what they share: paths made
//! relative to the output, ports, variables, and the warnings for what does
//! not map (one line per kind of loss, naming every service it touches).
//! Nothing here writes files.

mod compose;
mod dockerfile;
mod merge;
mod process_compose;
pub mod procfile;
mod vars;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_yaml_ng::{Mapping, Value};

use crate::draft::{strings, Draft, PortPlan};
use crate::Error;

pub use vars::convert as convert_vars;

/// The formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Procfile,
    Compose,
    ProcessCompose,
}

impl Format {
    pub fn label(self) -> &'static str {
        match self {
            Format::Procfile => "Procfile",
            Format::Compose => "docker compose file",
            Format::ProcessCompose => "process-compose file",
        }
    }
}

/// A converted file and what could not be carried over.
#[derive(Debug)]
pub struct Imported {
    pub format: Format,
    pub draft: Draft,
    pub warnings: Vec<String>,
}

/// Read `file` and convert it; relative paths in the result are relative to
/// `out_dir`, the folder the services.toml will be written to.
pub fn import_file(file: &Path, out_dir: &Path, ports: &mut PortPlan) -> Result<Imported, Error> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", file.display())))?;
    let format = detect(file, &text)?;
    let mut ctx = Ctx::new(file, out_dir, ports);
    let draft = match format {
        Format::Procfile => procfile::convert(&text, &mut ctx),
        Format::Compose => compose::convert(&parse_yaml(file, &text)?, &mut ctx),
        Format::ProcessCompose => process_compose::convert(&parse_yaml(file, &text)?, &mut ctx),
    };
    Ok(Imported {
        format,
        draft,
        warnings: ctx.take_warnings(),
    })
}

/// Told apart by name first, then by content.
pub fn detect(file: &Path, text: &str) -> Result<Format, Error> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if name == "procfile" || name.starts_with("procfile.") {
        return Ok(Format::Procfile);
    }
    let yaml_name = name.ends_with(".yml") || name.ends_with(".yaml");
    if yaml_name {
        let doc = parse_yaml(file, text)?;
        if let Some(map) = doc.as_mapping() {
            if map.contains_key("processes") {
                return Ok(Format::ProcessCompose);
            }
            if map.contains_key("services") {
                return Ok(Format::Compose);
            }
        }
    } else if procfile::looks_like(text) {
        return Ok(Format::Procfile);
    }
    Err(Error::Usage(format!(
        "{}: not a format fpctl can import: expected a Procfile (`name: command` lines), \
         a docker compose file (YAML with `services:`) or a process-compose file (YAML with \
         `processes:`)",
        file.display()
    )))
}

fn parse_yaml(file: &Path, text: &str) -> Result<Value, Error> {
    let mut doc: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!("{}:{}:{}", file.display(), l.line(), l.column()))
            .unwrap_or_else(|| file.display().to_string());
        Error::Usage(format!("{at}: invalid YAML: {e}"))
    })?;
    merge::resolve(&mut doc)
        .map_err(|e| Error::Usage(format!("{}: invalid YAML merge: {e}", file.display())))?;
    Ok(doc)
}

/// Services named in one shared warning; the rest are counted.
const NAMED: usize = 8;

/// What a conversion needs besides the document: where it came from, where
/// the result goes, its variables, the ports handed out, and the warnings
/// so far.
pub struct Ctx<'a> {
    /// The input's name, as warnings show it.
    file: String,
    src_dir: PathBuf,
    out_dir: PathBuf,
    pub env: vars::Env,
    pub ports: &'a mut PortPlan,
    warnings: Vec<String>,
    /// Losses that several services share: one line each, naming them all.
    grouped: IndexMap<String, Vec<String>>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &Path, out_dir: &Path, ports: &'a mut PortPlan) -> Self {
        let src_dir = absolute(file.parent().unwrap_or(Path::new(".")));
        let mut warnings = Vec::new();
        let env = vars::Env::beside(&src_dir).unwrap_or_else(|e| {
            warnings.push(format!("{}: .env beside it not read: {e}", file.display()));
            vars::Env::default()
        });
        Ctx {
            file: file.display().to_string(),
            src_dir,
            out_dir: absolute(out_dir),
            env,
            ports,
            warnings,
            grouped: IndexMap::new(),
        }
    }

    pub fn warn(&mut self, what: impl std::fmt::Display) {
        self.warnings.push(format!("{}: {what}", self.file));
    }

    /// A warning about `service`; services with the same one share a line.
    pub fn warn_for(&mut self, service: &str, what: impl Into<String>) {
        let names = self.grouped.entry(what.into()).or_default();
        if !names.iter().any(|n| n == service) {
            names.push(service.to_string());
        }
    }

    /// One warning for a field that has no equivalent.
    pub fn unsupported(&mut self, service: &str, field: &str, why: &str) {
        let why = if why.is_empty() {
            "no equivalent in services.toml"
        } else {
            why
        };
        self.warn_for(service, format!("`{field}` skipped: {why}"));
    }

    /// Every warning, the shared ones last, one line each.
    pub fn take_warnings(&mut self) -> Vec<String> {
        let mut out = std::mem::take(&mut self.warnings);
        for (what, names) in std::mem::take(&mut self.grouped) {
            let mut quoted: Vec<String> = names
                .iter()
                .take(NAMED)
                .map(|n| format!("\"{n}\""))
                .collect();
            if names.len() > NAMED {
                quoted.push(format!("and {} more", names.len() - NAMED));
            }
            let subject = match quoted.as_slice() {
                [one] => format!("service {one}"),
                many => format!("services {}", many.join(", ")),
            };
            out.push(format!("{}: {subject}: {what}", self.file));
        }
        out
    }

    /// A value that must parse now (a duration, a number, a port), with its
    /// variables expanded from the environment and the `.env` beside the
    /// input. None when a variable is set nowhere: then one warning for
    /// that variable and field, and the caller leaves fpctl's default.
    pub fn resolve(&mut self, text: &str, service: &str, field: &str) -> Option<String> {
        match vars::expand(text, &self.env) {
            Ok(v) => Some(v),
            Err(vars::Unexpanded::Unset(names)) => {
                for n in names {
                    self.warn_for(
                        service,
                        format!(
                            "`{field}` is {text:?}, but {n} is set neither in the environment \
                             nor in a .env beside the file: left out (fpctl's default applies)"
                        ),
                    );
                }
                None
            }
            Err(vars::Unexpanded::Malformed(why)) => {
                self.warn_for(service, format!("`{field}`: {why}; left out"));
                None
            }
        }
    }

    /// A folder named in the input (relative to it), as seen from the output.
    pub fn source_path(&self, rel: &str) -> PathBuf {
        crate::config::normalize_path(&self.src_dir.join(rel))
    }

    /// `path` as the input names it: relative to the input's folder.
    pub fn shown(&self, path: &Path) -> String {
        let rel = relative(path, &self.src_dir);
        if rel.starts_with('.') {
            rel
        } else {
            format!("./{rel}")
        }
    }

    /// `path` relative to the output folder ("." for the folder itself).
    pub fn rel(&self, path: &Path) -> String {
        relative(path, &self.out_dir)
    }

    /// Whether fpctl will find `name` when it loads the output: in its
    /// environment, or in the `.env` beside the output.
    pub fn set_at_load(&self, name: &str) -> bool {
        std::env::var_os(name).is_some()
            || crate::config::read_env_file(&self.out_dir.join(".env"))
                .is_ok_and(|pairs| pairs.iter().any(|(k, _)| k == name))
    }
}

fn absolute(p: &Path) -> PathBuf {
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        crate::config::normalize_path(
            &std::env::current_dir()
                .unwrap_or_else(|_| PathBuf::from("/"))
                .join(p),
        )
    })
}

/// `path` as seen from `base` (both absolute).
pub fn relative(path: &Path, base: &Path) -> String {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel = PathBuf::new();
    for _ in common..b.len() {
        rel.push("..");
    }
    for c in &p[common..] {
        rel.push(c);
    }
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        rel.display().to_string()
    }
}

/// What both YAML formats do once every service is converted: a service
/// others wait to see finish becomes a oneshot; dependencies on commented
/// stubs, and on services the file does not have, are dropped (with a
/// warning).
pub fn finish(draft: &mut Draft, completed: &[String], ctx: &mut Ctx) {
    for name in completed {
        let Some(s) = draft.service_mut(name).filter(|s| !s.stub) else {
            continue;
        };
        if s.table.contains_key("oneshot") {
            continue;
        }
        if !s.table.contains_key("health") {
            s.set("oneshot", true);
            s.note("a task: others wait for it to finish successfully");
        } else if s.get_str("restart") == Some("always") {
            s.note("others waited for it to finish, but it restarts always: they wait until it is healthy");
            ctx.warn_for(
                name,
                "others wait for it to finish, but it has a readiness probe and restarts \
                 always: kept as a long-running service with its probe, and they wait until \
                 it is healthy",
            );
        } else {
            s.table.remove("health");
            s.set("oneshot", true);
            s.note("a task: others wait for it to finish successfully (its readiness probe is dropped)");
            ctx.warn_for(
                name,
                "others wait for it to finish, so it is a oneshot, and a oneshot takes no \
                 health check: its readiness probe is dropped",
            );
        }
    }
    let names: Vec<(String, bool)> = draft
        .services
        .iter()
        .map(|s| (s.name.clone(), s.stub))
        .collect();
    for svc in draft.services.iter_mut().filter(|s| !s.stub) {
        let deps = svc.depends_on();
        let mut kept = Vec::new();
        for d in deps {
            match names.iter().find(|(n, _)| *n == d) {
                Some((_, false)) => kept.push(d),
                Some((_, true)) => ctx.warn_for(
                    &svc.name,
                    format!(
                        "dependency on \"{d}\" dropped: \"{d}\" is only a commented stub; add \
                         it back once it runs"
                    ),
                ),
                None => ctx.warn_for(
                    &svc.name,
                    format!("dependency on \"{d}\" dropped: the file has no such service"),
                ),
            }
        }
        if kept.len() != svc.depends_on().len() {
            if kept.is_empty() {
                svc.table.remove("depends_on");
            } else {
                svc.set("depends_on", strings(kept));
            }
        }
    }
}

/// A YAML scalar as text (strings, numbers, booleans); None for the rest.
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `KEY=VALUE` strings or a mapping, as both formats write environments.
/// A bare `KEY` (taken from the caller's environment) gives None.
pub fn env_pairs(v: &Value) -> Vec<(String, Option<String>)> {
    match v {
        Value::Mapping(m) => m
            .iter()
            .filter_map(|(k, v)| Some((scalar(k)?, scalar(v))))
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| i.as_str())
            .map(|s| match s.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (s.to_string(), None),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The keys of a mapping, as strings.
pub fn keys(m: &Mapping) -> impl Iterator<Item = (String, &Value)> {
    m.iter().filter_map(|(k, v)| Some((scalar(k)?, v)))
}

/// A local HTTP(S) endpoint probed with `curl` / `wget`.
#[derive(Debug, PartialEq, Eq)]
pub struct ProbeUrl {
    /// `http(s)://127.0.0.1:PORT/PATH`.
    pub url: String,
    pub port: u16,
    pub https: bool,
    /// `curl -k` / `wget --no-check-certificate`: any certificate will do.
    pub insecure: bool,
}

/// `curl … http://localhost:8000/health` / `wget … URL`: the URL, so a
/// probe needs no curl.
pub fn http_probe_url(argv: &[String]) -> Option<ProbeUrl> {
    let tool = argv.first()?.rsplit('/').next()?;
    if tool != "curl" && tool != "wget" {
        return None;
    }
    let url = argv
        .iter()
        .find(|a| a.starts_with("http://") || a.starts_with("https://"))?;
    let https = url.starts_with("https://");
    let rest = url.split_once("://")?.1;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let default = if https { "443" } else { "80" };
    let (name, port) = host.rsplit_once(':').unwrap_or((host, default));
    if !matches!(name, "localhost" | "127.0.0.1" | "0.0.0.0") {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    let insecure = argv.iter().any(|a| {
        matches!(a.as_str(), "--insecure" | "--no-check-certificate")
            || (tool == "curl" && a.starts_with('-') && !a.starts_with("--") && a.contains('k'))
    });
    let scheme = if https { "https" } else { "http" };
    Some(ProbeUrl {
        url: format!("{scheme}://127.0.0.1:{port}/{path}"),
        port,
        https,
        insecure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_from_the_output_folder() {
        assert_eq!(relative(Path::new("/a/b/c"), Path::new("/a")), "b/c");
        assert_eq!(relative(Path::new("/a"), Path::new("/a")), ".");
        assert_eq!(relative(Path::new("/a/x"), Path::new("/a/b")), "../x");
    }

    #[test]
    fn curl_health_checks_become_http_probes() {
        let argv = |s: &str| -> Vec<String> { s.split(' ').map(String::from).collect() };
        let u = http_probe_url(&argv("curl -f http://localhost:8000/health")).unwrap();
        assert_eq!(
            (u.url.as_str(), u.port, u.https),
            ("http://127.0.0.1:8000/health", 8000, false)
        );
        let u = http_probe_url(&argv("curl -fk https://localhost/ready")).unwrap();
        assert_eq!(
            (u.url.as_str(), u.https, u.insecure),
            ("https://127.0.0.1:443/ready", true, true)
        );
        let u = http_probe_url(&argv(
            "wget --no-check-certificate -q https://127.0.0.1:8443/",
        ))
        .unwrap();
        assert!(u.https && u.insecure && u.port == 8443, "{u:?}");
        assert_eq!(http_probe_url(&argv("pg_isready")), None);
        assert_eq!(http_probe_url(&argv("curl -f http://example.com/")), None);
    }

    #[test]
    fn warnings_several_services_share_are_one_line() {
        let mut plan = PortPlan::default();
        let mut ctx = Ctx::new(Path::new("compose.yaml"), Path::new("."), &mut plan);
        ctx.unsupported("a", "volumes", "");
        ctx.unsupported("b", "volumes", "");
        ctx.unsupported("a", "volumes", "");
        ctx.unsupported("b", "ulimits", "");
        ctx.warn("top-level `networks` skipped");
        assert_eq!(
            ctx.take_warnings(),
            [
                "compose.yaml: top-level `networks` skipped",
                "compose.yaml: services \"a\", \"b\": `volumes` skipped: no equivalent in services.toml",
                "compose.yaml: service \"b\": `ulimits` skipped: no equivalent in services.toml",
            ]
        );
    }
}

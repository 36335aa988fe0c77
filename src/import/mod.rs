//! `fpctl import`: turn a Procfile, a docker compose file or a
//! process-compose file into a services.toml [`Draft`]. Each format has its
//! own file; this one tells them apart and holds what they share: paths made
//! relative to the output, ports, variables, and one warning per field that
//! does not map. Nothing here writes files.

mod compose;
mod process_compose;
pub mod procfile;

use std::path::{Component, Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::draft::{strings, Draft, PortPlan};
use crate::Error;

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
        warnings: ctx.warnings,
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
    doc.apply_merge()
        .map_err(|e| Error::Usage(format!("{}: invalid YAML merge: {e}", file.display())))?;
    Ok(doc)
}

/// What a conversion needs besides the document: where it came from, where
/// the result goes, the ports handed out, and the warnings so far.
pub struct Ctx<'a> {
    /// The input's name, as warnings show it.
    file: String,
    src_dir: PathBuf,
    out_dir: PathBuf,
    pub ports: &'a mut PortPlan,
    pub warnings: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &Path, out_dir: &Path, ports: &'a mut PortPlan) -> Self {
        let src_dir = absolute(file.parent().unwrap_or(Path::new(".")));
        Ctx {
            file: file.display().to_string(),
            src_dir,
            out_dir: absolute(out_dir),
            ports,
            warnings: Vec::new(),
        }
    }

    pub fn warn(&mut self, what: impl std::fmt::Display) {
        self.warnings.push(format!("{}: {what}", self.file));
    }

    /// One warning for a field that has no equivalent.
    pub fn unsupported(&mut self, service: &str, field: &str, why: &str) {
        let why = if why.is_empty() {
            "no equivalent in services.toml".to_string()
        } else {
            why.to_string()
        };
        self.warn(format!("service \"{service}\": `{field}` skipped: {why}"));
    }

    /// A folder named in the input (relative to it), as seen from the output.
    pub fn source_path(&self, rel: &str) -> PathBuf {
        normalize(&self.src_dir.join(rel))
    }

    /// `path` relative to the output folder ("." for the folder itself).
    pub fn rel(&self, path: &Path) -> String {
        relative(path, &self.out_dir)
    }
}

fn absolute(p: &Path) -> PathBuf {
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        normalize(
            &std::env::current_dir()
                .unwrap_or_else(|_| PathBuf::from("/"))
                .join(p),
        )
    })
}

/// `a/./b/../c` -> `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
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

/// Compose's variable syntax in fpctl's: `${A}` and `$A` (unset means empty
/// in compose) become `${A:-}`, `${A-x}` becomes `${A:-x}`, `${A:?err}` (an
/// error when unset) becomes `${A}`, and `$$` stays a literal `$`. With
/// `keep_bare`, `$A` is left for a shell to expand.
pub fn convert_vars(input: &str, keep_bare: bool) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push_str("$$");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed \"${{\" in {input:?}"))?;
            let inner = &body[..end];
            let split = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, op) = inner.split_at(split);
            let converted = match op {
                "" => format!("${{{name}:-}}"),
                _ if op.starts_with(":-") => format!("${{{name}:-{}}}", &op[2..]),
                _ if op.starts_with('-') => format!("${{{name}:-{}}}", &op[1..]),
                _ if op.starts_with(":?") || op.starts_with('?') => format!("${{{name}}}"),
                _ => return Err(format!("\"${{{inner}}}\" has no equivalent in fpctl")),
            };
            out.push_str(&converted);
            rest = &body[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 || keep_bare {
                out.push('$');
                rest = after;
            } else {
                out.push_str(&format!("${{{}:-}}", &after[..len]));
                rest = &after[len..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// What both YAML formats do once every service is converted: a service
/// others wait to see finish becomes a oneshot, and dependencies on
/// commented stubs are dropped (with a warning).
pub fn finish(draft: &mut Draft, completed: &[String], ctx: &mut Ctx) {
    for name in completed {
        if let Some(s) = draft.service_mut(name) {
            if !s.table.contains_key("oneshot") {
                s.set("oneshot", true);
                s.note("a task: others wait for it to finish successfully");
            }
        }
    }
    let stubs: Vec<String> = draft
        .services
        .iter()
        .filter(|s| s.stub)
        .map(|s| s.name.clone())
        .collect();
    for svc in draft.services.iter_mut().filter(|s| !s.stub) {
        let deps = svc.depends_on();
        let (kept, dropped): (Vec<_>, Vec<_>) = deps.into_iter().partition(|d| !stubs.contains(d));
        for d in &dropped {
            ctx.warn(format!(
                "service \"{}\": dependency on \"{d}\" dropped: \"{d}\" is only a commented stub; \
                 add it back once it runs",
                svc.name
            ));
        }
        if !dropped.is_empty() {
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

/// `curl … http://localhost:8000/health` / `wget … URL`: the URL, so a
/// probe needs no curl.
pub fn http_probe_url(argv: &[String]) -> Option<String> {
    let tool = argv.first()?.rsplit('/').next()?;
    if tool != "curl" && tool != "wget" {
        return None;
    }
    let url = argv.iter().find(|a| a.starts_with("http://"))?;
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (name, port) = host.rsplit_once(':').unwrap_or((host, "80"));
    if !matches!(name, "localhost" | "127.0.0.1" | "0.0.0.0") {
        return None;
    }
    Some(format!("http://127.0.0.1:{port}/{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_variables_become_fpctl_variables() {
        let c = |s| convert_vars(s, false).unwrap();
        assert_eq!(c("${A}"), "${A:-}");
        assert_eq!(c("$A/x"), "${A:-}/x");
        assert_eq!(c("${A:-d}"), "${A:-d}");
        assert_eq!(c("${A-d}"), "${A:-d}");
        assert_eq!(c("${A:?set A}"), "${A}");
        assert_eq!(c("$$HOME and $ 1"), "$$HOME and $ 1");
        assert_eq!(convert_vars("$A ${B}", true).unwrap(), "$A ${B:-}");
        assert!(convert_vars("${A:+x}", false).is_err());
    }

    #[test]
    fn relative_paths_from_the_output_folder() {
        assert_eq!(relative(Path::new("/a/b/c"), Path::new("/a")), "b/c");
        assert_eq!(relative(Path::new("/a"), Path::new("/a")), ".");
        assert_eq!(relative(Path::new("/a/x"), Path::new("/a/b")), "../x");
    }

    #[test]
    fn curl_health_checks_become_http_probes() {
        let argv: Vec<String> = ["curl", "-f", "http://localhost:8000/health"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            http_probe_url(&argv).as_deref(),
            Some("http://127.0.0.1:8000/health")
        );
        let other: Vec<String> = ["pg_isready"].map(String::from).to_vec();
        assert_eq!(http_probe_url(&other), None);
    }
}

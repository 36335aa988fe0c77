//! process-compose files: `processes:` with commands run by a shell,
//! readiness / liveness probes and ready log lines, availability (restart),
//! shutdown, replicas, and dependencies with conditions. Simple templates
//! (`{{.NAME}}` from `vars`, `{{.PC_REPLICA_NUM}}`) are filled in; a
//! working_dir with variables keeps them for fpctl to expand when it loads
//! the file, where fpctl will find them.

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use crate::draft::{inline, strings, Draft, DraftService};

use super::{convert_vars, env_pairs, finish, keys, scalar, vars, Ctx};

pub fn convert(doc: &Value, ctx: &mut Ctx) -> Draft {
    let mut draft = Draft::default();
    let Some(top) = doc.as_mapping() else {
        return draft;
    };
    let mut global_env = Vec::new();
    let mut global_vars = Vec::new();
    for (key, value) in keys(top) {
        match key.as_str() {
            "processes" | "version" => {}
            "environment" => global_env = env_pairs(value),
            "vars" => global_vars = var_pairs(value),
            k => ctx.warn(format!(
                "top-level `{k}` skipped: no equivalent in services.toml"
            )),
        }
    }
    let mut completed = Vec::new();
    let mut namespaces: Vec<(String, String)> = Vec::new();
    let processes = top.get("processes").and_then(Value::as_mapping);
    for (name, def) in processes.into_iter().flat_map(keys) {
        let Some(def) = def.as_mapping() else {
            ctx.warn(format!("process \"{name}\" is not a mapping; skipped"));
            continue;
        };
        let mut own_vars = def.get("vars").map(var_pairs).unwrap_or_default();
        own_vars.extend(global_vars.iter().cloned());
        let mut t = Templates {
            vars: own_vars,
            replicas: def
                .get("replicas")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1),
            port_text: None,
            leftover: Vec::new(),
        };
        let mut svc = DraftService::new(&name);
        for (k, v) in &global_env {
            if let Some(v) = v {
                let v = t.fill(v, false);
                let v = vars_of(&v, &name, ctx);
                svc.set_env(k, &v);
            }
        }
        process(&mut svc, def, &mut t, ctx, &mut completed);
        if !t.leftover.is_empty() {
            ctx.warn_for(
                &name,
                format!(
                    "the template {} is kept as written: fpctl fills in only {{{{.NAME}}}} from \
                     `vars` and {{{{.PC_REPLICA_NUM}}}}",
                    t.leftover.join(", ")
                ),
            );
        }
        let namespace = def.get("namespace").and_then(scalar);
        namespaces.push((name, namespace.unwrap_or_else(|| "default".into())));
        draft.services.push(svc);
    }
    finish(&mut draft, &completed, ctx);
    namespace_tiers(&mut draft, &namespaces, ctx);
    draft
}

fn var_pairs(v: &Value) -> Vec<(String, String)> {
    v.as_mapping()
        .into_iter()
        .flat_map(keys)
        .filter_map(|(k, v)| Some((k, scalar(v)?)))
        .collect()
}

/// process-compose's Go templates, as far as fpctl can fill them in.
struct Templates {
    /// The process's `vars`, then the file's.
    vars: Vec<(String, String)>,
    replicas: u64,
    /// The probe's port as written, when it is a template
    /// (`"404{{.PC_REPLICA_NUM}}"`): in a command it is `${PORT}`.
    port_text: Option<String>,
    /// Templates left as written.
    leftover: Vec<String>,
}

impl Templates {
    /// `text` with its templates filled in; `shell`: it runs in a shell.
    fn fill(&mut self, text: &str, shell: bool) -> String {
        let mut text = text.to_string();
        if let Some(p) = &self.port_text {
            text = text.replace(p.as_str(), "${PORT}");
        }
        self.fill_with(&text, Some(shell))
    }

    /// With `shell` None, `{{.PC_REPLICA_NUM}}` is the first replica's, 0.
    fn fill_with(&mut self, text: &str, shell: Option<bool>) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            out.push_str(&rest[..start]);
            let whole = &rest[start..start + len + 2];
            let inner = whole[2..whole.len() - 2].trim();
            let name = inner.strip_prefix('.').filter(|n| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            let filled = match name {
                Some("PC_REPLICA_NUM") => Some(match shell {
                    // process-compose counts replicas from 0, fpctl from 1.
                    Some(true) if self.replicas > 1 => "$((FPCTL_REPLICA - 1))".to_string(),
                    Some(false) if self.replicas > 1 => return_whole(&mut self.leftover, whole),
                    _ => "0".to_string(),
                }),
                Some(n) => self
                    .vars
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone()),
                None => None,
            };
            match filled {
                Some(v) => out.push_str(&v),
                None => out.push_str(&return_whole(&mut self.leftover, whole)),
            }
            rest = &rest[start + len + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// A template kept as written, noted once.
fn return_whole(leftover: &mut Vec<String>, whole: &str) -> String {
    if !leftover.iter().any(|l| l == whole) {
        leftover.push(whole.to_string());
    }
    whole.to_string()
}

/// Put `n` into `order` after the namespaces it needs; false on a cycle.
fn place<'a>(
    n: &'a str,
    edges: &[(&'a str, &'a str)],
    order: &mut Vec<&'a str>,
    visiting: &mut Vec<&'a str>,
) -> bool {
    if order.contains(&n) {
        return true;
    }
    if visiting.contains(&n) {
        return false;
    }
    visiting.push(n);
    for &(later, earlier) in edges {
        if later == n && !place(earlier, edges, order, visiting) {
            return false;
        }
    }
    visiting.pop();
    order.push(n);
    true
}

/// Namespaces become tiers, ordered so that every dependency is in the same
/// or an earlier tier. Namespaces that need
/// each other both ways cannot be ordered: then no tiers, and a warning.
fn namespace_tiers(draft: &mut Draft, namespaces: &[(String, String)], ctx: &mut Ctx) {
    let mut names: Vec<&str> = Vec::new();
    for (_, ns) in namespaces {
        if !names.contains(&ns.as_str()) {
            names.push(ns);
        }
    }
    if names == ["default"] {
        return;
    }
    let ns_of = |svc: &str| {
        namespaces
            .iter()
            .find(|(s, _)| s == svc)
            .map(|(_, ns)| ns.as_str())
    };
    // (later, earlier): a service in `later` depends on one in `earlier`.
    let mut edges: Vec<(&str, &str)> = Vec::new();
    for svc in &draft.services {
        for dep in svc.depends_on() {
            if let (Some(a), Some(b)) = (ns_of(&svc.name), ns_of(&dep)) {
                if a != b {
                    edges.push((a, b));
                }
            }
        }
    }
    // Each namespace in first-appearance order, right after what it needs.
    let mut order: Vec<&str> = Vec::new();
    for n in &names {
        if !place(n, &edges, &mut order, &mut Vec::new()) {
            ctx.warn(format!(
                "namespaces {} depend on each other both ways; not written as tiers",
                names.join(", ")
            ));
            return;
        }
    }
    draft.tiers = order
        .iter()
        .map(|n| (n.to_string(), format!("namespace {n}")))
        .collect();
    for svc in &mut draft.services {
        if let Some(ns) = ns_of(&svc.name) {
            svc.set_first("tier", ns);
        }
    }
    draft.header.push(
        "process-compose namespaces are tiers: a tier starts once the tiers before it are online."
            .into(),
    );
}

fn vars_of(value: &str, service: &str, ctx: &mut Ctx) -> String {
    // The command runs in a shell, so `$A` is the shell's to expand.
    convert_vars(value, true, &["PORT"]).unwrap_or_else(|e| {
        ctx.warn_for(service, format!("{e}; kept as written"));
        value.to_string()
    })
}

fn process(
    svc: &mut DraftService,
    def: &Mapping,
    t: &mut Templates,
    ctx: &mut Ctx,
    completed: &mut Vec<String>,
) {
    let name = svc.name.clone();
    // The port comes from the HTTP probe, so it is known before health.
    let probe = def
        .get("readiness_probe")
        .or_else(|| def.get("liveness_probe"))
        .and_then(Value::as_mapping);
    let written_port = probe
        .and_then(|p| p.get("http_get")?.as_mapping()?.get("port"))
        .and_then(scalar);
    if let Some(text) = written_port {
        let filled = t.fill_with(&text, None);
        if filled != text {
            t.port_text = Some(text.clone());
        }
        let port = ctx
            .resolve(&filled, &name, "readiness_probe.http_get.port")
            .and_then(|p| p.trim().parse::<u16>().ok());
        if let Some(port) = port {
            let got = ctx.ports.reserve(port);
            svc.set("port", i64::from(got));
            if filled != text {
                let first = if text.contains("PC_REPLICA_NUM") {
                    " for the first replica"
                } else {
                    ""
                };
                svc.note(format!("port {text} is {got}{first}"));
            }
        }
    }
    if t.replicas > 1 {
        svc.set("replicas", t.replicas as i64);
    }
    let entrypoint: Vec<String> = def
        .get("entrypoint")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(scalar)
        .map(|w| t.fill(&w, false))
        .collect();
    for (key, value) in keys(def) {
        match key.as_str() {
            "command" => {
                if let Some(c) = scalar(value) {
                    let c = t.fill(&c, true);
                    let c = vars_of(&c, &name, ctx);
                    if entrypoint.is_empty() {
                        svc.set("command", c.as_str());
                        svc.set("shell", true);
                    } else {
                        // The entrypoint replaces the shell; the command is
                        // its argument.
                        let argv = entrypoint.iter().cloned().chain([c]);
                        svc.set("command", strings(argv));
                    }
                }
            }
            "entrypoint" if !entrypoint.is_empty() && !def.contains_key("command") => {
                svc.set("command", strings(&entrypoint));
            }
            "entrypoint" => {}
            "working_dir" => {
                if let Some(d) = scalar(value) {
                    let d = t.fill(&d, false);
                    working_dir(svc, &d, ctx);
                }
            }
            "environment" => {
                for (k, v) in env_pairs(value) {
                    if let Some(v) = v {
                        let v = t.fill(&v, false);
                        let v = vars_of(&v, &name, ctx);
                        svc.set_env(&k, &v);
                    }
                }
            }
            "depends_on" => {
                for (dep, spec) in value.as_mapping().into_iter().flat_map(keys) {
                    svc.add_dependency(&dep);
                    let condition = spec
                        .as_mapping()
                        .and_then(|m| m.get("condition"))
                        .and_then(Value::as_str);
                    match condition {
                        None | Some("process_healthy") | Some("process_log_ready") => {}
                        Some("process_started") => svc.note(format!(
                            "process-compose waited only for \"{dep}\" to start; fpctl waits until it is healthy"
                        )),
                        Some("process_completed_successfully") => completed.push(dep),
                        Some("process_completed") => {
                            svc.note(format!(
                                "\"{dep}\" must now exit 0 (process-compose accepted any exit)"
                            ));
                            completed.push(dep);
                        }
                        Some(other) => ctx.unsupported(
                            &name,
                            &format!("depends_on.{dep}.condition"),
                            &format!("unknown condition {other:?}"),
                        ),
                    }
                }
            }
            "readiness_probe" => {
                if let Some(m) = value.as_mapping() {
                    health(svc, "readiness_probe", m, t, ctx);
                }
            }
            "liveness_probe" if def.contains_key("readiness_probe") => ctx.unsupported(
                &name,
                "liveness_probe",
                "fpctl has one health check per service, used for both; readiness_probe kept",
            ),
            "liveness_probe" => {
                if let Some(m) = value.as_mapping() {
                    health(svc, "liveness_probe", m, t, ctx);
                }
            }
            "ready_log_line" if def.contains_key("readiness_probe") => ctx.unsupported(
                &name,
                "ready_log_line",
                "fpctl has one health check per service; readiness_probe kept",
            ),
            "ready_log_line" => {
                if let Some(line) = scalar(value) {
                    let line = t.fill(&line, false);
                    svc.set_noted(
                        "health",
                        inline([("log", regex::escape(&line).into())]),
                        "ready once this line is logged (ready_log_line)",
                    );
                }
            }
            "replicas" | "vars" | "namespace" => {}
            "is_daemon" if value.as_bool() == Some(true) => {
                let cmd = def.get("command").and_then(scalar).unwrap_or_default();
                svc.note("is_daemon: the command must run in the foreground under fpctl (see the warning)");
                ctx.warn_for(&name, daemon_advice(&cmd));
            }
            "is_daemon" => {}
            "availability" => availability(svc, value, ctx),
            "shutdown" => shutdown(svc, value, ctx),
            "disabled" => {
                if value.as_bool() == Some(true) {
                    svc.set("disabled", true);
                }
            }
            "description" => {
                if let Some(d) = scalar(value) {
                    svc.note(d);
                }
            }
            other => ctx.unsupported(&name, other, ""),
        }
    }
}

/// Why a daemonising command cannot run as it is, and what to do instead.
fn daemon_advice(command: &str) -> String {
    let how = if command.contains("docker run")
        && command
            .split_whitespace()
            .any(|w| w == "-d" || w == "--detach")
    {
        "drop -d from `docker run` (keep --rm), so that the container runs in the \
         foreground and stops with the service"
    } else if command.contains("nginx") {
        "run nginx -g 'daemon off;'"
    } else if command.contains("redis-server") {
        "add --daemonize no"
    } else if command.contains("pg_ctl") {
        "run `postgres -D DATADIR` instead of pg_ctl start"
    } else if command.trim_end().ends_with('&') {
        "drop the trailing `&`"
    } else {
        "most daemons have a flag for it (--foreground, --no-daemon, -f, -D); or use `exec` \
         on a program that stays in the foreground"
    };
    format!(
        "`is_daemon: true`: its command starts a daemon and exits, but fpctl supervises the \
         process it starts, so it would see it exit and restart it again and again. Make the \
         command stay in the foreground: {how}"
    )
}

/// `working_dir`: a folder here, or (with variables that fpctl will find
/// when it loads the file) the same text for fpctl to expand then.
fn working_dir(svc: &mut DraftService, d: &str, ctx: &mut Ctx) {
    let name = svc.name.clone();
    if !vars::has_vars(d) {
        let full = ctx.source_path(d);
        if !full.is_dir() {
            ctx.warn_for(
                &name,
                "`working_dir` is not a folder here: left out (it runs in services.toml's folder)",
            );
            svc.note(format!("working_dir {d} is not a folder here"));
        } else if Path::new(d).is_absolute() {
            svc.set("dir", full.display().to_string());
        } else {
            let rel = ctx.rel(&full);
            svc.set("dir", rel.as_str());
        }
        return;
    }
    let braced = vars::braced(d);
    match vars::expand(d, &ctx.env) {
        Ok(expanded) => {
            let full = ctx.source_path(&expanded);
            if !full.is_dir() {
                ctx.warn_for(
                    &name,
                    format!(
                        "`working_dir` {d} is {expanded} here, which is not a folder: left out"
                    ),
                );
                svc.note(format!("working_dir {d} ({expanded} here) is not a folder"));
                return;
            }
            let names = vars::names(d);
            if Path::new(&expanded).is_absolute() && names.iter().all(|n| ctx.set_at_load(n)) {
                svc.set_noted(
                    "dir",
                    braced.as_str(),
                    &format!("fpctl expands {} when it loads this file", names.join(", ")),
                );
            } else {
                let rel = ctx.rel(&full);
                svc.set("dir", rel.as_str());
                svc.note(format!(
                    "working_dir {d}, with {} as set now",
                    names.join(", ")
                ));
            }
        }
        Err(vars::Unexpanded::Unset(unset)) => {
            let list = unset.join(", ");
            ctx.warn_for(
                &name,
                format!(
                    "`working_dir` uses {list}, set neither in the environment nor in a .env \
                     beside the file: left out (it runs in services.toml's folder); set {list} \
                     (a .env beside services.toml will do), then add the dir each one's note gives"
                ),
            );
            svc.note(format!("dir = \"{braced}\" once {list} is set"));
        }
        Err(vars::Unexpanded::Malformed(why)) => {
            ctx.warn_for(&name, format!("`working_dir`: {why}; left out"));
        }
    }
}

fn health(svc: &mut DraftService, field: &str, m: &Mapping, t: &mut Templates, ctx: &mut Ctx) {
    let name = svc.name.clone();
    let mut health = toml_edit::InlineTable::new();
    for (k, v) in keys(m) {
        match k.as_str() {
            "http_get" => {
                let Some(get) = v.as_mapping() else { continue };
                let mut part = |k: &str| get.get(k).and_then(scalar).map(|s| t.fill_with(&s, None));
                let host = part("host").unwrap_or_else(|| "127.0.0.1".into());
                let path = part("path").unwrap_or_else(|| "/".into());
                let scheme = part("scheme").unwrap_or_else(|| "http".into());
                let path = if path.starts_with('/') {
                    path
                } else {
                    format!("/{path}")
                };
                let local = matches!(host.as_str(), "127.0.0.1" | "localhost" | "0.0.0.0");
                // The port was settled with the service's (templates filled).
                let port = match (local, svc.port(), part("port")) {
                    (true, Some(p), Some(_)) => Some(p.to_string()),
                    (_, _, written) => written,
                };
                let scheme = match scheme.as_str() {
                    "http" | "https" => scheme,
                    other => {
                        ctx.unsupported(
                            &name,
                            &format!("{field}.http_get.scheme"),
                            &format!("{other:?}: fpctl probes http and https"),
                        );
                        continue;
                    }
                };
                let own = local
                    && scheme == "http"
                    && port.is_some()
                    && port == svc.port().map(|p| p.to_string());
                let url = if own {
                    path
                } else {
                    let host = if local { "127.0.0.1" } else { host.as_str() };
                    match port {
                        Some(p) => format!("{scheme}://{host}:{p}{path}"),
                        None => format!("{scheme}://{host}{path}"),
                    }
                };
                health.insert("http", url.into());
            }
            "exec" => {
                let command = v
                    .as_mapping()
                    .and_then(|e| e.get("command"))
                    .and_then(scalar);
                if let Some(c) = command {
                    let c = t.fill(&c, true);
                    let c = vars_of(&c, &name, ctx);
                    health.insert("exec", strings(["sh", "-c", c.as_str()]));
                }
            }
            "period_seconds" => seconds(&mut health, "interval", v, &name, field, ctx),
            "timeout_seconds" => seconds(&mut health, "timeout", v, &name, field, ctx),
            "failure_threshold" => {
                let n = scalar(v)
                    .and_then(|s| ctx.resolve(&s, &name, &format!("{field}.failure_threshold")))
                    .and_then(|s| s.trim().parse::<i64>().ok());
                if let Some(n) = n {
                    health.insert("retries", n.into());
                }
            }
            "success_threshold" if v.as_i64() == Some(1) => {}
            "initial_delay_seconds" => ctx.unsupported(
                &name,
                &format!("{field}.initial_delay_seconds"),
                "fpctl probes from launch and waits up to health.start_timeout",
            ),
            other => ctx.unsupported(&name, &format!("{field}.{other}"), ""),
        }
    }
    if health.contains_key("http") || health.contains_key("exec") {
        svc.set("health", toml_edit::Value::InlineTable(health));
    }
}

fn seconds(
    health: &mut toml_edit::InlineTable,
    key: &str,
    v: &Value,
    service: &str,
    field: &str,
    ctx: &mut Ctx,
) {
    let n = scalar(v)
        .and_then(|s| ctx.resolve(&s, service, &format!("{field}.{key}")))
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|n| *n > 0.0);
    if let Some(n) = n {
        health.insert(key, format!("{n}s").into());
    }
}

fn availability(svc: &mut DraftService, v: &Value, ctx: &mut Ctx) {
    let name = svc.name.clone();
    for (k, val) in v.as_mapping().into_iter().flat_map(keys) {
        match (k.as_str(), scalar(val).as_deref()) {
            ("restart", Some("always")) => svc.set("restart", "always"),
            ("restart", Some("on_failure")) => svc.set("restart", "on-failure"),
            ("restart", Some("no")) => svc.set("restart", "no"),
            ("restart", Some("exit_on_failure")) => {
                svc.set("restart", "no");
                ctx.unsupported(
                    &name,
                    "availability.restart",
                    "exit_on_failure: fpctl does not stop the stack when it fails; written as restart = \"no\"",
                );
            }
            ("max_restarts", Some(n)) if n.parse::<i64>().is_ok() => {
                svc.set("max_restarts", n.parse::<i64>().unwrap_or_default());
            }
            ("backoff_seconds", _) => ctx.unsupported(
                &name,
                "availability.backoff_seconds",
                "fpctl backs off exponentially from 100 ms to 10 s",
            ),
            _ => ctx.unsupported(&name, &format!("availability.{k}"), ""),
        }
    }
}

fn shutdown(svc: &mut DraftService, v: &Value, ctx: &mut Ctx) {
    let name = svc.name.clone();
    for (k, val) in v.as_mapping().into_iter().flat_map(keys) {
        match k.as_str() {
            "signal" => {
                let text = scalar(val).unwrap_or_default();
                let kill = matches!(text.trim_start_matches("SIG"), "9" | "KILL");
                let stop = matches!(text.trim_start_matches("SIG"), "19" | "STOP");
                if kill {
                    // fpctl's own last resort, after stop_timeout.
                    if !v
                        .as_mapping()
                        .is_some_and(|m| m.contains_key("timeout_seconds"))
                    {
                        svc.set("stop_timeout", "0s");
                    }
                    svc.note("process-compose stopped it with SIGKILL: fpctl sends SIGTERM, then SIGKILL at once (stop_timeout = \"0s\")");
                } else if stop {
                    ctx.unsupported(
                        &name,
                        "shutdown.signal",
                        "SIGSTOP pauses a process, it does not stop it",
                    );
                } else {
                    match val.as_i64() {
                        Some(n) => svc.set("stop_signal", n),
                        None => svc.set("stop_signal", text.as_str()),
                    }
                }
            }
            "timeout_seconds" => {
                if let Some(s) = scalar(val) {
                    svc.set("stop_timeout", format!("{s}s"));
                }
            }
            _ => ctx.unsupported(&name, &format!("shutdown.{k}"), ""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draft::PortPlan;

    fn convert_yaml(yaml: &str) -> (Draft, Vec<String>) {
        let mut plan = PortPlan::default();
        let mut ctx = Ctx::new(
            std::path::Path::new("pc.yaml"),
            std::path::Path::new("."),
            &mut plan,
        );
        let doc: Value = serde_yaml_ng::from_str(yaml).unwrap();
        let draft = convert(&doc, &mut ctx);
        (draft, ctx.take_warnings())
    }

    #[test]
    fn namespaces_that_need_each_other_both_ways_are_not_tiers() {
        let (draft, warnings) = convert_yaml(
            "processes:\n  a: {command: x, namespace: one, depends_on: {b: {}}}\n  \
             b: {command: y, namespace: two}\n  c: {command: z, namespace: two, depends_on: {a: {}}}\n",
        );
        assert!(draft.tiers.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("both ways"), "{warnings:?}");

        let (draft, warnings) = convert_yaml(
            "processes:\n  a: {command: x, namespace: one, depends_on: {b: {}}}\n  \
             b: {command: y, namespace: two}\n",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let tiers: Vec<&str> = draft.tiers.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(tiers, ["two", "one"]);
    }

    #[test]
    fn templates_from_vars_and_the_replica_number() {
        let mut t = Templates {
            vars: vec![("PORT".into(), "80".into()), ("PWD".into(), "/tmp".into())],
            replicas: 3,
            port_text: Some("404{{.PC_REPLICA_NUM}}".into()),
            leftover: Vec::new(),
        };
        assert_eq!(
            t.fill("python3 -m http.server 404{{.PC_REPLICA_NUM}}", true),
            "python3 -m http.server ${PORT}"
        );
        assert_eq!(
            t.fill("worker --id {{.PC_REPLICA_NUM}} --dir {{ .PWD }}", true),
            "worker --id $((FPCTL_REPLICA - 1)) --dir /tmp"
        );
        assert_eq!(t.fill_with("{{.PORT}}", None), "80");
        assert_eq!(t.fill("{{or .HI 123 }}", true), "{{or .HI 123 }}");
        assert_eq!(t.leftover, ["{{or .HI 123 }}"]);
    }

    #[test]
    fn a_daemon_is_told_how_to_stay_in_the_foreground() {
        assert!(daemon_advice("docker run -d --rm -p80:80 nginx").contains("drop -d"));
        assert!(daemon_advice("nginx").contains("daemon off"));
        assert!(daemon_advice("mydaemon --start").contains("foreground"));
    }
}

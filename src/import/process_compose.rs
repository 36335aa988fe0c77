//! process-compose files: `processes:` with commands run by a shell,
//! readiness / liveness probes, availability (restart), shutdown, and
//! dependencies with conditions.

use serde_yaml_ng::{Mapping, Value};

use crate::draft::{strings, Draft, DraftService};

use super::{convert_vars, env_pairs, finish, keys, scalar, Ctx};

pub fn convert(doc: &Value, ctx: &mut Ctx) -> Draft {
    let mut draft = Draft::default();
    let Some(top) = doc.as_mapping() else {
        return draft;
    };
    let mut global_env = Vec::new();
    for (key, value) in keys(top) {
        match key.as_str() {
            "processes" | "version" => {}
            "environment" => global_env = env_pairs(value),
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
        let mut svc = DraftService::new(&name);
        for (k, v) in &global_env {
            if let Some(v) = v {
                let v = vars(v, &name, ctx);
                svc.set_env(k, &v);
            }
        }
        process(&mut svc, def, ctx, &mut completed);
        let namespace = def.get("namespace").and_then(scalar);
        namespaces.push((name, namespace.unwrap_or_else(|| "default".into())));
        draft.services.push(svc);
    }
    finish(&mut draft, &completed, ctx);
    namespace_tiers(&mut draft, &namespaces, ctx);
    draft
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

fn vars(value: &str, service: &str, ctx: &mut Ctx) -> String {
    // The command runs in a shell, so `$A` is the shell's to expand.
    convert_vars(value, true).unwrap_or_else(|e| {
        ctx.warn(format!("process \"{service}\": {e}; kept as written"));
        value.to_string()
    })
}

fn process(svc: &mut DraftService, def: &Mapping, ctx: &mut Ctx, completed: &mut Vec<String>) {
    let name = svc.name.clone();
    // The port comes from the HTTP probe, so it is known before health.
    let probe = def
        .get("readiness_probe")
        .or_else(|| def.get("liveness_probe"))
        .and_then(Value::as_mapping);
    if let Some(port) = probe.and_then(http_get_port) {
        let got = ctx.ports.reserve(port);
        svc.set("port", i64::from(got));
    }
    for (key, value) in keys(def) {
        match key.as_str() {
            "command" => {
                if let Some(c) = scalar(value) {
                    let c = vars(&c, &name, ctx);
                    svc.set("command", c.as_str());
                    svc.set("shell", true);
                }
            }
            "working_dir" => {
                if let Some(d) = scalar(value) {
                    let full = ctx.source_path(&d);
                    let rel = ctx.rel(&full);
                    svc.set("dir", rel.as_str());
                }
            }
            "environment" => {
                for (k, v) in env_pairs(value) {
                    if let Some(v) = v {
                        let v = vars(&v, &name, ctx);
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
                        None | Some("process_healthy") => {}
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
                    health(svc, "readiness_probe", m, ctx);
                }
            }
            "liveness_probe" if def.contains_key("readiness_probe") => ctx.unsupported(
                &name,
                "liveness_probe",
                "fpctl has one health check per service, used for both; readiness_probe kept",
            ),
            "liveness_probe" => {
                if let Some(m) = value.as_mapping() {
                    health(svc, "liveness_probe", m, ctx);
                }
            }
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
            "namespace" => {}
            other => ctx.unsupported(&name, other, ""),
        }
    }
}

fn http_get_port(probe: &Mapping) -> Option<u16> {
    let get = probe.get("http_get")?.as_mapping()?;
    scalar(get.get("port")?)?.parse().ok()
}

fn health(svc: &mut DraftService, field: &str, m: &Mapping, ctx: &mut Ctx) {
    let name = svc.name.clone();
    let mut health = toml_edit::InlineTable::new();
    for (k, v) in keys(m) {
        match k.as_str() {
            "http_get" => {
                let Some(get) = v.as_mapping() else { continue };
                let part = |k: &str| get.get(k).and_then(scalar);
                let host = part("host").unwrap_or_else(|| "127.0.0.1".into());
                let path = part("path").unwrap_or_else(|| "/".into());
                let path = if path.starts_with('/') {
                    path
                } else {
                    format!("/{path}")
                };
                let local = matches!(host.as_str(), "127.0.0.1" | "localhost" | "0.0.0.0");
                let port = part("port");
                let url = match (local, svc.port()) {
                    (true, Some(p)) if port.as_deref() == Some(&p.to_string()) => path,
                    _ => format!(
                        "http://{host}:{}{path}",
                        port.unwrap_or_else(|| "80".into())
                    ),
                };
                if part("scheme").is_some_and(|s| s != "http") {
                    ctx.unsupported(
                        &name,
                        &format!("{field}.http_get.scheme"),
                        "only http is probed",
                    );
                }
                health.insert("http", url.into());
            }
            "exec" => {
                let command = v
                    .as_mapping()
                    .and_then(|e| e.get("command"))
                    .and_then(scalar);
                if let Some(c) = command {
                    let c = vars(&c, &name, ctx);
                    health.insert("exec", strings(["sh", "-c", c.as_str()]));
                }
            }
            "period_seconds" => seconds(&mut health, "interval", v),
            "timeout_seconds" => seconds(&mut health, "timeout", v),
            "failure_threshold" => {
                if let Some(n) = v.as_i64() {
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

fn seconds(health: &mut toml_edit::InlineTable, key: &str, v: &Value) {
    if let Some(s) = scalar(v) {
        health.insert(key, format!("{s}s").into());
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
            "signal" => match val.as_i64() {
                Some(n) => svc.set("stop_signal", n),
                None => {
                    if let Some(s) = scalar(val) {
                        svc.set("stop_signal", s.as_str());
                    }
                }
            },
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
        (draft, ctx.warnings)
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
}

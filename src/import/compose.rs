//! docker compose files. A service with a `build` or a `command` becomes a
//! native service (its command from the compose file, or from its
//! Dockerfile's ENTRYPOINT / CMD). An image-only service becomes redis-server
//! run natively where that is obvious, else a commented stub with a note.

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use crate::draft::{inline, setup_for, strings, Draft, DraftService};

use super::{convert_vars, env_pairs, finish, http_probe_url, keys, scalar, Ctx};

/// Images fpctl can replace by the same program run natively:
/// (image, command, health exec, default port).
const NATIVE: &[(&str, &str, &str, u16)] = &[
    (
        "redis",
        "redis-server --port ${PORT} --save '' --appendonly no",
        "redis-cli -p ${PORT} ping",
        6379,
    ),
    (
        "valkey",
        "valkey-server --port ${PORT} --save '' --appendonly no",
        "valkey-cli -p ${PORT} ping",
        6379,
    ),
];

/// Images with a well-known native command, written as a stub because they
/// need a one-time initialisation first: (image, command, first step).
const STUB_HINTS: &[(&str, &str, &str)] = &[(
    "postgres",
    "postgres -D .fpctl/pgdata -p ${PORT} -k /tmp",
    "initdb -D .fpctl/pgdata",
)];

pub fn convert(doc: &Value, ctx: &mut Ctx) -> Draft {
    let mut draft = Draft::default();
    let Some(top) = doc.as_mapping() else {
        return draft;
    };
    for (key, _) in keys(top) {
        match key.as_str() {
            "services" | "version" | "name" => {}
            k if k.starts_with("x-") => {}
            k => ctx.warn(format!(
                "top-level `{k}` skipped: no equivalent in services.toml"
            )),
        }
    }
    let mut completed = Vec::new();
    let services = top.get("services").and_then(Value::as_mapping);
    for (name, def) in services.into_iter().flat_map(keys) {
        let Some(def) = def.as_mapping() else {
            ctx.warn(format!("service \"{name}\" is not a mapping; skipped"));
            continue;
        };
        let svc = service(&name, def, ctx, &mut completed);
        draft.services.push(svc);
    }
    service_hosts(&mut draft);
    finish(&mut draft, &completed, ctx);
    draft
}

/// In compose, services reach each other by name (`redis://cache:6379`);
/// natively they are all on 127.0.0.1. Such addresses in `env` and
/// `command` are rewritten to the service's port variable (or, for a stub,
/// to 127.0.0.1 and the port as written).
fn service_hosts(draft: &mut Draft) {
    let hosts: Vec<(String, bool)> = draft
        .services
        .iter()
        .filter(|s| s.port().is_some())
        .map(|s| (s.name.clone(), s.stub))
        .collect();
    let rewrite = |text: &str| -> String {
        let mut out = text.to_string();
        for (name, stub) in &hosts {
            out = rewrite_host(&out, name, *stub);
        }
        out
    };
    for svc in draft.services.iter_mut().filter(|s| !s.stub) {
        let mut notes = Vec::new();
        if let Some(env) = svc
            .table
            .get_mut("env")
            .and_then(|e| e.as_inline_table_mut())
        {
            for (key, value) in env.iter_mut() {
                let Some(text) = value.as_str() else { continue };
                let new = rewrite(text);
                if new != text {
                    notes.push(format!("{key}: {text} -> {new}"));
                    *value = new.into();
                }
            }
        }
        match svc.table.get_mut("command").and_then(|c| c.as_value_mut()) {
            Some(toml_edit::Value::String(s)) => {
                let text = s.value().clone();
                let new = rewrite(&text);
                if new != text {
                    notes.push(format!("command: {text} -> {new}"));
                    *s = toml_edit::Formatted::new(new);
                }
            }
            Some(toml_edit::Value::Array(argv)) => {
                for arg in argv.iter_mut() {
                    let Some(text) = arg.as_str().map(str::to_string) else {
                        continue;
                    };
                    let new = rewrite(&text);
                    if new != text {
                        notes.push(format!("command: {text} -> {new}"));
                        *arg = new.into();
                    }
                }
            }
            _ => {}
        }
        if !notes.is_empty() {
            svc.note("service names as host names, rewritten to 127.0.0.1:");
            for n in notes {
                svc.note(format!("  {n}"));
            }
        }
    }
}

/// `NAME:PORT` after `//`, `@`, `=`, a space or at the start, as
/// `127.0.0.1:` and the service's port variable (a stub keeps its port as
/// written).
fn rewrite_host(text: &str, name: &str, stub: bool) -> String {
    let needle = format!("{name}:");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(&needle) {
        let before = rest[..pos].chars().last().or_else(|| out.chars().last());
        let after = &rest[pos + needle.len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let at_host = matches!(before, None | Some('/' | '@' | '=' | ' '));
        out.push_str(&rest[..pos]);
        if at_host && digits > 0 {
            let port = if stub {
                after[..digits].to_string()
            } else {
                format!("${{{}}}", crate::config::port_var_name(name))
            };
            out.push_str(&format!("127.0.0.1:{port}"));
            rest = &after[digits..];
        } else {
            out.push_str(&needle);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn service(name: &str, def: &Mapping, ctx: &mut Ctx, completed: &mut Vec<String>) -> DraftService {
    let mut svc = DraftService::new(name);
    let image = def.get("image").and_then(Value::as_str);
    let build = build_context(def.get("build"), name, ctx);
    let mut port = published_port(def.get("ports"), name, ctx);
    let mut command = compose_command(def, name, ctx);

    let runs_natively = build.is_some() || command.is_some();
    if let Some((dir, dockerfile)) = &build {
        let here = ctx.source_path(dir);
        let rel = ctx.rel(&here);
        if rel != "." {
            svc.set("dir", rel.as_str());
        }
        if let Some(setup) = setup_for(&here) {
            svc.set_noted(
                "setup",
                setup,
                "guess: from the build folder's requirements.txt / package.json",
            );
        }
        let from_docker = dockerfile_command(&here.join(dockerfile));
        if command.is_none() {
            match from_docker.command {
                Some(c) => {
                    svc.note(format!("command from {dockerfile}'s ENTRYPOINT / CMD"));
                    command = Some(c);
                }
                None => ctx.warn(format!(
                    "service \"{name}\": no command in the compose file or in {}; \
                     written as a stub",
                    here.join(dockerfile).display()
                )),
            }
        }
        if port.is_none() {
            port = from_docker.expose.map(|p| (p, p));
        }
    }
    if port.is_none() {
        port = exposed_port(def.get("expose"));
    }

    let mut native_image = false;
    if let Some((cmd, shell)) = command.filter(|_| runs_natively) {
        svc.set("command", cmd);
        if shell {
            svc.set("shell", true);
        }
        if let Some((published, target)) = port {
            if published != target {
                svc.note(format!(
                    "published on {published}, listening on {target} in the container: \
                     natively it listens on {target}"
                ));
            }
            set_port(&mut svc, target, ctx);
        }
    } else if build.is_some() {
        svc.stub = true;
        svc.note("no command found: fill it in, then uncomment this service.");
        svc.set("command", "...");
    } else {
        native_image = image_only(&mut svc, image, port, ctx);
    }

    for (key, value) in keys(def) {
        match key.as_str() {
            "build" | "command" | "entrypoint" | "ports" | "expose" => {}
            "image" if !runs_natively => {}
            "image" => ctx.unsupported(
                name,
                "image",
                "the service runs natively, not in a container",
            ),
            "working_dir" if build.is_none() && runs_natively => {}
            "environment" => {
                for (k, v) in env_pairs(value) {
                    // A bare KEY passes the caller's value through; fpctl
                    // passes its own environment to every service anyway.
                    if let Some(v) = v {
                        let v = vars(&v, name, ctx);
                        svc.set_env(&k, &v);
                    }
                }
            }
            "env_file" => env_files(&mut svc, value, ctx),
            "depends_on" => depends_on(&mut svc, value, ctx, completed),
            "healthcheck" if native_image => {
                svc.note("its compose healthcheck is replaced by a ping on the port fpctl gives it")
            }
            "healthcheck" => {
                if let Some(hc) = value.as_mapping() {
                    healthcheck(&mut svc, hc, ctx);
                }
            }
            "restart" => restart(&mut svc, value, ctx),
            "deploy" => deploy(&mut svc, value, ctx),
            "profiles" => {
                let p: Vec<String> = value
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(scalar)
                    .collect();
                svc.set("profiles", strings(p));
            }
            "stop_signal" => {
                if let Some(s) = scalar(value) {
                    svc.set("stop_signal", s.as_str());
                }
            }
            "stop_grace_period" => {
                if let Some(s) = scalar(value) {
                    svc.set("stop_timeout", s.as_str());
                }
            }
            "working_dir" => ctx.unsupported(
                name,
                "working_dir",
                "a path inside the container; the service runs in its build folder",
            ),
            other => ctx.unsupported(name, other, ""),
        }
    }
    svc
}

fn set_port(svc: &mut DraftService, port: u16, ctx: &mut Ctx) {
    let got = ctx.ports.reserve(port);
    if got != port {
        svc.note(format!(
            "port {port} is taken by another service here; given {got} (the program \
             must honour $PORT)"
        ));
        ctx.warn(format!(
            "service \"{}\": port {port} is used twice; given {got}",
            svc.name
        ));
    }
    svc.set("port", i64::from(got));
}

fn vars(value: &str, service: &str, ctx: &mut Ctx) -> String {
    convert_vars(value, false).unwrap_or_else(|e| {
        ctx.warn(format!("service \"{service}\": {e}; kept as written"));
        value.to_string()
    })
}

/// `build: DIR` or `build: { context, dockerfile }`: the folder and the
/// Dockerfile's name.
fn build_context(v: Option<&Value>, name: &str, ctx: &mut Ctx) -> Option<(String, String)> {
    match v? {
        Value::String(dir) => Some((dir.clone(), "Dockerfile".into())),
        Value::Mapping(m) => {
            for (k, _) in keys(m) {
                if !matches!(k.as_str(), "context" | "dockerfile") {
                    ctx.unsupported(name, &format!("build.{k}"), "");
                }
            }
            let dir = m
                .get("context")
                .and_then(scalar)
                .unwrap_or_else(|| ".".into());
            let file = m
                .get("dockerfile")
                .and_then(scalar)
                .unwrap_or_else(|| "Dockerfile".into());
            Some((dir, file))
        }
        _ => None,
    }
}

/// `entrypoint` + `command`, as a TOML value and whether it needs a shell.
/// A string is split like a shell (as compose does), so it stays a string.
fn compose_command(def: &Mapping, name: &str, ctx: &mut Ctx) -> Option<(toml_edit::Value, bool)> {
    let words = |v: &Value, ctx: &mut Ctx| -> Vec<String> {
        match v {
            Value::String(s) => shell_words::split(s).unwrap_or_else(|_| vec![s.clone()]),
            Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
            _ => Vec::new(),
        }
        .into_iter()
        .map(|w| vars(&w, name, ctx))
        .collect()
    };
    let command = def.get("command");
    match def.get("entrypoint") {
        Some(ep) => {
            let mut argv = words(ep, ctx);
            if let Some(c) = command {
                argv.extend(words(c, ctx));
            }
            (!argv.is_empty()).then(|| (strings(argv), false))
        }
        None => match command? {
            Value::String(s) => Some((vars(s, name, ctx).as_str().into(), false)),
            other => {
                let argv = words(other, ctx);
                (!argv.is_empty()).then(|| (strings(argv), false))
            }
        },
    }
}

/// The first `ports` entry: (published, container) port.
fn published_port(v: Option<&Value>, name: &str, ctx: &mut Ctx) -> Option<(u16, u16)> {
    let items = v?.as_sequence()?;
    if items.len() > 1 {
        ctx.warn(format!(
            "service \"{name}\": only the first of {} `ports` is kept (a service has one port)",
            items.len()
        ));
    }
    match items.first()? {
        Value::Mapping(m) => {
            let target: u16 = m.get("target").and_then(scalar)?.parse().ok()?;
            let published = m
                .get("published")
                .and_then(scalar)
                .and_then(|p| p.parse().ok())
                .unwrap_or(target);
            Some((published, target))
        }
        other => {
            let spec = scalar(other)?;
            let spec = spec.split('/').next().unwrap_or_default();
            let parts: Vec<&str> = spec.split(':').collect();
            let target: u16 = parts.last()?.split('-').next()?.parse().ok()?;
            let published = parts
                .len()
                .checked_sub(2)
                .and_then(|i| parts[i].split('-').next()?.parse().ok())
                .unwrap_or(target);
            Some((published, target))
        }
    }
}

fn exposed_port(v: Option<&Value>) -> Option<(u16, u16)> {
    let first = v?.as_sequence()?.first()?;
    let p: u16 = scalar(first)?.split('/').next()?.parse().ok()?;
    Some((p, p))
}

/// Whether the image is run natively (else the service is a stub).
fn image_only(
    svc: &mut DraftService,
    image: Option<&str>,
    port: Option<(u16, u16)>,
    ctx: &mut Ctx,
) -> bool {
    let image = image.unwrap_or("(no image)");
    let base = image
        .split('@')
        .next()
        .unwrap_or(image)
        .rsplit('/')
        .next()
        .unwrap_or(image);
    let base = base.split(':').next().unwrap_or(base);
    if let Some((_, command, check, default)) = NATIVE.iter().find(|n| n.0 == base) {
        svc.note(format!(
            "the image {image}, run natively: `{}` must be installed",
            command.split_whitespace().next().unwrap_or_default()
        ));
        svc.set("command", *command);
        set_port(svc, port.map_or(*default, |p| p.0), ctx);
        svc.set("health", inline([("exec", (*check).into())]));
        return true;
    }
    svc.stub = true;
    svc.note(format!(
        "the image {image}: fpctl runs programs, not containers. Install it natively,"
    ));
    svc.note("check the command, then uncomment this service.");
    match STUB_HINTS.iter().find(|h| h.0 == base) {
        Some((_, command, first)) => {
            svc.note(format!("Once, before the first start: {first}"));
            svc.set("command", *command);
        }
        None => svc.set("command", format!("the program inside {image}")),
    }
    if let Some((published, _)) = port {
        svc.set("port", i64::from(published));
    }
    ctx.warn(format!(
        "service \"{}\": the image {image} is written as a commented stub (fpctl does not run containers)",
        svc.name
    ));
    false
}

fn env_files(svc: &mut DraftService, v: &Value, ctx: &mut Ctx) {
    let entries: Vec<(String, bool)> = match v {
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| match i {
                Value::Mapping(m) => Some((
                    m.get("path").and_then(scalar)?,
                    m.get("required").and_then(Value::as_bool).unwrap_or(true),
                )),
                other => Some((scalar(other)?, true)),
            })
            .collect(),
        other => scalar(other).map(|s| (s, true)).into_iter().collect(),
    };
    let mut files = Vec::new();
    for (path, required) in entries {
        let full = ctx.source_path(&path);
        if full.is_file() {
            files.push(ctx.rel(&full));
        } else {
            let what = if required { "required" } else { "optional" };
            ctx.warn(format!(
                "service \"{}\": env_file {path} ({what}) does not exist; skipped",
                svc.name
            ));
        }
    }
    match files.len() {
        0 => {}
        1 => svc.set("env_file", files[0].as_str()),
        _ => svc.set("env_file", strings(files)),
    }
}

fn depends_on(svc: &mut DraftService, v: &Value, ctx: &mut Ctx, completed: &mut Vec<String>) {
    let name = svc.name.clone();
    match v {
        Value::Sequence(items) => {
            for d in items.iter().filter_map(scalar) {
                svc.add_dependency(&d);
            }
        }
        Value::Mapping(m) => {
            for (dep, spec) in keys(m) {
                svc.add_dependency(&dep);
                let Some(spec) = spec.as_mapping() else {
                    continue;
                };
                for (k, val) in keys(spec) {
                    match (k.as_str(), val.as_str()) {
                        ("condition", Some("service_healthy")) => {}
                        ("condition", Some("service_started")) => svc.note(format!(
                            "compose waited only for \"{dep}\" to start; fpctl waits until it is healthy"
                        )),
                        ("condition", Some("service_completed_successfully")) => {
                            completed.push(dep.clone())
                        }
                        _ => ctx.unsupported(&name, &format!("depends_on.{dep}.{k}"), ""),
                    }
                }
            }
        }
        _ => {}
    }
}

fn healthcheck(svc: &mut DraftService, hc: &Mapping, ctx: &mut Ctx) {
    let name = svc.name.clone();
    if hc.get("disable").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let (argv, shell) = match hc.get("test") {
        Some(Value::String(s)) => (vec![s.clone()], true),
        Some(Value::Sequence(items)) => {
            let words: Vec<String> = items.iter().filter_map(scalar).collect();
            match words.split_first() {
                Some((kind, rest)) if kind == "CMD" => (rest.to_vec(), false),
                Some((kind, rest)) if kind == "CMD-SHELL" => (vec![rest.join(" ")], true),
                _ => return,
            }
        }
        _ => return,
    };
    let words = if shell {
        shell_words::split(&argv[0]).unwrap_or_default()
    } else {
        argv.clone()
    };
    let mut health = toml_edit::InlineTable::new();
    match http_probe_url(&words) {
        Some(url) => {
            let path = svc.port().and_then(|p| {
                url.strip_prefix(&format!("http://127.0.0.1:{p}"))
                    .map(str::to_string)
            });
            health.insert("http", path.unwrap_or(url).into());
        }
        None => {
            let argv: Vec<String> = if shell {
                vec!["sh".into(), "-c".into(), argv[0].clone()]
            } else {
                argv
            };
            let argv: Vec<String> = argv.iter().map(|a| vars(a, &name, ctx)).collect();
            health.insert("exec", strings(argv));
        }
    }
    for (k, v) in keys(hc) {
        match k.as_str() {
            "test" | "disable" => {}
            "interval" | "timeout" => {
                if let Some(s) = scalar(v) {
                    health.insert(&k, s.into());
                }
            }
            "retries" => {
                if let Some(n) = v.as_i64() {
                    health.insert("retries", n.into());
                }
            }
            "start_period" => ctx.unsupported(
                &name,
                "healthcheck.start_period",
                "fpctl waits up to health.start_timeout (60s by default) for the first success",
            ),
            other => ctx.unsupported(&name, &format!("healthcheck.{other}"), ""),
        }
    }
    svc.set("health", toml_edit::Value::InlineTable(health));
}

fn restart(svc: &mut DraftService, v: &Value, ctx: &mut Ctx) {
    let Some(policy) = scalar(v) else { return };
    let (kind, max) = policy.split_once(':').unwrap_or((&policy, ""));
    let mapped = match kind {
        "no" | "false" => "no",
        "always" => "always",
        "unless-stopped" => "always",
        "on-failure" => "on-failure",
        other => {
            let name = svc.name.clone();
            ctx.unsupported(&name, "restart", &format!("unknown policy {other:?}"));
            return;
        }
    };
    svc.set("restart", mapped);
    if let Ok(n) = max.parse::<i64>() {
        svc.set("max_restarts", n);
    }
}

fn deploy(svc: &mut DraftService, v: &Value, ctx: &mut Ctx) {
    let name = svc.name.clone();
    let Some(m) = v.as_mapping() else { return };
    for (k, val) in keys(m) {
        if k != "restart_policy" {
            ctx.unsupported(&name, &format!("deploy.{k}"), "");
            continue;
        }
        for (rk, rv) in val.as_mapping().into_iter().flat_map(keys) {
            match (rk.as_str(), rv) {
                ("condition", Value::String(c)) => {
                    let mapped = match c.as_str() {
                        "none" => "no",
                        "any" => "always",
                        _ => "on-failure",
                    };
                    svc.set("restart", mapped);
                }
                ("max_attempts", n) if n.as_i64().is_some() => {
                    svc.set("max_restarts", n.as_i64().unwrap_or_default());
                }
                _ => ctx.unsupported(&name, &format!("deploy.restart_policy.{rk}"), ""),
            }
        }
    }
}

/// What a Dockerfile says the container runs, and the port it exposes.
#[derive(Default)]
struct DockerCommand {
    command: Option<(toml_edit::Value, bool)>,
    expose: Option<u16>,
}

fn dockerfile_command(path: &Path) -> DockerCommand {
    let Ok(text) = std::fs::read_to_string(path) else {
        return DockerCommand::default();
    };
    let joined = text.replace("\\\n", " ");
    let (mut entrypoint, mut cmd, mut expose) = (None, None, None);
    for line in joined.lines().map(str::trim) {
        let (instr, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        match instr.to_ascii_uppercase().as_str() {
            // A later FROM starts a new stage: only the last one runs.
            "FROM" => (entrypoint, cmd) = (None, None),
            "ENTRYPOINT" => entrypoint = Some(exec_or_shell(rest)),
            "CMD" => cmd = Some(exec_or_shell(rest)),
            "EXPOSE" => {
                expose = rest
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.split('/').next()?.parse().ok())
            }
            _ => {}
        }
    }
    let command = match (entrypoint, cmd) {
        (Some(Ok(mut ep)), Some(Ok(c))) => {
            ep.extend(c);
            Some((strings(ep), false))
        }
        (Some(Ok(ep)), None) => Some((strings(ep), false)),
        (Some(Err(sh)), _) | (None, Some(Err(sh))) => Some((sh.as_str().into(), true)),
        (None, Some(Ok(c))) => Some((strings(c), false)),
        (Some(Ok(ep)), Some(Err(_))) => Some((strings(ep), false)),
        (None, None) => None,
    };
    DockerCommand { command, expose }
}

/// `["a", "b"]` (exec form) or a shell command line (shell form).
fn exec_or_shell(rest: &str) -> Result<Vec<String>, String> {
    serde_json::from_str::<Vec<String>>(rest).map_err(|_| rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker(text: &str) -> (Option<String>, Option<u16>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Dockerfile");
        std::fs::write(&path, text).unwrap();
        let d = dockerfile_command(&path);
        (
            d.command.map(|(v, shell)| format!("{v} shell={shell}")),
            d.expose,
        )
    }

    #[test]
    fn dockerfile_entrypoint_and_cmd_of_the_last_stage() {
        let (cmd, port) = docker(
            "FROM node:20 AS build\nCMD [\"npm\", \"test\"]\n\
             FROM python:3.12\nEXPOSE 8080/tcp\nENTRYPOINT [\"python\", \"-m\"]\n\
             CMD [\"api\", \\\n  \"--reload\"]\n",
        );
        assert_eq!(
            cmd.as_deref(),
            Some(r#"["python", "-m", "api", "--reload"] shell=false"#)
        );
        assert_eq!(port, Some(8080));
        let (cmd, _) = docker("FROM node:20\nCMD node server.js --port $PORT\n");
        assert_eq!(
            cmd.as_deref(),
            Some(r#""node server.js --port $PORT" shell=true"#)
        );
        assert_eq!(docker("FROM scratch\n"), (None, None));
    }

    #[test]
    fn service_names_as_hosts_become_local_addresses() {
        assert_eq!(
            rewrite_host("redis://cache:6379/0", "cache", false),
            "redis://127.0.0.1:${FPCTL_PORT_CACHE}/0"
        );
        assert_eq!(
            rewrite_host("postgres://u:p@db:5432/app", "db", true),
            "postgres://u:p@127.0.0.1:5432/app"
        );
        assert_eq!(
            rewrite_host("cache:6379", "cache", false),
            "127.0.0.1:${FPCTL_PORT_CACHE}"
        );
        // Not a host: another word ending in the name, or no port.
        assert_eq!(
            rewrite_host("http://mycache:80", "cache", false),
            "http://mycache:80"
        );
        assert_eq!(rewrite_host("cache: on", "cache", false), "cache: on");
    }

    #[test]
    fn ports_published_and_in_the_container() {
        let mut plan = crate::draft::PortPlan::default();
        let mut ctx = Ctx::new(Path::new("compose.yaml"), Path::new("."), &mut plan);
        let p = |yaml: &str, ctx: &mut Ctx| {
            let v: Value = serde_yaml_ng::from_str(yaml).unwrap();
            published_port(Some(&v), "svc", ctx)
        };
        assert_eq!(p("[\"8080:80\"]", &mut ctx), Some((8080, 80)));
        assert_eq!(
            p("[\"127.0.0.1:9000:9000/tcp\"]", &mut ctx),
            Some((9000, 9000))
        );
        assert_eq!(p("[3000]", &mut ctx), Some((3000, 3000)));
        assert_eq!(
            p("[{target: 80, published: 8081}]", &mut ctx),
            Some((8081, 80))
        );
        assert!(ctx.warnings.is_empty());
        assert_eq!(p("[\"1:1\", \"2:2\"]", &mut ctx), Some((1, 1)));
        assert_eq!(ctx.warnings.len(), 1, "{:?}", ctx.warnings);
    }
}

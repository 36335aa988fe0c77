//! docker compose files. A service with a `build` or a command becomes a
//! native service (its command from the compose file, or from the
//! ENTRYPOINT / CMD of its Dockerfile's `build.target` stage). A service
//! with an image and no build becomes a container service (a `container`
//! table: the image, its compose command as `args`, its port inside, its
//! volumes), which also keeps a native command where one is the honest
//! equivalent (redis, valkey, memcached; a language runtime's image with a
//! command). A build with no command to be found is a commented stub, written
//! so that it validates once uncommented.

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::draft::{inline, setup_for, strings, Draft, DraftService};

use super::{convert_vars, dockerfile, env_pairs, finish, http_probe_url, keys, scalar, vars, Ctx};

/// How fpctl checks a program it runs in place of an image.
enum Check {
    Exec(&'static str),
    Tcp,
}

/// An image fpctl replaces by the same program run natively, or (`first`
/// set) writes as a stub because it needs a one-time initialisation first.
struct Known {
    image: &'static str,
    command: &'static str,
    check: Check,
    port: u16,
    first: Option<&'static str>,
}

const KNOWN: &[Known] = &[
    Known {
        image: "redis",
        command: "redis-server --port ${PORT} --save '' --appendonly no",
        check: Check::Exec("redis-cli -p ${PORT} ping"),
        port: 6379,
        first: None,
    },
    Known {
        image: "valkey",
        command: "valkey-server --port ${PORT} --save '' --appendonly no",
        check: Check::Exec("valkey-cli -p ${PORT} ping"),
        port: 6379,
        first: None,
    },
    Known {
        image: "memcached",
        command: "memcached -l 127.0.0.1 -p ${PORT}",
        check: Check::Tcp,
        port: 11211,
        first: None,
    },
    Known {
        image: "postgres",
        command: "postgres -D .fpctl/pgdata -p ${PORT} -k /tmp",
        check: Check::Exec("pg_isready -h 127.0.0.1 -p ${PORT}"),
        port: 5432,
        first: Some("initdb -D .fpctl/pgdata"),
    },
    Known {
        image: "mariadb",
        command: "mariadbd --datadir=.fpctl/mysql --port=${PORT} --bind-address=127.0.0.1 --socket=/tmp/mysql-${PORT}.sock",
        check: Check::Exec("mariadb-admin -h 127.0.0.1 -P ${PORT} ping"),
        port: 3306,
        first: Some("mariadb-install-db --datadir=.fpctl/mysql"),
    },
    Known {
        image: "mysql",
        command: "mysqld --datadir=.fpctl/mysql --port=${PORT} --bind-address=127.0.0.1 --socket=/tmp/mysql-${PORT}.sock",
        check: Check::Exec("mysqladmin -h 127.0.0.1 -P ${PORT} ping"),
        port: 3306,
        first: Some("mysqld --initialize-insecure --datadir=.fpctl/mysql"),
    },
];

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
/// `command` are rewritten to the service's host and port variables (or,
/// for a stub, to 127.0.0.1 and the port as written).
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
                // `REDIS_HOST: redis`: the host alone.
                let bare_host = key.get().to_ascii_uppercase().ends_with("HOST")
                    && hosts.iter().any(|(n, stub)| n == text && !stub);
                let new = if bare_host {
                    format!("${{{}}}", crate::config::host_var_name(text))
                } else {
                    rewrite(text)
                };
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
        if let Some(args) = svc
            .table
            .get_mut("container")
            .and_then(|c| c.get_mut("args"))
            .and_then(|a| a.as_array_mut())
        {
            for arg in args.iter_mut() {
                let Some(text) = arg.as_str().map(str::to_string) else {
                    continue;
                };
                let new = rewrite(&text);
                if new != text {
                    notes.push(format!("container args: {text} -> {new}"));
                    *arg = new.into();
                }
            }
        }
        if !notes.is_empty() {
            svc.note("service names as host names, rewritten to fpctl's addresses:");
            for n in notes {
                svc.note(format!("  {n}"));
            }
        }
    }
}

/// `NAME:PORT` after `//`, `@`, `=`, a space or at the start, as the
/// service's host and port variables (a stub keeps 127.0.0.1 and its port as
/// written: it has no variables until it runs).
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
            if stub {
                out.push_str(&format!("127.0.0.1:{}", &after[..digits]));
            } else {
                out.push_str(&format!(
                    "${{{}}}:${{{}}}",
                    crate::config::host_var_name(name),
                    crate::config::port_var_name(name)
                ));
            }
            rest = &after[digits..];
        } else {
            out.push_str(&needle);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A compose `build`: its folder, Dockerfile and target stage.
struct Build {
    context: String,
    dockerfile: String,
    target: Option<String>,
}

/// A command and whether it needs a shell.
type Command = (toml_edit::Value, bool);

fn service(name: &str, def: &Mapping, ctx: &mut Ctx, completed: &mut Vec<String>) -> DraftService {
    let mut svc = DraftService::new(name);
    let image = def.get("image").and_then(scalar);
    let build = build_spec(def.get("build"), name, ctx);
    let mut port = published_port(def.get("ports"), name, ctx);
    let entrypoint = def.get("entrypoint").map(|e| compose_words(e, name, ctx));
    let command_words = def.get("command").map(|c| compose_words(c, name, ctx));
    let mut command = compose_command(
        def,
        entrypoint.as_deref(),
        command_words.as_deref(),
        name,
        ctx,
    );
    let mut workdir = None;

    // `command` alone on an image is arguments for the image's entrypoint
    // when it starts with a flag (`command: ["-I", "32M"]`).
    let args_only = build.is_none()
        && !def.contains_key("entrypoint")
        && command
            .as_ref()
            .and_then(|(c, _)| first_word(c))
            .is_some_and(|w| w.starts_with('-'));

    let build_dir = build.as_ref().and_then(|b| {
        let here = ctx.source_path(&b.context);
        if here.is_dir() {
            return Some(here);
        }
        let what = if command.is_some() {
            "written without `dir`, with the compose file's command"
        } else {
            "written as a stub: no Dockerfile to take its command from"
        };
        ctx.warn_for(
            name,
            format!(
                "build folder {} does not exist beside the file: {what}",
                b.context
            ),
        );
        None
    });
    if let (Some(b), Some(here)) = (&build, &build_dir) {
        let rel = ctx.rel(here);
        if rel != "." {
            svc.set("dir", rel.as_str());
        }
        if let Some(setup) = setup_for(here) {
            svc.set_noted(
                "setup",
                setup,
                "guess: from the build folder's requirements.txt / package.json",
            );
        }
        let path = here.join(&b.dockerfile);
        let from_docker = if path.is_file() || b.target.is_some() {
            dockerfile::read(&path, b.target.as_deref())
        } else {
            Ok(dockerfile::Image::default())
        };
        match from_docker {
            Ok(img) => {
                workdir = img.workdir;
                if command.is_none() {
                    match img.command {
                        Some(c) => {
                            let stage = b
                                .target
                                .as_ref()
                                .map(|t| format!(" (stage {t})"))
                                .unwrap_or_default();
                            svc.note(format!(
                                "command from {}'s ENTRYPOINT / CMD{stage}",
                                b.dockerfile
                            ));
                            command = Some(c);
                        }
                        None => {
                            let shown = ctx.shown(&path);
                            ctx.warn_for(
                                name,
                                format!(
                                    "no command in the compose file or in {shown}; written as a stub"
                                ),
                            );
                        }
                    }
                }
                if port.is_none() {
                    port = img.expose.map(|p| (p, p));
                }
            }
            Err(e) => {
                let then = if command.is_some() {
                    ""
                } else {
                    "; written as a stub"
                };
                let e = e
                    .to_string()
                    .replace(&path.display().to_string(), &ctx.shown(&path));
                ctx.warn_for(name, format!("{e}{then}"));
            }
        }
    }
    if port.is_none() {
        port = exposed_port(def.get("expose"), name, ctx);
    }

    // An image with no build runs in its container, as compose ran it (with
    // a native command beside it where one is the honest equivalent).
    let mut replaced_check = false;
    if let Some(written) = image.as_deref().filter(|_| build.is_none()) {
        let spec = ImageSpec {
            written,
            port,
            command: command.clone(),
            args_only,
            entrypoint: entrypoint.clone(),
            command_words: command_words.clone(),
        };
        replaced_check = image_service(&mut svc, spec, def, ctx);
    } else if command.is_some() && !args_only {
        native_command(
            &mut svc,
            command.clone(),
            port,
            def,
            workdir.as_deref(),
            ctx,
        );
    } else if build.is_some() {
        svc.stub = true;
        svc.note("no command found: fill it in, then uncomment this service.");
        svc.set("command", "...");
        if let Some((published, _)) = port {
            set_port(&mut svc, published, ctx);
        }
    } else {
        svc.stub = true;
        svc.note("no image, build or command: fill in its command, then uncomment this service.");
        svc.set("command", "...");
        ctx.warn_for(name, "no image, build or command: written as a stub");
    }
    let runs_natively = svc.table.contains_key("command") && !svc.stub;
    let in_container = svc.table.contains_key("container");

    for (key, value) in keys(def) {
        match key.as_str() {
            "build" | "command" | "entrypoint" | "ports" | "expose" | "image" => {}
            "volumes" if in_container => {}
            "working_dir" if build.is_none() && runs_natively => {}
            "environment" => {
                for (k, v) in env_pairs(value) {
                    // A bare KEY passes the caller's value through; fpctl
                    // passes its own environment to every service anyway.
                    if let Some(v) = v {
                        let v = vars_of(&v, name, ctx);
                        svc.set_env(&k, &v);
                    }
                }
            }
            "env_file" => env_files(&mut svc, value, ctx),
            "depends_on" => depends_on(&mut svc, value, ctx, completed),
            "healthcheck" if replaced_check => svc
                .note("its compose healthcheck is replaced by a check on the port fpctl gives it"),
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
                if let Some(d) = duration(value, name, "stop_grace_period", ctx) {
                    svc.set("stop_timeout", d.as_str());
                }
            }
            "working_dir" if in_container => ctx.unsupported(
                name,
                "working_dir",
                "the container runs in its image's WORKDIR",
            ),
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
        ctx.warn_for(&svc.name, format!("port {port} is used twice; given {got}"));
    }
    svc.set("port", i64::from(got));
}

fn vars_of(value: &str, service: &str, ctx: &mut Ctx) -> String {
    convert_vars(value, false, &[]).unwrap_or_else(|e| {
        ctx.warn_for(service, format!("{e}; kept as written"));
        value.to_string()
    })
}

/// A duration field, its variables expanded; None (with a warning) when it
/// cannot be used.
fn duration(v: &Value, service: &str, field: &str, ctx: &mut Ctx) -> Option<String> {
    let text = scalar(v)?;
    let text = ctx.resolve(&text, service, field)?;
    if humantime::parse_duration(text.trim()).is_ok() || text.trim().parse::<u64>().is_ok() {
        Some(text.trim().to_string())
    } else {
        ctx.warn_for(
            service,
            format!("`{field}` {text:?} is not a duration; left out"),
        );
        None
    }
}

/// A count field, its variables expanded.
fn count(v: &Value, service: &str, field: &str, ctx: &mut Ctx) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let text = ctx.resolve(&scalar(v)?, service, field)?;
    match text.trim().parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            ctx.warn_for(
                service,
                format!("`{field}` {text:?} is not a number; left out"),
            );
            None
        }
    }
}

/// `build: DIR` or `build: { context, dockerfile, target }`.
fn build_spec(v: Option<&Value>, name: &str, ctx: &mut Ctx) -> Option<Build> {
    match v? {
        Value::String(dir) => Some(Build {
            context: dir.clone(),
            dockerfile: "Dockerfile".into(),
            target: None,
        }),
        Value::Mapping(m) => {
            for (k, _) in keys(m) {
                if !matches!(k.as_str(), "context" | "dockerfile" | "target") {
                    ctx.unsupported(name, &format!("build.{k}"), "");
                }
            }
            Some(Build {
                context: m
                    .get("context")
                    .and_then(scalar)
                    .unwrap_or_else(|| ".".into()),
                dockerfile: m
                    .get("dockerfile")
                    .and_then(scalar)
                    .unwrap_or_else(|| "Dockerfile".into()),
                target: m.get("target").and_then(scalar),
            })
        }
        _ => None,
    }
}

/// `entrypoint` + `command` (their words), as a TOML value and whether it
/// needs a shell. A string `command` alone stays a string, to be split like
/// a shell at load (as compose splits it).
fn compose_command(
    def: &Mapping,
    entrypoint: Option<&[String]>,
    command: Option<&[String]>,
    name: &str,
    ctx: &mut Ctx,
) -> Option<Command> {
    let argv: Vec<String> = match (entrypoint, def.get("command")) {
        (None, Some(Value::String(s))) => {
            return Some((vars_of(s, name, ctx).as_str().into(), false))
        }
        (Some(ep), _) => ep
            .iter()
            .chain(command.into_iter().flatten())
            .cloned()
            .collect(),
        (None, _) => command?.to_vec(),
    };
    (!argv.is_empty()).then(|| (strings(argv), false))
}

/// The words of a compose `command` or `entrypoint` (a string is split
/// like a shell, as compose does), with their variables kept for fpctl.
fn compose_words(v: &Value, name: &str, ctx: &mut Ctx) -> Vec<String> {
    match v {
        Value::String(s) => shell_words::split(s).unwrap_or_else(|_| vec![s.clone()]),
        Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .map(|w| vars_of(&w, name, ctx))
    .collect()
}

/// A command's words (a string split like a shell).
fn words_of(v: &toml_edit::Value) -> Vec<String> {
    match v {
        toml_edit::Value::String(s) => {
            shell_words::split(s.value()).unwrap_or_else(|_| vec![s.value().clone()])
        }
        toml_edit::Value::Array(a) => a
            .iter()
            .filter_map(|w| w.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

fn first_word(v: &toml_edit::Value) -> Option<String> {
    words_of(v).into_iter().next()
}

/// The first `ports` entry: (published, container) port.
fn published_port(v: Option<&Value>, name: &str, ctx: &mut Ctx) -> Option<(u16, u16)> {
    let items = v?.as_sequence()?;
    if items.len() > 1 {
        ctx.warn_for(
            name,
            format!(
                "only the first of {} `ports` is kept (a service has one port)",
                items.len()
            ),
        );
    }
    let parsed = match items.first()? {
        Value::Mapping(m) => {
            let target = ctx.resolve(&m.get("target").and_then(scalar)?, name, "ports")?;
            let target: u16 = target.parse().ok()?;
            let published = match m.get("published").and_then(scalar) {
                Some(p) => ctx.resolve(&p, name, "ports")?.parse().ok(),
                None => None,
            };
            Some((published.unwrap_or(target), target))
        }
        other => {
            let spec = ctx.resolve(&scalar(other)?, name, "ports")?;
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
    };
    if parsed.is_none() {
        ctx.warn_for(name, "its first `ports` entry is not a port; left out");
    }
    parsed
}

fn exposed_port(v: Option<&Value>, name: &str, ctx: &mut Ctx) -> Option<(u16, u16)> {
    let first = v?.as_sequence()?.first()?;
    let text = ctx.resolve(&scalar(first)?, name, "expose")?;
    let p: u16 = text.split('/').next()?.parse().ok()?;
    Some((p, p))
}

/// `SOURCE:TARGET` bind mounts of host folders: (the folder here, the path
/// in the container).
fn bind_mounts(v: Option<&Value>, ctx: &Ctx) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for item in v.and_then(Value::as_sequence).into_iter().flatten() {
        let (source, target) = match item {
            Value::String(s) => {
                let mut parts = s.split(':');
                match (parts.next(), parts.next()) {
                    (Some(src), Some(tgt)) => (src.to_string(), tgt.to_string()),
                    _ => continue,
                }
            }
            Value::Mapping(m) if m.get("type").and_then(Value::as_str) == Some("bind") => {
                match (
                    m.get("source").and_then(scalar),
                    m.get("target").and_then(scalar),
                ) {
                    (Some(src), Some(tgt)) => (src, tgt),
                    _ => continue,
                }
            }
            _ => continue,
        };
        if source.starts_with('.') || source.starts_with('/') {
            out.push((ctx.source_path(&source), target));
        }
    }
    out
}

/// A command whose program is a path in the container (`/etc/app/run.sh`)
/// runs here only where that path is a bind mount of a folder here: then it
/// points there; else a warning says where the program might be.
fn image_paths(
    svc: &mut DraftService,
    mounts: &[(PathBuf, String)],
    workdir: Option<&str>,
    ctx: &mut Ctx,
) {
    let Some(cmd) = svc.table.get("command").and_then(|c| c.as_value()).cloned() else {
        return;
    };
    let Some(program) = first_word(&cmd) else {
        return;
    };
    if !program.starts_with('/') || Path::new(&program).exists() {
        return;
    }
    let service_dir = svc
        .get_str("dir")
        .map(|d| ctx.source_path(".").join(d))
        .unwrap_or_else(|| ctx.source_path("."));
    let mut mounts: Vec<&(PathBuf, String)> = mounts.iter().collect();
    mounts.sort_by_key(|(_, t)| std::cmp::Reverse(t.len()));
    let mounted = mounts.iter().find_map(|(host, target)| {
        let rest = program.strip_prefix(target.trim_end_matches('/'))?;
        let rest = rest.strip_prefix('/')?;
        Some(host.join(rest))
    });
    if let Some(here) = mounted.as_ref().filter(|h| h.is_file()) {
        let rel = super::relative(here, &service_dir);
        let local = if rel.contains('/') {
            rel
        } else {
            format!("./{rel}")
        };
        let new = match cmd {
            toml_edit::Value::Array(mut a) => {
                a.replace(0, local.as_str());
                toml_edit::Value::Array(a)
            }
            toml_edit::Value::String(s) => {
                toml_edit::Value::from(s.value().replacen(&program, &local, 1))
            }
            other => other,
        };
        svc.set("command", new);
        svc.note(format!(
            "{program} is {local} here (a bind mount in the compose file)"
        ));
        return;
    }
    let hint = match (&mounted, workdir) {
        (Some(here), _) => format!(
            "; it is bind-mounted from {}, which is not here",
            ctx.shown(here)
        ),
        (None, Some(wd)) => match program.strip_prefix(&format!("{}/", wd.trim_end_matches('/'))) {
            Some(rel) => format!(
                "; the image's WORKDIR {wd} is the build folder, so it may be ./{rel} there once built"
            ),
            None => String::new(),
        },
        _ => String::new(),
    };
    ctx.warn_for(
        &svc.name,
        format!(
            "its command runs {program}, a path inside the container image that does not exist \
             on this machine{hint}: point `command` at the program here"
        ),
    );
}

/// Images of a language runtime: a compose command on one runs here as it
/// is (`python3 manage.py migrate`), so the service keeps it natively too.
const RUNTIMES: &[&str] = &["python", "pypy", "node", "ruby", "php", "perl", "golang"];

/// What a compose service with an image and no build says about its run.
struct ImageSpec<'a> {
    /// The image as written (it may name variables).
    written: &'a str,
    /// (published, in the container) port.
    port: Option<(u16, u16)>,
    /// `entrypoint` + `command`.
    command: Option<Command>,
    /// `command` only passes flags to the image's program.
    args_only: bool,
    /// The `entrypoint` that replaces the image's own.
    entrypoint: Option<Vec<String>>,
    /// `command` alone.
    command_words: Option<Vec<String>>,
}

/// A native service's command, as the compose file (or the Dockerfile)
/// gives it, listening natively on the port it listens on in its container.
fn native_command(
    svc: &mut DraftService,
    command: Option<Command>,
    port: Option<(u16, u16)>,
    def: &Mapping,
    workdir: Option<&str>,
    ctx: &mut Ctx,
) {
    let (cmd, shell) = command.unwrap_or_else(|| ("".into(), false));
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
        set_port(svc, target, ctx);
    }
    let mounts = bind_mounts(def.get("volumes"), ctx);
    image_paths(svc, &mounts, workdir, ctx);
}

/// The name of an image without registry, tag or digest (`redis` for
/// `docker.io/library/redis:7-alpine@sha256:…`).
fn image_base(image: &str) -> &str {
    let base = image
        .split('@')
        .next()
        .unwrap_or(image)
        .rsplit('/')
        .next()
        .unwrap_or(image);
    base.split(':').next().unwrap_or(base)
}

/// An image with no build becomes a service with a `container` table: the
/// image, where its program listens inside (`container_port`), the compose
/// command as `args`, and its volumes; its environment and health check are
/// the service's. Where running the program here is the honest equivalent,
/// the service also keeps a native command, so that a plain `fpctl start`
/// runs it natively and `start --containers` in its container: a server
/// fpctl knows how to run (redis, valkey, memcached), or a language
/// runtime's image with a compose command (`python3 manage.py migrate`).
/// Any other image runs only in its container: a program taken from an
/// image is not on this machine. Returns true when fpctl's own check
/// replaces the compose healthcheck.
fn image_service(svc: &mut DraftService, spec: ImageSpec, def: &Mapping, ctx: &mut Ctx) -> bool {
    let name = svc.name.clone();
    // `image: "$SNUBA_IMAGE"`: the name it stands for, where it is set.
    let image = match vars::expand(spec.written, &ctx.env) {
        Ok(i) if !i.trim().is_empty() && !i.contains(char::is_whitespace) => i,
        _ => {
            svc.stub = true;
            svc.note(format!(
                "the image {}: put the image's name in place of its variables, then uncomment \
                 this service.",
                spec.written
            ));
            let mut container = toml_edit::Table::new();
            container.insert("image", toml_edit::value(spec.written));
            svc.table
                .insert("container", toml_edit::Item::Table(container));
            ctx.warn_for(
                &name,
                format!(
                    "its image {} names a variable set neither in the environment nor in a \
                     .env: written as a commented stub",
                    spec.written
                ),
            );
            return false;
        }
    };
    let base = image_base(&image);
    let known = KNOWN.iter().find(|k| k.image == base);
    let full_command = spec.command.is_some() && !spec.args_only;
    // What follows the entrypoint in the container: the compose command
    // alone when an entrypoint replaces the image's, else all of it.
    let compose_args = match &spec.entrypoint {
        Some(_) => spec.command_words.clone(),
        None => spec.command.as_ref().map(|(c, _)| words_of(c)),
    };
    let mut container = toml_edit::Table::new();
    container.insert("image", toml_edit::value(image.as_str()));
    if let Some(e) = &spec.entrypoint {
        container.insert("entrypoint", toml_edit::value(strings(e.clone())));
    }
    // Where the program listens in its container.
    let mut inside = spec.port.map(|(_, target)| target);
    let mut replaced_check = false;
    match known {
        Some(k) if k.first.is_none() && !full_command => {
            let program = k.command.split_whitespace().next().unwrap_or_default();
            let flags = compose_args.filter(|_| spec.args_only);
            let command = match &flags {
                Some(a) => {
                    let mut argv = shell_words::split(k.command).unwrap_or_default();
                    argv.extend(a.iter().cloned());
                    strings(argv)
                }
                None => k.command.into(),
            };
            svc.set("command", command);
            set_port(svc, spec.port.map_or(k.port, |p| p.0), ctx);
            inside = Some(inside.unwrap_or(k.port));
            svc.set("health", known_check(k));
            replaced_check = true;
            // In its container, the image's own program, as compose ran it.
            container.insert("args", toml_edit::value(strings(flags.unwrap_or_default())));
            if spec.args_only {
                svc.note(
                    "its compose command was arguments for the image's program; they follow it here",
                );
            }
            svc.note(format!(
                "the image {image}: run natively (`{program}` must be installed), \
                 or in its container with `fpctl start --containers`"
            ));
        }
        Some(k) if k.first.is_some() => {
            let program = k.command.split_whitespace().next().unwrap_or_default();
            set_port(svc, spec.port.map_or(k.port, |p| p.0), ctx);
            inside = Some(inside.unwrap_or(k.port));
            // The compose healthcheck, where there is one, replaces it.
            svc.set("health", known_check(k));
            if let Some(a) = compose_args {
                container.insert("args", toml_edit::value(strings(a)));
            }
            svc.note(format!("the image {image}, run in its container."));
            svc.note(format!(
                "To run it natively instead: install `{program}`, run `{}` once,",
                k.first.unwrap_or_default()
            ));
            svc.note(format!(
                "then set command = \"{}\" (the table below serves `fpctl start --containers`).",
                k.command.replace('"', "\\\"")
            ));
        }
        _ if full_command && (known.is_some() || RUNTIMES.contains(&base)) => {
            native_command(svc, spec.command.clone(), spec.port, def, None, ctx);
            // Natively it listens where it listens in its container.
            inside = svc.port();
            // In the container the entrypoint runs, then the command alone.
            if spec.entrypoint.is_some() {
                let args = compose_args.clone().unwrap_or_default();
                container.insert("args", toml_edit::value(strings(args)));
            }
            svc.note(format!(
                "the image {image}: its command runs natively, or in the image with \
                 `fpctl start --containers`"
            ));
        }
        _ => {
            if let Some((published, _)) = spec.port {
                set_port(svc, published, ctx);
            }
            if let Some(a) = compose_args {
                container.insert("args", toml_edit::value(strings(a)));
            }
            svc.note(format!("the image {image}, run in its container"));
        }
    }
    if let (Some(port), Some(inside)) = (svc.port(), inside) {
        if port != inside {
            container.insert("container_port", toml_edit::value(i64::from(inside)));
        }
    }
    let volumes = container_volumes(def.get("volumes"), &name, ctx);
    if !volumes.is_empty() {
        container.insert("volumes", toml_edit::value(strings(volumes)));
    }
    svc.table
        .insert("container", toml_edit::Item::Table(container));
    replaced_check
}

fn known_check(k: &Known) -> toml_edit::Value {
    match k.check {
        Check::Exec(c) => inline([("exec", c.into())]),
        Check::Tcp => inline([("tcp", true.into())]),
    }
}

/// A container's compose `volumes` as `-v` takes them: bind mounts of a
/// folder here (relative to services.toml's folder) and named volumes;
/// variables expanded now, as compose expands them.
fn container_volumes(v: Option<&Value>, name: &str, ctx: &mut Ctx) -> Vec<String> {
    let mut out = Vec::new();
    for item in v.and_then(Value::as_sequence).into_iter().flatten() {
        let (source, target, read_only) = match item {
            Value::String(s) => {
                let Some(s) = ctx.resolve(s, name, "volumes") else {
                    continue;
                };
                let parts: Vec<&str> = s.split(':').collect();
                match parts.as_slice() {
                    [target] => (None, target.to_string(), false),
                    [source, target] => (Some(source.to_string()), target.to_string(), false),
                    [source, target, mode] => (
                        Some(source.to_string()),
                        target.to_string(),
                        mode.split(',').any(|m| m == "ro"),
                    ),
                    _ => {
                        ctx.warn_for(name, format!("volume {s:?} is not SOURCE:TARGET; skipped"));
                        continue;
                    }
                }
            }
            Value::Mapping(m) => {
                let kind = m.get("type").and_then(scalar).unwrap_or_default();
                if !matches!(kind.as_str(), "bind" | "volume") {
                    ctx.warn_for(
                        name,
                        format!(
                            "a `{kind}` volume has no equivalent in a container table; skipped"
                        ),
                    );
                    continue;
                }
                let field = |k: &str, ctx: &mut Ctx| {
                    let text = m.get(k).and_then(scalar)?;
                    ctx.resolve(&text, name, "volumes")
                };
                let Some(target) = field("target", ctx) else {
                    continue;
                };
                let read_only = m.get("read_only").and_then(Value::as_bool) == Some(true);
                (field("source", ctx), target, read_only)
            }
            _ => continue,
        };
        let source = source.map(|s| {
            if s.starts_with('.') {
                let here = ctx.rel(&ctx.source_path(&s));
                if here.starts_with('.') || here.starts_with('/') {
                    here
                } else {
                    format!("./{here}")
                }
            } else {
                s
            }
        });
        let mut spec = match source {
            Some(s) => format!("{s}:{target}"),
            None => target,
        };
        if read_only {
            spec.push_str(":ro");
        }
        out.push(spec);
    }
    out
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
            ctx.warn_for(
                &svc.name,
                format!("env_file {path} ({what}) does not exist; skipped"),
            );
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
                Some((kind, _)) if kind == "NONE" => return,
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
    // A service that runs only in its container is checked as compose
    // checked it, inside the container (`docker exec`), unless the check is
    // an HTTP request to the port its program listens on there, which fpctl
    // makes on the port published here.
    let container_only = svc.table.contains_key("container") && !svc.table.contains_key("command");
    let inside = if container_only {
        svc.table
            .get("container")
            .and_then(|c| c.get("container_port"))
            .and_then(toml_edit::Item::as_integer)
            .and_then(|p| u16::try_from(p).ok())
            .or(svc.port())
    } else {
        svc.port()
    };
    let probe =
        http_probe_url(&words).filter(|p| !container_only || (inside == Some(p.port) && !p.https));
    let mut health = toml_edit::InlineTable::new();
    match probe {
        Some(probe) => {
            let own = inside == Some(probe.port) && !probe.https;
            let target = if own {
                probe
                    .url
                    .strip_prefix(&format!("http://127.0.0.1:{}", probe.port))
                    .map(str::to_string)
                    .unwrap_or(probe.url)
            } else {
                probe.url
            };
            health.insert("http", target.into());
            if probe.insecure {
                health.insert("insecure", true.into());
            }
        }
        None => {
            let argv: Vec<String> = if shell {
                vec!["sh".into(), "-c".into(), argv[0].clone()]
            } else {
                argv
            };
            let argv: Vec<String> = argv.iter().map(|a| vars_of(a, &name, ctx)).collect();
            health.insert("exec", strings(argv));
        }
    }
    for (k, v) in keys(hc) {
        match k.as_str() {
            "test" | "disable" => {}
            "interval" | "timeout" => {
                if let Some(d) = duration(v, &name, &format!("healthcheck.{k}"), ctx) {
                    health.insert(&k, d.into());
                }
            }
            "retries" => {
                if let Some(n) = count(v, &name, "healthcheck.retries", ctx) {
                    health.insert("retries", n.into());
                }
            }
            "start_period" | "start_interval" => ctx.unsupported(
                &name,
                &format!("healthcheck.{k}"),
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
        if k == "replicas" {
            match count(val, &name, "deploy.replicas", ctx) {
                Some(n) if n > 1 => svc.set("replicas", n),
                _ => {}
            }
            continue;
        }
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
                ("max_attempts", n) => {
                    if let Some(n) = count(n, &name, "deploy.restart_policy.max_attempts", ctx) {
                        svc.set("max_restarts", n);
                    }
                }
                _ => ctx.unsupported(&name, &format!("deploy.restart_policy.{rk}"), ""),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_as_hosts_become_local_addresses() {
        assert_eq!(
            rewrite_host("redis://cache:6379/0", "cache", false),
            "redis://${FPCTL_HOST_CACHE}:${FPCTL_PORT_CACHE}/0"
        );
        assert_eq!(
            rewrite_host("postgres://u:p@db:5432/app", "db", true),
            "postgres://u:p@127.0.0.1:5432/app"
        );
        assert_eq!(
            rewrite_host("cache:6379", "cache", false),
            "${FPCTL_HOST_CACHE}:${FPCTL_PORT_CACHE}"
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
        assert_eq!(
            p(
                "[\"${FPCTL_TEST_SURELY_UNSET_BIND:-9001}:80/tcp\"]",
                &mut ctx
            ),
            Some((9001, 80))
        );
        assert!(ctx.take_warnings().is_empty());
        assert_eq!(p("[\"1:1\", \"2:2\"]", &mut ctx), Some((1, 1)));
        assert_eq!(ctx.take_warnings().len(), 1);
    }
}

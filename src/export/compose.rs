//! docker compose: one `compose.yaml` with a service per fpctl service.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::mapping::{self, Gate, Image, Plan};
use super::OutFile;
use crate::config::{dns_name, Probe, RestartPolicy, Service};

pub const FILE_NAME: &str = "compose.yaml";

/// The compose file, written to be read from `base` (relative paths start
/// there), plus any generated Dockerfiles. Ports are published on the
/// host's loopback, where fpctl's services listen, unless `publish_all`.
pub fn export(
    plan: &mut Plan,
    images: &[(usize, Image)],
    base: &Path,
    publish_all: bool,
) -> Vec<OutFile> {
    let mut services = Map::new();
    let mut files = Vec::new();
    for (i, image) in images {
        let i = *i;
        let replicas = match mapping::replica_count(plan, i) {
            // A later instance of a replicated service: the first stands
            // for all of them.
            Some(None) => continue,
            Some(Some(n)) => Some(n),
            None => None,
        };
        plan.check_loopback(i);
        plan.check_inlined_secrets(i);
        let svc = plan.svc(i);
        let name = mapping::exported_name(svc).to_string();
        let key = dns_name(&name);
        if key != name {
            plan.note(
                &name,
                format!("named \"{key}\" in compose, so that its host name is valid"),
            );
        }
        let value = service(plan, i, image, base, publish_all, replicas);
        if let Some((name, text)) = &image.generated {
            files.push(OutFile::new(name, text.clone()));
            files.push(OutFile::new(
                &format!("{name}.dockerignore"),
                mapping::DOCKERIGNORE.to_string(),
            ));
        }
        services.insert(key, value);
    }
    // No top-level `name`: docker-compose 1.x rejects it. The header says
    // which project name to give with -p.
    let mut doc = json!({ "services": services });
    escape_dollars(&mut doc);
    let notes = plan.notes.iter().collect::<Vec<_>>();
    let text = mapping::header(
        &format!(
            "docker compose file of the fpctl stack \"{}\": docker compose -p {} up",
            plan.config.project.name,
            dns_name(&plan.config.project.name)
        ),
        &notes,
    ) + &super::yaml(&doc);
    files.insert(0, OutFile::new(FILE_NAME, text));
    files
}

fn service(
    plan: &mut Plan,
    i: usize,
    image: &Image,
    base: &Path,
    publish_all: bool,
    replicas: Option<usize>,
) -> Value {
    let svc = plan.svc(i);
    let mut s = Map::new();
    if let Some(name) = &image.name {
        s.insert("image".into(), json!(name));
    }
    if let Some(dir) = &image.build {
        let context = mapping::relative(base, dir);
        match &image.generated {
            Some((file, _)) => {
                let dockerfile = mapping::relative(dir, &base.join(file));
                s.insert(
                    "build".into(),
                    json!({"context": context, "dockerfile": dockerfile}),
                );
            }
            None => {
                s.insert("build".into(), json!(context));
            }
        }
    }
    if let Some(e) = svc.container.as_ref().and_then(|c| c.entrypoint.as_ref()) {
        s.insert("entrypoint".into(), json!(e));
    }
    // Nothing to run given: the image's own CMD.
    let command = mapping::container_command(svc);
    if !command.is_empty() {
        s.insert("command".into(), json!(command));
    }
    if svc.container.as_ref().is_none_or(|c| c.init) {
        s.insert("init".into(), json!(true));
    }
    if let Some(c) = &svc.container {
        if !c.volumes.is_empty() {
            let volumes: Vec<String> = c
                .volumes
                .iter()
                .map(|v| match v.split_once(':') {
                    Some((host, rest)) if host.starts_with('/') => {
                        format!("{}:{rest}", relative_dot(base, Path::new(host)))
                    }
                    _ => v.clone(),
                })
                .collect();
            s.insert("volumes".into(), json!(volumes));
        }
        if c.network == crate::config::Network::Host {
            s.insert("network_mode".into(), json!("host"));
        }
    }
    let env: Map<String, Value> = mapping::environment(svc)
        .into_iter()
        // Replicas of one compose service share one environment.
        .filter(|(k, _)| replicas.is_none() || k != "FPCTL_REPLICA")
        .map(|(k, v)| (k, json!(v)))
        .collect();
    if replicas.is_some() {
        plan.note(
            mapping::exported_name(svc),
            "FPCTL_REPLICA is not set: compose gives every replica the same environment (the container's hostname tells them apart)",
        );
    }
    if !env.is_empty() {
        s.insert("environment".into(), Value::Object(env));
    }
    if !svc.env_files.is_empty() {
        let files: Vec<String> = svc
            .env_files
            .iter()
            .map(|f| mapping::relative(base, f))
            .collect();
        s.insert("env_file".into(), json!(files));
    }
    let host_network = svc
        .container
        .as_ref()
        .is_some_and(|c| c.network == crate::config::Network::Host);
    if let (Some(p), false) = (svc.port, host_network) {
        let host = if publish_all { "" } else { "127.0.0.1:" };
        let inner = mapping::listen_port(svc).unwrap_or(p);
        let published = match replicas {
            Some(n) if n > 1 => {
                let ports = group_ports(plan, svc);
                let (lo, hi) = (ports[0], ports[ports.len() - 1]);
                if hi - lo + 1 != ports.len() as u16 {
                    plan.note(
                        mapping::exported_name(svc),
                        format!(
                            "its replicas' ports are not one range: compose publishes {lo}-{hi}"
                        ),
                    );
                }
                format!("{lo}-{hi}")
            }
            _ => p.to_string(),
        };
        s.insert(
            "ports".into(),
            json!([format!("{host}{published}:{inner}")]),
        );
    }
    if let Some(n) = replicas {
        s.insert("deploy".into(), json!({ "replicas": n }));
    }
    let mut deps = Map::new();
    for (d, gate) in plan.waits_for(i) {
        let dep = plan.svc(d);
        if dep.group.is_some() && dep.group == svc.group {
            continue;
        }
        let condition = match gate {
            Gate::Healthy if has_healthcheck(dep) => "service_healthy",
            // Compose refuses `up` when a dependency it must see healthy
            // has no healthcheck: wait for it to start instead.
            Gate::Healthy | Gate::Started => {
                if gate == Gate::Healthy {
                    let text = format!(
                        "it waits only for {} to start, not to be ready: {}'s log health check has no compose equivalent",
                        dep.name, dep.name
                    );
                    plan.note(&svc.name, text);
                }
                "service_started"
            }
            Gate::Completed => "service_completed_successfully",
        };
        deps.insert(
            dns_name(mapping::exported_name(dep)),
            json!({ "condition": condition }),
        );
    }
    if !deps.is_empty() {
        s.insert("depends_on".into(), Value::Object(deps));
    }
    if let Some(h) = healthcheck(plan, svc) {
        s.insert("healthcheck".into(), h);
    }
    let restart = match svc.restart {
        RestartPolicy::No => "no".to_string(),
        RestartPolicy::Always => "always".to_string(),
        RestartPolicy::OnFailure => format!("on-failure:{}", svc.max_restarts),
    };
    s.insert("restart".into(), json!(restart));
    s.insert("stop_signal".into(), json!(svc.stop_signal.as_str()));
    s.insert(
        "stop_grace_period".into(),
        json!(mapping::duration_text(svc.stop_timeout)),
    );
    if !svc.profiles.is_empty() {
        s.insert("profiles".into(), json!(svc.profiles));
    }
    if let Some(m) = svc.max_memory {
        s.insert("mem_limit".into(), json!(m));
    }
    notes(plan, svc, image);
    Value::Object(s)
}

/// Whether the service gets a compose healthcheck (every health check but
/// a log one, which reads fpctl's log file).
fn has_healthcheck(svc: &Service) -> bool {
    svc.health
        .as_ref()
        .is_some_and(|h| !matches!(h.probe, Probe::Log { .. }))
}

/// The health check as a test run inside the container. It assumes no
/// particular tool: an http check uses whichever of curl, wget (without
/// options busybox lacks) or python3 the image has; a tcp check reads the
/// kernel's table of listening sockets, which needs only sh and grep.
fn healthcheck(plan: &mut Plan, svc: &Service) -> Option<Value> {
    let h = svc.health.as_ref()?;
    let timeout = mapping::whole_seconds(h.timeout, 1);
    let test = match &h.probe {
        Probe::Http {
            url,
            expect_status,
            expect_json,
            insecure,
        } => {
            if *insecure {
                plan.note(&svc.name, "the health check verifies the https certificate: insecure = true is not carried over");
            }
            if !expect_status.is_empty() || !expect_json.is_empty() {
                plan.note(&svc.name, "the health check accepts any 2xx answer: expect_status and expect_json are not checked");
            }
            plan.note_stack(
                "http health checks run inside the container: its image needs sh and one of curl, wget or python3",
            );
            let url = match url.parse::<hyper::Uri>() {
                Ok(u) if matches!(u.host(), Some("127.0.0.1" | "localhost")) => {
                    let port =
                        u.port_u16()
                            .unwrap_or(if url.starts_with("https") { 443 } else { 80 });
                    let path = u.path_and_query().map_or("/", |p| p.as_str());
                    format!(
                        "{}://127.0.0.1:{}{path}",
                        u.scheme_str().unwrap_or("http"),
                        mapping::inside(svc, port)
                    )
                }
                _ => url.clone(),
            };
            let url = shell_words::quote(&url);
            json!(["CMD-SHELL", format!(
                "if command -v curl >/dev/null 2>&1; then curl -fsS -o /dev/null --max-time {timeout} {url}; \
                 elif command -v wget >/dev/null 2>&1; then wget -q -O /dev/null {url}; \
                 elif command -v python3 >/dev/null 2>&1; then python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout={timeout})' {url}; \
                 else echo 'the image has none of curl, wget, python3' >&2; exit 1; fi"
            )])
        }
        Probe::Tcp { port } => {
            plan.note_stack(
                "tcp health checks run inside the container: its image needs sh and grep",
            );
            let hex = format!("{:04X}", mapping::inside(svc, *port));
            json!(["CMD-SHELL", format!(
                "grep -qE '^ *[0-9]+: [0-9A-F]+:{hex} [0-9A-F]+:[0-9A-F]+ 0A ' /proc/net/tcp /proc/net/tcp6 2>/dev/null"
            )])
        }
        Probe::Log { .. } => {
            plan.note(
                &svc.name,
                "a log health check has no compose equivalent: it has no health check",
            );
            return None;
        }
        // The image's own HEALTHCHECK, which compose runs by itself.
        Probe::Container => return None,
        Probe::Exec { argv } => {
            let mut test = vec!["CMD".to_string()];
            test.extend(argv.iter().cloned());
            json!(test)
        }
    };
    Some(json!({
        "test": test,
        "interval": mapping::duration_text(h.interval),
        "timeout": mapping::duration_text(h.timeout),
        "retries": h.retries,
        "start_period": mapping::duration_text(svc.start_timeout),
    }))
}

/// The ports of every instance of a replicated service, in order.
fn group_ports(plan: &Plan, svc: &Service) -> Vec<u16> {
    let mut ports: Vec<u16> = plan
        .services
        .iter()
        .map(|&j| plan.svc(j))
        .filter(|o| {
            o.group.is_some() && o.group.as_ref().map(|g| &g.0) == svc.group.as_ref().map(|g| &g.0)
        })
        .filter_map(|o| o.port)
        .collect();
    ports.sort_unstable();
    ports
}

/// A host path of a volume, relative to the compose file (`./data`).
fn relative_dot(base: &Path, path: &Path) -> String {
    let rel = mapping::relative(base, path);
    if rel.starts_with('.') {
        rel
    } else {
        format!("./{rel}")
    }
}

/// What compose cannot say the way fpctl does.
fn notes(plan: &mut Plan, svc: &Service, image: &Image) {
    let name = svc.name.clone();
    if svc.health.is_some() {
        plan.note_stack("start_timeout becomes the health check's start_period: compose keeps waiting for a slow start instead of failing it");
    }
    if has_healthcheck(svc) {
        plan.note_stack("compose runs a health check every interval from the start (fpctl probes a starting service every few ms), so a dependent may start up to an interval later");
    }
    if svc.restart != RestartPolicy::No {
        plan.note_stack("restarts follow Docker's own backoff, not fpctl's (100 ms doubling to 10 s, count reset after 30 s up)");
    }
    if svc.restart == RestartPolicy::Always {
        plan.note(
            &name,
            "max_restarts does not apply: compose's restart: always has no limit",
        );
    }
    if let Some(schedule) = &svc.schedule {
        plan.note(
            &name,
            format!("it runs on a schedule ({}) under fpctl; compose has no equivalent: here it runs once, at `up`", schedule.describe()),
        );
    }
    if let Some(codes) = mapping::other_success_codes(svc) {
        let what = if svc.oneshot {
            "a dependent waiting for service_completed_successfully does not start after them"
        } else {
            "restart: on-failure restarts it after them"
        };
        plan.note(
            &name,
            format!(
                "success_exit_codes {codes}: compose counts only exit code 0 as success, so {what}"
            ),
        );
    }
    plan.note_image_setup(svc, image);
    if svc.dir != plan.config.root {
        plan.note_stack(super::DIR_NOTE);
    }
    if svc.log_rotation.is_some() {
        plan.note(
            &name,
            "log_max_size / log_keep do not apply: logs go to Docker's logging driver",
        );
    }
}

/// Compose interpolates `$VAR` in every value: fpctl has already expanded
/// its variables, so a `$` left is literal and is written `$$`.
fn escape_dollars(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Array(a) => a.iter_mut().for_each(escape_dollars),
        Value::Object(o) => o.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

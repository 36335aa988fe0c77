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
        plan.check_loopback(i);
        plan.check_inlined_secrets(i);
        let svc = plan.svc(i);
        let key = dns_name(&svc.name);
        if key != svc.name {
            plan.note(
                &svc.name,
                format!("named \"{key}\" in compose, so that its host name is valid"),
            );
        }
        let value = service(plan, i, image, base, publish_all);
        if let Some((name, text)) = &image.generated {
            files.push(OutFile::new(name, text.clone()));
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

fn service(plan: &mut Plan, i: usize, image: &Image, base: &Path, publish_all: bool) -> Value {
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
    s.insert("command".into(), json!(svc.argv));
    let env: Map<String, Value> = mapping::environment(svc)
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
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
    if let Some(p) = svc.port {
        let host = if publish_all { "" } else { "127.0.0.1:" };
        s.insert("ports".into(), json!([format!("{host}{p}:{p}")]));
    }
    let mut deps = Map::new();
    for (d, gate) in plan.waits_for(i) {
        let dep = plan.svc(d);
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
        deps.insert(dns_name(&dep.name), json!({ "condition": condition }));
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

/// The health check as a test run inside the container: what the image must
/// hold is said in the notes.
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
                "http health checks run inside the container: its image needs sh with curl, wget or python3",
            );
            let url = shell_words::quote(url);
            json!(["CMD-SHELL", format!(
                "curl -fsS -o /dev/null --max-time {timeout} {url} || wget -q -O /dev/null -T {timeout} {url} || python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout={timeout})' {url}"
            )])
        }
        Probe::Tcp { port } => {
            plan.note_stack(
                "tcp health checks run inside the container: its image needs sh with python3 or nc",
            );
            json!(["CMD-SHELL", format!(
                "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), {timeout}).close()' || nc -z -w {timeout} 127.0.0.1 {port}"
            )])
        }
        Probe::Log { .. } => {
            plan.note(
                &svc.name,
                "a log health check has no compose equivalent: it has no health check",
            );
            return None;
        }
        // Compose runs the image's own HEALTHCHECK by itself.
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

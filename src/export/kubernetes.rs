//! Kubernetes: per service a Deployment and a Service (a Job for a oneshot)
//! in `NAME.yaml`, and a `kustomization.yaml` that lists them and turns
//! env_file files into Secrets.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::mapping::{self, Gate, Image, Plan};
use super::OutFile;
use crate::config::{dns_name, Probe, RestartPolicy, Service};

/// Waits for dependencies: a small image with sh, wget and nc.
const WAIT_IMAGE: &str = "busybox:1.36";

pub const KUSTOMIZATION: &str = "kustomization.yaml";

/// One manifest file per service, a kustomization, and any generated
/// Dockerfiles; relative paths start at `base`.
pub fn export(plan: &mut Plan, images: &[(usize, Image)], base: &Path) -> Vec<OutFile> {
    let mut files = Vec::new();
    let mut resources = Vec::new();
    let mut secrets = Vec::new();
    for (i, image) in images {
        let i = *i;
        let replicas = match mapping::replica_count(plan, i) {
            // A later instance of a replicated service: the first stands
            // for all of them.
            Some(None) => continue,
            Some(Some(n)) => n,
            None => 1,
        };
        plan.check_loopback(i);
        plan.check_inlined_secrets(i);
        let svc = plan.svc(i);
        let name = dns_name(mapping::exported_name(svc));
        let mut docs = Vec::new();
        if svc.schedule.is_some() {
            docs.push(cron_job(plan, i, images));
        } else if svc.oneshot {
            docs.push(job(plan, i, images));
        } else {
            docs.push(deployment(plan, i, images, replicas));
            if replicas > 1 {
                plan.note(
                    mapping::exported_name(svc),
                    "FPCTL_REPLICA is not set: the pods of a Deployment share one environment (the pod's name tells them apart)",
                );
            }
            if let Some(port) = mapping::listen_port(svc).filter(|_| svc.port.is_some()) {
                docs.push(service(plan, svc, port));
            } else {
                plan.note(
                    &svc.name,
                    "it has no port, so it gets no Service and others cannot reach it by name",
                );
            }
        }
        if svc
            .container
            .as_ref()
            .and_then(|c| c.entrypoint.as_ref())
            .is_some_and(Vec::is_empty)
        {
            plan.note(
                mapping::exported_name(svc),
                "entrypoint = [] has no Kubernetes form (an empty command keeps the image's ENTRYPOINT): give the program to run in entrypoint",
            );
        }
        if !svc.env_files.is_empty() {
            let envs: Vec<String> = svc
                .env_files
                .iter()
                .map(|f| mapping::relative(base, f))
                .collect();
            if envs.iter().any(|e| e.starts_with("..")) {
                plan.note_stack("an env_file lies outside the output folder: build with `kustomize build --load-restrictor LoadRestrictionsNone`");
            }
            secrets.push(json!({"name": format!("{name}-env"), "envs": envs}));
        }
        notes(plan, svc, image);
        let file = format!("{name}.yaml");
        let title = format!(
            "Kubernetes objects of service \"{}\" of the fpctl stack \"{}\"",
            svc.name, plan.config.project.name
        );
        let text = mapping::header(&title, &plan.notes_for(Some(&svc.name)))
            + &docs
                .iter()
                .map(super::yaml)
                .collect::<Vec<_>>()
                .join("---\n");
        resources.push(file.clone());
        files.push(OutFile::new(&file, text));
        if let Some((name, text)) = &image.generated {
            files.push(OutFile::new(
                &format!("{name}.dockerignore"),
                mapping::DOCKERIGNORE.to_string(),
            ));
            files.push(OutFile::new(name, text.clone()));
        }
    }
    let mut kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    if !secrets.is_empty() {
        kustomization["secretGenerator"] = json!(secrets);
    }
    let title = format!(
        "kustomization of the fpctl stack \"{}\" (kubectl apply -k DIR)",
        plan.config.project.name
    );
    let text = mapping::header(&title, &plan.notes_for(None)) + &super::yaml(&kustomization);
    files.insert(0, OutFile::new(KUSTOMIZATION, text));
    files
}

fn labels(plan: &Plan, svc: &Service) -> Value {
    json!({
        "app.kubernetes.io/name": dns_name(mapping::exported_name(svc)),
        "app.kubernetes.io/part-of": dns_name(&plan.config.project.name),
    })
}

fn metadata(plan: &Plan, svc: &Service) -> Value {
    json!({"name": dns_name(mapping::exported_name(svc)), "labels": labels(plan, svc)})
}

/// The image reference a cluster pulls: the given one, or the tag a build
/// of the service's context is expected to have.
fn image_ref(plan: &Plan, svc: &Service, image: &Image) -> String {
    image.name.clone().unwrap_or_else(|| {
        format!(
            "{}-{}:latest",
            dns_name(&plan.config.project.name),
            dns_name(mapping::exported_name(svc))
        )
    })
}

fn container(plan: &Plan, svc: &Service, image: &Image) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("name".into(), json!(dns_name(mapping::exported_name(svc))));
    c.insert("image".into(), json!(image_ref(plan, svc, image)));
    c.insert("imagePullPolicy".into(), json!("IfNotPresent"));
    // What fpctl runs: the `entrypoint` replaces the image's ENTRYPOINT
    // (Kubernetes' `command`), and the container's `args`, else the
    // service's command, replace its CMD (`args`), as `docker run` does.
    let entrypoint = svc.container.as_ref().and_then(|c| c.entrypoint.as_ref());
    if let Some(e) = entrypoint.filter(|e| !e.is_empty()) {
        c.insert("command".into(), json!(e));
    }
    let args = mapping::container_command(svc);
    if !args.is_empty() {
        c.insert("args".into(), json!(args));
    }
    let env: Vec<Value> = mapping::environment(svc)
        .into_iter()
        // The pods of a Deployment share one environment.
        .filter(|(k, _)| svc.group.is_none() || k != "FPCTL_REPLICA")
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    if !env.is_empty() {
        c.insert("env".into(), json!(env));
    }
    if !svc.env_files.is_empty() {
        c.insert(
            "envFrom".into(),
            json!([{"secretRef": {"name": format!("{}-env", dns_name(mapping::exported_name(svc)))}}]),
        );
    }
    if let Some(p) = mapping::listen_port(svc).filter(|_| svc.port.is_some()) {
        c.insert(
            "ports".into(),
            json!([{"name": "main", "containerPort": p}]),
        );
    }
    if let Some(m) = svc.max_memory {
        c.insert(
            "resources".into(),
            json!({"limits": {"memory": m.to_string()}}),
        );
    }
    c
}

fn image_of(images: &[(usize, Image)], i: usize) -> &Image {
    &images
        .iter()
        .find(|(j, _)| *j == i)
        .expect("every exported service has an image")
        .1
}

/// Init containers that hold a pod until its dependencies answer (or, for a
/// oneshot, run it to completion first).
fn init_containers(plan: &mut Plan, i: usize, images: &[(usize, Image)]) -> Vec<Value> {
    let me = plan.svc(i).name.clone();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (d, gate) in plan.waits_for(i) {
        let dep = plan.svc(d);
        let host = dns_name(mapping::exported_name(dep));
        // The instances of a replicated service are one Service.
        if !seen.insert(host.clone()) {
            continue;
        }
        let wait = |check: String| {
            json!({
                "name": format!("wait-for-{host}"),
                "image": WAIT_IMAGE,
                "command": ["sh", "-c", format!("until {check}; do echo waiting for {host}; sleep 1; done")],
            })
        };
        match gate {
            Gate::Completed => {
                let mut c = container(plan, dep, image_of(images, d));
                c.insert("name".into(), json!(format!("run-{host}")));
                c.remove("ports");
                out.push(Value::Object(c));
                plan.note(&me, format!("it runs the oneshot {} as an init container before it starts (Kubernetes cannot wait for a Job), so that task must be safe to run again", dep.name));
            }
            _ => match (
                dep.health
                    .as_ref()
                    .and_then(|h| mapping::own_http(&h.probe)),
                dep.port,
            ) {
                (Some((path, port)), _) => out.push(wait(format!(
                    "wget -q -O /dev/null -T 2 http://{host}:{}{path}",
                    mapping::inside(dep, port)
                ))),
                (None, Some(port)) => {
                    let port = mapping::inside(dep, port);
                    if matches!(
                        dep.health.as_ref().map(|h| &h.probe),
                        Some(Probe::Exec { .. })
                    ) {
                        plan.note(&me, format!("it waits for {} to accept connections on its port; {}'s exec health check cannot run from another pod", dep.name, dep.name));
                    }
                    out.push(wait(format!("nc -z -w 2 {host} {port}")))
                }
                (None, None) => plan.note(
                    &me,
                    format!(
                        "it cannot wait for {}, which has no port to probe from another pod",
                        dep.name
                    ),
                ),
            },
        }
    }
    out
}

fn probe_action(plan: &mut Plan, svc: &Service) -> Option<Value> {
    let h = svc.health.as_ref()?;
    Some(match &h.probe {
        Probe::Http {
            expect_status,
            expect_json,
            ..
        } => {
            if !expect_status.is_empty() || !expect_json.is_empty() {
                plan.note(&svc.name, "its probes accept any 2xx-3xx answer: expect_status and expect_json are not checked");
            }
            match mapping::own_http(&h.probe) {
                Some((path, port)) if mapping::is_https(&h.probe) => {
                    let port = mapping::inside(svc, port);
                    json!({"httpGet": {"path": path, "port": port, "scheme": "HTTPS"}})
                }
                Some((path, port)) => {
                    json!({"httpGet": {"path": path, "port": mapping::inside(svc, port)}})
                }
                None => {
                    plan.note(&svc.name, "its health URL is on another host, which a probe cannot reach: it has no probes");
                    return None;
                }
            }
        }
        Probe::Tcp { port } => json!({"tcpSocket": {"port": mapping::inside(svc, *port)}}),
        Probe::Exec { argv } => json!({"exec": {"command": argv}}),
        Probe::Log { .. } => {
            plan.note(
                &svc.name,
                "a log health check has no Kubernetes probe: it has no probes",
            );
            return None;
        }
        Probe::Container => {
            plan.note(
                &svc.name,
                "Kubernetes ignores an image's HEALTHCHECK: it has no probes",
            );
            return None;
        }
    })
}

/// readiness, liveness and startup probes from the health check.
fn probes(plan: &mut Plan, svc: &Service, c: &mut Map<String, Value>) {
    let Some(action) = probe_action(plan, svc) else {
        return;
    };
    let Some(h) = svc.health.as_ref() else { return };
    let period = mapping::whole_seconds(h.interval, 1);
    let timeout = mapping::whole_seconds(h.timeout, 1);
    if h.interval.subsec_millis() != 0 || h.timeout.subsec_millis() != 0 {
        plan.note(
            &svc.name,
            "probe interval and timeout are rounded up to whole seconds",
        );
    }
    let with = |extra: Value| {
        let mut p = action.as_object().cloned().unwrap_or_default();
        p.extend(extra.as_object().cloned().unwrap_or_default());
        Value::Object(p)
    };
    let steady =
        json!({"periodSeconds": period, "timeoutSeconds": timeout, "failureThreshold": h.retries});
    c.insert("readinessProbe".into(), with(steady.clone()));
    c.insert("livenessProbe".into(), with(steady));
    // As fpctl does, a starting service is probed often (every second, the
    // shortest period Kubernetes takes), whatever the period once it is up.
    let start = mapping::whole_seconds(svc.start_timeout, 1).max(1);
    c.insert(
        "startupProbe".into(),
        with(json!({"periodSeconds": 1, "timeoutSeconds": timeout, "failureThreshold": start})),
    );
}

fn pod_spec(plan: &mut Plan, i: usize, images: &[(usize, Image)]) -> Map<String, Value> {
    let svc = plan.svc(i);
    let mut c = container(plan, svc, image_of(images, i));
    probes(plan, svc, &mut c);
    let mut spec = Map::new();
    spec.insert(
        "terminationGracePeriodSeconds".into(),
        json!(mapping::whole_seconds(svc.stop_timeout, 0)),
    );
    let init = init_containers(plan, i, images);
    if !init.is_empty() {
        spec.insert("initContainers".into(), json!(init));
    }
    spec.insert("containers".into(), json!([c]));
    spec
}

fn deployment(plan: &mut Plan, i: usize, images: &[(usize, Image)], replicas: usize) -> Value {
    let svc = plan.svc(i);
    let spec = pod_spec(plan, i, images);
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(plan, svc),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels(plan, svc)},
            "template": {"metadata": {"labels": labels(plan, svc)}, "spec": spec},
        },
    })
}

fn job(plan: &mut Plan, i: usize, images: &[(usize, Image)]) -> Value {
    let svc = plan.svc(i);
    let mut spec = pod_spec(plan, i, images);
    spec.insert("restartPolicy".into(), json!("Never"));
    let retries = match svc.restart {
        RestartPolicy::No => 0,
        _ => svc.max_restarts,
    };
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(plan, svc),
        "spec": {
            "backoffLimit": retries,
            "template": {"metadata": {"labels": labels(plan, svc)}, "spec": spec},
        },
    })
}

/// A scheduled job: a CronJob whose Job is the one a oneshot gets.
fn cron_job(plan: &mut Plan, i: usize, images: &[(usize, Image)]) -> Value {
    let mut job = job(plan, i, images);
    let svc = plan.svc(i);
    let name = svc.name.clone();
    let schedule = svc.schedule.clone().expect("a scheduled job");
    let (cron, notes) = super::schedule::kubernetes_cron(&schedule);
    for n in notes {
        plan.note(&name, n);
    }
    let mut spec = json!({
        "schedule": cron,
        // fpctl never runs two runs of a job at once.
        "concurrencyPolicy": "Forbid",
        "jobTemplate": {"spec": job["spec"].take()},
    });
    if let Some(tz) = &schedule.timezone {
        spec["timeZone"] = json!(tz);
    }
    if !schedule.catch_up {
        // A run missed by more than a minute (the controller was down) is
        // not made up for.
        spec["startingDeadlineSeconds"] = json!(60);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": job["metadata"].take(),
        "spec": spec,
    })
}

fn service(plan: &Plan, svc: &Service, port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(plan, svc),
        "spec": {
            "selector": labels(plan, svc),
            "ports": [{"name": "main", "port": port, "targetPort": port}],
        },
    })
}

/// What Kubernetes cannot say the way fpctl does.
fn notes(plan: &mut Plan, svc: &Service, image: &Image) {
    let name = svc.name.clone();
    if !svc.oneshot {
        match svc.restart {
            RestartPolicy::Always => {}
            p => plan.note(
                &name,
                format!(
                    "restart = \"{}\" becomes Always: a Deployment always restarts its pod",
                    match p {
                        RestartPolicy::No => "no",
                        _ => "on-failure",
                    }
                ),
            ),
        }
        plan.note_stack("max_restarts does not apply to Deployments: Kubernetes restarts a crashing pod with its own backoff (up to 5 minutes), without giving up");
    }
    if let Some(codes) = mapping::other_success_codes(svc) {
        let what = if svc.oneshot {
            "its Job fails and is retried after them"
        } else {
            "its pod is restarted after them"
        };
        plan.note(
            &name,
            format!("success_exit_codes {codes}: Kubernetes counts only exit code 0 as success, so {what}"),
        );
    }
    if svc.stop_signal != nix::sys::signal::Signal::SIGTERM {
        plan.note(
            &name,
            format!(
                "stop_signal {} is lost: Kubernetes sends SIGTERM (or the image's STOPSIGNAL)",
                svc.stop_signal.as_str()
            ),
        );
    }
    if svc.dir != plan.config.root {
        plan.note_stack(super::DIR_NOTE);
    }
    if image.name.is_none() {
        plan.note(
            &name,
            format!(
                "build its image and make it available to the cluster as {}",
                image_ref(plan, svc, image)
            ),
        );
    }
    plan.note_image_setup(svc, image);
    plan.note_profiles(svc);
    if svc.log_rotation.is_some() {
        plan.note(
            &name,
            "log_max_size / log_keep do not apply: the cluster keeps container logs",
        );
    }
}

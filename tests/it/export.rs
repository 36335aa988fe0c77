//! `fpctl export`: the bundled demo and a stack with every feature, exported
//! to compose, Kubernetes and systemd and fed to the real validators
//! (docker-compose config, kubernetes-validate, systemd-analyze verify);
//! snapshots of the demo's exported text (BLESS=1 rewrites them); the error
//! for a service without an image; and the exported systemd units of the
//! demo run in their order against the real services.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{free_ports, httpd, Run, Stack};

const TARGETS: [&str; 3] = ["compose", "kubernetes", "systemd"];
/// A recent Kubernetes release whose schemas ship with kubernetes-validate.
const KUBERNETES_VERSION: &str = "1.34.0";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled demo (services.toml and demo/) copied into a fresh project,
/// with its ports replaced by `ports` when given.
fn demo(ports: Option<&[u16]>) -> Stack {
    let mut toml = std::fs::read_to_string(repo().join("services.toml")).unwrap();
    if let Some(ports) = ports {
        for (i, p) in ports.iter().enumerate() {
            toml = toml.replace(&format!("port = {}", 18700 + i), &format!("port = {p}"));
        }
    }
    let stack = Stack::new(&toml);
    for f in ["service.py", "Dockerfile"] {
        let text = std::fs::read_to_string(repo().join("demo").join(f)).unwrap();
        stack.write(&format!("demo/{f}"), &text);
    }
    stack
}

fn export(stack: &Stack, args: &[&str]) -> Run {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    stack.run(&all)
}

/// Every file of a folder, by name.
pub fn files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// Run a validator; a missing one is a failure that says how to get it.
fn validator(program: &str, args: &[&str], cwd: &Path, envs: &[(&str, &Path)]) -> Run {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): install it (bash .ci/run does: docker-compose and systemd from Debian, kubernetes-validate from PyPI)")
    });
    Run(out)
}

fn validate_compose(file: &Path) {
    let r = validator(
        "docker-compose",
        &["-f", file.to_str().unwrap(), "config", "-q"],
        file.parent().unwrap(),
        &[],
    );
    assert_eq!(
        r.code(),
        0,
        "docker-compose config rejects {}:\n{}",
        file.display(),
        r.all()
    );
    assert!(
        r.stderr().trim().is_empty(),
        "docker-compose config warns:\n{}",
        r.all()
    );
}

/// Compose refuses `up` when a dependent waits for `service_healthy` on a
/// service that has no `healthcheck` ("Service X is missing a healthcheck
/// configuration"), which `docker-compose config` does not check: every
/// such condition must point at a service with one.
/// Returns how many `service_healthy` conditions it checked.
fn assert_healthy_conditions_have_healthchecks(file: &Path) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let services = doc["services"].as_mapping().expect("services");
    let mut checked = 0;
    for (name, svc) in services {
        let Some(deps) = svc["depends_on"].as_mapping() else {
            continue;
        };
        for (dep, how) in deps {
            if how["condition"] == "service_healthy" {
                checked += 1;
                let target = &services[dep];
                assert!(
                    target["healthcheck"].is_mapping(),
                    "{name:?} waits for {dep:?} to be healthy, but {dep:?} has no healthcheck:\n{text}"
                );
            }
        }
    }
    checked
}

fn validate_kubernetes(dir: &Path) {
    let manifests: Vec<String> = files(dir)
        .into_keys()
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    assert!(!manifests.is_empty());
    let mut args = vec!["--strict", "--quiet", "-k", KUBERNETES_VERSION];
    args.extend(manifests.iter().map(String::as_str));
    let r = validator("kubernetes-validate", &args, dir, &[]);
    assert_eq!(
        r.code(),
        0,
        "kubernetes-validate rejects a manifest:\n{}",
        r.all()
    );
    assert!(!r.all().contains("ERROR"), "{}", r.all());
}

pub fn validate_systemd(dir: &Path) {
    let units: Vec<String> = files(dir).into_keys().collect();
    let runtime = tempfile::tempdir().unwrap();
    let mut args = vec!["--user", "verify"];
    let paths: Vec<String> = units.iter().map(|u| format!("./{u}")).collect();
    args.extend(paths.iter().map(String::as_str));
    // A user manager's runtime folder, which this container has none of.
    let r = validator(
        "systemd-analyze",
        &args,
        dir,
        &[("XDG_RUNTIME_DIR", runtime.path())],
    );
    // verify reports a bad line as a warning and goes on: both must be clean.
    assert_eq!(r.code(), 0, "systemd-analyze verify fails:\n{}", r.all());
    assert!(
        r.stderr().trim().is_empty(),
        "systemd-analyze verify warns:\n{}",
        r.all()
    );
}

/// The text of an exported file with this machine's paths replaced, so the
/// snapshot is the same everywhere.
fn portable(text: &str, root: &Path) -> String {
    text.replace(crate::common::BIN, "@FPCTL@")
        .replace(&root.display().to_string(), "@ROOT@")
}

#[test]
fn demo_exports_match_their_snapshots() {
    let stack = demo(None);
    let root = stack.path().canonicalize().unwrap();
    let bless = std::env::var_os("BLESS").is_some_and(|v| v == "1");
    for target in TARGETS {
        let out = stack.file(&format!("deploy/{target}"));
        let r = export(&stack, &[target, "-o", out.to_str().unwrap()]);
        assert_eq!(r.code(), 0, "{}", r.all());
        let got: BTreeMap<String, String> = files(&out)
            .into_iter()
            .map(|(k, v)| (k, portable(&v, &root)))
            .collect();
        let snap_dir = repo().join("tests/snapshots/export").join(target);
        if bless {
            let _ = std::fs::remove_dir_all(&snap_dir);
            std::fs::create_dir_all(&snap_dir).unwrap();
            for (name, text) in &got {
                std::fs::write(snap_dir.join(name), text).unwrap();
            }
            continue;
        }
        let want = files(&snap_dir);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{target}: the exported files differ from tests/snapshots/export/{target} (BLESS=1 rewrites it)"
        );
        for (name, text) in &want {
            assert_eq!(
                &got[name], text,
                "{target}/{name} differs from its snapshot (BLESS=1 rewrites it)"
            );
        }
    }
}

#[test]
fn demo_exports_pass_the_validators() {
    let stack = demo(None);
    let out = stack.file("deploy");
    let o = |t: &str| out.join(t).to_str().unwrap().to_string();
    for target in TARGETS {
        let dest = if target == "compose" {
            o("compose/compose.yaml")
        } else {
            o(target)
        };
        let r = export(&stack, &[target, "-o", &dest]);
        assert_eq!(r.code(), 0, "{}", r.all());
    }
    validate_compose(&out.join("compose/compose.yaml"));
    assert!(assert_healthy_conditions_have_healthchecks(&out.join("compose/compose.yaml")) > 0);
    validate_kubernetes(&out.join("kubernetes"));
    validate_systemd(&out.join("systemd"));
}

/// A stack with every feature: a oneshot, profiles, an env_file, all three
/// health kinds, max_memory, a venv service with a generated Dockerfile, a
/// published image, restart policies, a stop signal and sub-second timings.
fn full_stack() -> Stack {
    let stack = Stack::new(
        r#"
[project]
name = "full"

[[tier]]
name = "data"

[[tier]]
name = "apps"

[services.cache]
tier = "data"
command = "redis-server --port ${PORT} --save ''"
port = 16379
health = { exec = "redis-cli -p ${PORT} ping", interval = "500ms", retries = 5 }
max_memory = "256MiB"
stop_signal = "SIGINT"
stop_timeout = "3s"
container = { image = "redis:7" }

[services.migrate]
tier = "data"
dir = "api"
command = ["python3", "migrate.py"]
oneshot = true
depends_on = ["cache"]
env_file = "api/.env"
max_restarts = 2
container = { image = "python:3.12-slim" }

[services.api]
tier = "apps"
dir = "api"
setup = "venv"
command = "python3 -m http.server ${PORT}"
port = 18080
depends_on = ["cache", "migrate"]
env_file = "api/.env"
env = { CACHE_URL = "redis://${FPCTL_HOST_CACHE}:${FPCTL_PORT_CACHE}", OLD_URL = "redis://127.0.0.1:16379" }
health = { http = "/health", expect_json = { status = "ok" }, timeout = "2s", start_timeout = "90s" }
max_memory = "1GiB"
restart = "always"

[services.queue]
tier = "apps"
dir = "queue"
command = "python3 -m http.server ${PORT} --bind 127.0.0.1"
port = 18081
health = { tcp = true }
restart = "no"
profiles = ["jobs"]
container = { build = "queue", image = "example/queue:1" }
"#,
    );
    stack.write("api/.env", "API_TOKEN=s3cr3t-value\n");
    stack.write("api/migrate.py", "print('migrated')\n");
    stack.write("api/requirements.txt", "");
    stack.write("queue/Dockerfile", "FROM python:3.12-slim\n");
    stack
}

#[test]
fn a_stack_with_every_feature_exports_to_valid_files() {
    let stack = full_stack();
    let out = stack.file("deploy");
    let compose_file = out.join("compose/compose.yaml");
    let r = export(
        &stack,
        &[
            "compose",
            "--dockerfiles",
            "-o",
            compose_file.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code(), 0, "{}", r.all());
    // The literal loopback address of another service is pointed out.
    assert!(
        r.stderr()
            .contains("warning: api: env OLD_URL reaches cache at the literal 127.0.0.1:16379"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr()
            .contains("warning: queue: its command has the literal address 127.0.0.1"),
        "{}",
        r.all()
    );
    validate_compose(&compose_file);
    assert!(assert_healthy_conditions_have_healthchecks(&compose_file) > 0);
    let compose = std::fs::read_to_string(&compose_file).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&compose).unwrap();
    let svc = |n: &str| &doc["services"][n];
    assert_eq!(
        svc("api")["depends_on"]["cache"]["condition"],
        "service_healthy"
    );
    assert_eq!(
        svc("api")["depends_on"]["migrate"]["condition"],
        "service_completed_successfully"
    );
    assert_eq!(
        svc("api")["environment"]["CACHE_URL"],
        "redis://cache:16379"
    );
    assert_eq!(svc("api")["environment"]["FPCTL_HOST_CACHE"], "cache");
    assert_eq!(svc("api")["env_file"][0], "../../api/.env");
    assert_eq!(svc("api")["mem_limit"], 1u64 << 30);
    assert_eq!(svc("api")["restart"], "always");
    assert_eq!(
        svc("api")["build"]["dockerfile"],
        "../deploy/compose/api.Dockerfile"
    );
    assert_eq!(svc("api")["healthcheck"]["start_period"], "90s");
    assert_eq!(svc("cache")["healthcheck"]["test"][0], "CMD");
    assert_eq!(svc("cache")["healthcheck"]["interval"], "500ms");
    assert_eq!(svc("cache")["stop_signal"], "SIGINT");
    assert_eq!(svc("cache")["stop_grace_period"], "3s");
    assert_eq!(svc("queue")["profiles"][0], "jobs");
    assert_eq!(svc("queue")["restart"], "no");
    assert_eq!(svc("migrate")["restart"], "on-failure:2");
    assert!(out.join("compose/api.Dockerfile").is_file());
    // env_file values stay in their file.
    assert!(!compose.contains("s3cr3t"), "{compose}");
    // Ports are published on the host's loopback, as fpctl's services
    // listen; --publish-all publishes them on every interface.
    assert_eq!(svc("cache")["ports"][0], "127.0.0.1:16379:16379");
    assert_eq!(svc("api")["ports"][0], "127.0.0.1:18080:18080");
    let everywhere = out.join("compose-all/compose.yaml");
    let r = export(
        &stack,
        &[
            "compose",
            "--dockerfiles",
            "--publish-all",
            "-o",
            everywhere.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code(), 0, "{}", r.all());
    validate_compose(&everywhere);
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&everywhere).unwrap()).unwrap();
    assert_eq!(doc["services"]["cache"]["ports"][0], "16379:16379");
    let r = export(&stack, &["systemd", "--publish-all"]);
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(
        r.stderr()
            .contains("--publish-all is for `fpctl export compose`"),
        "{}",
        r.all()
    );

    let k8s = out.join("kubernetes");
    let r = export(
        &stack,
        &[
            "kubernetes",
            "--profile",
            "jobs",
            "--dockerfiles",
            "-o",
            k8s.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code(), 0, "{}", r.all());
    validate_kubernetes(&k8s);
    let all = files(&k8s);
    let docs = |f: &str| -> Vec<serde_yaml_ng::Value> {
        serde_yaml_ng::Deserializer::from_str(&all[f])
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect()
    };
    let api = docs("api.yaml");
    assert_eq!(api[0]["kind"], "Deployment");
    assert_eq!(api[1]["kind"], "Service");
    let pod = &api[0]["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["startupProbe"]["failureThreshold"], 90);
    assert_eq!(c["resources"]["limits"]["memory"], "1073741824");
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "api-env");
    let init: Vec<&str> = pod["initContainers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(init, ["wait-for-cache", "run-migrate"]);
    assert_eq!(docs("migrate.yaml")[0]["kind"], "Job");
    assert_eq!(docs("migrate.yaml")[0]["spec"]["backoffLimit"], 2);
    assert!(
        docs("cache.yaml")[0]["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["exec"]
            .is_mapping()
    );
    assert!(
        docs("queue.yaml")[0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
            ["tcpSocket"]
            .is_mapping()
    );
    // What the kustomization names is there: each resource, and each env
    // file its Secrets are generated from (relative to the kustomization).
    let kustomization: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&all["kustomization.yaml"]).unwrap();
    let resources = kustomization["resources"].as_sequence().unwrap();
    assert_eq!(resources.len(), 4, "{kustomization:?}");
    for r in resources {
        assert!(all.contains_key(r.as_str().unwrap()), "{r:?}");
    }
    let secrets = kustomization["secretGenerator"].as_sequence().unwrap();
    for s in secrets {
        let env = k8s.join(s["envs"][0].as_str().unwrap());
        assert_eq!(
            std::fs::canonicalize(env).unwrap(),
            stack.file("api/.env").canonicalize().unwrap()
        );
    }
    let names: Vec<&str> = secrets
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["migrate-env", "api-env"]);
    assert!(!all.values().any(|t| t.contains("s3cr3t")));

    let units = out.join("systemd");
    let r = export(
        &stack,
        &[
            "systemd",
            "--profile",
            "jobs",
            "-o",
            units.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code(), 0, "{}", r.all());
    validate_systemd(&units);
    let all = files(&units);
    let api = &all["fpctl-full-api.service"];
    for line in [
        "Requires=fpctl-full-cache.service fpctl-full-migrate.service",
        "After=fpctl-full-cache.service fpctl-full-migrate.service",
        "Restart=always",
        "StartLimitBurst=6",
        "KillMode=control-group",
        "MemoryMax=1073741824",
        "ExecStart=/usr/bin/env python3 -m http.server 18080",
        "Environment=\"CACHE_URL=redis://127.0.0.1:16379\"",
    ] {
        assert!(api.lines().any(|l| l == line), "no {line:?} in\n{api}");
    }
    assert!(api.contains(&format!(
        "EnvironmentFile={}",
        stack.path().join("api/.env").display()
    )));
    assert!(api.contains("ExecStartPre=/bin/sh -c \"python3 -m venv .venv"));
    assert!(api.contains(" probe api --wait=90s"), "{api}");
    let cache = &all["fpctl-full-cache.service"];
    assert!(cache.contains("KillSignal=SIGINT") && cache.contains("TimeoutStopSec=3s"));
    assert!(all["fpctl-full-migrate.service"].contains("Type=oneshot"));
    assert!(all["fpctl-full-queue.service"].contains("Restart=no"));
    assert!(all["fpctl-full.target"].contains("Wants=fpctl-full-cache.service"));
    assert!(!all.values().any(|t| t.contains("s3cr3t")));
}

#[test]
fn a_service_without_an_image_is_an_error_naming_it() {
    let stack = Stack::new(
        r#"
[services.web]
dir = "web"
setup = "npm"
command = "node server.js"
port = 3000
"#,
    );
    stack.write("web/server.js", "");
    let out = stack.file("deploy");
    for target in ["compose", "kubernetes"] {
        let r = export(&stack, &[target, "-o", out.to_str().unwrap()]);
        assert_eq!(r.code(), 2, "{}", r.all());
        let err = r.stderr();
        assert!(
            err.contains("service \"web\" has no container image"),
            "{err}"
        );
        assert!(err.contains("[services.web.container]"), "{err}");
        assert!(err.contains("put a Dockerfile in web"), "{err}");
        assert!(err.contains("--dockerfiles"), "{err}");
        assert!(r.stdout().is_empty());
        assert!(!out.exists(), "nothing is written on error");
    }
    // systemd runs the command itself and needs no image.
    let r = export(&stack, &["systemd", "-o", out.to_str().unwrap()]);
    assert_eq!(r.code(), 0, "{}", r.all());
}

/// One unit file's `[Service]` settings, in order (repeatable keys repeat).
pub fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// A unit's `Environment=` lines as (name, value) pairs, unquoted.
pub fn unit_env(settings: &[(String, String)]) -> Vec<(String, String)> {
    settings
        .iter()
        .filter(|(k, _)| k == "Environment")
        .map(|(_, v)| {
            let kv = exec_words(v).remove(0);
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// An Exec*= line as argv: systemd's quoting, with `$$` and `%%` undone.
pub fn exec_words(line: &str) -> Vec<String> {
    shell_words_split(line)
        .into_iter()
        .map(|w| w.replace("$$", "$").replace("%%", "%"))
        .collect()
}

/// Double-quoted words with backslash escapes, as the export writes them.
fn shell_words_split(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => cur.push(chars.next().unwrap()),
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// systemd cannot run user units in this container (it is not PID 1, and
/// there is no user manager), so the exported units of the demo are run the
/// way systemd would: in the order their After= lines give, each with its
/// WorkingDirectory and Environment, ExecStart in its own process group, and
/// ExecStartPost (`fpctl probe --wait`) passing before the next unit starts.
/// The demo's services refuse to start unless their dependencies answer.
#[test]
fn exported_systemd_units_of_the_demo_start_in_order_and_answer() {
    let ports = free_ports(3);
    let stack = demo(Some(&ports));
    let out = stack.file("units");
    let r = export(&stack, &["systemd", "-o", out.to_str().unwrap()]);
    assert_eq!(r.code(), 0, "{}", r.all());
    let units: BTreeMap<String, Vec<(String, String)>> = files(&out)
        .into_iter()
        .filter(|(n, _)| n.ends_with(".service"))
        .map(|(n, t)| (n, unit_settings(&t)))
        .collect();
    // Order: a unit starts once every unit it is After= has.
    let mut order: Vec<String> = Vec::new();
    while order.len() < units.len() {
        let next = units
            .iter()
            .find(|(n, s)| {
                !order.contains(n)
                    && s.iter()
                        .filter(|(k, _)| k == "After")
                        .flat_map(|(_, v)| v.split(' '))
                        .all(|dep| order.iter().any(|o| o == dep))
            })
            .map(|(n, _)| n.clone())
            .expect("the After= lines form no cycle");
        order.push(next);
    }
    let short: Vec<&str> = order
        .iter()
        .map(|n| {
            n.trim_start_matches("fpctl-fpctl-demo-")
                .trim_end_matches(".service")
        })
        .collect();
    let pos = |n: &str| short.iter().position(|s| *s == n).unwrap();
    assert!(pos("registry") < pos("orchestrator") && pos("orchestrator") < pos("hub"));
    assert!(pos("migrate") < pos("hub"), "{short:?}");

    let mut guard = Guard(Vec::new());
    for name in &order {
        let s = &units[name];
        let get = |key: &'static str| {
            s.iter()
                .filter(move |(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let dir = PathBuf::from(get("WorkingDirectory").next().unwrap());
        let env = unit_env(s);
        let command = |line: &str| {
            let words = exec_words(line);
            let mut c = Command::new(&words[0]);
            c.args(&words[1..])
                .current_dir(&dir)
                .envs(env.iter().cloned())
                .stdin(Stdio::null());
            c
        };
        for pre in get("ExecStartPre") {
            assert!(command(pre).status().unwrap().success(), "{name}: {pre}");
        }
        let start = get("ExecStart").next().unwrap();
        let mut c = command(start);
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let mut child = c.stdout(Stdio::null()).spawn().unwrap();
        if get("Type").next() == Some("oneshot") {
            assert!(child.wait().unwrap().success(), "{name} failed");
        } else {
            guard.0.push(child);
        }
        for post in get("ExecStartPost") {
            let o = command(post).output().unwrap();
            assert!(
                o.status.success(),
                "{name}: {post} failed:\n{}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
    }
    // Every service answers, hub last in the chain.
    for (i, port) in ports.iter().enumerate() {
        let r = stack.run(&["probe", ["registry", "orchestrator", "hub"][i]]);
        assert_eq!(r.code(), 0, "port {port}: {}", r.all());
        assert!(r.stdout().contains("healthy"), "{}", r.all());
    }
}

/// Processes a test started, each leading its own process group: the
/// groups are killed and the leaders reaped when the test ends.
struct Guard(Vec<std::process::Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // SAFETY: kill(2) on a process group this test created.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

#[test]
fn probe_reports_health_and_waits_for_it() {
    let port = free_ports(1)[0];
    let stack = Stack::new(&crate::common::http_service("web", port, "", ""));
    let r = stack.run(&["probe", "web"]);
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(r.stdout().starts_with("web: down"), "{}", r.all());
    // Started by hand half a second from now: --wait sees it come up.
    let mut c = Command::new("python3");
    c.args([
        &httpd(),
        "--port",
        &port.to_string(),
        "--ready-after",
        "0.5",
    ]);
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    let child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Guard(vec![child]);
    let r = stack.run(&["probe", "web", "--wait=20s"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(r.stdout().starts_with("web: healthy"), "{}", r.all());
    let r = stack.run(&["probe", "nope"]);
    assert_eq!(r.code(), 2, "{}", r.all());
}

#[test]
fn probe_of_a_service_with_nothing_to_probe_is_a_usage_error() {
    let stack = Stack::new("[services.task]\ncommand = \"true\"\noneshot = true\n");
    let r = stack.run(&["probe", "task"]);
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(
        r.stderr().contains("neither a health check nor a port"),
        "{}",
        r.all()
    );
}

#[test]
fn an_env_file_value_expanded_into_the_env_table_is_warned_about() {
    let stack = Stack::new(
        r#"
[services.app]
command = "python3 -c pass"
env_file = ".env"
env = { URL = "http://user:${API_TOKEN}@db", MY_KEY = "abcdef" }
container = { image = "python:3.12-slim" }
"#,
    );
    stack.write(".env", "API_TOKEN=s3cr3t-value\n");
    let r = export(&stack, &["compose"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(
        r.stderr()
            .contains("warning: app: env URL holds a value from its env_file"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout().contains("#   - app: env URL holds a value"),
        "{}",
        r.all()
    );
    // A secret-looking name in the env table is its own value, not a leak.
    assert!(!r.stderr().contains("env MY_KEY"), "{}", r.all());
}

#[test]
fn fpctl_host_is_the_loopback_under_fpctl_and_the_service_name_in_exports() {
    let stack = Stack::new(
        r#"
[services.db_main]
command = "true"
port = 15432
disabled = true

[services.task]
command = "echo \"$FPCTL_HOST_DB_MAIN:$FPCTL_PORT_DB_MAIN $URL\" > seen.txt"
shell = true
oneshot = true
env = { URL = "postgres://${FPCTL_HOST_DB_MAIN}:${FPCTL_PORT_DB_MAIN}/app" }
container = { image = "alpine:3" }
"#,
    );
    let r = stack.run(&["start", "task"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    let seen = std::fs::read_to_string(stack.file("seen.txt")).unwrap();
    assert_eq!(
        seen.trim(),
        "127.0.0.1:15432 postgres://127.0.0.1:15432/app"
    );
    let r = export(&stack, &["compose", "task"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    // In compose a service is reached by its (host-safe) name.
    assert!(
        r.stdout().contains("URL: postgres://db-main:15432/app"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout().contains("FPCTL_HOST_DB_MAIN: db-main"),
        "{}",
        r.all()
    );
}

/// A log health check reads fpctl's log file, which compose has no
/// equivalent of, so the service gets no healthcheck; its dependents (named
/// in `depends_on`, or of a later tier) then wait for it to start, since
/// compose refuses to wait for the health of a service without one.
#[test]
fn compose_waits_only_for_a_log_checked_dependency_to_start() {
    let ports = free_ports(2);
    let stack = Stack::new(&format!(
        r#"
[[tier]]
name = "back"

[[tier]]
name = "front"

[services.worker]
tier = "back"
command = "python3 worker.py"
health = {{ log = "ready" }}
container = {{ image = "python:3-slim" }}

[services.db]
tier = "back"
command = "python3 -m http.server ${{PORT}}"
port = {db}
health = {{ http = "/" }}
container = {{ image = "python:3-slim" }}

[services.api]
tier = "front"
command = "python3 -m http.server ${{PORT}}"
port = {api}
depends_on = ["worker"]
container = {{ image = "python:3-slim" }}

[services.web]
tier = "front"
command = "python3 web.py"
container = {{ image = "python:3-slim" }}
"#,
        db = ports[0],
        api = ports[1],
    ));
    let file = stack.file("deploy/compose.yaml");
    let r = export(&stack, &["compose", "-o", file.to_str().unwrap()]);
    assert_eq!(r.code(), 0, "{}", r.all());
    validate_compose(&file);
    assert_eq!(assert_healthy_conditions_have_healthchecks(&file), 2);
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let condition = |svc: &str, dep: &str| {
        doc["services"][svc]["depends_on"][dep]["condition"]
            .as_str()
            .unwrap_or_else(|| panic!("{svc} does not wait for {dep}: {doc:?}"))
            .to_string()
    };
    assert!(doc["services"]["worker"]["healthcheck"].is_null());
    // Named in depends_on, and through the tier order.
    assert_eq!(condition("api", "worker"), "service_started");
    assert_eq!(condition("web", "worker"), "service_started");
    // A dependency that has a healthcheck is still waited for healthy.
    assert_eq!(condition("api", "db"), "service_healthy");
    assert_eq!(condition("web", "db"), "service_healthy");
    assert!(
        r.stderr()
            .contains("api: it waits only for worker to start, not to be ready"),
        "{}",
        r.all()
    );
}

#[test]
fn scheduled_jobs_export_to_timers_and_cronjobs_that_pass_the_validators() {
    let stack = Stack::new(
        r#"
[project]
name = "jobs"

[services.backup]
oneshot = true
command = "sh -c 'echo backup'"
container = { image = "busybox:1.36" }
schedule = { cron = "30 2 1 * mon-fri", timezone = "Europe/Berlin", catch_up = true }

[services.sweep]
oneshot = true
command = "true"
container = { image = "busybox:1.36" }
schedule = { every = "45m", concurrency = "queue" }

[services.tick]
oneshot = true
command = "true"
container = { image = "busybox:1.36" }
schedule = { cron = "*/10 * * * * *", run_on_start = true }
"#,
    );
    let out = stack.file("deploy");
    let o = |t: &str| out.join(t).to_str().unwrap().to_string();
    for target in TARGETS {
        let dest = if target == "compose" {
            o("compose/compose.yaml")
        } else {
            o(target)
        };
        let r = export(&stack, &[target, "-o", &dest]);
        assert_eq!(r.code(), 0, "{}", r.all());
    }
    validate_kubernetes(&out.join("kubernetes"));
    validate_systemd(&out.join("systemd"));
    validate_compose(&out.join("compose/compose.yaml"));

    // systemd: a timer per job, wanted by the target in the job's place.
    let units = files(&out.join("systemd"));
    let timer = unit_settings(&units["fpctl-jobs-backup.timer"]);
    let values = |key: &str| -> Vec<String> {
        timer
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    };
    // Cron runs on the 1st or on a weekday: two calendars, in the zone.
    assert_eq!(
        values("OnCalendar"),
        [
            "*-*-01 02:30:00 Europe/Berlin",
            "Mon,Tue,Wed,Thu,Fri *-*-* 02:30:00 Europe/Berlin"
        ]
    );
    assert_eq!(values("Persistent"), ["true"]);
    assert_eq!(values("Unit"), ["fpctl-jobs-backup.service"]);
    let sweep = unit_settings(&units["fpctl-jobs-sweep.timer"]);
    assert!(
        sweep.contains(&("OnUnitActiveSec".into(), "45min".into())),
        "{sweep:?}"
    );
    assert!(units["fpctl-jobs-sweep.timer"].contains("concurrency = \"queue\""));
    let tick = unit_settings(&units["fpctl-jobs-tick.timer"]);
    assert!(
        tick.contains(&("OnCalendar".into(), "*-*-* *:*:00/10".into())),
        "{tick:?}"
    );
    assert!(
        tick.contains(&("OnActiveSec".into(), "0".into())),
        "{tick:?}"
    );
    let target = unit_settings(&units["fpctl-jobs.target"]);
    let wants = &target.iter().find(|(k, _)| k == "Wants").unwrap().1;
    assert!(wants.contains("fpctl-jobs-backup.timer") && !wants.contains("backup.service"));
    // The job's own unit goes inactive after a run, so the timer can start it again.
    let service = unit_settings(&units["fpctl-jobs-backup.service"]);
    assert!(
        !service.iter().any(|(k, _)| k == "RemainAfterExit"),
        "{service:?}"
    );

    // Kubernetes: CronJobs.
    let k8s = files(&out.join("kubernetes"));
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(k8s["backup.yaml"].split("\n---\n").next().unwrap()).unwrap();
    assert_eq!(doc["kind"], "CronJob");
    assert_eq!(doc["spec"]["schedule"], "30 2 1 * mon-fri");
    assert_eq!(doc["spec"]["timeZone"], "Europe/Berlin");
    assert_eq!(doc["spec"]["concurrencyPolicy"], "Forbid");
    let sweep: serde_yaml_ng::Value = serde_yaml_ng::from_str(&k8s["sweep.yaml"]).unwrap();
    // 45 minutes has no even cron form: the nearest, with a note.
    assert_eq!(sweep["spec"]["schedule"], "*/30 * * * *");
    assert!(
        k8s["sweep.yaml"].contains("every 45m has no cron form"),
        "{}",
        k8s["sweep.yaml"]
    );
    let tick: serde_yaml_ng::Value = serde_yaml_ng::from_str(&k8s["tick.yaml"]).unwrap();
    assert_eq!(tick["spec"]["schedule"], "* * * * *");
    assert!(k8s["tick.yaml"].contains("Kubernetes schedules by the minute"));

    // Compose: the job runs once, and a comment says it has no schedule.
    let compose = std::fs::read_to_string(out.join("compose/compose.yaml")).unwrap();
    assert!(compose.contains("compose has no equivalent"), "{compose}");
}

/// `success_exit_codes`: systemd adds the codes to its own 0
/// (`SuccessExitStatus=`); compose and Kubernetes know only 0, and say so
/// in a note. A disabled service needed by an exported one is exported
/// with it, as `fpctl start` starts it on demand; one nothing needs is left
/// out. Every file still passes its validator.
#[test]
fn success_exit_codes_and_disabled_dependencies_export_to_valid_files() {
    let stack = Stack::new(
        r#"
[project]
name = "codes"

[services.migrate]
command = "python3 migrate.py"
oneshot = true
success_exit_codes = [0, 3]
container = { image = "python:3-slim" }

[services.db]
command = "python3 -m http.server ${PORT} --bind 0.0.0.0"
port = 15433
disabled = true
container = { image = "python:3-slim" }

[services.tool]
command = "python3 -m http.server ${PORT} --bind 0.0.0.0"
port = 15434
disabled = true
container = { image = "python:3-slim" }

[services.worker]
command = "python3 worker.py"
depends_on = ["migrate", "db"]
success_exit_codes = [0, 3, 75]
container = { image = "python:3-slim" }
"#,
    );
    let out = stack.file("deploy");
    // systemd
    let dir = out.join("systemd");
    let r = export(&stack, &["systemd", "-o", dir.to_str().unwrap()]);
    assert_eq!(r.code(), 0, "{}", r.all());
    validate_systemd(&dir);
    let all = files(&dir);
    assert!(
        all["fpctl-codes-migrate.service"].contains("\nSuccessExitStatus=3\n"),
        "{all:?}"
    );
    assert!(
        all["fpctl-codes-worker.service"].contains("\nSuccessExitStatus=3 75\n"),
        "{all:?}"
    );
    assert!(all.contains_key("fpctl-codes-db.service"), "{all:?}");
    assert!(!all.contains_key("fpctl-codes-tool.service"), "{all:?}");
    assert!(
        all["fpctl-codes-worker.service"]
            .contains("Requires=fpctl-codes-migrate.service fpctl-codes-db.service")
            || all["fpctl-codes-worker.service"]
                .contains("Requires=fpctl-codes-db.service fpctl-codes-migrate.service"),
        "{}",
        all["fpctl-codes-worker.service"]
    );
    // compose
    let compose_file = out.join("compose.yaml");
    let r = export(&stack, &["compose", "-o", compose_file.to_str().unwrap()]);
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(
        r.stderr().contains("warning: migrate: success_exit_codes [0, 3]: compose counts only exit code 0 as success"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr().contains("warning: worker: success_exit_codes [0, 3, 75]: compose counts only exit code 0 as success, so restart: on-failure restarts it after them"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr().contains("tool: left out: it is disabled"),
        "{}",
        r.all()
    );
    validate_compose(&compose_file);
    let text = std::fs::read_to_string(&compose_file).unwrap();
    assert!(
        text.contains("success_exit_codes [0, 3]"),
        "the note is in the file:\n{text}"
    );
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    assert!(doc["services"]["db"].is_mapping(), "{text}");
    assert!(doc["services"]["tool"].is_null(), "{text}");
    assert!(
        doc["services"]["worker"]["depends_on"]["db"].is_mapping(),
        "{text}"
    );
    // Kubernetes
    let dir = out.join("k8s");
    let r = export(&stack, &["kubernetes", "-o", dir.to_str().unwrap()]);
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(
        r.stderr().contains("warning: migrate: success_exit_codes [0, 3]: Kubernetes counts only exit code 0 as success, so its Job fails and is retried after them"),
        "{}",
        r.all()
    );
    validate_kubernetes(&dir);
}

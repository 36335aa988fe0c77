//! Container services against the real Docker engine: run, crash and
//! restart, stop, re-adoption after a supervisor's `kill -9`, a missing
//! image, `--init`, a build cut short, `start --containers`, and mixed
//! stacks. They need a running engine and the local test image that
//! `../shared/setup/containers.sh` makes; without them they fail, never skip.
//!
//! Every container a test may leave is found by its project's label (the
//! marker of the test's own temp folder) or by a token of its own, and
//! removed by id when the test ends.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

/// The image `../shared/setup/containers.sh` builds from Debian's busybox-static.
pub const IMAGE: &str = "localhost/fpctl-test:busybox";

/// The engine's client, failing the test loudly when there is no engine or
/// no test image.
pub fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run docker ({e}): run ../shared/setup/containers.sh first")
        })
}

pub fn require_engine() {
    let info = docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE]);
    assert!(
        info.status.success(),
        "the Docker engine or the test image {IMAGE} is missing: run `bash ../shared/setup/containers.sh` (as root) first\n{}",
        String::from_utf8_lossy(&info.stderr)
    );
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The project marker of a test's stack: its containers' `fpctl.project`.
pub fn project(stack: &Stack) -> String {
    let root = std::fs::canonicalize(stack.path()).unwrap();
    fpctl::config::project_marker(&root)
}

/// Ids of the stack's containers, running or not.
pub fn containers_of(stack: &Stack) -> Vec<String> {
    let filter = format!("label=fpctl.project={}", project(stack));
    let out = docker(&["ps", "-aq", "--no-trunc", "--filter", &filter]);
    text(&out).lines().map(str::to_string).collect()
}

/// The id of a service's running container.
fn container_id(stack: &Stack, service: &str) -> Option<String> {
    let name = format!("fpctl-{}-{service}", project(stack));
    let out = docker(&["inspect", "--format", "{{.Id}}", &name]);
    out.status.success().then(|| text(&out))
}

/// Removes, when the test ends, every container of the stack that fpctl
/// left (a test that fails before its stop), by id.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label=fpctl.project={}", self.0);
        let out = docker(&["ps", "-aq", "--filter", &filter]);
        let ids: Vec<String> = text(&out).lines().map(str::to_string).collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            docker(&args);
        }
    }
}

/// A stack, checked for the engine first; its containers are removed at the
/// end whatever happens.
fn stack(toml: &str) -> (Stack, Cleanup) {
    require_engine();
    let s = Stack::new(toml);
    let c = Cleanup(project(&s));
    (s, c)
}

fn web(name: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
[services.{name}]
port = {port}
health = {{ http = "/health" }}
{extra}
[services.{name}.container]
image = "{IMAGE}"
args = ["httpd", "-f", "-p", "8080", "-h", "/www"]
container_port = 8080
"#
    )
}

#[test]
fn a_container_only_service_runs_is_probed_on_its_published_port_and_stop_leaves_no_container() {
    let port = free_port();
    let (s, _c) = stack(&web("web", port, ""));
    s.run(&["start"]).expect(0);
    assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
    assert_eq!(s.state_of("web"), "online");
    let id = container_id(&s, "web").expect("its container runs");
    assert_eq!(containers_of(&s), vec![id.clone()]);
    // check names its image and container, with the engine's id.
    wait_until(
        "check shows the container's id",
        Duration::from_secs(20),
        || s.service("web")["container"]["id"] == id.as_str(),
    );
    let web = s.service("web");
    assert_eq!(web["container"]["image"], IMAGE, "{web}");
    assert_eq!(
        web["container"]["name"],
        format!("fpctl-{}-web", project(&s)),
        "{web}"
    );
    // The labels and the settings hash a later supervisor recognises.
    let labels = text(&docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"fpctl.service\"}} {{index .Config.Labels \"fpctl.hash\"}}",
        &id,
    ]));
    let (service, hash) = labels.split_once(' ').unwrap();
    assert_eq!(service, "web");
    assert_eq!(hash.len(), 16, "{labels}");
    // Its output is the service's log; its image and container in the events.
    let events = s.run(&["events", "--json"]).expect(0).stdout();
    assert!(
        events.contains(IMAGE) && events.contains(&format!("fpctl-{}-web", project(&s))),
        "{events}"
    );
    s.run(&["stop"]).expect(0);
    assert!(
        containers_of(&s).is_empty(),
        "stop left containers: {:?}",
        containers_of(&s)
    );
}

#[test]
fn a_mixed_stack_starts_in_tier_order_and_each_side_reaches_the_other() {
    let [db, api, edge] = [free_port(), free_port(), free_port()];
    let toml = format!(
        r#"
{db_svc}
[services.api]
command = "python3 {httpd} --port ${{PORT}} --name api --bind 0.0.0.0 --needs http://${{FPCTL_HOST_DB}}:${{FPCTL_PORT_DB}}/health"
port = {api}
health = {{ http = "/health" }}
depends_on = ["db"]

[services.edge]
port = {edge}
health = {{ http = "/health" }}
depends_on = ["api"]
[services.edge.container]
image = "{IMAGE}"
args = ["sh", "-c", "wget -qO- http://$FPCTL_HOST_API:$FPCTL_PORT_API/health && echo reached api && exec httpd -f -p 8080 -h /www"]
container_port = 8080
"#,
        db_svc = web("db", db, ""),
        httpd = httpd(),
    );
    let (s, _c) = stack(&toml);
    s.run(&["start"]).expect(0);
    for name in ["db", "api", "edge"] {
        assert_eq!(s.state_of(name), "online", "{name}");
    }
    assert!(s.log("edge").contains("reached api"), "{}", s.log("edge"));
    // Tier order: each spawned only once the one it depends on was online.
    let events = s.run(&["events", "--json"]).expect(0).stdout();
    let at = |service: &str, kind: &str| -> f64 {
        events
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["service"] == service && e["kind"] == kind)
            .and_then(|e| e["ts"].as_f64())
            .unwrap_or_else(|| panic!("no {kind} event of {service}:\n{events}"))
    };
    assert!(at("db", "online") <= at("api", "spawned"), "{events}");
    assert!(at("api", "online") <= at("edge", "spawned"), "{events}");
    s.run(&["stop"]).expect(0);
    assert!(containers_of(&s).is_empty());
}

#[test]
fn a_container_that_exits_is_a_crash_under_the_restart_policy() {
    let (s, _c) = stack(&format!(
        r#"
[services.flaky]
restart = "on-failure"
max_restarts = 5
[services.flaky.container]
image = "{IMAGE}"
args = ["sh", "-c", "echo run; sleep 1; exit 3"]
"#
    ));
    s.run(&["start"]).expect(0);
    wait_until("flaky restarted", Duration::from_secs(60), || {
        s.service("flaky")["restarts"].as_u64().unwrap_or(0) >= 1
    });
    wait_until("a second run logged", Duration::from_secs(30), || {
        count_lines(&s.log("flaky"), "run") >= 2
    });
    assert!(s.log("flaky").contains("exited with code 3") || s.log("flaky").contains("code 3"));
    s.run(&["stop"]).expect(0);
    assert!(containers_of(&s).is_empty());
}

#[test]
fn after_a_supervisor_kill_9_start_adopts_the_running_container_without_a_duplicate() {
    let port = free_port();
    let (s, _c) = stack(&web("web", port, ""));
    s.run(&["start"]).expect(0);
    let before = container_id(&s, "web").expect("running");
    let sup = s.supervisor_pid().expect("supervisor");
    // SAFETY: kill(2) of the pid fpctl recorded for its supervisor.
    unsafe { libc::kill(sup, libc::SIGKILL) };
    wait_until("the supervisor is gone", Duration::from_secs(10), || {
        !pid_alive(sup)
    });
    // Still serving while no supervisor runs.
    assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("web"), "online");
    assert_eq!(container_id(&s, "web"), Some(before.clone()), "not adopted");
    assert_eq!(containers_of(&s), vec![before], "a duplicate");
    // And `stop` after another kill -9 leaves no container either.
    let sup = s.supervisor_pid().expect("supervisor");
    // SAFETY: kill(2) of the pid fpctl recorded for its supervisor.
    unsafe { libc::kill(sup, libc::SIGKILL) };
    wait_until("the supervisor is gone", Duration::from_secs(10), || {
        !pid_alive(sup)
    });
    s.run(&["stop"]).expect(0);
    assert!(
        containers_of(&s).is_empty(),
        "stop after kill -9 left {:?}",
        containers_of(&s)
    );
}

#[test]
fn a_leftover_container_with_other_settings_is_removed_before_a_start() {
    let port = free_port();
    let (s, _c) = stack(&web("web", port, ""));
    s.run(&["start"]).expect(0);
    let before = container_id(&s, "web").expect("running");
    let sup = s.supervisor_pid().expect("supervisor");
    // SAFETY: kill(2) of the pid fpctl recorded for its supervisor.
    unsafe { libc::kill(sup, libc::SIGKILL) };
    wait_until("the supervisor is gone", Duration::from_secs(10), || {
        !pid_alive(sup)
    });
    // Other settings: the old container is no copy of the new one.
    s.write(
        "services.toml",
        &web("web", port, "env = { CHANGED = \"1\" }"),
    );
    s.run(&["start"]).expect(0);
    let after = container_id(&s, "web").expect("running");
    assert_ne!(after, before);
    assert_eq!(containers_of(&s), vec![after]);
    assert!(
        s.log("web").contains("left by an earlier run"),
        "{}",
        s.log("web")
    );
}

#[test]
fn a_missing_image_is_a_clear_error_and_its_dependents_are_blocked() {
    let (s, _c) = stack(
        r#"
[services.db]
[services.db.container]
image = "localhost/fpctl-test:no-such-image"

[services.app]
command = "sleep 100"
depends_on = ["db"]
"#,
    );
    let r = s.run(&["start"]);
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        r.all().contains("localhost/fpctl-test:no-such-image"),
        "{}",
        r.all()
    );
    let db = s.service("db");
    assert_eq!(db["state"], "failed");
    assert!(
        db["detail"]
            .as_str()
            .unwrap()
            .contains("image \"localhost/fpctl-test:no-such-image\" is not on this machine"),
        "{db}"
    );
    let app = s.service("app");
    assert_eq!(app["state"], "blocked");
    assert!(app["detail"].as_str().unwrap().contains("\"db\""), "{app}");
    assert!(containers_of(&s).is_empty());
}

#[test]
fn an_image_whose_pid_1_ignores_sigterm_stops_fast_thanks_to_init() {
    // busybox httpd as PID 1 ignores SIGTERM; the init fpctl adds does not.
    let port = free_port();
    let (s, _c) = stack(&web("web", port, "stop_timeout = \"20s\""));
    s.run(&["start"]).expect(0);
    let begun = Instant::now();
    s.run(&["stop"]).expect(0);
    let took = begun.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "stop took {took:?}: the stop signal did not reach the program"
    );
    assert!(containers_of(&s).is_empty());
}

/// A build folder whose Dockerfile starts from the test image.
fn build_dir(s: &Stack, dir: &str, extra: &str) {
    s.write(
        &format!("{dir}/Dockerfile"),
        &format!(
            "FROM {IMAGE}\n{extra}CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
        ),
    );
}

#[test]
fn an_entrypoint_replaces_the_images_own_here_and_in_the_exports() {
    let port = free_port();
    let toml = format!(
        r#"
[services.web]
port = {port}
health = {{ http = "/health" }}
[services.web.container]
build = "web"
entrypoint = ["httpd", "-f"]
args = ["-p", "8080", "-h", "/www"]
container_port = 8080
"#
    );
    let (s, _c) = stack(&toml);
    // The image's own ENTRYPOINT fails at once: only a replaced one serves.
    build_dir(&s, "web", "ENTRYPOINT [\"false\"]\n");
    s.run(&["start"]).expect(0);
    assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
    let id = container_id(&s, "web").expect("running");
    let ran = text(&docker(&[
        "inspect",
        "--format",
        "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
        &id,
    ]));
    assert_eq!(ran, r#"["httpd"] ["-f","-p","8080","-h","/www"]"#);
    // Its `spawned` event names what the container runs.
    let events = s.run(&["events", "web", "--json"]).expect(0).stdout();
    assert!(
        events.contains("\"command\":\"httpd -f -p 8080 -h /www\""),
        "{events}"
    );
    s.run(&["stop"]).expect(0);

    let compose = s.run(&["export", "compose"]).expect(0).stdout();
    assert!(
        compose.contains("entrypoint:\n    - httpd\n    - -f\n    command:\n    - -p"),
        "{compose}"
    );
    let k8s = s.run(&["export", "kubernetes"]).expect(0).stdout();
    assert!(
        k8s.contains("command:\n        - httpd\n        - -f\n        args:\n        - -p"),
        "{k8s}"
    );
}

/// systemd cannot run units here (it is not PID 1), so the exported unit
/// of a container service is checked by `systemd-analyze verify` and then
/// run line by line, as systemd would: ExecStartPre, ExecStart, the health
/// gate of ExecStartPost, and ExecStop, which must leave no container.
#[test]
fn the_systemd_unit_of_a_container_service_runs_it_and_its_stop_removes_it() {
    use crate::export::{exec_words, files, unit_env, unit_settings, validate_systemd};
    let port = free_port();
    let (s, _c) = stack(&web("web", port, "env = { GREETING = \"hi there\" }"));
    let out = s.file("units");
    s.run(&["export", "systemd", "-o", out.to_str().unwrap()])
        .expect(0);
    validate_systemd(&out);
    let unit = files(&out)
        .into_iter()
        .find(|(n, _)| n.ends_with("-web.service"))
        .map(|(_, t)| unit_settings(&t))
        .expect("a unit for web");
    let get = |key: &str| -> Vec<String> {
        let found = unit.iter().filter(|(k, _)| k == key);
        found.map(|(_, v)| v.clone()).collect()
    };
    let env = unit_env(&unit);
    assert!(
        env.iter().any(|(k, v)| k == "GREETING" && v == "hi there"),
        "{env:?}"
    );
    let command = |line: &str| {
        // `-`: a failure of that line is no failure of the unit.
        let words = exec_words(line.trim_start_matches('-'));
        let mut c = Command::new(&words[0]);
        c.args(&words[1..])
            .current_dir(s.path())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().cloned())
            .stdin(std::process::Stdio::null());
        c
    };
    for pre in get("ExecStartPre") {
        let ok = command(&pre).status().unwrap().success();
        assert!(ok || pre.starts_with('-'), "{pre}");
    }
    let start = get("ExecStart").remove(0);
    assert!(start.contains(" run ") && start.contains(IMAGE), "{start}");
    // Published here and on the bridge's gateway, for the other containers.
    assert!(
        start.contains(&format!(" -p 127.0.0.1:{port}:8080 ")),
        "{start}"
    );
    assert_eq!(start.matches(" -p ").count(), 2, "{start}");
    let mut client = command(&start)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for post in get("ExecStartPost") {
        let o = command(&post).output().unwrap();
        assert!(
            o.status.success(),
            "{post}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
    // The variables reached the container by name.
    let name = format!("fpctl-{}-web", project(&s));
    let seen = text(&docker(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo $GREETING:$PORT",
    ]));
    assert_eq!(seen, "hi there:8080");
    for stop in get("ExecStop") {
        assert!(command(&stop).status().unwrap().success(), "{stop}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the client outlived ExecStop");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(containers_of(&s).is_empty(), "{:?}", containers_of(&s));
}

#[test]
fn start_containers_builds_and_runs_every_service_that_has_a_container_table() {
    let [a, b] = [free_port(), free_port()];
    let toml = format!(
        r#"
[services.api]
command = "python3 {httpd} --port ${{PORT}} --name api"
port = {a}
health = {{ http = "/health" }}
[services.api.container]
build = "api"
args = []
container_port = 8080

[services.worker]
command = "python3 {httpd} --port ${{PORT}} --name worker"
port = {b}
health = {{ http = "/health" }}
depends_on = ["api"]
[services.worker.container]
build = "worker"
args = ["httpd", "-f", "-p", "8080", "-h", "/www"]
container_port = 8080
"#,
        httpd = httpd()
    );
    let (s, _c) = stack(&toml);
    build_dir(&s, "api", "");
    build_dir(&s, "worker", "RUN echo built > /www/built\n");
    s.run(&["start", "--containers"]).expect(0);
    for name in ["api", "worker"] {
        assert_eq!(s.state_of(name), "online", "{name}");
        assert!(container_id(&s, name).is_some(), "{name} runs natively");
    }
    assert_eq!(http_get(b, "/built").map(|r| r.0), Some(200));
    // The build is a setup step, in the service's log.
    assert!(s.log("worker").contains("build"), "{}", s.log("worker"));
    s.run(&["stop"]).expect(0);
    assert!(containers_of(&s).is_empty());
    // The next plain start runs them natively again.
    s.run(&["start"]).expect(0);
    assert!(containers_of(&s).is_empty());
    assert_eq!(s.state_of("api"), "online");
}

#[test]
fn ctrl_c_during_a_build_leaves_no_container() {
    require_engine();
    let token = format!("fpctl-build-{}", free_port());
    let port = free_port();
    let toml = format!(
        r#"
[services.slow]
port = {port}
health = {{ http = "/health" }}
[services.slow.container]
build = "slow"
container_port = 8080
"#
    );
    let (s, _c) = stack(&toml);
    build_dir(&s, "slow", &format!("RUN echo {token} && sleep 120\n"));
    let mut up = s.cmd(&["up"]);
    up.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = up.spawn().unwrap();
    wait_until(
        "the build runs its slow step",
        Duration::from_secs(60),
        || s.log("slow").contains(&token),
    );
    // SAFETY: kill(2) of the child this test spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let begun = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(30),
            "fpctl up did not end after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The step's container (the classic builder's) goes with the build.
    let with_token = || {
        let out = docker(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}"]);
        text(&out)
            .lines()
            .filter(|l| l.contains(&token))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    wait_until(
        "no container of the build is left",
        Duration::from_secs(20),
        || with_token().is_empty(),
    );
    assert!(containers_of(&s).is_empty());
    let left = with_token();
    if !left.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(left.iter().map(String::as_str));
        docker(&args);
    }
}

#[test]
fn validate_warns_when_a_bridge_container_depends_on_a_native_service() {
    let port = free_port();
    let s = Stack::new(&format!(
        r#"
[services.api]
command = "python3 {httpd} --port ${{PORT}}"
port = {port}

[services.edge]
depends_on = ["api"]
[services.edge.container]
image = "{IMAGE}"

[services.hosted]
depends_on = ["api"]
[services.hosted.container]
image = "{IMAGE}"
network = "host"
"#,
        httpd = httpd()
    ));
    let r = s.run(&["validate"]).expect(0);
    let stderr = r.stderr();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("bridge container"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", r.all());
    assert!(
        warnings[0].contains("\"edge\"")
            && warnings[0].contains("listens beyond 127.0.0.1")
            && warnings[0].contains("network = \"host\""),
        "{}",
        r.all()
    );
}

/// A compose service with an image and no build is imported as a container
/// service: `fpctl start` runs it in its container, probes its compose
/// healthcheck on the published port, and `stop` removes it.
#[test]
fn an_imported_image_service_starts_in_its_container_and_reaches_online() {
    require_engine();
    let port = free_port();
    let s = Stack::empty();
    let _c = Cleanup(project(&s));
    s.write(
        "compose.yaml",
        &format!(
            r#"
services:
  web:
    image: {IMAGE}
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["{port}:8080"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://localhost:8080/health"]
      interval: 1s
"#
        ),
    );
    s.run(&["import", "compose.yaml"]).expect(0);
    let text = std::fs::read_to_string(s.file("services.toml")).unwrap();
    let t: toml::Table = text.parse().unwrap();
    let web = &t["services"]["web"];
    assert!(web.get("command").is_none(), "{text}");
    assert_eq!(web["container"]["image"].as_str(), Some(IMAGE), "{text}");
    s.run(&["validate"]).expect(0);
    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("web"), "online", "{}", s.log("web"));
    assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
    let id = container_id(&s, "web").expect("its container runs");
    assert_eq!(containers_of(&s), vec![id]);
    s.run(&["stop"]).expect(0);
    assert!(
        containers_of(&s).is_empty(),
        "stop left containers: {:?}",
        containers_of(&s)
    );
}

/// `check`'s table names a container service's image and its container's
/// short id, as `check --json` does in full.
#[test]
fn the_check_table_shows_a_container_services_image_and_short_id() {
    let port = free_port();
    let (s, _c) = stack(&web("web", port, ""));
    s.run(&["start"]).expect(0);
    let id = container_id(&s, "web").expect("its container runs");
    wait_until(
        "check --json shows the container's id",
        Duration::from_secs(20),
        || s.service("web")["container"]["id"] == id.as_str(),
    );
    // A wide terminal: the table truncates the detail to fit otherwise.
    let table = Run(s
        .cmd(&["check"])
        .env("COLUMNS", "400")
        .output()
        .expect("run fpctl check"))
    .expect(0)
    .stdout();
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with("web "))
        .unwrap_or_else(|| panic!("no line for web:\n{table}"));
    assert!(line.contains(IMAGE), "no image in {line:?}");
    assert!(line.contains(&id[..12]), "no short id in {line:?}");
    assert!(!line.contains(&id[..13]), "the id is not short: {line:?}");
    s.run(&["stop"]).expect(0);
}

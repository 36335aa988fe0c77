//! Supervisor behaviour, end to end: the real fpctl binary against real
//! processes (tests/fixtures/httpd.py). Each test proves one behaviour.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common::*;

/// One `[services.NAME]` table running httpd.py on `port` with `args`, an
/// http health check on /health, and any `extra` TOML lines.
/// How many times fpctl launched the service, going by its log.
fn starts_in_log(s: &Stack, service: &str) -> usize {
    s.log(service).matches("[fpctl] starting:").count()
}

/// Parsed `--stamp` lines: (name, event) -> unix time.
fn stamps(s: &Stack, file: &str) -> HashMap<(String, String), f64> {
    let text = std::fs::read_to_string(s.file(file)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?.to_string();
            let event = it.next()?.to_string();
            let t: f64 = it.next()?.parse().ok()?;
            Some(((name, event), t))
        })
        .collect()
}

fn stamp(map: &HashMap<(String, String), f64>, name: &str, event: &str) -> f64 {
    *map.get(&(name.to_string(), event.to_string()))
        .unwrap_or_else(|| panic!("no \"{name} {event}\" stamp in {map:?}"))
}

/// The pid `fpctl start` reported launching for `service` ("launched as pid N").
fn launched_pid(progress: &str, service: &str) -> Option<i32> {
    progress
        .lines()
        .filter(|l| {
            l.split_once(']')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                == Some(service)
        })
        .find_map(|l| l.split("launched as pid ").nth(1))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
}

fn restarts_of(s: &Stack, name: &str) -> i64 {
    s.service(name)["restarts"].as_i64().unwrap_or(-1)
}

fn sigkill(pid: i32) {
    // SAFETY: kill(2) on a pid this test recorded.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Wait until something accepts connections on `port`.
fn wait_listening(port: u16, timeout: Duration) {
    wait_until(&format!("port {port} listening"), timeout, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

const SECS5: Duration = Duration::from_secs(5);
const SECS10: Duration = Duration::from_secs(10);

#[test]
fn dependent_starts_only_after_its_dependency_is_healthy() {
    let p = free_ports(2);
    let toml = format!(
        "{}{}",
        http_service("db", p[0], "--ready-after 0.5", ""),
        http_service(
            "api",
            p[1],
            "--needs http://127.0.0.1:${FPCTL_PORT_DB}/health",
            r#"depends_on = ["db"]"#
        ),
    );
    let s = Stack::new(&toml);
    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("db"), "online");
    assert_eq!(s.state_of("api"), "online");
    assert_eq!(restarts_of(&s, "api"), 0, "api log:\n{}", s.log("api"));
    assert_eq!(starts_in_log(&s, "api"), 1, "api log:\n{}", s.log("api"));
    assert!(
        !s.log("api").contains("is down"),
        "api saw db down:\n{}",
        s.log("api")
    );
}

#[test]
fn tiers_start_in_order_and_a_tier_starts_in_parallel() {
    let p = free_ports(5);
    let args = "--ready-after 0.5 --stamp stamps.txt";
    let toml = format!(
        r#"
[[tier]]
name = "one"
[[tier]]
name = "two"
[[tier]]
name = "three"
{}{}{}{}{}"#,
        http_service("a1", p[0], args, r#"tier = "one""#),
        http_service("a2", p[1], args, r#"tier = "one""#),
        http_service("b1", p[2], args, r#"tier = "two""#),
        http_service("b2", p[3], args, r#"tier = "two""#),
        http_service("c1", p[4], args, r#"tier = "three""#),
    );
    let s = Stack::new(&toml);
    s.run(&["start"]).expect(0);
    let st = stamps(&s, "stamps.txt");
    let tiers: [&[&str]; 3] = [&["a1", "a2"], &["b1", "b2"], &["c1"]];
    for w in tiers.windows(2) {
        for &early in w[0] {
            for &late in w[1] {
                let ready = stamp(&st, early, "ready");
                let start = stamp(&st, late, "start");
                assert!(
                    start > ready,
                    "{late} started at {start} before {early} was ready at {ready}"
                );
            }
        }
    }
    for tier in &tiers[..2] {
        let a = stamp(&st, tier[0], "start");
        let b = stamp(&st, tier[1], "start");
        assert!(
            (a - b).abs() < 0.3,
            "{} and {} did not start in parallel: {a} vs {b}",
            tier[0],
            tier[1]
        );
    }
}

#[test]
fn crash_loop_fails_the_service_and_blocks_its_dependent() {
    let p = free_ports(2);
    let toml = format!(
        r#"
[[tier]]
name = "core"
[[tier]]
name = "apps"
{}{}"#,
        http_service(
            "crashy",
            p[0],
            "--exit-after 0",
            "tier = \"core\"\nmax_restarts = 2"
        ),
        http_service(
            "app",
            p[1],
            "",
            "tier = \"apps\"\ndepends_on = [\"crashy\"]"
        ),
    );
    let s = Stack::new(&toml);
    let r = s.run(&["start"]).expect(1);
    let err = r.stderr();
    assert!(err.contains("crashy"), "{}", r.all());
    assert!(err.contains("failed"), "{}", r.all());
    assert!(err.contains(".fpctl/logs/crashy.log"), "{}", r.all());
    s.run(&["check"]).expect(1);
    let (code, _) = s.check_json();
    assert_eq!(code, 1);
    let crashy = s.service("crashy");
    assert_eq!(crashy["state"], "failed", "{crashy}");
    assert_eq!(crashy["restarts"], 2, "{crashy}");
    assert_eq!(s.state_of("app"), "blocked");
    assert_eq!(starts_in_log(&s, "app"), 0);
}

#[test]
fn a_killed_service_is_restarted() {
    let port = free_port();
    let s = Stack::new(&http_service("web", port, "", ""));
    s.run(&["start"]).expect(0);
    let pid = s.pid_of("web").expect("a pid");
    sigkill(pid);
    wait_until("web restarted with a new pid", SECS10, || {
        let v = s.service("web");
        v["state"] == "online" && v["pid"].as_i64().is_some_and(|p| p as i32 != pid)
    });
    assert_eq!(restarts_of(&s, "web"), 1);
    assert!(!pid_alive(pid));
}

/// The default interval between probes of an online service is long (10
/// s), but a crash needs no probe: the exit is seen at once.
#[test]
fn a_killed_service_answers_again_within_a_second_or_two_with_the_default_interval() {
    let port = free_port();
    let s = Stack::new(&http_service("web", port, "", ""));
    s.run(&["start"]).expect(0);
    let pid = s.pid_of("web").expect("a pid");
    let killed = Instant::now();
    sigkill(pid);
    wait_until("the killed web to be gone", SECS5, || !pid_alive(pid));
    wait_until("web answers again", Duration::from_secs(3), || {
        http_get(port, "/health").is_some_and(|(code, _)| code == 200)
    });
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(2), "back after {took:?}");
    assert_ne!(s.pid_of("web"), Some(pid));
}

/// Probing an online service every second filled its log with one
/// `GET /health` line a second; readiness is still probed every few ms.
#[test]
fn an_online_http_service_is_probed_every_ten_seconds_by_default() {
    let port = free_port();
    let s = Stack::new(&http_service("web", port, "--log-requests", ""));
    let t0 = Instant::now();
    s.run(&["start"]).expect(0);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "a slow start: {:?}",
        t0.elapsed()
    );
    let probes = || count_lines(&s.log("web"), "GET /health");
    let online = probes();
    assert!(online >= 1, "no probe logged:\n{}", s.log("web"));
    // Over 5 s a 1 s interval makes 5 probes; a 10 s one at most one.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(5) {
        let more = probes() - online;
        assert!(
            more <= 1,
            "{more} probes within {:?} of going online:\n{}",
            watch.elapsed(),
            s.log("web")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn stop_leaves_no_process_behind() {
    let port = free_port();
    let s = Stack::new(&http_service(
        "web",
        port,
        "--grandchild grandchild.pid",
        r#"stop_timeout = "1s""#,
    ));
    s.run(&["start"]).expect(0);
    let pid = s.pid_of("web").expect("a pid");
    let mut grandchild = 0;
    wait_until("grandchild pid written", SECS5, || {
        grandchild = std::fs::read_to_string(s.file("grandchild.pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        grandchild > 0
    });
    let supervisor = s.supervisor_pid().expect("supervisor pid in state.json");
    assert!(pid_alive(pid) && pid_alive(grandchild) && pid_alive(supervisor));
    s.run(&["stop"]).expect(0);
    for (what, p) in [
        ("service", pid),
        ("grandchild", grandchild),
        ("supervisor", supervisor),
    ] {
        wait_until(&format!("{what} {p} gone"), SECS5, || !pid_alive(p));
    }
}

#[test]
fn second_start_is_a_no_op() {
    let p = free_ports(2);
    let toml = format!(
        "{}{}",
        http_service("db", p[0], "", ""),
        http_service("api", p[1], "", r#"depends_on = ["db"]"#),
    );
    let s = Stack::new(&toml);
    s.run(&["start"]).expect(0);
    let before = (s.pid_of("db"), s.pid_of("api"), s.supervisor_pid());
    assert!(before.0.is_some() && before.1.is_some());
    s.run(&["start"]).expect(0);
    let after = (s.pid_of("db"), s.pid_of("api"), s.supervisor_pid());
    assert_eq!(before, after);
    assert_eq!(starts_in_log(&s, "db"), 1, "{}", s.log("db"));
    assert_eq!(starts_in_log(&s, "api"), 1, "{}", s.log("api"));
}

#[test]
fn restart_replaces_only_the_named_service() {
    let p = free_ports(2);
    let toml = format!(
        "{}{}",
        http_service("web", p[0], "", ""),
        http_service("app", p[1], "", r#"depends_on = ["web"]"#),
    );
    let s = Stack::new(&toml);
    s.run(&["start"]).expect(0);
    let web = s.pid_of("web").expect("web pid");
    let app = s.pid_of("app").expect("app pid");
    s.run(&["restart", "web"]).expect(0);
    let v = s.service("web");
    assert_eq!(v["state"], "online", "{v}");
    let new_web = v["pid"].as_i64().expect("web pid") as i32;
    assert_ne!(new_web, web);
    assert!(!pid_alive(web), "the old web process is still alive");
    assert_eq!(s.pid_of("app"), Some(app));
    assert_eq!(s.state_of("app"), "online");
}

/// fpctl supervisors (`__supervise`) running for this project.
fn supervisors_of(s: &Stack) -> Vec<i32> {
    let file = s.file("services.toml");
    let file = file.to_string_lossy();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "__supervise")
            && args.iter().any(|a| a.contains(file.as_ref()))
            && pid_alive(pid)
        {
            found.push(pid);
        }
    }
    found
}

#[test]
fn concurrent_starts_share_one_supervisor() {
    let p = free_ports(2);
    let toml = format!(
        "{}{}",
        http_service("db", p[0], "--ready-after 0.2", ""),
        http_service("api", p[1], "", r#"depends_on = ["db"]"#),
    );
    let s = Stack::new(&toml);
    let a = s.cmd(&["start"]).output_spawn();
    let b = s.cmd(&["start"]).output_spawn();
    let (a, b) = (
        Run(a.wait_with_output().unwrap()),
        Run(b.wait_with_output().unwrap()),
    );
    a.expect(0);
    b.expect(0);
    assert_eq!(starts_in_log(&s, "db"), 1, "{}", s.log("db"));
    assert_eq!(starts_in_log(&s, "api"), 1, "{}", s.log("api"));
    let supervisor = s.supervisor_pid().expect("supervisor pid");
    wait_until("exactly one supervisor", SECS5, || {
        supervisors_of(&s) == vec![supervisor]
    });
}

/// Spawn with stdout/stderr captured.
trait SpawnCaptured {
    fn output_spawn(&mut self) -> std::process::Child;
}

impl SpawnCaptured for std::process::Command {
    fn output_spawn(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn fpctl")
    }
}

#[test]
fn a_port_held_by_something_else_fails_naming_the_holder() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = Stack::new(&format!(
        r#"
[services.web]
command = "python3 {} --port ${{PORT}}"
port = {port}
health = {{ http = "/health", timeout = "300ms" }}
"#,
        httpd()
    ));
    let r = s.run(&["start"]).expect(1);
    let out = r.all();
    assert!(out.contains(&port.to_string()), "{out}");
    assert!(out.contains("already in use"), "{out}");
    assert!(out.contains(&std::process::id().to_string()), "{out}");
    // The way out: the holder is not a copy of web, so another port.
    assert!(
        out.contains("stop that process, or give \"web\" another port in services.toml"),
        "{out}"
    );
    assert!(!out.contains("--replace"), "{out}");
    assert_eq!(starts_in_log(&s, "web"), 0);
    assert_eq!(s.state_of("web"), "failed");
    drop(listener);
}

/// `.fpctl` is made owner-only (0700); through a symbolic link that would
/// change the mode of whatever the link points to.
#[test]
fn a_symlinked_state_folder_is_refused_and_its_target_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    // Made first, so that it outlives the stack (and its stop) on a failure.
    let elsewhere = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Stack::new(&http_service("web", port, "", ""));
    let target = elsewhere.path().join("shared");
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(&target, s.file(".fpctl")).unwrap();
    let r = s.run(&["start"]);
    assert_ne!(r.code(), 0, "{}", r.all());
    assert!(
        r.stderr().contains(".fpctl is a symbolic link") && r.stderr().contains("remove the link"),
        "{}",
        r.all()
    );
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "the link's target was chmod'ed to {mode:o}");
    assert!(!port_open(port), "web was started");
    assert!(
        std::fs::read_dir(&target).unwrap().next().is_none(),
        "fpctl wrote into the link's target"
    );
    // Once the link is gone, the folder is fpctl's own.
    std::fs::remove_file(s.file(".fpctl")).unwrap();
    s.run(&["start"]).expect(0);
    let mode = std::fs::metadata(s.file(".fpctl"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn a_healthy_service_already_on_the_port_is_external() {
    let port = free_port();
    let mut s = Stack::new(&http_service("web", port, "", ""));
    let pid = s.spawn_httpd(&["--port", &port.to_string()]);
    wait_listening(port, SECS5);
    s.run(&["start"]).expect(0);
    assert_eq!(starts_in_log(&s, "web"), 0, "{}", s.log("web"));
    let v = s.service("web");
    assert_eq!(v["state"], "online", "{v}");
    assert_eq!(v["external"], true, "{v}");
    assert!(pid_alive(pid));
}

#[test]
fn restart_no_leaves_a_failed_exit_failed_and_a_success_exit_stopped() {
    for (code, state) in [(1, "failed"), (0, "stopped")] {
        let port = free_port();
        let s = Stack::new(&http_service(
            "once",
            port,
            &format!("--exit-after 0.3 --exit-code {code}"),
            r#"restart = "no""#,
        ));
        // It may or may not still be up when start returns; what matters is
        // where it ends.
        let _ = s.run(&["start"]);
        wait_until(&format!("once is {state}"), SECS5, || {
            s.state_of("once") == state
        });
        assert_eq!(restarts_of(&s, "once"), 0);
        assert_eq!(starts_in_log(&s, "once"), 1);
    }
}

/// A oneshot task: sleeps 0.3 s, stamps "NAME done", exits with `code`.
fn oneshot_script(s: &Stack, name: &str, code: i32) {
    s.write(
        &format!("{name}.py"),
        &format!(
            "import sys, time\n\
             time.sleep(0.3)\n\
             with open('stamps.txt', 'a') as f:\n    \
             f.write(f'{name} done {{time.time():.6f}}\\n')\n\
             sys.exit({code})\n"
        ),
    );
}

#[test]
fn oneshot_completes_before_its_dependent_starts() {
    let port = free_port();
    let toml = format!(
        r#"
[services.migrate]
command = "python3 migrate.py"
oneshot = true
{}"#,
        http_service(
            "app",
            port,
            "--stamp stamps.txt",
            r#"depends_on = ["migrate"]"#
        ),
    );
    let s = Stack::new(&toml);
    oneshot_script(&s, "migrate", 0);
    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("migrate"), "completed");
    assert_eq!(s.state_of("app"), "online");
    let st = stamps(&s, "stamps.txt");
    let done = stamp(&st, "migrate", "done");
    let start = stamp(&st, "app", "start");
    assert!(
        start > done,
        "app started at {start}, migrate done at {done}"
    );
    s.run(&["check"]).expect(0);
}

#[test]
fn failing_oneshot_blocks_its_dependent() {
    let port = free_port();
    let toml = format!(
        r#"
[services.migrate]
command = "python3 migrate.py"
oneshot = true
{}"#,
        http_service("app", port, "", r#"depends_on = ["migrate"]"#),
    );
    let s = Stack::new(&toml);
    oneshot_script(&s, "migrate", 2);
    let r = s.run(&["start"]).expect(1);
    assert!(r.stderr().contains("migrate"), "{}", r.all());
    assert_eq!(s.state_of("migrate"), "failed");
    assert_eq!(s.state_of("app"), "blocked");
    assert_eq!(starts_in_log(&s, "app"), 0);
}

#[test]
fn start_timeout_fails_and_kills_the_service() {
    let port = free_port();
    let s = Stack::new(&format!(
        r#"
[services.slow]
command = "python3 {} --port ${{PORT}} --ready-after 30"
port = {port}
health = {{ http = "/health", start_timeout = "1s" }}
stop_timeout = "1s"
"#,
        httpd()
    ));
    let t = Instant::now();
    let r = s.run(&["start"]).expect(1);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "start took {took:?}");
    assert!(r.stderr().contains("slow"), "{}", r.all());
    assert_eq!(s.state_of("slow"), "failed");
    assert_eq!(starts_in_log(&s, "slow"), 1, "{}", s.log("slow"));
    let pid = launched_pid(&r.stdout(), "slow").expect("start names the launched pid");
    wait_until("the timed-out process is gone", SECS5, || !pid_alive(pid));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on the port"
    );
}

#[test]
fn selecting_a_service_pulls_in_its_dependencies_only() {
    let p = free_ports(4);
    let toml = format!(
        "{}{}{}{}",
        http_service("db", p[0], "", ""),
        http_service("api", p[1], "", r#"depends_on = ["db"]"#),
        http_service("other", p[2], "", ""),
        http_service("debug", p[3], "", r#"profiles = ["dev"]"#),
    );
    let s = Stack::new(&toml);
    s.run(&["start", "api"]).expect(0);
    assert_eq!(s.state_of("api"), "online");
    assert_eq!(s.state_of("db"), "online");
    assert_eq!(s.state_of("other"), "stopped");
    assert_eq!(s.state_of("debug"), "stopped");
    assert_eq!(starts_in_log(&s, "other"), 0);

    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("other"), "online");
    assert_eq!(s.state_of("debug"), "stopped", "a profiled service started");
    assert_eq!(starts_in_log(&s, "debug"), 0);

    s.run(&["start", "--profile", "dev"]).expect(0);
    assert_eq!(s.state_of("debug"), "online");
    assert_eq!(starts_in_log(&s, "debug"), 1);
}

#[test]
fn an_unresponsive_service_goes_offline_and_recovers_without_restart() {
    let port = free_port();
    let s = Stack::new(&format!(
        r#"
[services.web]
command = "python3 {} --port ${{PORT}}"
port = {port}
health = {{ http = "/health", interval = "200ms", timeout = "200ms", retries = 2 }}
restart = "no"
stop_timeout = "1s"
"#,
        httpd()
    ));
    s.run(&["start"]).expect(0);
    let pid = s.pid_of("web").expect("a pid");
    // SAFETY: kill(2) on the pid fpctl reported.
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    struct Cont(i32);
    impl Drop for Cont {
        fn drop(&mut self) {
            // SAFETY: as above; resume it whatever happens.
            unsafe {
                libc::kill(self.0, libc::SIGCONT);
            }
        }
    }
    let cont = Cont(pid);
    wait_until("web is offline", SECS5, || s.state_of("web") == "offline");
    s.run(&["check"]).expect(1);
    drop(cont);
    wait_until("web is online again", SECS5, || {
        s.state_of("web") == "online"
    });
    let v = s.service("web");
    assert_eq!(v["pid"].as_i64(), Some(pid as i64), "{v}");
    assert_eq!(v["restarts"], 0, "{v}");
    assert_eq!(starts_in_log(&s, "web"), 1);
}

/// A SIGHUP that reaches the supervisor in its first moments, before it
/// could have set up its own handling (here: while it waits for the lock of
/// a supervisor that is still going away), must not kill it: it starts,
/// serves, and takes the signal as the reload it means.
#[test]
fn a_sighup_in_the_supervisors_first_moments_does_not_kill_it() {
    use std::os::fd::AsRawFd;
    let s = Stack::new(&http_service("api", free_port(), "", ""));
    std::fs::create_dir_all(s.file(".fpctl")).unwrap();
    // Hold the supervisor lock, as a supervisor that is shutting down does.
    let lock = std::fs::File::create(s.file(".fpctl/supervisor.lock")).unwrap();
    // SAFETY: flock(2) on a file we own.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let start = {
        let cmd = s.cmd(&["start"]);
        std::thread::spawn(move || output_within(cmd, RUN_LIMIT))
    };
    let mut supervisor = None;
    wait_until("a supervisor is spawned", Duration::from_secs(10), || {
        supervisor = supervisors_of(&s).first().copied();
        supervisor.is_some()
    });
    let supervisor = supervisor.unwrap();
    // SAFETY: kill(2) on the supervisor this test's start spawned.
    unsafe { libc::kill(supervisor, libc::SIGHUP) };
    drop(lock);
    let out = Run(start.join().unwrap().expect("start finished"));
    assert!(
        pid_alive(supervisor),
        "a SIGHUP in its first moments killed the supervisor:\n{}",
        out.all()
    );
    assert_eq!(out.code(), 0, "{}", out.all());
    assert_eq!(s.supervisor_pid(), Some(supervisor));
    assert_eq!(s.state_of("api"), "online");
}

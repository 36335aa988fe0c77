//! Recovery and accounting, end to end: a restart that cannot set up keeps
//! the working process, blocked dependents follow their dependency back,
//! exits are recorded with real pids and honest counts, a second interrupt
//! ends `up` at once, nothing the supervisor inherited outlives it, and the
//! exit note never overtakes a service's last output.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

fn events_of(s: &Stack, service: &str) -> Vec<Value> {
    let r = s.run(&["events", service, "--json", "-n", "1000"]);
    r.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The pid a process of the test wrote to `file`, once it is there; it is
/// killed with the stack.
fn pid_written_to(s: &mut Stack, file: &str) -> i32 {
    let read = |s: &Stack| -> Option<i32> {
        std::fs::read_to_string(s.file(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    wait_until(&format!("a pid in {file}"), Duration::from_secs(10), || {
        read(s).is_some()
    });
    let pid = read(s).unwrap();
    s.own_pids.push(pid);
    pid
}

#[test]
fn a_restart_whose_setup_fails_keeps_the_running_process() {
    let port = free_port();
    let s = Stack::new(&format!(
        r#"
[services.web]
setup = ["test ! -f broken"]
command = "python3 {httpd} --port ${{PORT}} --name web"
port = {port}
health = {{ http = "/health" }}

[services.app]
command = "sleep 1000"
depends_on = ["web"]
"#,
        httpd = httpd()
    ));
    s.run(&["start"]).expect(0);
    let pid = s.pid_of("web").expect("web runs");
    // Setup breaks (and must run again: its stamp is gone).
    s.write("broken", "");
    std::fs::remove_file(s.file(".fpctl/setup/web.hash")).unwrap();
    let r = s.run(&["restart", "web"]);
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(r.stderr().contains("web"), "{}", r.all());
    assert!(r.stderr().contains("keeps running"), "{}", r.all());
    assert_eq!(s.pid_of("web"), Some(pid), "the old process still serves");
    assert_eq!(s.state_of("web"), "online");
    assert_eq!(s.state_of("app"), "online");
    // Fixed: the restart goes through.
    std::fs::remove_file(s.file("broken")).unwrap();
    s.run(&["restart", "web"]).expect(0);
    let new = s.pid_of("web").expect("web runs");
    assert_ne!(new, pid);
    assert!(!pid_alive(pid));
}

#[test]
fn blocked_dependents_start_once_their_dependency_is_back() {
    let p = free_ports(2);
    let s = Stack::new(&format!(
        r#"
[services.db]
command = "sh -c 'test -f broken && exit 1; exec python3 {httpd} --port $PORT --name db'"
port = {db}
health = {{ http = "/health" }}
restart = "no"

[services.api]
command = "python3 {httpd} --port ${{PORT}} --name api"
port = {api}
health = {{ http = "/health" }}
depends_on = ["db"]
"#,
        httpd = httpd(),
        db = p[0],
        api = p[1],
    ));
    s.write("broken", "");
    s.run(&["start"]).expect(1);
    assert_eq!(s.state_of("db"), "failed");
    assert_eq!(s.state_of("api"), "blocked");
    // The reasons are data as well as words.
    let db = s.service("db");
    assert_eq!(db["reason"]["kind"], "not_restarted", "{db}");
    assert_eq!(db["reason"]["policy"], "no", "{db}");
    let api = s.service("api");
    assert_eq!(
        api["reason"],
        serde_json::json!({"kind": "dependency", "service": "db", "state": "failed"}),
        "{api}"
    );
    assert_eq!(api["detail"], "dependency \"db\" is failed", "{api}");
    std::fs::remove_file(s.file("broken")).unwrap();
    let r = s.run(&["restart", "db"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    wait_until("api to follow db back", Duration::from_secs(10), || {
        s.state_of("api") == "online"
    });
}

#[test]
fn a_start_timeout_kill_is_recorded_with_the_real_pid() {
    let port = free_port();
    let s = Stack::new(&format!(
        "[services.slow]\ncommand = \"sleep 1000\"\nhealth = {{ tcp = {port}, start_timeout = \"1s\" }}\n"
    ));
    let r = s.run(&["start"]).expect(1);
    assert!(r.stderr().contains("start_timeout"), "{}", r.all());
    wait_until("the exit to be recorded", Duration::from_secs(5), || {
        events_of(&s, "slow").iter().any(|e| e["kind"] == "exited")
    });
    let events = events_of(&s, "slow");
    let spawned = events.iter().find(|e| e["kind"] == "spawned").unwrap();
    let exited = events.iter().find(|e| e["kind"] == "exited").unwrap();
    let pid = spawned["detail"]
        .as_str()
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    let detail = exited["detail"].as_str().unwrap();
    assert!(detail.starts_with(pid), "spawned {pid}, exited: {detail}");
    assert!(!detail.contains("pid 0"), "{detail}");
    let log = s.log("slow");
    assert!(
        log.contains(&format!("[fpctl] process {}", &pid[4..])),
        "{log}"
    );
}

#[test]
fn restarts_in_a_row_are_counted_apart_from_the_total() {
    let port = free_port();
    let s = Stack::new(&http_service(
        "flaky",
        port,
        "--ready-after 10 --exit-after 0.3",
        "max_restarts = 1",
    ));
    s.run(&["start"]).expect(1);
    let v = s.service("flaky");
    assert_eq!(
        (v["restarts"].clone(), v["restarts_in_row"].clone()),
        (1.into(), 1.into()),
        "{v}"
    );
    // A start begins a new count in a row; the total goes on.
    s.run(&["start"]).expect(1);
    let v = s.service("flaky");
    assert_eq!(
        (v["restarts"].clone(), v["restarts_in_row"].clone()),
        (2.into(), 1.into()),
        "{v}"
    );
    let log = s.log("flaky");
    assert_eq!(count_lines(&log, "[fpctl] restart 1 of 1"), 2, "{log}");
    assert!(log.contains("gave up after 1 restart"), "{log}");
}

#[test]
fn a_second_interrupt_to_up_kills_what_is_left_and_exits() {
    let mut s = Stack::new(
        "[services.stubborn]\ncommand = \"sh -c 'trap \\\"\\\" TERM; sleep 1000'\"\nstop_timeout = \"60s\"\n",
    );
    let mut up = s
        .cmd(&["up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn fpctl up");
    let up_pid = up.id() as i32;
    s.own_pids.push(up_pid);
    wait_until("stubborn online", Duration::from_secs(10), || {
        s.state_of("stubborn") == "online"
    });
    let pid = s.pid_of("stubborn").unwrap();
    // SAFETY: kill(2) on the fpctl up this test started.
    unsafe { libc::kill(up_pid, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        pid_alive(pid),
        "SIGTERM is ignored: still in its grace period"
    );
    let second = Instant::now();
    unsafe { libc::kill(up_pid, libc::SIGINT) };
    let deadline = second + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = up.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.is_some(),
        "up still running 5 s after the second SIGINT"
    );
    assert!(!pid_alive(pid), "the stubborn service was left behind");
}

#[test]
fn a_setsid_grandchild_without_the_marker_dies_with_the_supervisor() {
    let mut s = Stack::new(
        r#"
[services.sneaky]
command = '''sh -c 'setsid env -i sh -c "echo \$\$ > gc.pid; exec sleep 1000" & exec sleep 1000' '''
"#,
    );
    s.run(&["start"]).expect(0);
    let gc = pid_written_to(&mut s, "gc.pid");
    assert!(pid_alive(gc));
    s.run(&["stop"]).expect(0);
    wait_until("the grandchild to be gone", Duration::from_secs(3), || {
        !pid_alive(gc)
    });
}

#[test]
fn with_log_rotation_the_exit_note_follows_the_last_output() {
    let s = Stack::new(
        r#"
[services.talker]
command = "sh -c 'echo last words $$$$; exit 3'"
restart = "always"
max_restarts = 5
log_max_size = "1MB"
"#,
    );
    s.run(&["start"]).expect(1);
    let log = s.log("talker");
    let lines: Vec<&str> = log.lines().collect();
    let mut exits = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("[fpctl] process ") else {
            continue;
        };
        exits += 1;
        let pid = rest.split_whitespace().next().unwrap();
        let said = lines[..i].iter().any(|l| *l == format!("last words {pid}"));
        assert!(
            said,
            "the exit of {pid} was noted before its output:\n{log}"
        );
    }
    assert_eq!(exits, 6, "{log}");
}

#[test]
fn a_stop_during_setup_kills_the_setup_too() {
    let mut s = Stack::new(
        r#"
[services.slowsetup]
setup = ["echo $$ > setup.pid; exec sleep 60"]
command = "sleep 1000"
"#,
    );
    let mut waiting = s
        .cmd(&["start"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let setup = pid_written_to(&mut s, "setup.pid");
    assert!(pid_alive(setup));
    let r = s.run(&["stop"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    let _ = waiting.wait();
    wait_until("the setup step to be gone", Duration::from_secs(3), || {
        !pid_alive(setup)
    });
    assert_eq!(s.state_of("slowsetup"), "stopped");
}

/// `restarts` counts since the supervisor took the service over: a new
/// supervisor after `stop` starts from 0; one that adopts the running
/// process (the old one died) goes on counting.
#[test]
fn the_restart_count_starts_afresh_after_stop_and_goes_on_after_adoption() {
    let s = Stack::new(
        "[services.bumpy]\nshell = true\ncommand = \"if [ -e crashed ]; then exec sleep 600; fi; touch crashed; exit 1\"\n",
    );
    s.run(&["start"]).expect(0);
    wait_until(
        "bumpy restarted once and runs",
        Duration::from_secs(10),
        || {
            let v = s.service("bumpy");
            v["state"] == "online" && v["restarts"] == 1
        },
    );
    // The supervisor dies; a new one adopts the running process.
    let supervisor = s.supervisor_pid().expect("a supervisor");
    // SAFETY: kill(2) on the supervisor this test started.
    unsafe { libc::kill(supervisor, libc::SIGKILL) };
    wait_until("the supervisor is gone", Duration::from_secs(5), || {
        !pid_alive(supervisor)
    });
    let v = s.service("bumpy");
    assert_eq!(
        (v["state"].clone(), v["restarts"].clone()),
        ("online".into(), 1.into()),
        "{v}"
    );
    assert_ne!(s.supervisor_pid(), Some(supervisor));

    s.run(&["stop"]).expect(0);
    s.run(&["start"]).expect(0);
    let v = s.service("bumpy");
    assert_eq!(v["state"], "online", "{v}");
    assert_eq!(
        (
            v["restarts"].clone(),
            v["restarts_in_row"].clone(),
            v["restarts_total"].clone()
        ),
        (0.into(), 0.into(), 0.into()),
        "a new supervisor counts the restarts of an earlier one: {v}"
    );
}

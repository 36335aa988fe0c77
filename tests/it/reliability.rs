//! The supervisor never makes things worse: its own death stops nothing and
//! loses no output, a new one adopts what runs (and never a reused pid), and
//! SIGTERM to it stops everything cleanly.

use std::time::Duration;

use crate::common::*;

fn five_services(ports: &[u16]) -> String {
    let mut toml = String::new();
    for (k, port) in ports.iter().enumerate() {
        let extra = if k == 0 { " --lines-every 0.01" } else { "" };
        toml.push_str(&format!(
            "[services.s{k}]\ncommand = \"python3 {} --port ${{PORT}} --name s{k}{extra}\"\nport = {port}\nhealth = {{ http = \"/health\", interval = \"200ms\" }}\n\n",
            httpd()
        ));
    }
    toml
}

fn http_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = c.write_all(b"GET /health HTTP/1.0\r\n\r\n");
    let mut buf = String::new();
    let _ = c.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
}

/// The numbers of "line N" in a log, in file order.
fn numbered_lines(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("line ")?.parse().ok())
        .collect()
}

#[test]
fn supervisor_kill_9_stops_nothing_and_a_new_one_adopts() {
    let ports = free_ports(5);
    let s = Stack::new(&five_services(&ports));
    s.run(&["start"]).expect(0);
    let pids: Vec<i32> = (0..5)
        .map(|k| s.pid_of(&format!("s{k}")).unwrap())
        .collect();
    let old = s.supervisor_pid().unwrap();

    // SAFETY: kill(2) on the supervisor pid we just read.
    unsafe { libc::kill(old, libc::SIGKILL) };
    wait_until("the supervisor is dead", Duration::from_secs(5), || {
        !pid_alive(old)
    });

    // Everything keeps serving and logging with nobody supervising.
    let before = numbered_lines(&s.log("s0")).len();
    std::thread::sleep(Duration::from_millis(500));
    for (k, port) in ports.iter().enumerate() {
        assert!(pid_alive(pids[k]), "s{k} died with the supervisor");
        assert!(http_ok(*port), "s{k} stopped answering");
    }
    let after = numbered_lines(&s.log("s0")).len();
    assert!(
        after >= before + 20,
        "s0 stopped logging: {before} -> {after} lines"
    );

    // The next command starts a new supervisor that adopts the same pids.
    let (code, json) = s.check_json();
    assert_eq!(code, 0, "{json}");
    let new = s.supervisor_pid().unwrap();
    assert_ne!(new, old);
    assert!(pid_alive(new));
    for (k, pid) in pids.iter().enumerate() {
        let svc = &json["services"][k];
        assert_eq!(svc["state"], "online", "{svc}");
        assert_eq!(
            svc["pid"].as_i64(),
            Some(*pid as i64),
            "s{k} was not adopted: {svc}"
        );
    }
    let events = s.run(&["events", "--json"]).expect(0).stdout();
    let adopted = events
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"] == "adopted")
        .count();
    assert_eq!(adopted, 5, "{events}");

    // Adopted services are supervised: a crash is noticed and restarted.
    // SAFETY: kill(2) on a pid fpctl reported.
    unsafe { libc::kill(pids[1], libc::SIGKILL) };
    wait_until(
        "s1 restarted by the new supervisor",
        Duration::from_secs(10),
        || {
            let svc = s.service("s1");
            svc["state"] == "online" && svc["pid"].as_i64() != Some(pids[1] as i64)
        },
    );
    assert_eq!(s.service("s1")["restarts"], 1);

    // restart and stop work on adopted services and leave nothing behind.
    s.run(&["restart", "s2"]).expect(0);
    assert_ne!(s.pid_of("s2"), Some(pids[2]));
    let all: Vec<i32> = (0..5)
        .map(|k| s.pid_of(&format!("s{k}")).unwrap())
        .collect();
    s.run(&["stop"]).expect(0);
    wait_until(
        "every service and the supervisor gone",
        Duration::from_secs(10),
        || {
            all.iter()
                .chain(&pids)
                .chain([&new])
                .all(|&p| !pid_alive(p))
        },
    );

    // s0's log: every line, in order, across the supervisor's death.
    let log = s.log("s0");
    let lines = numbered_lines(&log);
    assert!(lines.len() > 50, "too few lines: {}", lines.len());
    assert_eq!(
        lines.first(),
        Some(&0),
        "the first line is missing; the log starts with:\n{}",
        &log[..log.len().min(600)]
    );
    let expected: Vec<u64> = (0..lines.len() as u64).collect();
    assert_eq!(lines, expected, "s0's log lost or reordered lines");
}

#[test]
fn a_reused_pid_is_never_adopted_or_signalled() {
    let port = free_port();
    let mut s = Stack::new(&format!(
        "[services.web]\ncommand = \"python3 {} --port ${{PORT}}\"\nport = {port}\nhealth = {{ http = \"/health\" }}\n",
        httpd()
    ));
    // An unrelated process holds the pid the state file names.
    let mut bystander = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = bystander.id() as i32;
    s.own_pids.push(pid);
    std::fs::create_dir_all(s.file(".fpctl")).unwrap();
    let state = serde_json::json!({
        "supervisor_pid": 1,
        "supervisor_ticks": 1,
        "services": {"web": {"state": "online", "pid": pid, "ticks": 1, "started_at": 0.0,
                              "restarts": 0, "external": false, "detail": null}}
    });
    std::fs::write(s.file(".fpctl/state.json"), state.to_string()).unwrap();

    // check does not adopt it (and so does not start a supervisor for it).
    let (code, json) = s.check_json();
    assert_eq!(code, 1);
    assert_eq!(
        json["services"][0]["pid"],
        serde_json::Value::Null,
        "{json}"
    );
    // start spawns a fresh process instead.
    s.run(&["start"]).expect(0);
    let web = s.pid_of("web").unwrap();
    assert_ne!(web, pid);
    s.run(&["stop"]).expect(0);
    wait_until("web stopped", Duration::from_secs(5), || !pid_alive(web));
    assert!(pid_alive(pid), "the unrelated process was signalled");
    assert!(bystander.try_wait().unwrap().is_none());
    let _ = bystander.kill();
    let _ = bystander.wait();
}

#[test]
fn sigterm_to_the_supervisor_stops_everything_and_exits() {
    let ports = free_ports(3);
    let toml = format!(
        "{}\n[services.child]\ncommand = \"sh -c 'sleep 300 & python3 {} --port $PORT'\"\nshell = false\nport = {}\nhealth = {{ tcp = true }}\n",
        five_services(&ports[..2]),
        httpd(),
        ports[2]
    );
    let s = Stack::new(&toml);
    s.run(&["start"]).expect(0);
    let sup = s.supervisor_pid().unwrap();
    let pids: Vec<i32> = ["s0", "s1", "child"]
        .iter()
        .map(|n| s.pid_of(n).unwrap())
        .collect();
    // The `sleep 300` that the child's shell started in the background.
    let sleeper = std::fs::read_to_string(format!("/proc/{}/task/{}/children", pids[2], pids[2]))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .collect::<Vec<_>>();
    assert!(
        !sleeper.is_empty(),
        "the child's background sleep was not found"
    );
    // SAFETY: kill(2) on the supervisor pid fpctl recorded.
    unsafe { libc::kill(sup, libc::SIGTERM) };
    wait_until("supervisor exited", Duration::from_secs(15), || {
        !pid_alive(sup)
    });
    for p in pids.iter().chain(&sleeper) {
        assert!(!pid_alive(*p), "process {p} outlived the supervisor");
    }
    assert!(!s.file(".fpctl/fpctl.sock").exists(), "socket left behind");
    let (_, json) = s.check_json();
    assert!(
        json["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["state"] == "stopped"),
        "{json}"
    );
}

#[test]
fn a_probe_that_prints_a_secret_does_not_leak_it() {
    let s = Stack::new(
        r#"
[services.api]
command = ["sleep", "60"]
env = { API_TOKEN = "tok-very-secret-42" }
health = { exec = ["sh", "-c", "echo token is $API_TOKEN; exit 1"], start_timeout = "1s" }
"#,
    );
    let start = s.run(&["start"]).expect(1);
    let check = s.run(&["check"]);
    let json = s.run(&["check", "--json"]);
    let events = s.run(&["events"]);
    for (what, out) in [
        ("start", start.all()),
        ("check", check.all()),
        ("check --json", json.all()),
        ("events", events.all()),
    ] {
        assert!(
            !out.contains("tok-very-secret-42"),
            "{what} leaked the secret:\n{out}"
        );
    }
    // The detail is still there, with the value masked.
    assert!(json.stdout().contains("token is ***"), "{}", json.all());
}

#[test]
fn a_hung_service_is_restarted_by_its_liveness_check() {
    let port = free_port();
    let s = Stack::new(&format!(
        r#"
[services.web]
command = "python3 {} --port ${{PORT}}"
port = {port}
health = {{ http = "/health", interval = "200ms", timeout = "200ms", retries = 2 }}
stop_timeout = "500ms"
"#,
        httpd()
    ));
    s.run(&["start"]).expect(0);
    let pid = s.pid_of("web").unwrap();
    // Frozen: it holds its port but answers nothing, and ignores SIGTERM
    // until killed.
    // SAFETY: kill(2) on the pid fpctl reported.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    wait_until(
        "web replaced by a fresh process",
        Duration::from_secs(15),
        || {
            let svc = s.service("web");
            svc["state"] == "online" && svc["pid"].as_i64().is_some_and(|p| p != pid as i64)
        },
    );
    assert_eq!(s.service("web")["restarts"], 1);
    wait_until("the frozen process is gone", Duration::from_secs(5), || {
        !pid_alive(pid)
    });
    let events = s.run(&["events", "web"]).expect(0).stdout();
    assert!(events.contains("health check failed"), "{events}");
}

/// The live process group leaders carrying this project's marker: what
/// fpctl has spawned, whether or not state.json records it yet.
fn marked_leaders(s: &Stack) -> Vec<fpctl::process::MarkedLeader> {
    let root = std::fs::canonicalize(s.path()).unwrap();
    fpctl::process::marked_leaders(&format!("{}:", fpctl::process::project_marker(&root)))
}

#[test]
fn a_supervisor_killed_mid_start_of_50_leaves_nothing_unadopted() {
    let names: Vec<String> = (0..50).map(|k| format!("w{k:02}")).collect();
    let toml: String = names
        .iter()
        .map(|n| format!("[services.{n}]\ncommand = \"sleep 600\"\n\n"))
        .collect();
    let s = Stack::new(&toml);
    // Kill the supervisor while it has spawned processes that state.json does
    // not record yet; retry until the kill lands in such an instant.
    let mut running = Vec::new();
    let mut recorded = Vec::new();
    for attempt in 0.. {
        assert!(
            attempt < 10,
            "never caught the supervisor between spawns and their record"
        );
        let mut start = s.cmd(&["start"]);
        start
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut client = start.spawn().unwrap();
        wait_until("spawns under way", Duration::from_secs(20), || {
            marked_leaders(&s).len() >= 10
        });
        let sup = s
            .supervisor_pid()
            .expect("the supervisor records itself first");
        // SAFETY: kill(2) on the supervisor pid state.json names.
        unsafe { libc::kill(sup, libc::SIGKILL) };
        wait_until("the supervisor is dead", Duration::from_secs(5), || {
            !pid_alive(sup)
        });
        let _ = client.wait();
        running = marked_leaders(&s);
        recorded = s.recorded_pids();
        if running.iter().any(|m| !recorded.contains(&m.pid)) {
            break;
        }
        s.run(&["stop"]).expect(0);
        std::fs::remove_file(s.file(".fpctl/state.json")).unwrap();
    }

    // A new supervisor adopts every process running, recorded or not.
    let (_, json) = s.check_json();
    for m in &running {
        let name = m.marker.rsplit(':').next().unwrap();
        let svc = json["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap();
        assert_eq!(
            svc["pid"].as_i64(),
            Some(m.pid as i64),
            "{name} not adopted: {svc}\nrunning after the kill: {:?}\nrecorded: {recorded:?}\nevents:\n{}\nsupervisor log:\n{}",
            running.iter().map(|m| (m.pid, &m.marker)).collect::<Vec<_>>(),
            s.run(&["events", name]).stdout(),
            std::fs::read_to_string(s.file(".fpctl/supervisor.log")).unwrap_or_default(),
        );
        assert_eq!(svc["state"], "online", "{svc}");
    }
    // The rest start, and no service runs twice.
    s.run(&["start"]).expect(0);
    let leaders = marked_leaders(&s);
    assert_eq!(leaders.len(), 50, "{leaders:?}");
    let all: Vec<i32> = leaders.iter().map(|m| m.pid).collect();
    for m in &running {
        assert!(all.contains(&m.pid), "{} was replaced", m.marker);
    }
    // And a stop leaves nothing behind.
    s.run(&["stop"]).expect(0);
    assert!(
        all.iter().all(|&p| !pid_alive(p)),
        "processes left after stop"
    );
    assert!(marked_leaders(&s).is_empty());
}

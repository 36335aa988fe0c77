//! `fpctl check` (with and without a supervisor), `logs` and `up`, against
//! real processes.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

const STATES: [&str; 10] = [
    "online",
    "degraded",
    "offline",
    "starting",
    "failed",
    "blocked",
    "stopped",
    "completed",
    "scheduled",
    "running",
];

/// Four services in two titled tiers, started by the test by hand (no
/// supervisor): one healthy, one with the wrong JSON, one answering 503, one
/// with nothing on its port. `extra` is appended to services.toml.
fn hand_started_stack(extra: &str) -> Stack {
    let p = free_ports(4);
    let mut s = Stack::new(&format!(
        r#"
[[tier]]
name = "core"
title = "Core infrastructure"

[[tier]]
name = "apps"
title = "Applications"

[services.web-ok]
tier = "core"
command = "python3 {httpd} --port ${{PORT}}"
port = {ok}
health = {{ http = "/health" }}

[services.web-json]
tier = "core"
command = "python3 {httpd} --port ${{PORT}}"
port = {json}
health = {{ http = "/health", expect_json = {{ status = ["healthy"] }} }}

[services.web-503]
tier = "apps"
command = "python3 {httpd} --port ${{PORT}}"
port = {e503}
health = {{ http = "/health" }}

[services.web-gone]
tier = "apps"
command = "python3 {httpd} --port ${{PORT}}"
port = {gone}
health = {{ http = "/health" }}
{extra}
"#,
        httpd = httpd(),
        ok = p[0],
        json = p[1],
        e503 = p[2],
        gone = p[3],
    ));
    s.spawn_httpd(&["--port", &p[0].to_string()]);
    s.spawn_httpd(&[
        "--port",
        &p[1].to_string(),
        "--json",
        r#"{"status": "down"}"#,
    ]);
    s.spawn_httpd(&["--port", &p[2].to_string(), "--status", "503"]);
    for &port in &p[..3] {
        wait_until(
            &format!("hand-started httpd on {port} answers"),
            Duration::from_secs(10),
            || http_get(port, "/health").is_some(),
        );
    }
    s
}

fn services(v: &Value) -> &Vec<Value> {
    v["services"].as_array().expect("services is an array")
}

fn entry<'a>(v: &'a Value, name: &str) -> &'a Value {
    services(v)
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

#[test]
fn check_without_supervisor_reports_each_state_grouped_by_tier() {
    let s = hand_started_stack("");
    let r = s.run(&["check"]).expect(1);
    let out = r.stdout();
    assert!(!out.contains('\x1b'), "colour despite NO_COLOR:\n{out}");

    let lines: Vec<&str> = out.lines().collect();
    let pos = |pred: &dyn Fn(&str) -> bool, what: &str| {
        lines
            .iter()
            .position(|l| pred(l))
            .unwrap_or_else(|| panic!("no {what} in the table:\n{out}"))
    };
    let core = pos(
        &|l| l.trim_start().starts_with("Core infrastructure"),
        "\"Core infrastructure\" heading",
    );
    let apps = pos(
        &|l| l.trim_start().starts_with("Applications"),
        "\"Applications\" heading",
    );
    let row = |name: &str| {
        pos(
            &|l: &str| l.split_whitespace().next() == Some(name),
            &format!("row for {name}"),
        )
    };
    let state_in_row = |name: &str| lines[row(name)].split_whitespace().nth(2).unwrap_or("");
    assert!(core < apps, "tiers out of order:\n{out}");
    for name in ["web-ok", "web-json"] {
        assert!(
            core < row(name) && row(name) < apps,
            "{name} not under core:\n{out}"
        );
    }
    for name in ["web-503", "web-gone"] {
        assert!(apps < row(name), "{name} not under apps:\n{out}");
    }
    assert_eq!(state_in_row("web-ok"), "online", "\n{out}");
    assert_eq!(state_in_row("web-json"), "degraded", "\n{out}");
    assert_eq!(state_in_row("web-503"), "degraded", "\n{out}");
    assert_eq!(state_in_row("web-gone"), "offline", "\n{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.trim() == "1 online, 2 degraded, 1 offline"),
        "no summary line \"1 online, 2 degraded, 1 offline\":\n{out}"
    );

    // Only the healthy one asked about: success.
    let r = s.run(&["check", "web-ok"]).expect(0);
    assert!(r.stdout().contains("web-ok"), "{}", r.all());
    assert!(!r.stdout().contains("web-gone"), "{}", r.all());
    s.run(&["check", "web-gone"]).expect(1);
    // Degraded is not online: CI must not pass on it.
    s.run(&["check", "web-json"]).expect(1);
    s.run(&["check", "web-ok", "web-503"]).expect(1);
    s.run(&["check", "no-such-service"]).expect(2);
}

#[test]
fn check_json_matches_the_spec() {
    // Plus one service with neither port nor health check, never started.
    let s = hand_started_stack(
        r#"
[services.worker]
tier = "apps"
command = "sleep 1000"
"#,
    );
    let (code, v) = s.check_json();
    assert_eq!(code, 1, "{v}");
    let top: BTreeSet<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert!(
        top.contains("services") && top.contains("summary"),
        "top-level keys: {top:?}"
    );

    let list = services(&v);
    assert_eq!(list.len(), 5, "{v}");
    for svc in list {
        let obj = svc.as_object().expect("each service is an object");
        for key in [
            "name",
            "tier",
            "state",
            "pid",
            "port",
            "restarts",
            "uptime_s",
            "detail",
            "latency_ms",
            "rss_bytes",
            "cpu_percent",
            "restarts_total",
        ] {
            assert!(obj.contains_key(key), "{key} missing from {svc}");
        }
        assert!(svc["name"].is_string(), "{svc}");
        assert!(svc["tier"].is_string(), "{svc}");
        assert!(
            STATES.contains(&svc["state"].as_str().unwrap_or("")),
            "unknown state in {svc}"
        );
        assert!(svc["pid"].is_null() || svc["pid"].is_i64(), "{svc}");
        assert!(svc["port"].is_null() || svc["port"].is_u64(), "{svc}");
        assert!(svc["restarts"].is_u64(), "{svc}");
        assert!(svc["restarts_total"].is_u64(), "{svc}");
        assert!(
            svc["uptime_s"].is_null() || svc["uptime_s"].is_number(),
            "{svc}"
        );
        assert!(
            svc["detail"].is_null() || svc["detail"].is_string(),
            "{svc}"
        );
        assert!(
            svc["latency_ms"].is_null() || svc["latency_ms"].is_number(),
            "{svc}"
        );
        // Nothing here was started by fpctl.
        assert!(
            svc["pid"].is_null(),
            "a pid for a hand-started service: {svc}"
        );
        assert!(svc["uptime_s"].is_null(), "{svc}");
        assert_eq!(svc["restarts"], 0, "{svc}");
    }

    let ok = entry(&v, "web-ok");
    assert_eq!(ok["tier"], "core");
    assert_eq!(ok["state"], "online");
    assert!(ok["port"].is_u64());
    assert!(ok["latency_ms"].as_f64().is_some_and(|l| l >= 0.0), "{ok}");
    assert_eq!(entry(&v, "web-json")["state"], "degraded");
    assert_eq!(entry(&v, "web-json")["tier"], "core");
    assert_eq!(entry(&v, "web-503")["state"], "degraded");
    assert_eq!(entry(&v, "web-503")["tier"], "apps");
    assert_eq!(entry(&v, "web-gone")["state"], "offline");
    let worker = entry(&v, "worker");
    assert!(worker["port"].is_null(), "{worker}");
    assert!(
        worker["latency_ms"].is_null(),
        "no probe, no latency: {worker}"
    );
    assert!(worker["pid"].is_null(), "{worker}");

    let summary = v["summary"].as_object().expect("summary is an object");
    let keys: BTreeSet<&str> = summary.keys().map(|k| k.as_str()).collect();
    assert_eq!(keys, STATES.into_iter().collect::<BTreeSet<_>>(), "{v}");
    let mut total = 0;
    for state in STATES {
        let n = summary[state]
            .as_u64()
            .unwrap_or_else(|| panic!("summary.{state} is not an integer: {v}"));
        let counted = list.iter().filter(|x| x["state"] == state).count() as u64;
        assert_eq!(n, counted, "summary.{state} disagrees with the list: {v}");
        total += n;
    }
    assert_eq!(total, list.len() as u64, "{v}");
    assert_eq!(summary["online"], 1);
    assert_eq!(summary["degraded"], 2);
}

#[test]
fn check_probes_in_parallel() {
    const TOTAL: usize = 40;
    const HANGING: usize = 10;
    const HEALTHY: usize = 5;
    let ports = free_ports(TOTAL);
    let mut toml = String::new();
    for (i, port) in ports.iter().enumerate() {
        toml.push_str(&format!(
            "[services.s{i:02}]\ncommand = \"python3 {} --port ${{PORT}}\"\nport = {port}\nhealth = {{ http = \"/health\", timeout = \"1s\" }}\n\n",
            httpd()
        ));
    }
    let mut s = Stack::new(&toml);
    for &port in &ports[..HANGING] {
        s.spawn_httpd(&["--port", &port.to_string(), "--hang"]);
    }
    for &port in &ports[HANGING..HANGING + HEALTHY] {
        s.spawn_httpd(&["--port", &port.to_string()]);
    }
    for &port in &ports[..HANGING + HEALTHY] {
        wait_until(
            &format!("hand-started httpd listens on {port}"),
            Duration::from_secs(15),
            || port_open(port),
        );
    }

    let t = Instant::now();
    let r = s.run(&["check", "--json"]);
    let took = t.elapsed();
    eprintln!("check --json of {TOTAL} services ({HANGING} hanging): {took:.2?}");
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        took < Duration::from_secs(3),
        "check took {took:?}: probes are not run in parallel (10 hanging x 1s timeout)"
    );
    let v: Value = serde_json::from_str(&r.stdout()).expect("JSON");
    assert_eq!(services(&v).len(), TOTAL);
    for (i, _) in ports.iter().enumerate() {
        let state = entry(&v, &format!("s{i:02}"))["state"].clone();
        if (HANGING..HANGING + HEALTHY).contains(&i) {
            assert_eq!(state, "online", "s{i:02}: {v}");
        } else {
            assert_ne!(state, "online", "s{i:02}: {v}");
        }
    }
}

#[test]
fn check_wait_returns_once_online_or_after_the_deadline() {
    let p = free_ports(2);
    let (slow, never) = (p[0], p[1]);
    let mut s = Stack::new(&format!(
        r#"
[services.slow]
command = "python3 {httpd} --port ${{PORT}}"
port = {slow}
health = {{ http = "/health" }}

[services.never]
command = "python3 {httpd} --port ${{PORT}}"
port = {never}
health = {{ http = "/health" }}
"#,
        httpd = httpd()
    ));
    s.spawn_httpd(&["--port", &slow.to_string(), "--ready-after", "1"]);
    let t = Instant::now();
    let r = s.run(&["check", "slow", "--wait=10s"]);
    let took = t.elapsed();
    eprintln!("check --wait=10s on a service ready after 1s: {took:.2?}");
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(
        took >= Duration::from_millis(500),
        "returned after {took:?}, before the service could be online"
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(r.stdout().contains("online"), "{}", r.all());

    let t = Instant::now();
    let r = s.run(&["check", "never", "--wait=1s"]);
    let took = t.elapsed();
    eprintln!("check --wait=1s on a never-online service: {took:.2?}");
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "check --wait=1s returned after {took:?}"
    );
    assert!(r.stdout().contains("offline"), "{}", r.all());
}

#[test]
fn logs_prints_the_last_lines() {
    let port = free_port();
    let s = Stack::new(&format!(
        r#"
[services.chatty]
command = "python3 {httpd} --port ${{PORT}} --lines-every 0.05"
port = {port}
health = {{ http = "/health" }}
"#,
        httpd = httpd()
    ));
    s.run(&["start"]).expect(0);
    wait_until("chatty logged 10 lines", Duration::from_secs(10), || {
        s.log("chatty").contains("line 10\n")
    });
    let r = s.run(&["logs", "chatty", "-n", "3"]).expect(0);
    let out = r.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.all());
    let numbers: Vec<u64> = lines
        .iter()
        .map(|l| {
            l.strip_prefix("line ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected log line {l:?}:\n{out}"))
        })
        .collect();
    assert!(numbers[0] >= 8, "not the end of the log: {numbers:?}");
    assert_eq!(
        numbers,
        vec![numbers[0], numbers[0] + 1, numbers[0] + 2],
        "not three consecutive lines"
    );
    // They are the log's lines, as written.
    let log = s.log("chatty");
    let at = log
        .find(&format!("{}\n", lines[0]))
        .expect("first line in the log");
    assert!(log[at..].starts_with(&format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2])));

    let r = s.run(&["logs", "nope"]).expect(2);
    assert!(r.stderr().contains("nope"), "{}", r.all());
}

#[test]
fn up_runs_in_the_foreground_and_stops_everything_on_sigint() {
    use std::os::unix::process::CommandExt;
    let p = free_ports(2);
    let mut s = Stack::new(&format!(
        r#"
[services.api]
command = "python3 {httpd} --port ${{PORT}} --name api --lines-every 0.2"
port = {api}
health = {{ http = "/health" }}

[services.web]
command = "python3 {httpd} --port ${{PORT}} --name web --lines-every 0.2"
port = {web}
depends_on = ["api"]
health = {{ http = "/health" }}
"#,
        httpd = httpd(),
        api = p[0],
        web = p[1],
    ));
    let mut child = s
        .cmd(&["up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn fpctl up");
    let up_pid = child.id() as i32;
    s.own_pids.push(up_pid);
    let collect = |mut pipe: Box<dyn Read + Send>| {
        let buf = Arc::new(Mutex::new(String::new()));
        let b = Arc::clone(&buf);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        buf
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let dump = || {
        format!(
            "--- up stdout\n{}--- up stderr\n{}",
            stdout.lock().unwrap(),
            stderr.lock().unwrap()
        )
    };

    let mut online = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !online {
        online = s.check_json().0 == 0;
        if !online {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(online, "up did not bring everything online\n{}", dump());
    // Each service's own output, behind its name: `name | line N`.
    let has_lines_of = |name: &str| {
        stdout
            .lock()
            .unwrap()
            .lines()
            .any(|l| l.starts_with(&format!("{name} | line ")))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !(has_lines_of("api") && has_lines_of("web")) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        has_lines_of("api") && has_lines_of("web"),
        "no \"api | line N\" and \"web | line N\" log lines in up's output\n{}",
        dump()
    );

    let pids: Vec<i32> = ["api", "web"]
        .iter()
        .map(|n| s.pid_of(n).unwrap_or_else(|| panic!("{n} has a pid")))
        .collect();
    wait_until(
        "state.json records the services' pids",
        Duration::from_secs(5),
        || {
            let recorded = s.recorded_pids();
            pids.iter().all(|p| recorded.contains(p))
        },
    );
    let recorded = s.recorded_pids();
    for pid in &pids {
        assert!(pid_alive(*pid), "{pid} is not running");
    }

    // SAFETY: kill(2) on the child we spawned.
    unsafe {
        libc::kill(up_pid, libc::SIGINT);
    }
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for fpctl up") {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "fpctl up did not exit within 10s of SIGINT\n{}",
            dump()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("fpctl up exited {status} {:.2?} after SIGINT", t.elapsed());
    for pid in recorded.iter().chain(&pids) {
        wait_until(
            &format!("recorded pid {pid} is gone"),
            Duration::from_secs(5),
            || !pid_alive(*pid),
        );
    }
    assert!(!port_open(p[0]) && !port_open(p[1]), "ports still served");
}

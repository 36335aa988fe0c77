//! `replicas = N`: instances NAME-1..NAME-N with their own ports, probed on
//! their own, waited for together, and scaled live.

use std::time::Duration;

use crate::common::*;

/// Three workers on consecutive ports; worker-i becomes ready after i
/// seconds, so a dependent started after the first alone would find the
/// others down (and exit, since it needs all three).
fn stack(base: u16) -> String {
    format!(
        r#"
[services.worker]
command = "python3 {httpd} --port ${{PORT}} --name r${{FPCTL_REPLICA}} --ready-after ${{FPCTL_REPLICA}} --stamp stamps"
port = {base}
replicas = 3
health = {{ http = "/health", interval = "100ms" }}

[services.client]
command = "python3 {httpd} --port ${{PORT}} --name ports=${{FPCTL_PORTS_WORKER}} --stamp stamps --needs http://127.0.0.1:${{FPCTL_PORT_WORKER_1}}/health --needs http://127.0.0.1:${{FPCTL_PORT_WORKER_2}}/health --needs http://127.0.0.1:${{FPCTL_PORT_WORKER_3}}/health"
port = {client}
depends_on = ["worker"]
restart = "no"
health = {{ http = "/health" }}
"#,
        httpd = httpd(),
        client = free_port(),
    )
}

/// `n` workers from port `base`, each answering as `w1`, `w2`, …
fn workers(base: u16, n: u16) -> String {
    format!(
        r#"
[services.worker]
command = "python3 {httpd} --port ${{PORT}} --name w${{FPCTL_REPLICA}}"
port = {base}
replicas = {n}
health = {{ http = "/health", interval = "100ms" }}
"#,
        httpd = httpd()
    )
}

#[test]
fn three_replicas_get_their_own_ports_and_a_dependent_waits_for_all() {
    let base = free_range(3);
    let s = Stack::new(&stack(base));
    s.run_within(&["start"], Duration::from_secs(30)).expect(0);
    let mut pids = Vec::new();
    for i in 1..=3u16 {
        let name = format!("worker-{i}");
        assert_eq!(s.state_of(&name), "online", "{name}");
        let port = s.service(&name)["port"].as_u64().unwrap() as u16;
        assert_eq!(port, base + i - 1, "{name}'s port");
        assert!(
            http_get(port, "/health").is_some(),
            "{name} does not answer"
        );
        pids.push(s.pid_of(&name).unwrap());
    }
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 3, "the instances share a pid");
    assert_eq!(s.state_of("client"), "online", "{}", s.log("client"));
    let stamps = std::fs::read_to_string(s.file("stamps")).unwrap();
    let ports = format!("ports={},{},{} start", base, base + 1, base + 2);
    assert!(
        stamps.contains(&ports),
        "FPCTL_PORTS_WORKER wrong:\n{stamps}"
    );
    for i in 1..=3 {
        assert!(
            stamps.contains(&format!("r{i} start")),
            "no FPCTL_REPLICA={i}:\n{stamps}"
        );
    }

    // check groups the instances under the service, and NAME means all.
    let table = s.run(&["check", "worker"]).expect(0).stdout();
    assert!(table.contains("worker  3 replicas: 3 online"), "{table}");
    assert_eq!(count_lines(&table, "  worker-"), 3, "{table}");
    // NAME-2 means one instance.
    s.run(&["stop", "worker-2"]).expect(0);
    assert_eq!(s.state_of("worker-2"), "stopped");
    assert_eq!(s.state_of("worker-1"), "online");
    s.run(&["stop", "worker"]).expect(0);
    for i in 1..=3 {
        assert_eq!(s.state_of(&format!("worker-{i}")), "stopped");
    }
}

#[test]
fn replica_ports_past_the_tier_range_are_rejected_with_their_position() {
    let s = Stack::new(
        r#"
[[tier]]
name = "apps"
ports = "8000-8001"

[services.worker]
tier = "apps"
command = "sleep 60"
port = 8000
replicas = 3
"#,
    );
    let r = s.run(&["validate"]).expect(2);
    assert!(
        r.all().contains("services.toml:9:8")
            && r.all().contains("port 8002 of replica \"worker-3\""),
        "{}",
        r.all()
    );
}

#[test]
fn scale_goes_from_three_to_one_and_back_live() {
    let base = free_range(3);
    let s = Stack::new(&workers(base, 3));
    s.run_within(&["start"], Duration::from_secs(30)).expect(0);
    let first = s.pid_of("worker-1").unwrap();
    let (second, third) = (s.pid_of("worker-2").unwrap(), s.pid_of("worker-3").unwrap());

    let r = s.run_within(&["scale", "worker=1"], Duration::from_secs(30));
    assert_eq!(r.code(), 0, "{}", r.all());
    let (_, check) = s.check_json();
    let names: Vec<&str> = check["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["worker-1"], "{check}");
    assert!(
        !pid_alive(second) && !pid_alive(third),
        "extra instances still run"
    );
    assert!(!port_open(base + 1) && !port_open(base + 2));
    assert_eq!(s.pid_of("worker-1"), Some(first), "worker-1 was restarted");

    let r = s.run_within(&["scale", "worker=3"], Duration::from_secs(30));
    assert_eq!(r.code(), 0, "{}", r.all());
    for i in 1..=3u16 {
        assert_eq!(s.state_of(&format!("worker-{i}")), "online");
        assert!(http_get(base + i - 1, "/health").is_some());
    }
    assert_eq!(s.pid_of("worker-1"), Some(first), "worker-1 was restarted");

    // Only a replicated service scales; the count must be a number from 1.
    let r = s.run(&["scale", "worker=0"]).expect(2);
    assert!(r.all().contains("from 1 up"), "{}", r.all());
    let r = s.run(&["scale", "nope=2"]).expect(2);
    assert!(
        r.all().contains("no replicated service named \"nope\""),
        "{}",
        r.all()
    );
}

#[test]
fn auto_ports_give_each_replica_a_free_port_of_the_range_kept_across_stop_and_start() {
    let first = free_range(6);
    let squatter = std::net::TcpListener::bind(("127.0.0.1", first)).unwrap();
    let s = Stack::new(&format!(
        r#"
[[tier]]
name = "apps"
ports = "{first}-{last}"

[services.worker]
tier = "apps"
command = "python3 {httpd} --port ${{PORT}} --name w${{FPCTL_REPLICA}}"
port = "auto"
replicas = 2
health = {{ http = "/health" }}
"#,
        last = first + 5,
        httpd = httpd()
    ));
    s.run_within(&["start"], Duration::from_secs(30)).expect(0);
    let port = |name: &str| s.service(name)["port"].as_u64().unwrap() as u16;
    let ports = (port("worker-1"), port("worker-2"));
    assert_eq!(ports, (first + 1, first + 2), "not the lowest free ports");
    s.run(&["stop"]).expect(0);
    drop(squatter);
    s.run_within(&["start"], Duration::from_secs(30)).expect(0);
    assert_eq!(
        (port("worker-1"), port("worker-2")),
        ports,
        "auto ports moved"
    );
}

/// `logs worker` and `events worker` mean every instance: the logs merged
/// behind each instance's name, the events of all of them; an instance's own
/// name still means that one alone.
#[test]
fn logs_and_events_of_a_replicated_service_cover_all_its_instances() {
    let base = free_range(2);
    let s = Stack::new(&format!(
        "{}{}",
        workers(base, 2),
        http_service("other", free_port(), "--name solo", "")
    ));
    s.run_within(&["start"], Duration::from_secs(30)).expect(0);
    wait_until("both instances logged", Duration::from_secs(10), || {
        s.log("worker-1").contains("w1: listening") && s.log("worker-2").contains("w2: listening")
    });

    let r = s.run(&["logs", "worker"]).expect(0);
    let out = r.stdout();
    for i in 1..=2 {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("worker-{i} "))
                && l.contains(&format!("w{i}: listening"))),
            "no line of worker-{i} behind its name:\n{out}"
        );
    }
    assert!(
        !out.contains("solo"),
        "another service's log came along:\n{out}"
    );

    let r = s.run(&["logs", "worker-2"]).expect(0);
    let out = r.stdout();
    assert!(out.contains("w2: listening"), "{out}");
    assert!(
        !out.contains("w1: listening") && !out.contains("worker-2 |"),
        "one instance's log is printed as it wrote it:\n{out}"
    );

    let r = s.run(&["events", "worker", "--json"]).expect(0);
    let mut services: Vec<String> = r
        .stdout()
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).expect("one JSON event a line");
            e["service"].as_str().unwrap().to_string()
        })
        .collect();
    services.sort();
    services.dedup();
    assert_eq!(services, ["worker-1", "worker-2"], "{}", r.stdout());

    let r = s.run(&["logs", "wroker"]).expect(2);
    assert!(
        r.all().contains("no service named \"wroker\""),
        "{}",
        r.all()
    );
    let r = s.run(&["events", "wroker"]).expect(2);
    assert!(
        r.all().contains("no service named \"wroker\""),
        "{}",
        r.all()
    );
}

/// `exec worker` (the service's name, not an instance's) runs in the first
/// instance's environment and says so; an instance's name chooses another.
#[test]
fn exec_on_a_replicated_service_runs_in_its_first_instance_and_says_so() {
    let base = free_range(3);
    let s = Stack::new(&workers(base, 3));
    let r = s
        .run(&[
            "exec",
            "worker",
            "--",
            "sh",
            "-c",
            "echo replica $FPCTL_REPLICA port $PORT",
        ])
        .expect(0);
    assert_eq!(
        r.stdout().trim(),
        format!("replica 1 port {base}"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr().contains("worker-1") && r.stderr().contains("worker-3"),
        "no word of which instance:\n{}",
        r.all()
    );
    let r = s
        .run(&[
            "exec",
            "worker-2",
            "--",
            "sh",
            "-c",
            "echo replica $FPCTL_REPLICA",
        ])
        .expect(0);
    assert_eq!(r.stdout().trim(), "replica 2");
    assert!(r.stderr().is_empty(), "{}", r.all());
    // The command's exit code is still the command's.
    s.run(&["exec", "worker", "--", "sh", "-c", "exit 7"])
        .expect(7);
}

/// `probe worker` probes every instance: it passes only when all pass.
#[test]
fn probe_of_a_replicated_service_probes_every_instance() {
    let base = free_range(2);
    let s = Stack::new(&workers(base, 2));
    s.run_within(&["start"], Duration::from_secs(30)).expect(0);
    let r = s.run(&["probe", "worker"]).expect(0);
    for i in 1..=2 {
        assert!(
            r.stdout().contains(&format!("worker-{i}: healthy")),
            "{}",
            r.all()
        );
    }
    s.run(&["stop", "worker-2"]).expect(0);
    let r = s.run(&["probe", "worker"]).expect(1);
    assert!(
        r.stdout().contains("worker-1: healthy") && r.stdout().contains("worker-2: down"),
        "{}",
        r.all()
    );
    s.run(&["probe", "worker-1"]).expect(0);
    let r = s.run(&["probe", "wroker"]).expect(2);
    assert!(
        r.all().contains("no service named \"wroker\""),
        "{}",
        r.all()
    );
}

/// `GET path` on the API at `port` with the bearer `token`: the status code
/// and the JSON body.
fn api_get(port: u16, token: &str, path: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        code,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// The API takes a replicated service's name as the CLI does: its logs
/// merged with each line's instance, its events, its instances' status.
#[test]
fn the_api_takes_a_replicated_services_name_like_the_cli() {
    let base = free_range(2);
    let api = free_port();
    let s = Stack::new(&format!(
        "[project]\napi = \"127.0.0.1:{api}\"\n{}",
        workers(base, 2)
    ));
    s.run_within(&["start"], Duration::from_secs(30)).expect(0);
    let token = std::fs::read_to_string(s.file(".fpctl/api-token")).unwrap();
    let token = token.trim();
    wait_until("both instances logged", Duration::from_secs(10), || {
        s.log("worker-1").contains("w1: listening") && s.log("worker-2").contains("w2: listening")
    });

    let (code, logs) = api_get(api, token, "/api/v1/services/worker/logs?n=50");
    assert_eq!(code, 200, "{logs}");
    let lines: Vec<&str> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let services: Vec<&str> = logs["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), services.len(), "{logs}");
    assert_eq!(
        lines.len(),
        logs["times"].as_array().unwrap().len(),
        "{logs}"
    );
    for i in 1..=2 {
        let k = lines
            .iter()
            .position(|l| l.contains(&format!("w{i}: listening")))
            .unwrap_or_else(|| panic!("no line of worker-{i}: {logs}"));
        assert_eq!(services[k], format!("worker-{i}"), "{logs}");
    }

    let (code, one) = api_get(api, token, "/api/v1/services/worker");
    assert_eq!(code, 200, "{one}");
    assert_eq!(one["instances"].as_array().unwrap().len(), 2, "{one}");
    assert_eq!(one["summary"]["online"], 2, "{one}");

    let (code, events) = api_get(api, token, "/api/v1/events?service=worker");
    assert_eq!(code, 200, "{events}");
    let mut who: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["service"].as_str().unwrap())
        .collect();
    who.sort();
    who.dedup();
    assert_eq!(who, ["worker-1", "worker-2"], "{events}");

    let (code, history) = api_get(api, token, "/api/v1/services/worker/history");
    assert_eq!(code, 200, "{history}");
    assert!(history["instances"]["worker-2"].is_array(), "{history}");

    // An instance is still itself, and a wrong name still 404.
    let (code, logs) = api_get(api, token, "/api/v1/services/worker-2/logs");
    assert_eq!(code, 200);
    assert!(logs.get("services").is_none(), "{logs}");
    assert_eq!(api_get(api, token, "/api/v1/services/wroker/logs").0, 404);
}

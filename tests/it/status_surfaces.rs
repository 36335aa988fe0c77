//! Every surface that shows a service's status, pinned: `check --json`, the
//! API's status and service answers, the stream's first snapshot, `/metrics`
//! and `state.json`, of one stack that holds every settled state (online,
//! external, completed, failed, blocked, stopped, disabled, replicas).
//! Values that differ from run to run (pids, ports, times, memory) are
//! replaced by placeholders; everything else must match the snapshot in
//! `tests/snapshots/status/` (`BLESS=1` rewrites them after an intended
//! change, to be reviewed in the diff).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

struct Pinned {
    stack: Stack,
    /// Port number -> the name it is shown as.
    ports: BTreeMap<u16, String>,
    api: u16,
    token: String,
}

fn pinned_stack() -> Pinned {
    let p = free_ports(5);
    let (api, db, ext, gone, broken) = (p[0], p[1], p[2], p[3], p[4]);
    let worker = free_range(2);
    let toml = format!(
        r#"[project]
name = "pinned"
api = "127.0.0.1:{api}"

[[tier]]
name = "infra"
[[tier]]
name = "apps"
title = "Applications"

[services.db]
tier = "infra"
command = "python3 {httpd} --port ${{PORT}} --name db"
port = {db}
health = {{ http = "/health" }}

[services.migrate]
tier = "infra"
oneshot = true
command = "python3 -c 'print(1)'"

[services.ext]
tier = "infra"
command = "python3 {httpd} --port ${{PORT}} --name ext"
port = {ext}
health = {{ http = "/health" }}

[services.broken]
tier = "apps"
command = "sh -c 'exit 3'"
restart = "no"
# Never healthy: its dependent cannot start before it exits.
port = {broken}
health = {{ tcp = {broken} }}
env = {{ DB_PASSWORD = "hunter2-secret" }}

[services.needs-broken]
tier = "apps"
command = "sleep 600"
depends_on = ["broken"]

[services.off]
tier = "apps"
command = "sleep 600"
disabled = true

[services.gone]
tier = "apps"
command = "python3 {httpd} --port ${{PORT}} --name gone"
port = {gone}
health = {{ http = "/health" }}

[services.worker]
tier = "apps"
command = "python3 {httpd} --port ${{PORT}} --name worker"
port = {worker}
replicas = 2
health = {{ http = "/health" }}
"#,
        httpd = httpd(),
    );
    let mut stack = Stack::new(&toml);
    // `ext` answers on its port before fpctl starts it: external.
    stack.spawn_httpd(&["--port", &ext.to_string(), "--name", "ext"]);
    wait_until(
        "the hand-started ext answers",
        Duration::from_secs(10),
        || http_get(ext, "/health").is_some(),
    );
    stack.run(&["start"]).expect(1);
    stack.run(&["stop", "gone"]).expect(0);
    let token = std::fs::read_to_string(stack.file(".fpctl/api-token"))
        .expect("the API token file")
        .trim()
        .to_string();
    let ports = BTreeMap::from([
        (api, "api".to_string()),
        (db, "db".to_string()),
        (ext, "ext".to_string()),
        (gone, "gone".to_string()),
        (broken, "broken".to_string()),
        (worker, "worker-1".to_string()),
        (worker + 1, "worker-2".to_string()),
    ]);
    Pinned {
        stack,
        ports,
        api,
        token,
    }
}

impl Pinned {
    /// GET with the token; the body.
    fn get(&self, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.api)).expect("API connects");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.api, self.token
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        }
    }

    /// Placeholders for what differs from run to run.
    fn normalize(&self, v: &mut Value) {
        const VOLATILE: [&str; 10] = [
            "pid",
            "supervisor_pid",
            "ticks",
            "supervisor_ticks",
            "started_at",
            "uptime_s",
            "latency_ms",
            "rss_bytes",
            "cpu_percent",
            "ts",
        ];
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if VOLATILE.contains(&k.as_str()) && !x.is_null() {
                        *x = Value::String(format!("<{k}>"));
                    } else if k == "port" {
                        if let Some(p) = x.as_u64() {
                            *x = Value::String(format!("<port {}>", self.ports[&(p as u16)]));
                        }
                    } else {
                        self.normalize(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.normalize(x)),
            Value::String(s) => *s = self.normalize_text(s),
            _ => {}
        }
    }

    fn normalize_text(&self, s: &str) -> String {
        let mut out = s.replace(&self.stack.path().display().to_string(), "<dir>");
        for (port, name) in &self.ports {
            out = out.replace(&port.to_string(), &format!("<port {name}>"));
        }
        mask_pids(&out)
    }
}

/// `pid 123` -> `pid <n>`.
fn mask_pids(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(k) = rest.find("pid ") {
        out.push_str(&rest[..k + 4]);
        let after = &rest[k + 4..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("<n>");
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

/// Compare with `tests/snapshots/status/NAME`, or write it with BLESS=1.
fn pin(name: &str, text: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots/status")
        .join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("no snapshot {} (BLESS=1 writes it)", path.display()));
    assert!(
        want == text,
        "{name} differs from its snapshot {}:\n--- snapshot\n{want}\n--- now\n{text}",
        path.display()
    );
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

#[test]
fn every_status_surface_matches_its_snapshot() {
    let p = pinned_stack();

    let (code, mut check) = p.stack.check_json();
    assert_eq!(code, 1, "broken and needs-broken are not online");
    p.normalize(&mut check);
    pin("check.json", &pretty(&check));

    let mut status: Value = serde_json::from_str(&p.get("/api/v1/status")).unwrap();
    p.normalize(&mut status);
    pin("api-status.json", &pretty(&status));

    let mut one: Value = serde_json::from_str(&p.get("/api/v1/services/broken")).unwrap();
    p.normalize(&mut one);
    pin("api-service.json", &pretty(&one));

    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(p.stack.file(".fpctl/state.json")).unwrap())
            .unwrap();
    p.normalize(&mut state);
    pin("state.json", &pretty(&state));

    // Metrics: one line per series, values of volatile series dropped.
    let metrics = p.get("/metrics");
    let mut lines: Vec<String> = metrics
        .lines()
        .map(|l| {
            let l = p.normalize_text(l);
            let volatile = ["latency", "memory", "cpu"].iter().any(|v| l.contains(v));
            match l.rsplit_once(' ') {
                Some((series, _)) if volatile && !l.starts_with('#') => format!("{series} <v>"),
                _ => l,
            }
        })
        .collect();
    lines.sort();
    pin("metrics.txt", &(lines.join("\n") + "\n"));
}

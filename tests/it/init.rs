//! `fpctl init` on a realistic tree: two Python web apps (Flask- and
//! FastAPI-style, standard library plus `six`), an Express-style Node app
//! with a `.env` naming redis and another service, and a Procfile app. The
//! file it writes must validate, give every service its own free port, and
//! start for real (real venvs, a real npm install, a real redis-server).

use std::collections::HashSet;
use std::net::TcpListener;
use std::time::Duration;

use crate::common::*;

/// Flask-style: runs itself under `__main__`, default port in the code.
fn users_app(port: u16) -> String {
    format!(
        r#"import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer

import six


class Users(BaseHTTPRequestHandler):
    def do_GET(self):
        routes = {{"/health": {{"status": "ok", "six": six.__version__}}, "/users": [{{"id": 1}}]}}
        body = json.dumps(routes.get(self.path, {{}})).encode()
        self.send_response(200 if self.path in routes else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "{port}"))
    HTTPServer(("127.0.0.1", port), Users).serve_forever()
"#
    )
}

/// FastAPI-style: healthy only while users answers at USERS_URL.
fn orders_app(port: u16) -> String {
    format!(
        r#"import json, os, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

USERS_URL = os.environ["USERS_URL"]


class Orders(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/api/health":
            self.send_response(404)
            self.end_headers()
            return
        with urllib.request.urlopen(USERS_URL, timeout=2) as r:
            users = json.load(r)
        body = json.dumps({{"status": "ok", "users": users, "users_url": USERS_URL}}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "{port}"))), Orders).serve_forever()
"#
    )
}

/// Express-style: healthy only while redis answers PING at REDIS_URL.
const WEB_SERVER: &str = r#"
const http = require('http');
const net = require('net');
const isNumber = require('is-number');
const port = process.env.PORT || 3000;
const redis = new URL(process.env.REDIS_URL);

function ping(done) {
  const c = net.connect(Number(redis.port), redis.hostname, () => c.write('PING\r\n'));
  c.once('data', (d) => { done(d.toString().trim()); c.end(); });
  c.once('error', (e) => done('error: ' + e.message));
}

http.createServer((req, res) => {
  if (req.url !== '/health') { res.writeHead(404); return res.end(); }
  ping((reply) => {
    res.writeHead(reply === '+PONG' ? 200 : 503, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ redis: reply, orders: process.env.ORDERS_URL, isNumber: isNumber(port) }));
  });
}).listen(port, '127.0.0.1', () => console.log(`web on ${port}`));
"#;

const CLOCK: &str = r#"
import argparse
from http.server import BaseHTTPRequestHandler, HTTPServer

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
port = p.parse_args().port


class Clock(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"tick")

    def log_message(self, *a):
        pass


HTTPServer(("127.0.0.1", port), Clock).serve_forever()
"#;

/// Its port comes only from `PORT`: no default anywhere in its files.
const ADMIN: &str = r#"
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Admin(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"admin")

    def log_message(self, *a):
        pass


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Admin).serve_forever()
"#;

fn require_tools() {
    for tool in ["redis-server", "redis-cli", "npm", "python3"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "`{tool}` is not on PATH; `bash .ci/run` installs it");
    }
}

/// Listeners on ports below the kernel's ephemeral range, 10 apart. The
/// services' ports stay unbound while their setup runs (pip, npm); ports
/// init derives from these (the next free ones up) are then never taken
/// meanwhile by an outgoing connection of some other test on this machine.
fn hold_low_ports(n: usize) -> Vec<TcpListener> {
    let start = 20_000 + (std::process::id() % 1_000) as u16 * 10;
    let held: Vec<TcpListener> = (start..32_000)
        .step_by(10)
        .filter_map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
        .take(n)
        .collect();
    assert_eq!(held.len(), n, "no free ports from {start} up");
    held
}

/// The tree, with the ports its files name. Both Python apps default to the
/// same port, on purpose.
fn write_tree(s: &Stack, code_port: u16, web_port: u16, redis_port: u16) {
    s.write("services/users/requirements.txt", "six==1.16.0\n");
    s.write("services/users/app.py", &users_app(code_port));
    s.write("services/orders/requirements.txt", "six==1.16.0\n");
    s.write("services/orders/main.py", &orders_app(code_port));
    s.write(
        "services/orders/.env",
        &format!("USERS_URL=http://localhost:{code_port}/users\n"),
    );
    s.write(
        "web/package.json",
        r#"{
  "name": "@acme/web",
  "version": "1.0.0",
  "private": true,
  "scripts": { "start": "node server.js" },
  "engines": { "node": ">=16" },
  "dependencies": { "is-number": "^7.0.0" }
}
"#,
    );
    s.write("web/server.js", WEB_SERVER);
    s.write(
        "web/.env",
        &format!(
            "PORT={web_port}\nREDIS_URL=redis://localhost:{redis_port}/0\n\
             # the orders API\nORDERS_URL=http://localhost:{code_port}\n"
        ),
    );
    s.write("clock/Procfile", "web: python3 clock.py --port $PORT\n");
    s.write("services/admin/requirements.txt", "");
    s.write("services/admin/app.py", ADMIN);
    s.write("clock/clock.py", CLOCK);
    // Ignored and skipped folders must not become services.
    s.write(".gitignore", "scratch/\n");
    s.write(
        "scratch/package.json",
        r#"{"scripts": {"start": "node x.js"}}"#,
    );
    s.write(
        "web/node_modules/left-pad/package.json",
        r#"{"name": "left-pad", "scripts": {"start": "node index.js"}}"#,
    );
}

fn generated(s: &Stack) -> toml::Table {
    let text = std::fs::read_to_string(s.file("services.toml")).expect("services.toml written");
    text.parse()
        .unwrap_or_else(|e| panic!("services.toml is not TOML: {e}\n{text}"))
}

/// Whether init's report says it moved `name`'s port into its tier's range.
fn moved(report: &str, name: &str) -> bool {
    report
        .lines()
        .any(|l| l.trim_start().starts_with(&format!("{name}: port ")) && l.contains("moved to"))
}

fn deps(t: &toml::Table, name: &str) -> Vec<String> {
    t["services"][name]
        .get("depends_on")
        .and_then(|d| d.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn init_drafts_a_stack_that_validates_and_starts() {
    require_tools();
    let s = Stack::empty();
    let mut held = hold_low_ports(3);
    // Free at init: a Python app keeps it.
    let code_port = held.pop().unwrap().local_addr().unwrap().port();
    // Ports a .env names but something holds now: init must move away.
    let web_port = held[0].local_addr().unwrap().port();
    let redis_port = held[1].local_addr().unwrap().port();
    write_tree(&s, code_port, web_port, redis_port);

    let r = s.run(&["init"]).expect(0);
    let report = r.stderr();
    for expected in [
        "found:",
        "users: Python app in services/users/",
        "web: Node app in web/",
        "orders depends on users",
        "web depends on orders",
        "web: uses redis",
        "guessed",
        "wrote",
    ] {
        assert!(
            report.contains(expected),
            "no {expected:?} in:\n{}",
            r.all()
        );
    }
    drop(held);
    s.run(&["validate"]).expect(0);

    let t = generated(&s);
    let services = t["services"].as_table().unwrap();
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["admin", "clock", "orders", "redis", "users", "web"]);
    // No port in admin's files, and it reads PORT: fpctl chooses.
    assert_eq!(services["admin"]["port"].as_str(), Some("auto"));
    let ports: Vec<u16> = services
        .values()
        .filter_map(|v| v["port"].as_integer())
        .map(|p| p as u16)
        .collect();
    assert_eq!(ports.len(), 5, "every other service has a port");
    let distinct: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(distinct.len(), ports.len(), "ports conflict: {ports:?}");
    let port = |n: &str| services[n]["port"].as_integer().unwrap() as u16;
    assert_ne!(port("web"), web_port, "web kept a port in use");
    assert_ne!(port("redis"), redis_port, "redis kept a port in use");
    assert!(
        [port("users"), port("orders")].contains(&code_port),
        "neither Python app kept its free default port {code_port}"
    );

    // Links and tiers.
    assert_eq!(deps(&t, "orders"), ["users"]);
    let mut web_deps = deps(&t, "web");
    web_deps.sort();
    assert_eq!(web_deps, ["orders", "redis"]);
    let tiers = t["tier"].as_array().unwrap();
    assert_eq!(tiers[0]["name"].as_str(), Some("infra"));
    // Infrastructure keeps its programs' ports and gets no range; every
    // other tier has one, none overlaps another, and each holds its
    // services' ports.
    assert!(tiers[0].get("ports").is_none(), "{t:?}");
    let ranges: Vec<(String, u16, u16)> = tiers[1..]
        .iter()
        .map(|tier| {
            let name = tier["name"].as_str().unwrap().to_string();
            let range = tier["ports"]
                .as_str()
                .unwrap_or_else(|| panic!("tier {name} has no port range"));
            let (lo, hi) = range.split_once('-').unwrap();
            (name, lo.parse().unwrap(), hi.parse().unwrap())
        })
        .collect();
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            assert!(a.2 < b.1 || b.2 < a.1, "ranges overlap: {a:?} {b:?}");
        }
    }
    let range_of = |n: &str| {
        let tier = services[n]["tier"].as_str().unwrap();
        ranges
            .iter()
            .find(|r| r.0 == tier)
            .map(|r| (r.1, r.2))
            .unwrap()
    };
    for name in ["users", "orders", "web", "clock"] {
        let (lo, hi) = range_of(name);
        assert!(
            (lo..=hi).contains(&port(name)),
            "{name}: {} outside {lo}-{hi}",
            port(name)
        );
    }
    // The Procfile's port (fpctl's own choice) moved into its tier's range.
    assert!(moved(&report, "clock"), "{report}");
    assert_eq!(services["redis"]["tier"].as_str(), Some("infra"));
    assert_eq!(services["users"]["setup"].as_str(), Some("venv"));
    assert_eq!(services["web"]["setup"].as_str(), Some("npm"));
    let text = std::fs::read_to_string(s.file("services.toml")).unwrap();
    assert!(text.contains("# guess"), "no guess is marked:\n{text}");

    // Up for real.
    let r = s.run(&["start"]);
    assert_eq!(r.code(), 0, "start failed:\n{}\n{text}", r.all());
    for name in ["redis", "users", "orders", "web", "clock", "admin"] {
        assert_eq!(s.state_of(name), "online", "{name}:\n{}", s.log(name));
    }
    let admin = s.service("admin")["port"]
        .as_u64()
        .expect("admin's chosen port") as u16;
    let (lo, hi) = range_of("admin");
    assert!(
        (lo..=hi).contains(&admin),
        "admin on {admin}, outside {lo}-{hi}"
    );
    let (code, body) = http_get(admin, "/").expect("admin answers on its chosen port");
    assert_eq!((code, body.as_str()), (200, "admin"));
    let (code, body) = http_get(port("orders"), "/api/health").expect("orders answers");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(r#""users": [{"id": 1}]"#)
            && body.contains(&format!("127.0.0.1:{}/users", port("users"))),
        "orders did not reach users through the rewritten USERS_URL: {body}"
    );
    let (code, body) = http_get(port("users"), "/health").expect("users answers");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(r#""six": "1.16.0""#),
        "six is not installed: {body}"
    );
    let (code, body) = http_get(port("web"), "/health").expect("web answers");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("+PONG") && body.contains(r#""isNumber":true"#),
        "{body}"
    );
    assert!(
        body.contains(&format!("127.0.0.1:{}", port("orders"))),
        "ORDERS_URL was not rewritten to the orders port: {body}"
    );
    assert!(
        s.file("services/users/.venv/bin/python").exists()
            && s.file("web/node_modules/is-number").is_dir(),
        "setup did not run"
    );

    let pids = s.recorded_pids();
    assert!(pids.len() >= 6, "recorded pids: {pids:?}");
    s.run(&["stop"]).expect(0);
    wait_until(
        "every process fpctl started is gone",
        Duration::from_secs(15),
        || pids.iter().all(|&p| !pid_alive(p)),
    );
    for p in distinct.into_iter().chain([admin]) {
        assert!(!port_open(p), "port {p} still answers after stop");
    }
}

#[test]
fn init_never_overwrites_without_force_and_dry_run_only_prints() {
    let s = Stack::empty();
    s.write("app/Procfile", "web: python3 -m http.server $PORT\n");
    let r = s.run(&["init", "--dry-run"]).expect(0);
    assert!(r.stdout().contains("[services.app]"), "{}", r.all());
    assert!(
        !s.file("services.toml").exists(),
        "--dry-run wrote the file"
    );

    s.write("services.toml", "# mine\n");
    let r = s.run(&["init"]).expect(2);
    assert!(r.stderr().contains("--force"), "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(s.file("services.toml")).unwrap(),
        "# mine\n"
    );
    s.run(&["init", "--force"]).expect(0);
    assert!(generated(&s)["services"].get("app").is_some());
    s.run(&["validate"]).expect(0);
}

#[test]
fn init_with_nothing_to_find_exits_2() {
    let s = Stack::empty();
    s.write("README.md", "# nothing to run here\n");
    let r = s.run(&["init"]).expect(2);
    assert!(r.stderr().contains("found no services"), "{}", r.all());
    assert!(!s.file("services.toml").exists());
}

#[test]
fn init_reads_a_compose_file_through_import() {
    let s = Stack::empty();
    let port = free_port();
    s.write(
        "docker-compose.yml",
        &format!(
            "services:\n  api:\n    build: ./api\n    ports: [\"{port}:{port}\"]\n    \
             volumes: [\"./api:/app\"]\n  cache:\n    image: redis:7\n"
        ),
    );
    s.write(
        "api/Dockerfile",
        "FROM python:3.12\nCMD [\"python\", \"app.py\"]\n",
    );
    s.write("api/requirements.txt", "six==1.16.0\n");
    s.write("api/app.py", &users_app(port));
    let r = s.run(&["init"]).expect(0);
    assert!(
        r.stderr()
            .contains("docker-compose.yml: service \"api\": `volumes` skipped"),
        "{}",
        r.all()
    );
    s.run(&["validate"]).expect(0);
    let t = generated(&s);
    let services = t["services"].as_table().unwrap();
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort();
    // The api folder is the compose service's, not a second Python app.
    assert_eq!(names, ["api", "cache"]);
    assert_eq!(services["api"]["port"].as_integer(), Some(i64::from(port)));
    assert_eq!(services["cache"]["tier"].as_str(), Some("infra"));
}

#[test]
fn init_probes_a_running_service_for_its_health_route() {
    let mut s = Stack::empty();
    let port = free_port();
    s.write("svc/requirements.txt", "six==1.16.0\n");
    // No route names in the code: only the running copy can tell.
    s.write(
        "svc/app.py",
        &format!(
            "import os\nfrom http.server import HTTPServer\n\
             port = int(os.environ.get(\"PORT\", \"{port}\"))\n"
        ),
    );
    // The running copy: /health says 503, every other path 200.
    s.spawn_httpd(&["--port", &port.to_string(), "--status", "503"]);
    wait_until("the running copy listens", Duration::from_secs(10), || {
        port_open(port)
    });
    let r = s.run(&["init", "--dry-run"]).expect(0);
    let text = r.stdout();
    assert!(
        text.contains(&format!("# /healthz answered on port {port}"))
            && text.contains(r#"health = { http = "/healthz" }"#),
        "{}",
        r.all()
    );
    let t: toml::Table = text.parse().unwrap();
    assert_ne!(
        t["services"]["svc"]["port"].as_integer(),
        Some(i64::from(port)),
        "the port in use was kept"
    );
}

/// A Node app whose port is written into its code (it reads no `PORT`).
fn fixed_node_app(s: &Stack, dir: &str, port: u16) {
    s.write(
        &format!("{dir}/package.json"),
        &format!(r#"{{"name": "{dir}", "scripts": {{"start": "node server.js"}}}}"#),
    );
    s.write(
        &format!("{dir}/server.js"),
        &format!("require('http').createServer((q, r) => r.end('ok')).listen({port});\n"),
    );
}

#[test]
fn init_moves_a_port_that_reads_port_into_its_tiers_range_and_leaves_fixed_ones() {
    let s = Stack::empty();
    fixed_node_app(&s, "web", 4000);
    s.write("api/requirements.txt", "");
    s.write("api/app.py", &users_app(8000));
    let r = s.run(&["init"]).expect(0);
    s.run(&["validate"]).expect(0);
    let t = generated(&s);
    let tier = &t["tier"].as_array().unwrap()[0];
    let range = tier["ports"].as_str().expect("the tier has a range");
    let (lo, hi) = range.split_once('-').unwrap();
    let (lo, hi): (u16, u16) = (lo.parse().unwrap(), hi.parse().unwrap());
    // The port in web's code decides; api reads PORT, so it moves in.
    let web = t["services"]["web"]["port"].as_integer().unwrap() as u16;
    let api = t["services"]["api"]["port"].as_integer().unwrap() as u16;
    assert_eq!(lo, web - web % 100, "{range}");
    assert!((lo..=hi).contains(&api), "api on {api}, outside {range}");
    assert!(moved(&r.stderr(), "api"), "{}", r.all());

    // Two ports written into code, 5000 apart: no range can hold both, so
    // the tier gets none, and the report says why.
    fixed_node_app(&s, "admin", 9000);
    let r = s.run(&["init", "--force"]).expect(0);
    s.run(&["validate"]).expect(0);
    let t = generated(&s);
    assert!(
        t["tier"].as_array().unwrap()[0].get("ports").is_none(),
        "{t:?}"
    );
    assert!(r.stderr().contains("no port range written"), "{}", r.all());
}

#[test]
fn init_runs_a_worker_folder_by_its_worker_py() {
    let s = Stack::empty();
    s.write("worker/requirements.txt", "");
    s.write(
        "worker/worker.py",
        "import time\nopen('worked', 'w').write('yes')\nwhile True:\n    time.sleep(1)\n",
    );
    s.write("worker/tasks.py", "def task():\n    pass\n");
    let r = s.run(&["init"]).expect(0);
    assert!(
        r.stderr().contains("worker: command `python worker.py`"),
        "{}",
        r.all()
    );
    s.run(&["validate"]).expect(0);
    let t = generated(&s);
    let worker = &t["services"]["worker"];
    assert_eq!(worker["command"].as_str(), Some("python worker.py"));
    assert_eq!(worker["dir"].as_str(), Some("worker"));
    let text = std::fs::read_to_string(s.file("services.toml")).unwrap();
    assert!(text.contains("# guess: from worker.py"), "{text}");

    let r = s.run(&["start"]);
    assert_eq!(r.code(), 0, "{}\n{text}", r.all());
    wait_until("the worker ran", Duration::from_secs(30), || {
        s.file("worker/worked").exists()
    });
    s.run(&["stop"]).expect(0);
}

#[test]
fn init_writes_host_variables_in_the_urls_it_rewrites() {
    let s = Stack::empty();
    let ports = free_ports(2);
    let (users_port, redis_port) = (ports[0], ports[1]);
    s.write("users/requirements.txt", "");
    s.write("users/app.py", &users_app(users_port));
    s.write(
        "web/package.json",
        r#"{"name": "web", "scripts": {"start": "node server.js"}}"#,
    );
    s.write("web/server.js", WEB_SERVER);
    s.write(
        "web/.env",
        &format!(
            "REDIS_URL=redis://localhost:{redis_port}/0\nUSERS_URL=http://localhost:{users_port}/users\n"
        ),
    );
    s.run(&["init"]).expect(0);
    s.run(&["validate"]).expect(0);
    let t = generated(&s);
    let env = &t["services"]["web"]["env"];
    assert_eq!(
        env["REDIS_URL"].as_str(),
        Some("redis://${FPCTL_HOST_REDIS}:${FPCTL_PORT_REDIS}/0")
    );
    assert_eq!(
        env["USERS_URL"].as_str(),
        Some("http://${FPCTL_HOST_USERS}:${FPCTL_PORT_USERS}/users")
    );
    let text = std::fs::read_to_string(s.file("services.toml")).unwrap();
    assert!(!text.contains("127.0.0.1:${FPCTL_PORT"), "{text}");
}

#[test]
fn init_leaves_infrastructure_without_a_port_range_so_postgres_fits() {
    let s = Stack::empty();
    s.write(
        "web/package.json",
        r#"{"name": "web", "scripts": {"start": "node server.js"}}"#,
    );
    s.write("web/server.js", WEB_SERVER);
    s.write("web/.env", "REDIS_URL=redis://localhost:6379/0\n");
    s.run(&["init"]).expect(0);
    let t = generated(&s);
    let tiers = t["tier"].as_array().unwrap();
    assert_eq!(tiers[0]["name"].as_str(), Some("infra"));
    assert!(tiers[0].get("ports").is_none(), "{t:?}");
    assert!(
        tiers[1].get("ports").is_some(),
        "apps keep their range: {t:?}"
    );
    // Adding postgres on its usual port to the infrastructure just works.
    let mut text = std::fs::read_to_string(s.file("services.toml")).unwrap();
    text.push_str(
        "\n[services.postgres]\ntier = \"infra\"\ncommand = \"postgres -D .fpctl/pgdata -p ${PORT}\"\nport = 5432\n",
    );
    s.write("services.toml", &text);
    s.run(&["validate"]).expect(0);
}

#[test]
fn a_port_outside_its_tiers_range_says_how_to_make_room() {
    let s = Stack::new(
        r#"
[[tier]]
name = "infra"
ports = "6300-6399"

[services.redis]
tier = "infra"
command = "redis-server --port ${PORT}"
port = 6379

[services.postgres]
tier = "infra"
command = "postgres -p ${PORT}"
port = 5432
"#,
    );
    let r = s.run(&["validate"]).expect(2);
    let err = r.stderr();
    assert!(
        err.contains("port 5432 of service \"postgres\" is outside the range 6300-6399")
            && err.contains("widen the range to ports = \"5432-6399\"")
            && err.contains("or remove `ports` from [[tier]] \"infra\""),
        "{err}"
    );
}

#[test]
fn init_records_when_each_log_line_was_written() {
    let s = Stack::empty();
    s.write("app/Procfile", "web: python3 -m http.server $PORT\n");
    s.run(&["init"]).expect(0);
    s.run(&["validate"]).expect(0);
    let t = generated(&s);
    assert_eq!(
        t["project"]["log_timestamps"].as_bool(),
        Some(true),
        "merged logs are in time order only with timestamps: {t:?}"
    );
}

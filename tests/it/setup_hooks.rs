//! Setup hooks against the real tools: a Python venv with `pip install`, an
//! `npm install`, and a list of shell commands that fails.

use std::time::{Duration, Instant};

use crate::common::*;

const SETUP_DONE: &str = "[fpctl] setup: done";

const VENV_SERVER: &str = r#"
import argparse, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

import six

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
args = p.parse_args()
body = json.dumps({
    "status": "healthy",
    "six": six.__version__,
    "prefix": sys.prefix,
    "executable": sys.executable,
}).encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


print(f"api: listening on {args.port}", flush=True)
HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
"#;

fn canon(p: &std::path::Path) -> std::path::PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|e| panic!("canonicalize {}: {e}", p.display()))
}

/// The value of `name` in a process's environment.
fn environ_var(pid: i32, name: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    raw.split(|&b| b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
}

fn start_timed(s: &Stack, what: &str) -> Duration {
    let t = Instant::now();
    s.run(&["start"]).expect(0);
    let took = t.elapsed();
    eprintln!("{what}: fpctl start took {took:.2?}");
    took
}

#[test]
fn venv_setup_installs_requirements_and_reruns_only_on_change() {
    let port = free_port();
    let s = Stack::new(&format!(
        r#"
[services.api]
dir = "services/api"
setup = "venv"
command = "python server.py --port ${{PORT}}"
port = {port}
health = {{ http = "/health", start_timeout = "50s" }}
"#
    ));
    s.write("services/api/requirements.txt", "six==1.16.0\n");
    s.write("services/api/server.py", VENV_SERVER);
    let svc_dir = s.file("services/api");
    let venv = svc_dir.join(".venv");

    // First start: a real venv and a real pip install.
    start_timed(&s, "venv, first start (python3 -m venv + pip install)");
    let log = s.log("api");
    assert!(
        log.contains("[fpctl] setup:"),
        "no setup lines in log:\n{log}"
    );
    assert_eq!(count_lines(&log, SETUP_DONE), 1, "log:\n{log}");
    let site = std::fs::read_dir(venv.join("lib"))
        .expect(".venv/lib")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("python3"))
        })
        .expect(".venv/lib/python3*")
        .join("site-packages/six.py");
    assert!(site.is_file(), "{} is missing", site.display());
    assert_eq!(s.state_of("api"), "online");

    // The service runs the venv's python, not the system's.
    let pid = s.pid_of("api").expect("api has a pid");
    let virtual_env = environ_var(pid, "VIRTUAL_ENV").expect("VIRTUAL_ENV in the environment");
    assert_eq!(canon(std::path::Path::new(&virtual_env)), canon(&venv));
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("/proc/PID/exe");
    assert_eq!(
        canon(&exe),
        canon(&venv.join("bin/python")),
        "the service's executable is not the venv's python"
    );
    let (code, body) = http_get(port, "/health").expect("api answers");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(v["six"], "1.16.0");
    assert_eq!(
        canon(std::path::Path::new(v["prefix"].as_str().unwrap())),
        canon(&venv),
        "sys.prefix is not the venv: {body}"
    );
    assert!(
        std::path::Path::new(v["executable"].as_str().unwrap()).starts_with(&svc_dir),
        "sys.executable is not inside the service dir: {body}"
    );

    // Second start, nothing changed: setup is not run again.
    s.run(&["stop"]).expect(0);
    wait_until("api's process is gone", Duration::from_secs(10), || {
        !pid_alive(pid)
    });
    start_timed(&s, "venv, second start (up to date)");
    let log = s.log("api");
    assert_eq!(
        count_lines(&log, SETUP_DONE),
        1,
        "setup ran again though requirements.txt did not change:\n{log}"
    );
    assert_eq!(s.state_of("api"), "online");

    // requirements.txt changed: setup runs again.
    s.write(
        "services/api/requirements.txt",
        "# pinned for the tests\nsix==1.16.0\n",
    );
    s.run(&["stop"]).expect(0);
    start_timed(&s, "venv, third start (requirements.txt changed)");
    let log = s.log("api");
    assert_eq!(
        count_lines(&log, SETUP_DONE),
        2,
        "setup did not run again after requirements.txt changed:\n{log}"
    );
    assert_eq!(s.state_of("api"), "online");
}

const NPM_SERVER: &str = r#"
const http = require('http');
const isNumber = require('is-number');
const port = Number(process.env.PORT);
http.createServer((req, res) => {
  const body = JSON.stringify({ status: 'healthy', isNumber: isNumber(port) });
  res.writeHead(req.url === '/health' ? 200 : 404, { 'Content-Type': 'application/json' });
  res.end(body);
}).listen(port, '127.0.0.1', () => console.log(`web: listening on ${port}`));
"#;

#[test]
fn npm_setup_installs_packages_and_is_up_to_date_after_lockfile() {
    let port = free_port();
    let s = Stack::new(&format!(
        r#"
[services.web]
dir = "services/web"
setup = "npm"
command = "node server.js"
port = {port}
health = {{ http = "/health", start_timeout = "50s" }}
"#
    ));
    s.write(
        "services/web/package.json",
        r#"{
  "name": "fpctl-test-web",
  "version": "1.0.0",
  "private": true,
  "dependencies": { "is-number": "^7.0.0" }
}
"#,
    );
    s.write("services/web/server.js", NPM_SERVER);
    let dir = s.file("services/web");

    start_timed(&s, "npm, first start (npm install)");
    assert!(
        dir.join("node_modules/is-number/package.json").is_file(),
        "node_modules/is-number is missing"
    );
    assert!(
        dir.join("package-lock.json").is_file(),
        "npm install wrote no package-lock.json"
    );
    let log = s.log("web");
    assert_eq!(count_lines(&log, SETUP_DONE), 1, "log:\n{log}");
    assert_eq!(s.state_of("web"), "online");
    let (code, body) = http_get(port, "/health").expect("web answers");
    assert_eq!(code, 200);
    assert!(body.contains(r#""isNumber":true"#), "body: {body}");

    // package-lock.json now exists (setup wrote it); setup is still up to date.
    let pid = s.pid_of("web").expect("web has a pid");
    s.run(&["stop"]).expect(0);
    wait_until("web's process is gone", Duration::from_secs(10), || {
        !pid_alive(pid)
    });
    start_timed(&s, "npm, second start (up to date)");
    let log = s.log("web");
    assert_eq!(
        count_lines(&log, SETUP_DONE),
        1,
        "npm setup ran again though nothing changed:\n{log}"
    );
    assert_eq!(s.state_of("web"), "online");

    // package.json changed: npm runs again before the next start.
    s.write(
        "services/web/package.json",
        r#"{
  "name": "fpctl-test-web",
  "version": "1.0.1",
  "private": true,
  "dependencies": { "is-number": "^7.0.0" }
}
"#,
    );
    s.run(&["stop"]).expect(0);
    start_timed(&s, "npm, third start (package.json changed)");
    let log = s.log("web");
    assert_eq!(
        count_lines(&log, SETUP_DONE),
        2,
        "npm setup did not run again after package.json changed:\n{log}"
    );
    assert_eq!(s.state_of("web"), "online");
}

#[test]
fn command_setup_reruns_only_when_its_commands_change() {
    let port = free_port();
    let config = |step: &str| {
        format!(
            r#"
[services.app]
setup = ["echo {step} >> setup.out"]
command = "python3 {httpd} --port ${{PORT}}"
port = {port}
health = {{ http = "/health" }}
"#,
            httpd = httpd()
        )
    };
    let s = Stack::new(&config("first"));
    let runs = || std::fs::read_to_string(s.file("setup.out")).unwrap_or_default();

    s.run(&["start"]).expect(0);
    assert_eq!(runs(), "first\n");
    s.run(&["stop"]).expect(0);
    s.run(&["start"]).expect(0);
    assert_eq!(runs(), "first\n", "setup ran again though nothing changed");

    s.run(&["stop"]).expect(0);
    s.write("services.toml", &config("second"));
    s.run(&["start"]).expect(0);
    assert_eq!(
        runs(),
        "first\nsecond\n",
        "setup did not run again after its commands changed"
    );
    assert_eq!(count_lines(&s.log("app"), SETUP_DONE), 2);
}

#[test]
fn failing_setup_command_fails_the_service_and_blocks_its_dependent() {
    let (p1, p2) = {
        let p = free_ports(2);
        (p[0], p[1])
    };
    let s = Stack::new(&format!(
        r#"
[services.base]
setup = ["echo one", "exit 7"]
command = "python3 {httpd} --port ${{PORT}}"
port = {p1}
health = {{ http = "/health" }}

[services.app]
command = "python3 {httpd} --port ${{PORT}}"
port = {p2}
depends_on = ["base"]
health = {{ http = "/health" }}
"#,
        httpd = httpd()
    ));
    let r = s.run(&["start"]).expect(1);
    let err = r.stderr();
    assert!(
        err.contains("base"),
        "stderr does not name base:\n{}",
        r.all()
    );
    assert!(
        err.contains("exit 7"),
        "stderr does not show the failing step:\n{}",
        r.all()
    );
    // The tail of base's log: the setup lines and the output of `echo one`.
    assert!(
        err.lines().any(|l| l.trim() == "| one"),
        "stderr does not show the log's last lines:\n{}",
        r.all()
    );
    assert!(
        err.lines()
            .any(|l| l.contains("| [fpctl] setup:") && l.contains("exit 7")),
        "stderr does not show the setup step in the log tail:\n{}",
        r.all()
    );
    assert_eq!(s.state_of("base"), "failed");
    assert_eq!(s.state_of("app"), "blocked");
    assert!(!port_open(p1), "base was started despite its failed setup");
    assert!(!port_open(p2), "app was started though base failed");
    let log = s.log("base");
    assert_eq!(count_lines(&log, SETUP_DONE), 0, "log:\n{log}");
}

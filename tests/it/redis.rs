//! A real redis-server under fpctl, with a Python service that reaches it
//! through the REDIS_URL fpctl builds from `FPCTL_PORT_REDIS`.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// Fail (never skip) when redis is not installed.
fn require_redis() {
    for tool in ["redis-server", "redis-cli"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "`{tool}` is not installed or not on PATH: the redis tests need redis-server \
             and redis-cli; run `bash .ci/run` (it installs them) or `apt-get install \
             redis-server redis-tools`"
        );
    }
}

/// Connects to the redis in REDIS_URL at startup, then serves /health with
/// what redis answered and the URL it used.
const APP: &str = r#"
import json, os, socket, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

url = os.environ["REDIS_URL"]
host, port = url.removeprefix("redis://").rsplit(":", 1)
with socket.create_connection((host, int(port)), timeout=2) as c:
    c.sendall(b"PING\r\n")
    reply = c.recv(64).decode().strip()
print(f"app: redis at {url} says {reply}", flush=True)
body = json.dumps({"status": "healthy", "redis_url": url, "redis": reply}).encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

#[test]
fn redis_server_with_a_dependent_python_service() {
    require_redis();
    let ports = free_ports(2);
    let (redis_port, app_port) = (ports[0], ports[1]);
    let s = Stack::new(&format!(
        r#"
[[tier]]
name = "core"

[[tier]]
name = "apps"

[services.redis]
tier = "core"
command = "redis-server --port ${{PORT}} --save '' --appendonly no"
port = {redis_port}
health = {{ exec = "redis-cli -p ${{PORT}} ping" }}

[services.app]
tier = "apps"
command = "python3 app.py ${{PORT}}"
port = {app_port}
depends_on = ["redis"]
env = {{ REDIS_URL = "redis://127.0.0.1:${{FPCTL_PORT_REDIS}}" }}
health = {{ http = "/health", expect_json = {{ redis = "+PONG" }} }}
"#
    ));
    s.write("app.py", APP);

    s.run(&["start"]).expect(0);
    let (code, v) = s.check_json();
    assert_eq!(code, 0, "check: {v}");
    let redis = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "redis")
        .expect("redis in check --json")
        .clone();
    assert_eq!(redis["state"], "online", "{redis}");
    assert_eq!(redis["detail"], "PONG", "{redis}");
    assert_eq!(redis["port"], redis_port);
    assert_eq!(s.state_of("app"), "online");

    // The app got the right URL and reached redis with it.
    let expected_url = format!("redis://127.0.0.1:{redis_port}");
    let (code, body) = http_get(app_port, "/health").expect("app answers");
    assert_eq!(code, 200);
    let app: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(app["redis_url"], expected_url.as_str(), "{body}");
    assert_eq!(app["redis"], "+PONG", "{body}");

    // Redis really is there, on its port.
    let out = Command::new("redis-cli")
        .args(["-p", &redis_port.to_string(), "ping"])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "PONG");

    let redis_pid = s.pid_of("redis").expect("redis has a pid");
    let app_pid = s.pid_of("app").expect("app has a pid");
    assert!(pid_alive(redis_pid));
    let cmdline = std::fs::read(format!("/proc/{redis_pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("redis-server"),
        "redis's recorded pid {redis_pid} is not redis-server"
    );

    s.run(&["stop"]).expect(0);
    wait_until(
        "redis-server's recorded pid is gone",
        Duration::from_secs(5),
        || !pid_alive(redis_pid),
    );
    wait_until("app's recorded pid is gone", Duration::from_secs(5), || {
        !pid_alive(app_pid)
    });
    assert!(
        !port_open(redis_port),
        "something still listens on redis's port"
    );
}

/// redis-server writes its process title over its environment, so the
/// marker fpctl gives its processes is gone from /proc/PID/environ: `ports`
/// must still know it as the service's own, and a redis-server that fpctl
/// did not start as foreign.
#[test]
// The foreign redis-server is killed by the stack's drop (`own_pids`), not
// reaped, like `Stack::spawn_httpd`'s processes.
#[allow(clippy::zombie_processes)]
fn ports_knows_its_own_redis_server_and_calls_another_foreign() {
    require_redis();
    let ports = free_ports(2);
    let (ours, theirs) = (ports[0], ports[1]);
    let mut s = Stack::new(&format!(
        r#"
[services.redis]
command = "redis-server --port ${{PORT}} --save '' --appendonly no"
port = {ours}
health = {{ exec = "redis-cli -p ${{PORT}} ping" }}
"#
    ));
    s.run(&["start"]).expect(0);
    let pid = s.pid_of("redis").expect("redis runs");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&environ).contains("FPCTL_INSTANCE="),
        "redis-server kept its environment: this test would prove nothing"
    );
    let r = s.run(&["ports"]);
    assert_eq!(
        r.code(),
        0,
        "fpctl's own redis is called foreign:\n{}",
        r.all()
    );
    assert!(
        r.stdout().contains(&format!("redis (pid {pid})")),
        "{}",
        r.all()
    );
    let json: serde_json::Value =
        serde_json::from_str(&s.run(&["ports", "--json"]).expect(0).stdout()).unwrap();
    assert_eq!(json["ports"][0]["state"], "service", "{json}");

    // A redis-server of someone else's, on a port the file gives a service.
    s.write(
        "services.toml",
        &format!(
            "{}\n[services.cache]\ncommand = \"redis-server --port ${{PORT}}\"\nport = {theirs}\n",
            std::fs::read_to_string(s.file("services.toml")).unwrap()
        ),
    );
    let foreign = Command::new("redis-server")
        .args([
            "--port",
            &theirs.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(s.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    s.own_pids.push(foreign.id() as i32);
    wait_until(
        "the other redis-server listens",
        Duration::from_secs(5),
        || port_open(theirs),
    );
    let r = s.run(&["ports"]);
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        r.stdout()
            .contains(&format!("pid {} (redis-server", foreign.id())),
        "{}",
        r.all()
    );
    assert!(
        r.stdout().contains(&format!("redis (pid {pid})")),
        "{}",
        r.all()
    );
}

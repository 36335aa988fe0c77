//! `fpctl import` on realistic files of each format: the services.toml it
//! writes validates and starts for real, every field that does not map gets
//! a warning, and a file of none of the formats exits 2. Then one test per
//! defect real projects' files showed, and the corpus of real files itself
//! (tests/corpus/import/), snapshotted.

use std::time::Duration;

use crate::common::*;

/// Starts only after the migration ran; reports what it was given.
const API: &str = r#"
import json, os, socket
from http.server import BaseHTTPRequestHandler, HTTPServer

import six

if not os.path.exists("../migrated"):
    raise SystemExit("the migration has not run")
url = os.environ["REDIS_URL"]
host, port = url.removeprefix("redis://").rsplit(":", 1)
with socket.create_connection((host, int(port)), timeout=2) as c:
    c.sendall(b"PING\r\n")
    redis = c.recv(64).decode().strip()
body = json.dumps({
    "redis": redis,
    "greeting": os.environ["GREETING"],
    "app_mode": os.environ["APP_MODE"],
    "redis_port_seen": os.environ["REDIS_PORT_SEEN"],
    "has_token": os.environ.get("SECRET_TOKEN") == "abc123",
    "six": six.__version__,
}).encode()


class Api(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Api).serve_forever()
"#;

const WEB: &str = r#"
const http = require('http');
http.createServer((req, res) => {
  res.writeHead(req.url === '/health' ? 200 : 404);
  res.end('web');
}).listen(Number(process.env.PORT), '127.0.0.1');
"#;

const COMPOSE: &str = r#"
name: shop

x-defaults: &defaults
  restart: unless-stopped
  logging:
    driver: json-file

services:
  redis:
    image: redis:7-alpine
    ports: ["@REDIS@:6379"]
    volumes: [redis-data:/data]
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 5s

  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: example
    ports: ["5432:5432"]
    volumes: ["./pgdata:/var/lib/postgresql/data"]
    profiles: [database]

  migrate:
    image: python:3.12-slim
    command: python3 -c "open('migrated', 'w').write('${TARGET:-shop}')"

  api:
    <<: *defaults
    build:
      context: ./api
      args:
        PYVER: "3.12"
    ports: ["@API@:@API@"]
    environment:
      REDIS_URL: redis://redis:6379
      REDIS_PORT_SEEN: ${REDIS_PORT:-6379}
      GREETING: "$${NOT_EXPANDED}"
      APP_MODE: ${APP_MODE}
    env_file: .env
    depends_on:
      redis:
        condition: service_healthy
      migrate:
        condition: service_completed_successfully
    healthcheck:
      test: ["CMD-SHELL", "curl -f http://localhost:@API@/health || exit 1"]
      interval: 2s
      timeout: 1s
      retries: 3
      start_period: 5s
    stop_grace_period: 5s
    stop_signal: SIGINT
    working_dir: /app
    volumes: ["./api:/app"]
    container_name: shop-api

  web:
    build: ./web
    ports: ["@WEB@:@WEB@"]
    profiles: [frontend]
    depends_on: [api]

networks:
  default: {}

volumes:
  redis-data: {}
"#;

fn fill(template: &str, pairs: &[(&str, u16)]) -> String {
    pairs.iter().fold(template.to_string(), |t, (k, v)| {
        t.replace(k, &v.to_string())
    })
}

fn assert_warnings(stderr: &str, expected: &[&str]) {
    for w in expected {
        let hits = stderr
            .lines()
            .filter(|l| l.starts_with("warning:") && l.contains(w))
            .count();
        assert_eq!(
            hits, 1,
            "expected one warning with {w:?}, got {hits}:\n{stderr}"
        );
    }
}

#[test]
fn compose_file_converts_validates_and_starts() {
    let ports = free_ports(3);
    let (redis_p, api_p, web_p) = (ports[0], ports[1], ports[2]);
    let s = Stack::empty();
    s.write(
        "compose.yaml",
        &fill(
            COMPOSE,
            &[("@REDIS@", redis_p), ("@API@", api_p), ("@WEB@", web_p)],
        ),
    );
    s.write(".env", "SECRET_TOKEN=abc123\n");
    s.write(
        "api/Dockerfile",
        "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\n\
         RUN pip install -r requirements.txt \\\n  && rm -rf /root/.cache\nCMD [\"python\", \"app.py\"]\n",
    );
    s.write("api/requirements.txt", "six==1.16.0\n");
    s.write("api/app.py", API);
    s.write(
        "web/Dockerfile",
        "FROM node:20\nCOPY . .\nCMD node server.js\n",
    );
    s.write("web/package.json", r#"{"name": "web", "version": "1.0.0"}"#);
    s.write("web/server.js", WEB);

    let r = s.run(&["import", "compose.yaml"]).expect(0);
    let err = r.stderr();
    assert_warnings(
        &err,
        &[
            "top-level `networks`",
            "top-level `volumes`",
            // Only the native service loses its volumes: the containers'
            // are in their container tables.
            "service \"api\": `volumes`",
            "\"api\": `build.args`",
            "\"api\": `container_name`",
            "\"api\": `healthcheck.start_period`",
            "\"api\": `working_dir`",
            "\"api\": `logging`",
        ],
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("warning:")).count(),
        8,
        "unexpected warnings:\n{err}"
    );
    s.run(&["validate"]).expect(0);
    let text = std::fs::read_to_string(s.file("services.toml")).unwrap();
    let t: toml::Table = text.parse().unwrap();
    let api = &t["services"]["api"];
    assert_eq!(api["command"].as_array().unwrap().len(), 2, "{text}");
    assert_eq!(api["restart"].as_str(), Some("always"));
    assert_eq!(api["stop_signal"].as_str(), Some("SIGINT"));
    assert_eq!(api["health"]["http"].as_str(), Some("/health"));
    assert_eq!(t["services"]["migrate"]["oneshot"].as_bool(), Some(true));
    // The list form of depends_on is kept as the mapping form is.
    assert_eq!(
        t["services"]["web"]["depends_on"].as_array(),
        Some(&vec![toml::Value::from("api")]),
        "{text}"
    );
    let api_deps: Vec<&str> = api["depends_on"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert_eq!(api_deps, ["redis", "migrate"], "{text}");
    // An image with a native equivalent fpctl runs (redis) keeps a native
    // command, which a plain start runs, beside its container table.
    let redis = &t["services"]["redis"];
    assert_eq!(
        redis["command"].as_str().map(|c| c.split(' ').next()),
        Some(Some("redis-server")),
        "{text}"
    );
    assert_eq!(redis["port"].as_integer(), Some(i64::from(redis_p)));
    assert_eq!(redis["container"]["image"].as_str(), Some("redis:7-alpine"));
    assert_eq!(
        redis["container"]["container_port"].as_integer(),
        Some(6379)
    );
    assert_eq!(
        redis["container"]["volumes"].as_array(),
        Some(&vec![toml::Value::from("redis-data:/data")]),
        "{text}"
    );
    // A runtime's image with a command: the command natively, the image
    // for `start --containers`.
    let migrate = &t["services"]["migrate"];
    assert!(migrate["command"].is_str(), "{text}");
    assert_eq!(
        migrate["container"]["image"].as_str(),
        Some("python:3.12-slim")
    );
    // postgres needs a one-time initdb natively: it runs in its container,
    // and the note says how to run it natively.
    let db = &t["services"]["db"];
    assert!(db.get("command").is_none(), "{text}");
    assert_eq!(db["container"]["image"].as_str(), Some("postgres:16"));
    assert_eq!(db["port"].as_integer(), Some(5432));
    assert_eq!(
        db["container"]["volumes"].as_array(),
        Some(&vec![toml::Value::from(
            "./pgdata:/var/lib/postgresql/data"
        )]),
        "{text}"
    );
    assert!(
        db["health"]["exec"]
            .as_str()
            .is_some_and(|c| c.starts_with("pg_isready")),
        "{text}"
    );
    assert!(
        text.contains("run `initdb -D .fpctl/pgdata` once"),
        "{text}"
    );

    // Compose's `${REDIS_PORT:-6379}` reads fpctl's environment, as compose
    // reads its own; the service name `redis` as a host is 127.0.0.1.
    let r = s
        .cmd(&["start", "--profile", "frontend"])
        .env("REDIS_PORT", redis_p.to_string())
        .env_remove("APP_MODE")
        .output()
        .expect("run fpctl");
    let r = Run(r);
    assert_eq!(r.code(), 0, "start failed:\n{}\n{text}", r.all());
    assert_eq!(s.state_of("redis"), "online");
    assert_eq!(s.state_of("migrate"), "completed");
    assert_eq!(s.state_of("api"), "online", "{}", s.log("api"));
    assert_eq!(s.state_of("web"), "online", "{}", s.log("web"));
    let (code, body) = http_get(api_p, "/health").expect("api answers");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["redis"], "+PONG", "redis://redis:6379 was not made local");
    assert_eq!(v["redis_port_seen"], redis_p.to_string());
    assert_eq!(v["greeting"], "${NOT_EXPANDED}", "$$ is not a literal $");
    assert_eq!(
        v["app_mode"], "",
        "an unset ${{VAR}} is empty, as in compose"
    );
    assert_eq!(v["has_token"], true, "env_file not passed");
    assert_eq!(v["six"], "1.16.0");
    assert_eq!(std::fs::read_to_string(s.file("migrated")).unwrap(), "shop");
    assert_eq!(http_get(web_p, "/health").map(|r| r.0), Some(200));

    s.stop_all();
}

const PROCESS_COMPOSE: &str = r#"
version: "0.5"
log_location: ./process-compose.log
environment:
  - "STACK=demo"

processes:
  api:
    description: The public API
    command: python3 HTTPD --port @API@ --name api
    working_dir: ./api
    environment:
      - "API_MODE=dev"
    depends_on:
      seed:
        condition: process_completed_successfully
    readiness_probe:
      http_get:
        host: 127.0.0.1
        port: @API@
        path: /health
        scheme: http
      initial_delay_seconds: 1
      period_seconds: 2
      timeout_seconds: 1
      failure_threshold: 3
    liveness_probe:
      exec:
        command: "true"
    availability:
      restart: on_failure
      max_restarts: 3
      backoff_seconds: 2
    shutdown:
      signal: 2
      timeout_seconds: 5
      command: echo bye
    namespace: backend
    is_tty: false

  worker:
    command: python3 -c "import time, pathlib; pathlib.Path('worker.ready').touch(); time.sleep(600)"
    depends_on:
      api:
        condition: process_healthy
    readiness_probe:
      exec:
        command: test -f worker.ready
    log_location: ./worker.log
    namespace: backend

  docs:
    command: python3 -m http.server 9
    disabled: true
    namespace: docs

  seed:
    command: python3 -c "open('seeded', 'w').write('$STACK')"
    availability:
      restart: "no"
    namespace: setup
"#;

#[test]
fn process_compose_file_converts_validates_and_starts() {
    let api_p = free_port();
    let s = Stack::empty();
    let yaml = fill(PROCESS_COMPOSE, &[("@API@", api_p)]).replace("HTTPD", &httpd());
    s.write("stack/process-compose.yaml", &yaml);
    s.write("stack/api/.keep", "");

    let r = s
        .run(&[
            "import",
            "stack/process-compose.yaml",
            "-o",
            "services.toml",
        ])
        .expect(0);
    let err = r.stderr();
    assert_warnings(
        &err,
        &[
            "top-level `log_location`",
            "\"api\": `readiness_probe.initial_delay_seconds`",
            "\"api\": `liveness_probe`",
            "\"api\": `availability.backoff_seconds`",
            "\"api\": `shutdown.command`",
            "\"api\": `is_tty`",
            "\"worker\": `log_location`",
        ],
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("warning:")).count(),
        7,
        "unexpected warnings:\n{err}"
    );
    s.run(&["validate"]).expect(0);
    let text = std::fs::read_to_string(s.file("services.toml")).unwrap();
    let t: toml::Table = text.parse().unwrap();
    let api = &t["services"]["api"];
    assert_eq!(api["dir"].as_str(), Some("stack/api"), "{text}");
    assert_eq!(api["port"].as_integer(), Some(i64::from(api_p)));
    assert_eq!(api["health"]["http"].as_str(), Some("/health"));
    assert_eq!(api["health"]["interval"].as_str(), Some("2s"));
    assert_eq!(api["restart"].as_str(), Some("on-failure"));
    assert_eq!(api["max_restarts"].as_integer(), Some(3));
    assert_eq!(api["stop_signal"].as_integer(), Some(2));
    assert_eq!(api["stop_timeout"].as_str(), Some("5s"));
    assert_eq!(api["env"]["STACK"].as_str(), Some("demo"));
    assert_eq!(t["services"]["seed"]["oneshot"].as_bool(), Some(true));
    assert_eq!(t["services"]["docs"]["disabled"].as_bool(), Some(true));
    // Namespaces are tiers, in dependency order: seed's, written last, first.
    let tiers: Vec<&str> = t["tier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tiers, ["setup", "backend", "docs"], "{text}");
    assert_eq!(api["tier"].as_str(), Some("backend"));

    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("seed"), "completed");
    assert_eq!(s.state_of("api"), "online");
    assert_eq!(s.state_of("worker"), "online");
    assert_eq!(s.state_of("docs"), "stopped");
    assert_eq!(
        std::fs::read_to_string(s.file("seeded")).unwrap(),
        "demo",
        "the global environment did not reach the process"
    );
    assert_eq!(http_get(api_p, "/health").map(|r| r.0), Some(200));
    s.stop_all();
}

#[test]
fn procfile_converts_validates_and_starts() {
    let s = Stack::empty();
    s.write(
        "Procfile",
        &format!(
            "# processes for honcho\n\
             release: python3 -c \"open('released', 'w').write('yes')\"\n\
             web: python3 {} --port $PORT --name web\n\
             worker: python3 -c \"import time; time.sleep(600)\"\n",
            httpd()
        ),
    );
    let r = s.run(&["import", "Procfile"]).expect(0);
    assert!(
        !r.stderr().contains("warning:"),
        "a Procfile maps fully:\n{}",
        r.all()
    );
    s.run(&["validate"]).expect(0);
    let t: toml::Table = std::fs::read_to_string(s.file("services.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let web = &t["services"]["web"];
    let port = web["port"].as_integer().expect("web has a port") as u16;
    assert!(t["services"]["worker"].get("port").is_none());
    assert_eq!(t["services"]["release"]["oneshot"].as_bool(), Some(true));

    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("release"), "completed");
    assert_eq!(s.state_of("web"), "online");
    assert_eq!(s.state_of("worker"), "online");
    assert!(s.file("released").exists());
    assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
    s.stop_all();
}

#[test]
fn files_of_no_known_format_exit_2() {
    let s = Stack::empty();
    s.write(
        "notes.txt",
        "Remember to start the API before the web app.\n",
    );
    s.write(
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n",
    );
    s.write("broken.yml", "services:\n  api:\n    command: [unclosed\n");
    for file in ["notes.txt", "deploy.yaml"] {
        let r = s.run(&["import", file]).expect(2);
        assert!(
            r.stderr()
                .contains(&format!("{file}: not a format fpctl can import")),
            "{}",
            r.all()
        );
    }
    let r = s.run(&["import", "broken.yml"]).expect(2);
    assert!(
        r.stderr().contains("broken.yml:4:1: invalid YAML"),
        "{}",
        r.all()
    );
    let r = s.run(&["import", "missing.yml"]).expect(2);
    assert!(
        r.stderr().contains("cannot read missing.yml"),
        "{}",
        r.all()
    );
    assert!(!s.file("services.toml").exists());
}

#[test]
fn import_never_overwrites_without_force() {
    let s = Stack::empty();
    s.write("Procfile", "web: python3 -m http.server $PORT\n");
    s.write("services.toml", "# mine\n");
    let r = s.run(&["import", "Procfile"]).expect(2);
    assert!(r.stderr().contains("--force"), "{}", r.all());
    let r = s.run(&["import", "Procfile", "--dry-run"]).expect(0);
    assert!(r.stdout().contains("[services.web]"), "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(s.file("services.toml")).unwrap(),
        "# mine\n"
    );
    s.run(&["import", "Procfile", "--force"]).expect(0);
    s.run(&["validate"]).expect(0);
}

/// The file written, as text and parsed.
fn written(s: &Stack) -> (String, toml::Table) {
    let text = std::fs::read_to_string(s.file("services.toml")).expect("services.toml written");
    let t = text
        .parse()
        .unwrap_or_else(|e| panic!("services.toml is not TOML: {e}\n{text}"));
    (text, t)
}

fn warning_lines(r: &Run) -> Vec<String> {
    r.stderr()
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(String::from)
        .collect()
}

/// `import FILE` with these variables surely unset (the tests set their
/// values in a .env, or test them unset).
fn import(s: &Stack, file: &str, unset: &[&str]) -> Run {
    let mut cmd = s.cmd(&["import", file]);
    for v in unset {
        cmd.env_remove(v);
    }
    Run(cmd.output().expect("run fpctl import"))
}

/// The stubs of a written file, uncommented: what a user gets by removing
/// the `# ` of their lines once the program is installed.
fn uncommented(text: &str) -> String {
    let mut out = String::new();
    let mut body = false;
    for line in text.lines() {
        if let Some(header) = line.strip_prefix("# [services.") {
            body = true;
            out.push_str(&format!("[services.{header}\n"));
        } else if let Some(rest) = line.strip_prefix("# ").filter(|_| body) {
            out.push_str(rest);
            out.push('\n');
        } else {
            body = false;
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn restart_survives_nested_merge_keys() {
    let s = Stack::empty();
    s.write(
        "compose.yaml",
        r#"
x-restart: &restart
  restart: unless-stopped
x-stop: &stop
  stop_grace_period: 3s
x-base: &base
  <<: *restart
  environment:
    MODE: base
x-worker: &worker
  <<: [*base, *stop]
  command: sleep 600
services:
  web:
    <<: *base
    command: sleep 600
  worker:
    <<: *worker
    deploy:
      replicas: 2
  once:
    <<: *worker
    restart: "no"
"#,
    );
    let r = s.run(&["import", "compose.yaml"]).expect(0);
    assert!(
        !r.stderr().contains("<<"),
        "a merge key was taken for a field:\n{}",
        r.all()
    );
    s.run(&["validate"]).expect(0);
    let (text, t) = written(&s);
    let svc = |n: &str| &t["services"][n];
    assert_eq!(svc("web")["restart"].as_str(), Some("always"), "{text}");
    assert_eq!(svc("worker")["restart"].as_str(), Some("always"), "{text}");
    assert_eq!(svc("worker")["stop_timeout"].as_str(), Some("3s"), "{text}");
    assert_eq!(
        svc("worker")["env"]["MODE"].as_str(),
        Some("base"),
        "{text}"
    );
    assert_eq!(svc("worker")["replicas"].as_integer(), Some(2), "{text}");
    assert_eq!(
        svc("once")["restart"].as_str(),
        Some("no"),
        "own keys win: {text}"
    );
}

#[test]
fn a_variable_duration_expands_from_the_dotenv_beside_the_file() {
    let port = free_port();
    let s = Stack::empty();
    s.write(
        "compose.yaml",
        &format!(
            r#"
x-healthcheck: &hc
  test: ["CMD", "true"]
  interval: "$FPCTL_T_HC_INTERVAL"
  timeout: "${{FPCTL_T_HC_TIMEOUT:-3s}}"
  retries: $FPCTL_T_HC_RETRIES
services:
  api:
    command: python3 {httpd} --port ${{FPCTL_T_API_PORT}} --name api
    ports: ["$FPCTL_T_API_PORT:$FPCTL_T_API_PORT"]
    healthcheck: *hc
  other:
    command: sleep 600
    healthcheck:
      test: ["CMD", "true"]
      interval: $FPCTL_T_SURELY_UNSET_INTERVAL
"#,
            httpd = httpd()
        ),
    );
    s.write(
        ".env",
        &format!("FPCTL_T_HC_INTERVAL=2s\nFPCTL_T_HC_RETRIES=4\nFPCTL_T_API_PORT={port}\n"),
    );
    let unset = [
        "FPCTL_T_HC_INTERVAL",
        "FPCTL_T_HC_TIMEOUT",
        "FPCTL_T_HC_RETRIES",
        "FPCTL_T_API_PORT",
        "FPCTL_T_SURELY_UNSET_INTERVAL",
    ];
    let r = import(&s, "compose.yaml", &unset).expect(0);
    let warnings = warning_lines(&r);
    let unset_warnings: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("FPCTL_T_SURELY_UNSET_INTERVAL"))
        .collect();
    assert_eq!(unset_warnings.len(), 1, "{}", r.all());
    assert!(
        unset_warnings[0].contains("service \"other\"")
            && unset_warnings[0].contains("healthcheck.interval"),
        "{}",
        r.all()
    );
    s.run(&["validate"]).expect(0);
    let (text, t) = written(&s);
    let api = &t["services"]["api"];
    assert_eq!(api["health"]["interval"].as_str(), Some("2s"), "{text}");
    assert_eq!(api["health"]["timeout"].as_str(), Some("3s"), "{text}");
    assert_eq!(api["health"]["retries"].as_integer(), Some(4), "{text}");
    assert_eq!(api["port"].as_integer(), Some(i64::from(port)), "{text}");
    assert!(
        t["services"]["other"]["health"].get("interval").is_none(),
        "an unset variable must leave fpctl's default: {text}"
    );

    // The port from the .env reached the program too (`${FPCTL_T_API_PORT}`
    // stays a reference, expanded by fpctl from the same .env).
    s.run(&["start", "api"]).expect(0);
    wait_until(
        "api answers on the port from .env",
        Duration::from_secs(10),
        || http_get(port, "/health").map(|r| r.0) == Some(200),
    );
    s.stop_all();
}

/// A self-signed certificate for 127.0.0.1, as cert.pem and key.pem.
fn self_signed(s: &Stack) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("generate a certificate");
    s.write("cert.pem", &cert.cert.pem());
    s.write("key.pem", &cert.signing_key.serialize_pem());
}

fn tlsd() -> String {
    format!("{}/tests/fixtures/tlsd.py", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn https_probes_stay_https() {
    let port = free_port();
    let s = Stack::empty();
    self_signed(&s);
    s.write(
        "pc.yaml",
        &format!(
            r#"
processes:
  api:
    command: python3 {tlsd} --port {port} --cert cert.pem --key key.pem
    readiness_probe:
      http_get: {{host: 127.0.0.1, port: {port}, path: /health, scheme: https}}
  remote:
    command: sleep 600
    readiness_probe:
      http_get: {{host: example.com, scheme: https, path: /status}}
"#,
            tlsd = tlsd()
        ),
    );
    let r = s.run(&["import", "pc.yaml"]).expect(0);
    assert!(!r.stderr().contains("scheme"), "{}", r.all());
    s.run(&["validate"]).expect(0);
    let (text, t) = written(&s);
    assert_eq!(
        t["services"]["api"]["health"]["http"].as_str(),
        Some(format!("https://127.0.0.1:{port}/health").as_str()),
        "{text}"
    );
    assert_eq!(
        t["services"]["remote"]["health"]["http"].as_str(),
        Some("https://example.com/status"),
        "{text}"
    );

    // compose: `curl -k https://…` is an https check that takes any
    // certificate, and it passes against a self-signed server.
    s.write(
        "compose.yaml",
        &format!(
            r#"
services:
  tls:
    command: python3 {tlsd} --port {port} --cert cert.pem --key key.pem
    ports: ["{port}:{port}"]
    healthcheck:
      test: ["CMD", "curl", "-fk", "https://localhost:{port}/health"]
      interval: 1s
"#,
            tlsd = tlsd()
        ),
    );
    s.run(&["import", "compose.yaml", "--force"]).expect(0);
    let (text, t) = written(&s);
    let health = &t["services"]["tls"]["health"];
    assert_eq!(
        health["http"].as_str(),
        Some(format!("https://127.0.0.1:{port}/health").as_str()),
        "{text}"
    );
    assert_eq!(health["insecure"].as_bool(), Some(true), "{text}");
    s.run(&["start"]).expect(0);
    let tls = s.service("tls");
    assert_eq!(tls["state"], "online", "{tls}");
    assert_eq!(tls["detail"], "healthy", "{tls}");
    s.stop_all();
}

#[test]
fn build_target_picks_the_stage_that_runs() {
    let port = free_port();
    let s = Stack::empty();
    s.write(
        "compose.yaml",
        &format!(
            r#"
services:
  api:
    build:
      context: ./api
      target: serve
    ports: ["{port}:{port}"]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:{port}/health"]
  job:
    build:
      context: ./api
      target: compiled
    profiles: [jobs]
"#
        ),
    );
    s.write(
        "api/Dockerfile",
        &format!(
            "# syntax=docker/dockerfile:1.4\n\
             FROM python:3.12 AS base\nWORKDIR /srv\nCOPY . .\nCMD [\"python3\", \"missing.py\"]\n\n\
             FROM base AS serve\nRUN <<EOF\npip install nothing\nCMD [\"not\", \"this\"]\nEOF\n\
             CMD [\"python3\", \"{httpd}\", \"--port\", \"{port}\", \"--name\", \"api\"]\n\n\
             FROM base AS compiled\nRUN go build -o bin/app .\nCMD [\"/srv/bin/app\"]\n\n\
             FROM base AS test\nCMD [\"python3\", \"-m\", \"pytest\"]\n",
            httpd = httpd()
        ),
    );
    let r = s.run(&["import", "compose.yaml"]).expect(0);
    let warnings = warning_lines(&r);
    assert!(
        warnings.iter().any(|w| w.contains("\"job\"")
            && w.contains("/srv/bin/app, a path inside the container image")
            && w.contains("./bin/app")),
        "no warning that /srv/bin/app is only in the image:\n{}",
        r.all()
    );
    assert!(!r.stderr().contains("build.target"), "{}", r.all());
    s.run(&["validate"]).expect(0);
    let (text, t) = written(&s);
    let cmd: Vec<&str> = t["services"]["api"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        cmd[1],
        httpd(),
        "the stage `serve` runs, not the last one: {text}"
    );
    assert_eq!(
        t["services"]["job"]["command"][0].as_str(),
        Some("/srv/bin/app"),
        "{text}"
    );
    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("api"), "online", "{}", s.log("api"));
    assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
    s.stop_all();
}

#[test]
fn an_inline_port_in_a_procfile_is_the_services_port() {
    let port = free_port();
    let s = Stack::empty();
    s.write(
        "Procfile.dev",
        &format!(
            "web: PORT={port} python3 {httpd} --port $PORT --name web\n\
             jobs: PORT={port} python3 -c \"import time; time.sleep(600)\"\n",
            httpd = httpd()
        ),
    );
    let r = s.run(&["import", "Procfile.dev"]).expect(0);
    let warnings = warning_lines(&r);
    assert_eq!(warnings.len(), 1, "{}", r.all());
    assert!(
        warnings[0].contains(&format!("`jobs` sets PORT={port} too")),
        "{}",
        r.all()
    );
    s.run(&["validate"]).expect(0);
    let (text, t) = written(&s);
    assert_eq!(
        t["services"]["web"]["port"].as_integer(),
        Some(i64::from(port)),
        "{text}"
    );
    assert!(t["services"]["jobs"].get("port").is_none(), "{text}");
    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("web"), "online", "{}", s.log("web"));
    assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
    s.stop_all();
}

#[test]
fn a_missing_build_folder_is_a_warning_and_the_service_keeps_its_settings() {
    let port = free_port();
    let s = Stack::empty();
    s.write(
        "compose.yaml",
        &format!(
            r#"
services:
  api:
    build: ./not-here
    command: python3 {httpd} --port {port} --name api
    ports: ["{port}:{port}"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:{port}/health"]
    restart: on-failure:2
    environment:
      MODE: dev
  gone:
    build:
      context: ./also-missing
"#,
            httpd = httpd()
        ),
    );
    let r = s.run(&["import", "compose.yaml"]).expect(0);
    for folder in ["./not-here", "./also-missing"] {
        assert!(
            warning_lines(&r)
                .iter()
                .any(|w| w.contains(&format!("build folder {folder} does not exist"))),
            "no warning for {folder}:\n{}",
            r.all()
        );
    }
    s.run(&["validate"]).expect(0);
    let (text, t) = written(&s);
    let api = &t["services"]["api"];
    assert!(api.get("dir").is_none(), "{text}");
    assert_eq!(api["port"].as_integer(), Some(i64::from(port)), "{text}");
    assert_eq!(api["restart"].as_str(), Some("on-failure"), "{text}");
    assert_eq!(api["max_restarts"].as_integer(), Some(2), "{text}");
    assert_eq!(api["env"]["MODE"].as_str(), Some("dev"), "{text}");
    assert!(text.contains("# [services.gone]"), "{text}");
    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("api"), "online", "{}", s.log("api"));
    s.stop_all();
}

#[test]
fn a_process_compose_task_with_a_readiness_probe_is_valid() {
    let ports = free_ports(2);
    let (api_p, cache_p) = (ports[0], ports[1]);
    let s = Stack::empty();
    s.write(
        "process-compose.yaml",
        &format!(
            r#"
processes:
  seed:
    command: python3 -c "open('seeded', 'w').write('1')"
    readiness_probe:
      exec:
        command: test -f seeded
  cache:
    command: python3 {httpd} --port {cache_p} --name cache
    availability:
      restart: always
    readiness_probe:
      http_get: {{host: 127.0.0.1, port: {cache_p}, path: /health}}
  api:
    command: python3 {httpd} --port {api_p} --name api --needs http://127.0.0.1:{cache_p}/health
    readiness_probe:
      http_get: {{host: 127.0.0.1, port: {api_p}, path: /health}}
    depends_on:
      seed:
        condition: process_completed_successfully
      cache:
        condition: process_completed
"#,
            httpd = httpd()
        ),
    );
    let r = s.run(&["import", "process-compose.yaml"]).expect(0);
    let warnings = warning_lines(&r);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("\"seed\"") && w.contains("readiness probe is dropped")),
        "{}",
        r.all()
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("\"cache\"") && w.contains("kept as a long-running service")),
        "{}",
        r.all()
    );
    s.run(&["validate"]).expect(0);
    let (text, t) = written(&s);
    let seed = &t["services"]["seed"];
    assert_eq!(seed["oneshot"].as_bool(), Some(true), "{text}");
    assert!(seed.get("health").is_none(), "{text}");
    let cache = &t["services"]["cache"];
    assert!(cache.get("oneshot").is_none(), "{text}");
    assert_eq!(cache["health"]["http"].as_str(), Some("/health"), "{text}");

    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("seed"), "completed");
    assert_eq!(s.state_of("cache"), "online");
    assert_eq!(s.state_of("api"), "online", "{}", s.log("api"));
    s.stop_all();
}

/// `base`, `base + 1`: free now, `base` a multiple of ten, and both below
/// the kernel's ephemeral range (from 32768), so that no other test's
/// outgoing connection takes one before the replicas listen there.
fn two_free_ports_from_a_ten() -> u16 {
    let start = 22_000 + (std::process::id() % 500) as u16 * 20;
    (start..32_000)
        .step_by(10)
        .find(|&base| {
            (base..base + 2).all(|q| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok())
        })
        .expect("no two free ports from a multiple of ten below 32000")
}

#[test]
fn replica_templates_become_replicas() {
    let base = two_free_ports_from_a_ten();
    let prefix = base / 10;
    let s = Stack::empty();
    s.write(
        "process-compose.yaml",
        &format!(
            r#"
processes:
  web:
    command: "python3 {httpd} --port {prefix}{{{{.PC_REPLICA_NUM}}}} --name web-{{{{.PC_REPLICA_NUM}}}}"
    replicas: 2
    readiness_probe:
      http_get:
        host: 127.0.0.1
        port: "{prefix}{{{{.PC_REPLICA_NUM}}}}"
        path: /health
"#,
            httpd = httpd()
        ),
    );
    let r = s.run(&["import", "process-compose.yaml"]).expect(0);
    assert!(!r.stderr().contains("replicas"), "{}", r.all());
    assert!(!r.stderr().contains("template"), "{}", r.all());
    s.run(&["validate"]).expect(0);
    let (text, t) = written(&s);
    let web = &t["services"]["web"];
    assert_eq!(web["replicas"].as_integer(), Some(2), "{text}");
    assert_eq!(web["port"].as_integer(), Some(i64::from(base)), "{text}");
    let cmd = web["command"].as_str().unwrap();
    assert!(
        cmd.contains("--port ${PORT}") && cmd.contains("web-$((FPCTL_REPLICA - 1))"),
        "{text}"
    );

    s.run(&["start"]).expect(0);
    for (i, port) in [(1, base), (2, base + 1)] {
        let name = format!("web-{i}");
        assert_eq!(s.state_of(&name), "online", "{}", s.log(&name));
        assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
        // process-compose counts replicas from 0.
        let said = format!("web-{}: listening on {port}", i - 1);
        assert!(s.log(&name).contains(&said), "{}", s.log(&name));
    }
    s.stop_all();
}

#[test]
fn is_daemon_warns_that_the_command_must_stay_in_the_foreground() {
    let s = Stack::empty();
    s.write(
        "process-compose.yaml",
        "processes:\n  nginx:\n    command: \"docker run -d --rm -p 8080:80 --name web nginx\"\n    \
         is_daemon: true\n",
    );
    let r = s.run(&["import", "process-compose.yaml"]).expect(0);
    let warnings = warning_lines(&r);
    assert_eq!(warnings.len(), 1, "{}", r.all());
    let w = &warnings[0];
    assert!(
        w.contains("is_daemon")
            && w.contains("restart it again and again")
            && w.contains("stay in the foreground")
            && w.contains("drop -d from `docker run`"),
        "{w}"
    );
    s.run(&["validate"]).expect(0);
}

#[test]
fn a_working_dir_variable_is_expanded_when_fpctl_loads_the_file() {
    let s = Stack::empty();
    let root = s.file("checkout");
    s.write("checkout/core/.keep", "");
    s.write(".env", &format!("FPCTL_T_APP_ROOT={}\n", root.display()));
    s.write(
        "process-compose.yaml",
        r#"
processes:
  core:
    working_dir: "${FPCTL_T_APP_ROOT}/core/"
    command: "pwd > here.txt && exec sleep 600"
  gone:
    working_dir: "${FPCTL_T_SURELY_UNSET_ROOT}/gateway/"
    command: "sleep 600"
"#,
    );
    let r = import(
        &s,
        "process-compose.yaml",
        &["FPCTL_T_APP_ROOT", "FPCTL_T_SURELY_UNSET_ROOT"],
    )
    .expect(0);
    let warnings = warning_lines(&r);
    assert!(
        warnings.iter().any(|w| w.contains("\"gone\"")
            && w.contains(
                "FPCTL_T_SURELY_UNSET_ROOT, set neither in the environment nor in a .env"
            )),
        "{}",
        r.all()
    );
    let (text, t) = written(&s);
    // The reference stays: fpctl expands it from the .env when it loads.
    assert_eq!(
        t["services"]["core"]["dir"].as_str(),
        Some("${FPCTL_T_APP_ROOT}/core/"),
        "{text}"
    );
    assert!(t["services"]["gone"].get("dir").is_none(), "{text}");
    assert!(
        text.contains("# dir = \"${FPCTL_T_SURELY_UNSET_ROOT}/gateway/\" once FPCTL_T_SURELY_UNSET_ROOT is set"),
        "{text}"
    );
    let mut start = s.cmd(&["start", "core"]);
    start.env_remove("FPCTL_T_APP_ROOT");
    let r = Run(start.output().expect("run fpctl start"));
    assert_eq!(r.code(), 0, "{}", r.all());
    let here = root.join("core/here.txt");
    wait_until("core wrote its folder", Duration::from_secs(10), || {
        std::fs::read_to_string(&here).is_ok_and(|t| t.ends_with('\n'))
    });
    let core = std::fs::canonicalize(root.join("core")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&here).unwrap().trim(),
        core.display().to_string()
    );
    s.stop_all();
}

/// An image with no build runs in its container: its compose command is
/// what the container runs, and only a known server (memcached here) also
/// gets a native command, which never starts with the image's flags.
#[test]
fn image_services_run_in_their_containers_and_no_flag_becomes_a_program() {
    let s = Stack::empty();
    s.write(
        "docker-compose.yml",
        r#"
services:
  db:
    image: postgres:14-alpine
    healthcheck:
      test: ['CMD', 'pg_isready', '-U', 'postgres']
  cache:
    image: "memcached:1.6.26-alpine"
    command: ["-I", "${MAX_ITEM:-1M}"]
  mq:
    image: rabbitmq:3
    command: ["--flag"]
    ports: ["5673:5672"]
  search:
    image: elasticsearch:8
    healthcheck:
      test: ["CMD-SHELL", "curl -f http://localhost:9200/"]
  web:
    image: ghcr.io/example/web:1
    command: bundle exec puma
    ports: ["8081:3000"]
    volumes: ["./public:/app/public:ro", "uploads:/app/uploads"]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:3000/up"]
    depends_on: [db, cache, mq]
"#,
    );
    let r = s.run(&["import", "docker-compose.yml"]).expect(0);
    assert!(
        !r.stderr().contains("stub"),
        "an image became a stub:\n{}",
        r.all()
    );
    let v = s.run(&["validate"]).expect(0);
    assert!(!v.all().contains("error"), "{}", v.all());
    let (text, t) = written(&s);
    assert!(!text.contains("# [services."), "a stub:\n{text}");
    for (name, svc) in t["services"].as_table().unwrap() {
        let first = match svc.get("command") {
            Some(toml::Value::Array(a)) => a[0].as_str().unwrap_or_default().to_string(),
            Some(toml::Value::String(c)) => {
                c.split_whitespace().next().unwrap_or_default().to_string()
            }
            None => continue,
            other => panic!("{name}: {other:?}"),
        };
        assert!(
            !first.starts_with('-'),
            "{name} runs a flag as its program:\n{text}"
        );
    }
    let svc = |name: &str| &t["services"][name];
    let strings = |v: &toml::Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("not a list: {v:?}\n{text}"))
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect()
    };
    // memcached: natively with its flags, and the image's own program
    // with the same flags in its container.
    assert_eq!(
        svc("cache")["command"][0].as_str(),
        Some("memcached"),
        "{text}"
    );
    assert_eq!(svc("cache")["port"].as_integer(), Some(11211), "{text}");
    assert_eq!(
        strings(&svc("cache")["container"]["args"]),
        ["-I", "${MAX_ITEM:-1M}"]
    );
    // Unknown images: container-only, their compose command as `args`, the
    // host port published from the one they listen on inside.
    for name in ["db", "mq", "search", "web"] {
        assert!(svc(name).get("command").is_none(), "{name}:\n{text}");
    }
    assert_eq!(strings(&svc("mq")["container"]["args"]), ["--flag"]);
    assert_eq!(svc("mq")["port"].as_integer(), Some(5673), "{text}");
    assert_eq!(
        svc("mq")["container"]["container_port"].as_integer(),
        Some(5672)
    );
    let web = svc("web");
    assert_eq!(
        web["container"]["image"].as_str(),
        Some("ghcr.io/example/web:1")
    );
    assert_eq!(
        strings(&web["container"]["args"]),
        ["bundle", "exec", "puma"]
    );
    assert_eq!(web["port"].as_integer(), Some(8081));
    assert_eq!(web["container"]["container_port"].as_integer(), Some(3000));
    assert_eq!(
        strings(&web["container"]["volumes"]),
        ["./public:/app/public:ro", "uploads:/app/uploads"]
    );
    // Its check on the port it listens on inside is made on the published
    // one; a check with no port published runs in the container, as
    // compose ran it.
    assert_eq!(web["health"]["http"].as_str(), Some("/up"), "{text}");
    assert_eq!(
        strings(&svc("search")["health"]["exec"]),
        ["sh", "-c", "curl -f http://localhost:9200/"]
    );
    assert_eq!(
        strings(&svc("db")["health"]["exec"]),
        ["pg_isready", "-U", "postgres"]
    );
    // Nothing is dropped any more: every dependency runs.
    assert_eq!(strings(&web["depends_on"]), ["db", "cache", "mq"]);
}

/// Real files from open-source projects (sources and licences in
/// tests/corpus/import/README.md and atop each file).
const CORPUS: &[&str] = &[
    "sentry-self-hosted/docker-compose.yml",
    "mastodon/docker-compose.yml",
    "mastodon/Procfile",
    "mastodon/Procfile.dev",
    "awesome-compose-flask-redis/docker-compose.yml",
    "awesome-compose-nginx-golang-postgres/compose.yaml",
    "awesome-compose-nginx-flask-mysql/compose.yaml",
    "process-compose/process-compose.yaml",
    "process-compose/process-compose.override.yaml",
    "process-compose/data_aggregation_workflow.yaml",
    "process-compose/process-compose-scale.yaml",
    "osrd/process-compose.yaml",
    "discourse/Procfile",
    "gitlab/Procfile",
    "chatwoot/Procfile.dev",
    "forem/Procfile.dev",
];

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Each corpus file imports with warnings at most (never exit 2), the file
/// written validates, and so do its stubs once uncommented. The output and
/// the warnings are snapshots (tests/snapshots/import/, BLESS=1 rewrites).
#[test]
fn real_files_import_with_warnings_only_and_validate() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/import");
    let snapshots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/import");
    let bless = std::env::var_os("BLESS").is_some_and(|v| v == "1");
    assert!(
        CORPUS.len() >= 15,
        "the corpus holds {} files",
        CORPUS.len()
    );
    let mut failures = Vec::new();
    for rel in CORPUS {
        let s = Stack::empty();
        let project = rel.split('/').next().unwrap();
        let file = rel.rsplit('/').next().unwrap();
        copy_tree(&corpus.join(project), s.path());
        // Only PATH: nothing of the caller's environment reaches the result.
        let run = |args: &[&str]| {
            let mut c = s.cmd(args);
            c.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("NO_COLOR", "1");
            Run(c.output().expect("run fpctl"))
        };
        let r = run(&["import", file]);
        if !matches!(r.code(), 0 | 1) {
            failures.push(format!("{rel}: import exited {}:\n{}", r.code(), r.all()));
            continue;
        }
        let v = run(&["validate"]);
        if v.code() != 0 {
            failures.push(format!(
                "{rel}: the file written does not validate:\n{}",
                v.all()
            ));
        }
        let text = std::fs::read_to_string(s.file("services.toml")).unwrap();
        s.write("all.toml", &uncommented(&text));
        let v = run(&["-f", "all.toml", "validate"]);
        if v.code() != 0 {
            failures.push(format!(
                "{rel}: its stubs, uncommented, do not validate:\n{}",
                v.all()
            ));
        }
        let warnings: String = warning_lines(&r).iter().map(|l| format!("{l}\n")).collect();
        let name = rel.replace('/', "__");
        for (ext, got) in [("toml", &text), ("warnings", &warnings)] {
            let path = snapshots.join(format!("{name}.{ext}"));
            if bless {
                std::fs::create_dir_all(&snapshots).unwrap();
                std::fs::write(&path, got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if &want != got {
                failures.push(format!(
                    "{rel}: differs from tests/snapshots/import/{name}.{ext} (BLESS=1 rewrites it):\n--- want\n{want}\n--- got\n{got}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

//! `fpctl import` on realistic files of each format: the services.toml it
//! writes validates and starts for real, every field that does not map gets
//! its own warning, and a file of none of the formats exits 2.

mod common;

use common::*;

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
      db:
        condition: service_started
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
            "\"redis\": `volumes`",
            "\"db\": the image postgres:16 is written as a commented stub",
            "\"migrate\": `image`",
            "\"api\": `build.args`",
            "\"api\": `container_name`",
            "\"api\": `healthcheck.start_period`",
            "\"api\": `working_dir`",
            "\"api\": `volumes`",
            "\"api\": `logging`",
            "\"api\": dependency on \"db\" dropped",
        ],
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("warning:")).count(),
        12,
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
    assert!(
        t["services"].get("db").is_none(),
        "db is not a stub:\n{text}"
    );
    assert!(text.contains("# [services.db]"), "no db stub:\n{text}");

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

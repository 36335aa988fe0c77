//! The HTTP API against a running stack, with real clients: reqwest for
//! HTTP and tokio-tungstenite for the WebSocket stream.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A started two-service stack (`web` depends on `db`) with the API on.
struct Api {
    stack: Stack,
    port: u16,
    token: String,
    http: reqwest::Client,
}

/// A reqwest client (fpctl links rustls without a default crypto provider).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn stack_toml(api_port: u16, extra_project: &str) -> String {
    let ports = free_ports(2);
    format!(
        "[project]\napi = \"127.0.0.1:{api_port}\"\n{extra_project}\n\n[[tier]]\nname = \"data\"\n[[tier]]\nname = \"apps\"\n{}{}",
        http_service("db", ports[0], "", "tier = \"data\""),
        http_service(
            "web",
            ports[1],
            "",
            "tier = \"apps\"\ndepends_on = [\"db\"]\nenv = { API_TOKEN = \"s3cr3t-value-123\" }"
        ),
    )
}

impl Api {
    fn start(extra_project: &str) -> Api {
        let port = free_port();
        let stack = Stack::new(&stack_toml(port, extra_project));
        stack.run(&["start"]).expect(0);
        let token = std::fs::read_to_string(stack.file(".fpctl/api-token"))
            .expect("the token file exists once the API listens")
            .trim()
            .to_string();
        Api {
            stack,
            port,
            token,
            http: client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path).await
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, path).await
    }

    async fn stream(&self) -> Ws {
        let mut req = format!("ws://127.0.0.1:{}/api/v1/stream", self.port)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("stream connects");
        ws
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON message on the stream, within `timeout`.
async fn next_msg(ws: &mut Ws, timeout: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(timeout, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).ok(),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

fn find<'a>(services: &'a Value, name: &str) -> &'a Value {
    services
        .as_array()
        .expect("a services array")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {services}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers() {
    let api = Api::start("");
    let web_pid = api.stack.pid_of("web").expect("web runs");
    // Metrics are sampled every 5 s; a CPU figure needs two samples.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (code, status) = loop {
        let (code, status) = api.get("/api/v1/status").await;
        if find(&status["services"], "web")["cpu_percent"].is_number() || Instant::now() > deadline
        {
            break (code, status);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(code, 200, "{status}");
    let web = find(&status["services"], "web");
    assert_eq!(web["state"], "online");
    assert_eq!(web["pid"].as_i64(), Some(i64::from(web_pid)));
    assert!(web["rss_bytes"].as_u64().unwrap() > 1_000_000, "{web}");
    assert!(web["cpu_percent"].as_f64().is_some(), "{web}");
    assert_eq!(status["summary"]["online"], 2);

    // The same model as check --json, which gains the metrics too.
    let (_, check) = api.stack.check_json();
    let cw = find(&check["services"], "web");
    for key in ["rss_bytes", "cpu_percent", "restarts_total"] {
        assert!(cw.get(key).is_some(), "check --json lacks {key}: {cw}");
    }
    assert!(cw["rss_bytes"].as_u64().unwrap() > 1_000_000);
    let wide = api.stack.run(&["check", "--wide"]).expect(0).stdout();
    assert!(
        wide.contains("RSS") && wide.contains("CPU") && wide.contains(" MB"),
        "{wide}"
    );

    let (code, list) = api.get("/api/v1/services").await;
    assert_eq!(code, 200);
    assert_eq!(list.as_array().unwrap().len(), 2);

    let (code, one) = api.get("/api/v1/services/web").await;
    assert_eq!(code, 200, "{one}");
    assert_eq!(one["settings"]["depends_on"], serde_json::json!(["db"]));
    assert_eq!(one["settings"]["health"]["kind"], "http");
    assert_eq!(api.get("/api/v1/services/nope").await.0, 404);

    let (code, hist) = api.get("/api/v1/services/web/history").await;
    assert_eq!(code, 200);
    let probes = hist["probes"].as_array().unwrap();
    assert!(!probes.is_empty() && probes.len() <= 100);
    assert_eq!(probes.last().unwrap()["verdict"], "healthy");
    assert!(probes.last().unwrap()["latency_ms"].as_f64().is_some());

    let (code, logs) = api.get("/api/v1/services/web/logs?n=3").await;
    assert_eq!(code, 200);
    let lines = logs["lines"].as_array().unwrap();
    assert!(!lines.is_empty() && lines.len() <= 3, "{logs}");

    let (code, events) = api.get("/api/v1/events?service=web&limit=2").await;
    assert_eq!(code, 200);
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["service"] == "web"));
    // Secrets never show, even in the spawn event's command line.
    let (_, all) = api.get("/api/v1/events?limit=1000").await;
    assert!(!all.to_string().contains("s3cr3t"));

    let (code, graph) = api.get("/api/v1/graph").await;
    assert_eq!(code, 200);
    assert_eq!(graph["tiers"][0]["name"], "data");
    assert_eq!(graph["services"]["web"]["depends_on"][0], "db");

    let (code, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(code, 200);
    assert!(doc["paths"]["/api/v1/status"].is_object(), "{doc}");
    // The schemas are the model's own, and a live answer validates against
    // them with an independent validator.
    let (_, status) = api.get("/api/v1/status").await;
    let dir = tempfile::tempdir().unwrap();
    let schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": "#/components/schemas/Snapshot",
        "components": doc["components"],
    });
    let schema_path = dir.path().join("snapshot.schema.json");
    std::fs::write(&schema_path, schema.to_string()).unwrap();
    let answer_path = dir.path().join("status.json");
    std::fs::write(&answer_path, status.to_string()).unwrap();
    let out = std::process::Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(&schema_path)
        .arg(&answer_path)
        .output()
        .expect("check-jsonschema (PyPI) runs; .ci/run installs it");
    assert!(
        out.status.success(),
        "/api/v1/status does not match its schema:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A wrong answer is refused: the check can fail.
    let mut wrong = status.clone();
    wrong["services"][0]["state"] = serde_json::json!("sleepy");
    std::fs::write(&answer_path, wrong.to_string()).unwrap();
    let out = std::process::Command::new("check-jsonschema")
        .arg("--schemafile")
        .arg(&schema_path)
        .arg(&answer_path)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a state of \"sleepy\" passed the schema"
    );

    let metrics = api
        .http
        .get(api.url("/metrics"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("fpctl_service_up{service=\"web\",tier=\"apps\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("fpctl_service_state{service=\"web\",state=\"online\"} 1"));
    assert!(metrics.contains("fpctl_service_memory_rss_bytes{service=\"web\""));
    assert!(metrics.contains("fpctl_service_restarts_total{service=\"db\""));

    // The page is served (it holds no data; its requests carry the token).
    let page = api.http.get(api.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.text().await.unwrap().contains("fpctl"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_through_the_api_changes_the_pid_and_the_stream_shows_each_step() {
    let api = Api::start("");
    let old = api.stack.pid_of("web").unwrap();
    let mut ws = api.stream().await;
    let first = next_msg(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(first["type"], "snapshot");

    let (code, body) = api.post("/api/v1/services/web/restart").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ok"], true);
    let new = body["service"]["pid"]
        .as_i64()
        .expect("a pid after restart") as i32;
    assert_ne!(new, old, "{body}");
    assert_eq!(body["service"]["state"], "online");
    assert_eq!(body["service"]["restarts_total"], 1);
    assert!(!body["progress"].as_array().unwrap().is_empty());

    // The stream saw it go down, come back with the new pid, and be online.
    let mut kinds = Vec::new();
    let mut saw_new_pid_online = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !(saw_new_pid_online && kinds.contains(&"online".to_string()))
    {
        let Some(m) = next_msg(&mut ws, Duration::from_secs(5)).await else {
            break;
        };
        match m["type"].as_str() {
            Some("event") if m["service"] == "web" => {
                kinds.push(m["kind"].as_str().unwrap().to_string())
            }
            Some("service") if m["name"] == "web" => {
                saw_new_pid_online |= m["pid"] == new && m["state"] == "online";
            }
            _ => {}
        }
    }
    for step in ["exited", "stopped", "spawned", "online"] {
        assert!(kinds.iter().any(|k| k == step), "no {step} in {kinds:?}");
    }
    assert!(saw_new_pid_online);
    assert_eq!(api.stack.pid_of("web"), Some(new));

    // Stop and start answer with their result too.
    let (code, body) = api.post("/api/v1/services/web/stop").await;
    assert_eq!(
        (code, &body["service"]["state"]),
        (200, &Value::from("stopped"))
    );
    let (code, body) = api.post("/api/v1/services/web/start").await;
    assert_eq!(
        (code, &body["service"]["state"]),
        (200, &Value::from("online"))
    );
    assert_eq!(api.post("/api/v1/services/web/explode").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_through_the_api_answers_with_the_plan_and_the_api_follows_the_new_file() {
    let api = Api::start("");
    let web = api.stack.pid_of("web");
    let toml = std::fs::read_to_string(api.stack.file("services.toml")).unwrap();
    let edited = format!(
        "{toml}{}",
        http_service("cache", free_port(), "", "tier = \"apps\"")
    );
    api.stack.write("services.toml", &edited);

    let (code, body) = api.post("/api/v1/reload?dry_run=true").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["dry_run"], true);
    assert_eq!(body["changes"][0]["service"], "cache", "{body}");
    assert_eq!(body["changes"][0]["kind"], "added", "{body}");
    assert_eq!(api.get("/api/v1/services/cache").await.0, 404);

    let (code, body) = api.post("/api/v1/reload").await;
    assert_eq!((code, &body["ok"]), (200, &Value::from(true)), "{body}");
    assert_eq!(body["changes"].as_array().unwrap().len(), 1, "{body}");
    // The API serves the file in force now: the new service is known.
    let (code, cache) = api.get("/api/v1/services/cache").await;
    assert_eq!(code, 200, "{cache}");
    assert_eq!(cache["state"], "online", "{cache}");
    assert_eq!(
        api.stack.pid_of("web"),
        web,
        "an unchanged service keeps its pid"
    );

    // A file that does not validate changes nothing.
    api.stack
        .write("services.toml", &format!("{edited}\n[services.bad]\n"));
    let (code, body) = api.post("/api/v1/reload").await;
    assert_eq!(code, 422, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(api.get("/api/v1/services/cache").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connecting_mid_way_first_gets_a_full_snapshot() {
    let api = Api::start("");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut ws = api.stream().await;
    let snap = next_msg(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(snap["type"], "snapshot");
    let services = &snap["status"]["services"];
    assert_eq!(find(services, "db")["state"], "online");
    assert_eq!(
        find(services, "web")["pid"].as_i64(),
        api.stack.pid_of("web").map(i64::from)
    );
    assert!(!snap["history"]["web"].as_array().unwrap().is_empty());
    assert!(snap["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "spawned"));
    assert_eq!(snap["graph"]["tiers"][1]["name"], "apps");
    // Then live updates: probe results keep coming (an online service is
    // probed every 10 s by default).
    let mut probes = 0;
    while probes < 2 {
        let m = next_msg(&mut ws, Duration::from_secs(15))
            .await
            .expect("live updates");
        if m["type"] == "probe" {
            assert!(m["latency_ms"].as_f64().is_some());
            probes += 1;
        }
    }
    // A subscribed log streams its lines.
    ws.send(Message::Text(r#"{"logs": "web"}"#.into()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got_log = false;
    while !got_log && Instant::now() < deadline {
        let m = next_msg(&mut ws, Duration::from_secs(5)).await.unwrap();
        got_log = m["type"] == "log"
            && m["service"] == "web"
            && !m["lines"].as_array().unwrap().is_empty();
    }
    assert!(got_log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_cases_are_refused() {
    let api = Api::start("");
    let mode = std::fs::metadata(api.stack.file(".fpctl/api-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // `fpctl dashboard` prints the same token, and the URL with a one-time
    // code in place of the token.
    let out = api
        .stack
        .run(&["dashboard", "--no-open"])
        .expect(0)
        .stdout();
    assert!(
        out.contains(&format!("http://127.0.0.1:{}/#code=", api.port)),
        "{out}"
    );
    assert!(out.contains(&format!("Bearer {})", api.token)), "{out}");
    assert_eq!(out.matches(&api.token).count(), 1, "{out}");

    let status = |r: reqwest::Response| r.status().as_u16();
    let url = api.url("/api/v1/status");
    // No token, a wrong token.
    assert_eq!(status(api.http.get(&url).send().await.unwrap()), 401);
    assert_eq!(
        status(api.http.get(api.url("/metrics")).send().await.unwrap()),
        401
    );
    assert_eq!(
        status(
            api.http
                .get(&url)
                .bearer_auth("wrong")
                .send()
                .await
                .unwrap()
        ),
        401
    );
    let almost = format!("{}x", &api.token[..api.token.len() - 1]);
    assert_eq!(
        status(api.http.get(&url).bearer_auth(almost).send().await.unwrap()),
        401
    );
    // A DNS name in Host (rebinding), even with the right token.
    let r = api
        .http
        .get(&url)
        .bearer_auth(&api.token)
        .header("Host", format!("evil.example:{}", api.port))
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 403);
    // A cross-site POST is refused and changes nothing.
    let pid = api.stack.pid_of("web");
    let r = api
        .http
        .post(api.url("/api/v1/services/web/restart"))
        .bearer_auth(&api.token)
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 403);
    assert_eq!(api.stack.pid_of("web"), pid);
    // A cross-site WebSocket is refused at the handshake.
    let mut req = format!(
        "ws://127.0.0.1:{}/api/v1/stream?token={}",
        api.port, api.token
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    // ...while the same from our own origin, token in the query, works.
    let mut req = format!(
        "ws://127.0.0.1:{}/api/v1/stream?token={}",
        api.port, api.token
    )
    .into_client_request()
    .unwrap();
    req.headers_mut().insert(
        "Origin",
        format!("http://127.0.0.1:{}", api.port).parse().unwrap(),
    );
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
    // Without a token, the stream is refused too.
    let req = format!("ws://127.0.0.1:{}/api/v1/stream", api.port);
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refuses_every_mutation() {
    let api = Api::start("api_read_only = true");
    let pid = api.stack.pid_of("web");
    for action in ["restart", "stop", "start"] {
        let (code, body) = api.post(&format!("/api/v1/services/web/{action}")).await;
        assert_eq!(code, 403, "{action}: {body}");
        assert!(body["error"].as_str().unwrap().contains("read-only"));
    }
    let (code, body) = api.post("/api/v1/reload").await;
    assert_eq!(code, 403, "reload: {body}");
    assert_eq!(api.post("/api/v1/reload?dry_run=true").await.0, 200);
    assert_eq!(api.stack.pid_of("web"), pid);
    assert_eq!(api.get("/api/v1/status").await.0, 200);
}

#[test]
fn a_non_loopback_bind_needs_a_token() {
    let stack =
        Stack::new("[project]\napi = \"0.0.0.0:7070\"\n\n[services.a]\ncommand = \"sleep 10\"\n");
    let r = stack.run(&["validate"]).expect(2);
    assert!(r.stderr().contains("services.toml:2:7"), "{}", r.all());
    assert!(r.stderr().contains("api_token"), "{}", r.all());
    // With a token it is accepted.
    let stack = Stack::new(
        "[project]\napi = \"0.0.0.0:7070\"\napi_token = \"0123456789abcdef0123\"\n\n[services.a]\ncommand = \"sleep 10\"\n",
    );
    stack.run(&["validate"]).expect(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_turns_the_api_on_for_a_stack_without_it() {
    let port = free_port();
    let stack = Stack::new(&http_service("solo", port, "", ""));
    stack.run(&["start"]).expect(0);
    let out = stack.run(&["dashboard", "--no-open"]).expect(0).stdout();
    let url = out
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:") && w.contains("#code="))
        .unwrap_or_else(|| panic!("no URL in {out}"));
    let (base, _code) = url.split_once("#code=").unwrap();
    let token = out
        .split_once("Bearer ")
        .and_then(|(_, t)| t.split(')').next())
        .unwrap_or_else(|| panic!("no token in {out}"));
    let solo = || async {
        client()
            .get(format!("{base}api/v1/services/solo"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    };
    let r = solo().await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "online");
    // Asking again gives the same address (with a new code).
    let again = stack.run(&["dashboard", "--no-open"]).expect(0).stdout();
    assert!(again.contains(&format!("{base}#code=")), "{again}");
    assert!(!again.contains(url), "a code given twice: {again}");
    // A reload of a file without `api` leaves what the dashboard opened.
    let toml = std::fs::read_to_string(stack.file("services.toml")).unwrap();
    stack.write("services.toml", &format!("{toml}\n# edited\n"));
    stack.run(&["reload"]).expect(0);
    assert_eq!(
        solo().await.status(),
        200,
        "the dashboard's API still serves"
    );
}

/// Rewrite the stack's `[project] api` line (or drop it: `None`).
fn set_api_line(stack: &Stack, line: Option<&str>) {
    let toml = std::fs::read_to_string(stack.file("services.toml")).unwrap();
    let head = toml.lines().nth(1).unwrap_or_default();
    assert!(head.starts_with("api = "), "{toml}");
    let edited = toml.replacen(
        &format!("{head}\n"),
        &line.map(|l| format!("{l}\n")).unwrap_or_default(),
        1,
    );
    stack.write("services.toml", &edited);
}

/// Whether the API answers `path` on `port` with `token`, and its status.
async fn status_on(port: u16, token: &str) -> Option<u16> {
    let r = client()
        .get(format!("http://127.0.0.1:{port}/api/v1/status"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    Some(r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_the_api_to_its_new_address() {
    let api = Api::start("");
    let web = api.stack.pid_of("web");
    let new_port = free_port();
    set_api_line(&api.stack, Some(&format!("api = \"127.0.0.1:{new_port}\"")));

    let plan = api.stack.run(&["reload", "--dry-run"]).expect(0).stdout();
    let line = format!(
        "~ [project] api: 127.0.0.1:{} -> 127.0.0.1:{new_port}",
        api.port
    );
    assert!(plan.contains(&line), "{plan}");
    assert_eq!(
        status_on(api.port, &api.token).await,
        Some(200),
        "a dry run moves nothing"
    );
    assert!(!port_open(new_port));

    let out = api.stack.run(&["reload"]).expect(0).stdout();
    assert!(out.contains(&line), "{out}");
    // The old address refuses connections the moment the reload answers.
    assert!(!port_open(api.port), "the old listener is closed");
    assert_eq!(status_on(new_port, &api.token).await, Some(200));
    assert_eq!(api.stack.pid_of("web"), web, "the services are untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_token_and_sighup_turns_the_api_off() {
    let (first, second) = ("first-token-0123456789", "second-token-9876543210");
    let port = free_port();
    let stack = Stack::new(&stack_toml(port, &format!("api_token = \"{first}\"")));
    stack.run(&["start"]).expect(0);
    let api = Api {
        stack,
        port,
        token: first.into(),
        http: client(),
    };
    assert_eq!(status_on(api.port, first).await, Some(200));
    let toml = std::fs::read_to_string(api.stack.file("services.toml")).unwrap();
    api.stack
        .write("services.toml", &toml.replace(first, second));
    let out = api.stack.run(&["reload"]).expect(0).stdout();
    assert!(out.contains("~ [project] api_token changed"), "{out}");
    assert_eq!(
        status_on(api.port, first).await,
        Some(401),
        "the old token is refused"
    );
    assert_eq!(
        status_on(api.port, second).await,
        Some(200),
        "the new one is accepted"
    );

    // The same port on every interface: the old listener must let go of it
    // first.
    let everywhere = format!("0.0.0.0:{}", api.port);
    set_api_line(&api.stack, Some(&format!("api = \"{everywhere}\"")));
    let out = api.stack.run(&["reload"]).expect(0).stdout();
    assert!(
        out.contains(&format!("127.0.0.1:{} -> {everywhere}", api.port)),
        "{out}"
    );
    assert_eq!(status_on(api.port, second).await, Some(200));

    // No `api` any more: SIGHUP closes the listener the file had opened.
    set_api_line(&api.stack, None);
    let sup = api.stack.supervisor_pid().expect("a supervisor");
    // SAFETY: kill(2) on the supervisor this test started.
    unsafe {
        libc::kill(sup, libc::SIGHUP);
    }
    wait_until("the API closed by SIGHUP", Duration::from_secs(10), || {
        !port_open(api.port)
    });
    assert_eq!(api.stack.state_of("web"), "online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_a_taken_port_fails_and_the_old_api_keeps_serving() {
    let mut api = Api::start("");
    let taken = free_port();
    let holder = api.stack.spawn_httpd(&["--port", &taken.to_string()]);
    wait_until("the other process listens", Duration::from_secs(10), || {
        port_open(taken)
    });
    set_api_line(&api.stack, Some(&format!("api = \"127.0.0.1:{taken}\"")));

    let run = api.stack.run(&["reload"]).expect(1);
    let err = run.stderr();
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{taken}")),
        "{err}"
    );
    assert!(err.contains("in use"), "{err}");
    assert!(
        err.contains(&format!("still listens on 127.0.0.1:{}", api.port)),
        "{err}"
    );
    // `start` applies the file first, and says the same.
    let err = api.stack.run(&["start"]).expect(1).stderr();
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{taken}")),
        "{err}"
    );

    assert_eq!(
        status_on(api.port, &api.token).await,
        Some(200),
        "the old API serves"
    );
    assert!(pid_alive(holder), "the other process keeps its port");
    assert_eq!(api.stack.state_of("web"), "online");
    // Once the port is free, the next reload moves the API.
    // SAFETY: kill(2) on the process this test started.
    unsafe {
        libc::kill(holder, libc::SIGKILL);
    }
    wait_until("the port freed", Duration::from_secs(10), || {
        !port_open(taken)
    });
    api.stack.run(&["reload"]).expect(0);
    assert_eq!(status_on(taken, &api.token).await, Some(200));
    assert!(!port_open(api.port));
}

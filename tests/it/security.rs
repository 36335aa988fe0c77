//! The protections of a stack against other local users and hostile
//! clients, against real processes: the HTTP API under a flood of
//! connections, its Host and Origin checks, the WebSocket's message limit,
//! redaction of secrets, the owner checks of the socket folder and of
//! `log_dir`, and the bounds of `${VAR}` expansion.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The user the tests hand folders to, as "another local user".
const NOBODY: u32 = 65534;

/// A reqwest client (fpctl links rustls without a default crypto provider).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A started stack with the API on: `db` and `web` (HTTP services), `web`
/// with `web_extra` TOML.
struct ApiStack {
    stack: Stack,
    port: u16,
    token: String,
}

impl ApiStack {
    fn start(web_extra: &str) -> ApiStack {
        let port = free_port();
        let ports = free_ports(2);
        let toml = format!(
            "[project]\napi = \"127.0.0.1:{port}\"\n{}{}",
            http_service("db", ports[0], "", ""),
            http_service("web", ports[1], "", web_extra),
        );
        let stack = Stack::new(&toml);
        stack.run(&["start"]).expect(0);
        let token = std::fs::read_to_string(stack.file(".fpctl/api-token"))
            .expect("the token file exists once the API listens")
            .trim()
            .to_string();
        ApiStack { stack, port, token }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = client()
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    fn supervisor_rss_kib(&self) -> u64 {
        rss_kib(self.stack.supervisor_pid().expect("a supervisor"))
    }
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// How many files a process has open.
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Every service's (name, pid, restarts, state) in `check --json`.
fn services(stack: &Stack) -> Vec<(String, i64, i64, String)> {
    let (_, v) = stack.check_json();
    v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["pid"].as_i64().unwrap_or(-1),
                s["restarts"].as_i64().unwrap(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Raise this process's soft open-file limit to its hard limit.
fn raise_open_files() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a live rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

/// Run `cmd` with `resource` limited to `limit` (soft and hard).
fn limited(cmd: Command, resource: libc::__rlimit_resource_t, limit: u64) -> Command {
    limited_to(cmd, resource, limit, limit)
}

/// Run `cmd` with `resource` limited to `soft` and `hard`.
fn limited_to(
    mut cmd: Command,
    resource: libc::__rlimit_resource_t,
    soft: u64,
    hard: u64,
) -> Command {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(resource, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn run_cmd(cmd: Command) -> Run {
    match output_within(cmd, RUN_LIMIT) {
        Ok(out) => Run(out),
        Err(partial) => panic!("did not finish in time:\n{}", Run(partial).all()),
    }
}

/// A flood of idle connections and of slow request heads. Each connection
/// is held until the server closes it, then opened again a second or so
/// later, until `until`.
async fn flood(port: u16, idle: usize, slow: usize, until: Instant, opened: Arc<AtomicU64>) {
    let mut tasks = Vec::new();
    for i in 0..idle + slow {
        let opened = Arc::clone(&opened);
        let is_slow = i >= idle;
        tasks.push(tokio::spawn(async move {
            // Spread the reconnections: 1 to 2 s, by a cheap hash of i.
            let pause = Duration::from_millis(1000 + (i as u64 * 7919) % 1000);
            let until = tokio::time::Instant::from_std(until);
            while tokio::time::Instant::now() < until {
                if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    opened.fetch_add(1, Ordering::Relaxed);
                    let held = async {
                        let mut buf = [0u8; 256];
                        if is_slow {
                            let head = format!("GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
                            if s.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            loop {
                                tokio::select! {
                                    r = s.read(&mut buf) => if !matches!(r, Ok(n) if n > 0) { return },
                                    _ = tokio::time::sleep(Duration::from_millis(900)) => {
                                        if s.write_all(b"X-Slow: still coming\r\n").await.is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                        } else {
                            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                        }
                    };
                    let _ = tokio::time::timeout_at(until, held).await;
                }
                tokio::time::sleep_until((tokio::time::Instant::now() + pause).min(until)).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[test]
fn a_flood_of_idle_and_slow_api_connections_leaves_the_stack_and_check_untouched() {
    assert!(raise_open_files() >= 6000, "this test holds 5,200 sockets");
    let api = ApiStack::start("");
    let before = services(&api.stack);
    assert!(before.iter().all(|s| s.3 == "online"), "{before:?}");
    let supervisor = api.stack.supervisor_pid().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Idle: the API has served a request, the stack runs.
    assert_eq!(rt.block_on(api.get("/api/v1/status")).0, 200);
    let mut idle_rss = 0;
    for _ in 0..5 {
        idle_rss = idle_rss.max(api.supervisor_rss_kib());
        std::thread::sleep(Duration::from_millis(200));
    }
    let idle_fds = open_fds(supervisor);

    let until = Instant::now() + Duration::from_secs(30);
    let opened = Arc::new(AtomicU64::new(0));
    let flooding = rt.spawn(flood(api.port, 5000, 200, until, Arc::clone(&opened)));
    let (mut worst_check, mut peak_rss, mut checks) = (Duration::ZERO, idle_rss, 0);
    let mut peak_fds = idle_fds;
    while Instant::now() < until {
        peak_rss = peak_rss.max(api.supervisor_rss_kib());
        peak_fds = peak_fds.max(open_fds(supervisor));
        let t = Instant::now();
        let r = api.stack.run_within(&["check"], Duration::from_secs(20));
        let took = t.elapsed();
        assert_eq!(r.code(), 0, "check during the flood:\n{}", r.all());
        worst_check = worst_check.max(took);
        checks += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    rt.block_on(flooding).unwrap();
    let opened = opened.load(Ordering::Relaxed);
    eprintln!(
        "flood: {opened} connections opened; supervisor RSS {idle_rss} KiB idle, {peak_rss} KiB at most during; \
         open files {idle_fds} idle, {peak_fds} at most during; slowest of {checks} checks {worst_check:?}"
    );
    assert!(opened >= 5200, "the flood never got going: {opened}");
    // The API held at most its cap of connections (128), whatever came.
    assert!(
        peak_fds <= idle_fds + 128 + 16,
        "the supervisor had {peak_fds} files open during the flood ({idle_fds} idle)"
    );
    assert!(
        worst_check < Duration::from_secs(1),
        "check took {worst_check:?} during the flood"
    );
    assert!(
        peak_rss <= idle_rss + 64 * 1024,
        "the supervisor grew from {idle_rss} KiB to {peak_rss} KiB"
    );
    // Nothing restarted or failed, and the same supervisor runs.
    assert_eq!(services(&api.stack), before);
    assert_eq!(api.stack.supervisor_pid(), Some(supervisor));
    assert!(pid_alive(supervisor));
    // The API refused what was over its cap, said so, and serves again.
    let log = std::fs::read_to_string(api.stack.file(".fpctl/supervisor.log")).unwrap();
    assert!(
        log.contains("connections open: new ones are refused"),
        "{log}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while rt.block_on(api.get("/api/v1/status")).0 != 200 {
        assert!(Instant::now() < deadline, "the API does not serve again");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_connections_that_send_no_request_a_slow_head_or_idle_after_one_are_closed() {
    let api = ApiStack::start("");
    let started = Instant::now();
    let connect = || tokio::net::TcpStream::connect(("127.0.0.1", api.port));
    // Nothing at all.
    let silent = connect().await.unwrap();
    // A head that never ends, a line a second.
    let mut slow = connect().await.unwrap();
    slow.write_all(b"GET /api/v1/status HTTP/1.1\r\n")
        .await
        .unwrap();
    // One request answered, then nothing.
    let mut kept = connect().await.unwrap();
    let request = format!(
        "GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\n\r\n",
        api.port, api.token
    );
    kept.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    let closed_within = |mut s: tokio::net::TcpStream, trickle: bool| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            tokio::select! {
                r = s.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return Some(started.elapsed()),
                    Ok(_) => {}
                },
                _ = tokio::time::sleep(Duration::from_secs(1)), if trickle => {
                    if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
                        return Some(started.elapsed());
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    };
    let (a, b, c) = tokio::join!(
        closed_within(silent, false),
        closed_within(slow, true),
        closed_within(kept, false)
    );
    for (what, closed) in [("silent", a), ("slow head", b), ("idle after a request", c)] {
        let at = closed.unwrap_or_else(|| panic!("the {what} connection is still open after 20 s"));
        assert!(
            at >= Duration::from_secs(5),
            "the {what} connection was closed after {at:?}, before its time"
        );
    }
}

#[test]
fn the_supervisor_raises_its_open_file_limit_to_the_hard_limit() {
    let stack = Stack::new("[services.worker]\ncommand = \"sleep 600\"\n");
    run_cmd(limited_to(
        stack.cmd(&["start"]),
        libc::RLIMIT_NOFILE,
        256,
        4096,
    ))
    .expect(0);
    let supervisor = stack.supervisor_pid().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{supervisor}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["Max", "open", "files", "4096", "4096", "files"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_takes_longer_than_the_head_timeout_still_gets_its_answer() {
    // The timeout is for a request's head only: a restart of a service that
    // takes 12 s to be ready is answered when it is done.
    let (port, api_port) = (free_port(), free_port());
    let stack = Stack::new(&format!(
        "[project]\napi = \"127.0.0.1:{api_port}\"\n{}",
        http_service("slow", port, "--ready-after 12", "")
    ));
    stack.run(&["start"]).expect(0);
    let token = std::fs::read_to_string(stack.file(".fpctl/api-token")).unwrap();
    let pid = stack.pid_of("slow");
    let t = Instant::now();
    let r = client()
        .post(format!(
            "http://127.0.0.1:{api_port}/api/v1/services/slow/restart"
        ))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_secs(11), "{:?}", t.elapsed());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["service"]["state"], "online", "{body}");
    assert_ne!(stack.pid_of("slow"), pid);
}

#[test]
fn probes_fpctl_cannot_make_for_want_of_file_descriptors_never_fail_a_service() {
    // A supervisor whose open-file limit is small (a hard limit, which it
    // cannot raise), so that connections to its socket use up the rest:
    // then its own probes cannot open a socket.
    let ports = free_ports(2);
    let fast = "health = { http = \"/health\", interval = \"200ms\", retries = 2 }";
    let toml = format!(
        "{}{}",
        http_service("a", ports[0], "", ""),
        http_service("b", ports[1], "", ""),
    )
    .replace("health = { http = \"/health\" }", fast);
    let stack = Stack::new(&toml);
    run_cmd(limited(stack.cmd(&["start"]), libc::RLIMIT_NOFILE, 40)).expect(0);
    let before = services(&stack);
    assert!(before.iter().all(|s| s.3 == "online"), "{before:?}");
    let supervisor = stack.supervisor_pid().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{supervisor}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 40 ")),
        "{limits}"
    );
    // Connections that send nothing are held by the supervisor (10 s) until
    // it has no descriptor left.
    let socket = stack.file(".fpctl/fpctl.sock");
    let held: Vec<_> = (0..60)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(&socket).ok())
        .collect();
    let log = stack.file(".fpctl/supervisor.log");
    wait_until(
        "the supervisor finds it cannot probe",
        Duration::from_secs(5),
        || {
            std::fs::read_to_string(&log)
                .unwrap()
                .contains("cannot probe")
        },
    );
    // Ten probe intervals and more: with 2 retries each service would have
    // been restarted several times over.
    std::thread::sleep(Duration::from_secs(3));
    drop(held);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Too many open files"), "{text}");
    wait_until("check answers again", Duration::from_secs(15), || {
        stack.run(&["check"]).code() == 0
    });
    assert_eq!(services(&stack), before, "a service was touched:\n{text}");
    assert_eq!(stack.supervisor_pid(), Some(supervisor));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_only_its_own_host_and_port() {
    let api = ApiStack::start("");
    let (port, other) = (api.port, free_port());
    let status = |host: String, origin: Option<String>, post: bool| {
        let api = &api;
        async move {
            let url = if post {
                api.url("/api/v1/services/web/restart")
            } else {
                api.url("/api/v1/status")
            };
            let mut r = if post {
                client().post(url)
            } else {
                client().get(url)
            }
            .bearer_auth(&api.token)
            .header("Host", host);
            if let Some(o) = origin {
                r = r.header("Origin", o);
            }
            r.send().await.unwrap().status().as_u16()
        }
    };
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(status(host.clone(), None, false).await, 200, "Host {host}");
    }
    for host in [
        // Another local port is another site.
        format!("127.0.0.1:{other}"),
        format!("localhost:{other}"),
        format!("[::1]:{other}"),
        // Another address on our port is not this API.
        format!("10.1.2.3:{port}"),
        format!("192.168.0.7:{port}"),
        format!("127.0.0.2:{port}"),
        format!("0.0.0.0:{port}"),
        format!("rebound.example:{port}"),
    ] {
        assert_eq!(status(host.clone(), None, false).await, 403, "Host {host}");
    }
    // A POST from a page of another local port, or of another address on
    // our port, is refused and restarts nothing.
    let pid = api.stack.pid_of("web");
    for origin in [
        format!("http://127.0.0.1:{other}"),
        format!("http://localhost:{other}"),
        format!("http://192.168.0.7:{port}"),
        format!("http://10.1.2.3:{port}"),
    ] {
        let code = status(format!("127.0.0.1:{port}"), Some(origin.clone()), true).await;
        assert_eq!(code, 403, "Origin {origin}");
    }
    assert_eq!(api.stack.pid_of("web"), pid);
    // The same from the API's own page goes through.
    let code = status(
        format!("127.0.0.1:{port}"),
        Some(format!("http://127.0.0.1:{port}")),
        true,
    )
    .await;
    assert_eq!(code, 200);
    assert_ne!(api.stack.pid_of("web"), pid);
    // A WebSocket from another local port's page is refused at the
    // handshake.
    let mut req = format!("ws://127.0.0.1:{port}/api/v1/stream?token={}", api.token)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Origin",
        format!("http://localhost:{other}").parse().unwrap(),
    );
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_websocket_message_closes_that_connection_and_nothing_else() {
    let api = ApiStack::start("");
    let supervisor = api.stack.supervisor_pid();
    let connect = || async {
        let mut req = format!("ws://127.0.0.1:{}/api/v1/stream", api.port)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", api.token).parse().unwrap(),
        );
        tokio_tungstenite::connect_async(req)
            .await
            .expect("stream")
            .0
    };
    let mut ws = connect().await;
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"snapshot\""));
    // 64 KiB where the protocol needs a few dozen bytes.
    let big = format!("{{\"logs\": \"{}\"}}", "x".repeat(64 * 1024));
    let _ = ws.send(Message::text(big)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("the connection is still open 5 s after an oversize message"),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(_))) => continue,
        }
    }
    // Another client is served as before, and follows a log.
    let mut ws = connect().await;
    ws.next().await.unwrap().unwrap();
    ws.send(Message::text("{\"logs\": \"web\"}")).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a log message")
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(m.to_text().unwrap()).unwrap();
        if v["type"] == "log" {
            assert_eq!(v["service"], "web");
            break;
        }
    }
    assert_eq!(api.get("/api/v1/status").await.0, 200);
    assert_eq!(api.stack.supervisor_pid(), supervisor);
    assert!(services(&api.stack).iter().all(|s| s.3 == "online"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_looking_values_never_show_in_the_api_the_cli_or_the_logs() {
    let secrets = [
        ("DB_PASSWORD", "pw-password-1"),
        ("DB_PASS", "pw-pass-2"),
        ("DB_PWD", "pw-pwd-3"),
        ("AUTH_HEADER", "pw-auth-4"),
        ("SENTRY_DSN", "pw-dsn-5"),
        ("MY_PRIVATE_THING", "pw-private-6"),
    ];
    let env: Vec<String> = secrets
        .iter()
        .map(|(k, v)| format!("{k} = \"{v}\""))
        .chain(["DATABASE_URL = \"postgres://app:pw-url-7@db.example/app\"".to_string()])
        .collect();
    let used: String = secrets
        .iter()
        .map(|(k, _)| format!("${{{k}}} "))
        .chain(["${DATABASE_URL}".to_string()])
        .collect();
    let port = free_port();
    let api_port = free_port();
    let toml = format!(
        r#"[project]
api = "127.0.0.1:{api_port}"

[services.web]
shell = true
command = ": {used}; exec python3 {httpd} --port ${{PORT}} --name web"
port = {port}
health = {{ http = "http://probe:pw-health-8@127.0.0.1:${{PORT}}/health" }}
env = {{ {env} }}
"#,
        httpd = httpd(),
        env = env.join(", "),
    );
    let stack = Stack::new(&toml);
    stack.run(&["start"]).expect(0);
    let token = std::fs::read_to_string(stack.file(".fpctl/api-token")).unwrap();
    let get = |path: &str| {
        let url = format!("http://127.0.0.1:{api_port}{path}");
        let token = token.trim().to_string();
        async move {
            let r = client().get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let service = get("/api/v1/services/web").await;
    let shown = [
        ("API service", service.clone()),
        ("API status", get("/api/v1/status").await),
        ("API events", get("/api/v1/events?limit=1000").await),
        ("API logs", get("/api/v1/services/web/logs").await),
        (
            "check --json",
            stack.run(&["check", "--json"]).expect(0).stdout(),
        ),
        ("check", stack.run(&["check"]).expect(0).stdout()),
        ("logs", stack.run(&["logs", "web"]).expect(0).stdout()),
        ("events", stack.run(&["events"]).stdout()),
        ("probe", stack.run(&["probe", "web"]).stdout()),
        ("log file", stack.log("web")),
    ];
    for (what, text) in &shown {
        for secret in [
            "pw-password-1",
            "pw-pass-2",
            "pw-pwd-3",
            "pw-auth-4",
            "pw-dsn-5",
        ]
        .iter()
        .chain(&["pw-private-6", "pw-url-7", "pw-health-8"])
        {
            assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
        }
    }
    // What is shown keeps its shape, with `***` where the secrets were.
    let v: Value = serde_json::from_str(&service).unwrap();
    let command = v["settings"]["command"].as_str().unwrap();
    assert!(
        command.contains(": *** *** *** *** *** *** postgres://app:***@db.example/app;"),
        "{command}"
    );
    let target = v["settings"]["health"]["target"].as_str().unwrap();
    assert!(target.contains("http://probe:***@127.0.0.1:"), "{target}");
    assert!(stack.log("web").contains("[fpctl] starting: sh -c ': ***"));
}

#[test]
fn exponential_variable_expansion_is_refused_at_its_line() {
    // Each level repeats the one before 8 times: 16 bytes become 2 GiB at
    // the tenth.
    let mut env = String::from("L0 = \"0123456789abcdef\"\n");
    for level in 1..10 {
        env.push_str(&format!(
            "L{level} = \"{}\"\n",
            format!("${{L{}}}", level - 1).repeat(8)
        ));
    }
    let toml = format!("[services.web]\ncommand = \"echo ${{L9}}\"\n\n[services.web.env]\n{env}");
    let stack = Stack::new(&toml);
    // 1 GiB of address space is plenty for a validation; the unbounded
    // expansion needs several.
    let r = run_cmd(limited(stack.cmd(&["validate"]), libc::RLIMIT_AS, 1 << 30));
    let r = r.expect(2);
    // L6, 16 × 8^6 bytes = 4 MiB on line 11, is the first over 1 MiB.
    assert!(
        r.stderr().contains("services.toml:11:6: error"),
        "{}",
        r.all()
    );
    assert!(r.stderr().contains("over 1 MiB"), "{}", r.all());

    // A chain of values that refer to the one above, too deep.
    let mut env = String::from("D0 = \"x\"\n");
    for level in 1..=20 {
        env.push_str(&format!("D{level} = \"${{D{}}}\"\n", level - 1));
    }
    let stack = Stack::new(&format!(
        "[services.web]\ncommand = \"echo ${{D20}}\"\n\n[services.web.env]\n{env}"
    ));
    let r = stack.run(&["validate"]).expect(2);
    // D17 is the first at 17 levels.
    assert!(
        r.stderr().contains("services.toml:22:7: error"),
        "{}",
        r.all()
    );
    assert!(r.stderr().contains("17 levels deep"), "{}", r.all());

    // Values of 1.3 MiB in all in [project] env, expanded again for each
    // of 70 services: 93 MiB.
    let mut project = String::from("[project.env]\nA = \"0123456789abcdef\"\n");
    let names = ["A", "B", "C", "D", "E", "F", "G", "H", "I"];
    for (i, name) in names.iter().enumerate().skip(1) {
        let prev = names[i - 1];
        project.push_str(&format!(
            "{name} = \"{}\"\n",
            format!("${{{prev}}}").repeat(4)
        ));
    }
    let services: String = (0..70)
        .map(|i| format!("[services.s{i}]\ncommand = \"true\"\n"))
        .collect();
    let stack = Stack::new(&format!("{project}\n{services}"));
    let r = run_cmd(limited(stack.cmd(&["validate"]), libc::RLIMIT_AS, 1 << 30)).expect(2);
    assert!(r.stderr().contains("over 64 MiB"), "{}", r.all());
}

/// A project too deep for `.fpctl/fpctl.sock`: its socket goes to
/// `$XDG_RUNTIME_DIR/fpctl/`, with XDG_RUNTIME_DIR a folder of the test.
struct Deep {
    stack: Stack,
    dir: PathBuf,
    runtime: tempfile::TempDir,
}

impl Deep {
    fn new(toml: &str) -> Deep {
        let stack = Stack::empty();
        let dir = stack.path().join("a".repeat(60)).join("b".repeat(60));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("services.toml"), toml).unwrap();
        assert!(dir.join(".fpctl/fpctl.sock").as_os_str().len() > 107);
        let runtime = tempfile::Builder::new()
            .prefix("fpctl-runtime")
            .tempdir()
            .unwrap();
        Deep {
            stack,
            dir,
            runtime,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.stack.cmd(args);
        c.current_dir(&self.dir)
            .env("XDG_RUNTIME_DIR", self.runtime.path());
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        run_cmd(self.cmd(args))
    }

    /// `$XDG_RUNTIME_DIR/fpctl`.
    fn socket_dir(&self) -> PathBuf {
        self.runtime.path().join("fpctl")
    }

    /// Where the project's socket is, in [`Self::socket_dir`].
    fn socket(&self) -> PathBuf {
        let config = fpctl::config::load(Some(&self.dir.join("services.toml"))).unwrap();
        let name = fpctl::state::socket_path(&config)
            .file_name()
            .unwrap()
            .to_owned();
        self.socket_dir().join(name)
    }
}

impl Drop for Deep {
    fn drop(&mut self) {
        let _ = output_within(self.cmd(&["stop"]), STOP_LIMIT);
        let state = std::fs::read_to_string(self.dir.join(".fpctl/state.json")).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&state) {
            if let Some(pid) = v["supervisor_pid"].as_i64() {
                // SAFETY: kill(2) on the supervisor this test started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// A fake supervisor on `socket` that answers every request with a status
/// where `worker` is online, as pid 4242; `as_user` runs it as that user.
/// Returns its pid.
fn fake_supervisor(stack: &mut Stack, socket: &Path, as_user: Option<u32>) -> i32 {
    use fpctl::control::Response;
    use fpctl::status::{ServiceState, ServiceStatus, Snapshot};
    let mut worker = ServiceStatus::new("worker", "default");
    worker.state = ServiceState::Online;
    worker.pid = Some(4242);
    worker.uptime_s = Some(100.0);
    worker.detail = Some("all good, trust me".into());
    worker.latency_ms = Some(1.0);
    let status = fpctl::control::encode(Response::Status {
        snapshot: Snapshot::new("fake", Some(4242), vec![worker]),
        config_digest: None,
    });
    let script = r#"
import os, socket, sys
path, answer = sys.argv[1], sys.argv[2].encode()
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o777)
s.listen(16)
while True:
    c, _ = s.accept()
    c.recv(65536)
    c.sendall(answer)
    c.close()
"#;
    // The system's python, which another user can run.
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg("-c")
        .arg(script)
        .arg(socket)
        .arg(&status)
        .process_group(0);
    if let Some(uid) = as_user {
        cmd.uid(uid).gid(uid);
    }
    let child = cmd.spawn().expect("python3");
    let pid = child.id() as i32;
    stack.own_pids.push(pid);
    std::mem::forget(child);
    wait_until(
        "the fake supervisor listens",
        Duration::from_secs(10),
        || socket.exists(),
    );
    pid
}

#[test]
fn a_socket_folder_that_another_user_could_control_is_refused() {
    // A worker: no port, no health check, so `check` has only the
    // supervisor's word for its state.
    let toml = "[services.worker]\ncommand = \"sleep 600\"\n";

    // First use: fpctl makes the folder itself, owner-only, and works.
    let deep = Deep::new(toml);
    deep.run(&["start"]).expect(0);
    let meta = std::fs::symlink_metadata(deep.socket_dir()).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), nix::unistd::getuid().as_raw());
    deep.run(&["check"]).expect(0);
    deep.run(&["stop"]).expect(0);
    drop(deep);

    let refused = |deep: &Deep, why: &str| {
        for command in [&["check"][..], &["start"], &["stop"], &["logs"]] {
            let r = deep.run(command);
            assert_eq!(r.code(), 1, "fpctl {command:?}:\n{}", r.all());
            let err = r.stderr();
            let dir = deep.socket_dir().display().to_string();
            assert!(err.contains(&dir), "{}", r.all());
            assert!(err.contains(why), "{}", r.all());
            assert!(err.contains("XDG_RUNTIME_DIR"), "{}", r.all());
            assert!(
                !r.stdout().contains("4242"),
                "the fake answered:\n{}",
                r.all()
            );
        }
        // Nothing was started for it.
        assert!(!deep.dir.join(".fpctl/state.json").exists());
    };

    // Made first by another user, who serves a fake supervisor in it.
    let mut deep = Deep::new(toml);
    std::fs::create_dir(deep.socket_dir()).unwrap();
    std::fs::set_permissions(deep.socket_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(deep.socket_dir(), Some(NOBODY), Some(NOBODY)).unwrap();
    let socket = deep.socket();
    fake_supervisor(&mut deep.stack, &socket, Some(NOBODY));
    refused(&deep, &format!("belongs to uid {NOBODY}"));
    drop(deep);

    // Ours, but open to everyone: anyone could have put the socket there.
    let mut deep = Deep::new(toml);
    std::fs::create_dir(deep.socket_dir()).unwrap();
    std::fs::set_permissions(deep.socket_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = deep.socket();
    fake_supervisor(&mut deep.stack, &socket, None);
    refused(&deep, "has mode 777");
    drop(deep);

    // A link to a folder elsewhere.
    let deep = Deep::new(toml);
    let elsewhere = deep.runtime.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, deep.socket_dir()).unwrap();
    refused(&deep, "is a symbolic link");
}

#[test]
fn a_linked_or_foreign_log_dir_is_refused_and_logs_are_owner_only() {
    let port = free_port();
    let service = http_service("web", port, "", "");
    let others = tempfile::Builder::new()
        .prefix("fpctl-others")
        .tempdir()
        .unwrap();

    // A link: whoever controls it decides where the logs go.
    let target = others.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let stack = Stack::new(&format!("[project]\nlog_dir = \"linked\"\n{service}"));
    std::os::unix::fs::symlink(&target, stack.file("linked")).unwrap();
    for command in ["validate", "start"] {
        let r = stack.run(&[command]).expect(2);
        assert!(
            r.stderr().contains("services.toml:2:11: error"),
            "{}",
            r.all()
        );
        assert!(r.stderr().contains("is a symbolic link"), "{}", r.all());
    }
    assert!(!port_open(port));
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);

    // Another user's folder.
    let theirs = others.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let stack = Stack::new(&format!(
        "[project]\nlog_dir = \"{}\"\n{service}",
        theirs.display()
    ));
    for command in ["validate", "start"] {
        let r = stack.run(&[command]).expect(2);
        assert!(
            r.stderr().contains("services.toml:2:11: error"),
            "{}",
            r.all()
        );
        assert!(
            r.stderr().contains(&format!("belongs to uid {NOBODY}")),
            "{}",
            r.all()
        );
    }
    assert!(!port_open(port));
    assert_eq!(std::fs::read_dir(&theirs).unwrap().count(), 0);

    // A folder fpctl makes, outside `.fpctl`: owner-only, and so are the
    // logs in it (those that rotate too), and the supervisor's own.
    let mine = others.path().join("mine/logs");
    let stack = Stack::new(&format!(
        "[project]\nlog_dir = \"{}\"\n{}",
        mine.display(),
        http_service("web", port, "", "log_max_size = \"1MB\"")
    ));
    stack.run(&["start"]).expect(0);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&mine), 0o700);
    assert_eq!(mode(&mine.join("web.log")), 0o600);
    assert_eq!(mode(&stack.file(".fpctl/supervisor.log")), 0o600);
    stack.stop_all();
}

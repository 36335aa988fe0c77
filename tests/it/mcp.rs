//! `fpctl mcp` with a real MCP client (rmcp's, over the child-process
//! transport) against real stacks, and `POST /mcp` on the HTTP API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, GetPromptRequestParams, ProgressNotificationParam,
    ReadResourceRequestParams, ResourceContents,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};

use crate::common::*;

/// A client that keeps the messages of the progress notifications it gets.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl ClientHandler for Recorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let message = params.message.unwrap_or_default();
        self.0.lock().unwrap().push(message);
    }
}

/// An MCP client session with `fpctl mcp` in the stack's folder.
struct Agent {
    client: RunningService<RoleClient, Recorder>,
    progress: Recorder,
}

impl Agent {
    async fn start(stack: &Stack, extra: &[&str]) -> Agent {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg("mcp")
            .args(extra)
            .current_dir(stack.path())
            .env("NO_COLOR", "1")
            .env_remove("FPCTL_FILE");
        let transport = TokioChildProcess::new(cmd).expect("spawn fpctl mcp");
        let progress = Recorder::default();
        let client =
            tokio::time::timeout(Duration::from_secs(30), progress.clone().serve(transport))
                .await
                .expect("fpctl mcp answers initialize within 30s")
                .expect("the MCP handshake succeeds");
        Agent { client, progress }
    }

    async fn call(&self, tool: &str, args: Value) -> CallToolResult {
        let params = CallToolRequestParams::new(tool.to_string())
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        tokio::time::timeout(Duration::from_secs(120), self.client.call_tool(params))
            .await
            .unwrap_or_else(|_| panic!("{tool} did not answer within 120s"))
            .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
    }

    /// A call that must succeed; its JSON.
    async fn ok(&self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args).await;
        assert_ne!(r.is_error, Some(true), "{tool} failed: {}", text(&r));
        r.structured_content.clone().expect("structured content")
    }

    async fn tool_names(&self) -> Vec<String> {
        self.client
            .list_all_tools()
            .await
            .expect("tools/list")
            .into_iter()
            .map(|t| t.name.to_string())
            .collect()
    }
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn row<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

/// `web` depends on `db`; both the test HTTP service.
fn two_services() -> Stack {
    let p = free_ports(2);
    Stack::new(&format!(
        "{}{}",
        http_service("db", p[0], "", ""),
        http_service("web", p[1], "", "depends_on = [\"db\"]")
    ))
}

const MUTATING: [&str; 4] = ["fpctl_start", "fpctl_restart", "fpctl_stop", "fpctl_reload"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_lists_the_tools_starts_the_stack_and_reads_its_status() {
    let stack = two_services();
    let agent = Agent::start(&stack, &[]).await;

    let tools = agent.client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in [
        "fpctl_status",
        "fpctl_service",
        "fpctl_logs",
        "fpctl_events",
        "fpctl_wait",
        "fpctl_start",
        "fpctl_restart",
        "fpctl_stop",
        "fpctl_probe",
        "fpctl_reload",
        "fpctl_ports",
        "fpctl_graph",
        "fpctl_validate",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n.contains("exec")), "{names:?}");
    let hints = |name: &str| {
        let t = tools.iter().find(|t| t.name == name).unwrap();
        let a = t.annotations.clone().expect("annotations");
        (a.read_only_hint, a.destructive_hint)
    };
    assert_eq!(hints("fpctl_status"), (Some(true), None));
    assert_eq!(hints("fpctl_stop"), (Some(false), Some(true)));
    assert_eq!(hints("fpctl_start"), (Some(false), Some(false)));

    // `fpctl mcp` started a supervisor; nothing runs yet.
    let before = agent.ok("fpctl_status", json!({})).await;
    assert_eq!(row(&before, "web")["state"], "stopped", "{before}");
    assert!(before["supervisor_pid"].as_i64().is_some(), "{before}");

    let started = agent.ok("fpctl_start", json!({"services": ["web"]})).await;
    assert_eq!(started["ok"], true, "{started}");
    assert_eq!(row(&started, "web")["state"], "online", "{started}");
    assert_eq!(row(&started, "db")["state"], "online", "{started}");

    // The same model as `check --json`: same rows, same pids.
    let status = agent.ok("fpctl_status", json!({})).await;
    let (_, check) = stack.check_json();
    for name in ["db", "web"] {
        assert_eq!(row(&status, name)["pid"], row(&check, name)["pid"]);
        assert_eq!(row(&status, name)["state"], "online");
    }
    assert_eq!(status["summary"]["online"], 2, "{status}");
    let only_web = agent.ok("fpctl_status", json!({"services": ["web"]})).await;
    assert_eq!(only_web["services"].as_array().unwrap().len(), 1);

    // Resources and the prompt render the same.
    let res = agent
        .client
        .read_resource(ReadResourceRequestParams::new("fpctl://status"))
        .await
        .expect("read fpctl://status");
    let ResourceContents::TextResourceContents { text: body, .. } = &res.contents[0] else {
        panic!("not text: {res:?}");
    };
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(row(&body, "web")["state"], "online");
    let service = agent.ok("fpctl_service", json!({"name": "web"})).await;
    assert_eq!(
        service["settings"]["depends_on"],
        json!(["db"]),
        "{service}"
    );
    let prompt = agent
        .client
        .get_prompt(
            GetPromptRequestParams::new("diagnose-service")
                .with_arguments(json!({"name": "web"}).as_object().cloned().unwrap()),
        )
        .await
        .expect("the prompt");
    let words = serde_json::to_string(&prompt.messages).unwrap();
    for step in [
        "fpctl_status",
        "fpctl_probe",
        "fpctl_events",
        "fpctl_logs",
        "fpctl_service",
    ] {
        assert!(words.contains(step), "{step} missing: {words}");
    }
    let probe = agent.ok("fpctl_probe", json!({"name": "web"})).await;
    assert_eq!(probe["probes"][0]["verdict"], "healthy", "{probe}");

    // The stack outlives the agent's session.
    let supervisor = stack.supervisor_pid().expect("a supervisor");
    agent.client.cancel().await.unwrap();
    assert!(pid_alive(supervisor));
    assert_eq!(stack.state_of("web"), "online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_with_grep_keep_only_matching_lines_of_every_service_in_time_order() {
    let stack = two_services();
    stack.run(&["start"]).expect(0);
    let agent = Agent::start(&stack, &[]).await;

    let all = agent
        .ok("fpctl_logs", json!({"grep": "listening on"}))
        .await;
    let lines = all["lines"].as_array().unwrap();
    let services: Vec<&str> = lines
        .iter()
        .map(|l| l["service"].as_str().unwrap())
        .collect();
    assert!(
        services.contains(&"db") && services.contains(&"web"),
        "{all}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["text"].as_str().unwrap().contains("listening on")),
        "{all}"
    );
    // db starts before web, which depends on it.
    let first_web = services.iter().position(|s| *s == "web").unwrap();
    let first_db = services.iter().position(|s| *s == "db").unwrap();
    assert!(first_db < first_web, "{all}");

    let web = agent
        .ok("fpctl_logs", json!({"name": "web", "grep": "^web: "}))
        .await;
    let lines = web["lines"].as_array().unwrap();
    assert!(!lines.is_empty(), "{web}");
    assert!(lines.iter().all(|l| l["service"] == "web"), "{web}");

    let none = agent
        .ok("fpctl_logs", json!({"grep": "no such line at all"}))
        .await;
    assert_eq!(none["lines"], json!([]), "{none}");

    let bad = agent.call("fpctl_logs", json!({"grep": "("})).await;
    assert_eq!(bad.is_error, Some(true), "{}", text(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_gives_a_new_pid_and_answers_once_the_service_is_online_again() {
    let stack = two_services();
    stack.run(&["start"]).expect(0);
    let old = stack.pid_of("web").expect("web runs");
    let agent = Agent::start(&stack, &[]).await;

    let r = agent
        .ok("fpctl_restart", json!({"services": ["web"]}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let web = row(&r, "web");
    assert_eq!(web["state"], "online", "{r}");
    let new = web["pid"].as_i64().expect("a pid") as i32;
    assert_ne!(new, old);
    assert!(!pid_alive(old), "the old process is gone");
    assert_eq!(stack.pid_of("web"), Some(new));
    // Each step of the restart came as a progress notification.
    let seen = agent.progress.0.lock().unwrap().clone();
    assert!(seen.iter().any(|m| m == "web: online"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_takes_dependents_down_and_start_brings_them_back() {
    let stack = two_services();
    stack.run(&["start"]).expect(0);
    let agent = Agent::start(&stack, &[]).await;

    let refused = agent.call("fpctl_stop", json!({"services": ["*"]})).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(text(&refused).contains("confirm"), "{}", text(&refused));
    assert_eq!(stack.state_of("db"), "online", "nothing stopped");

    let stopped = agent.ok("fpctl_stop", json!({"services": ["db"]})).await;
    assert_eq!(stopped["ok"], true, "{stopped}");
    let names: Vec<&str> = stopped["stopped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(names.contains(&"db") && names.contains(&"web"), "{stopped}");
    assert_eq!(stopped["dependents"], json!(["web"]), "{stopped}");
    assert_eq!(stack.state_of("web"), "stopped");

    let started = agent.ok("fpctl_start", json!({"services": ["web"]})).await;
    assert_eq!(started["ok"], true, "{started}");
    assert_eq!(stack.state_of("web"), "online");
    assert_eq!(stack.state_of("db"), "online");

    let all = agent
        .ok("fpctl_stop", json!({"services": ["*"], "confirm": true}))
        .await;
    assert_eq!(all["ok"], true, "{all}");
    // Every service stopped; the supervisor still runs.
    let status = agent.ok("fpctl_status", json!({})).await;
    assert_eq!(status["summary"]["stopped"], 2, "{status}");
    assert!(pid_alive(stack.supervisor_pid().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_on_a_failing_service_answers_its_reason_and_log_tail_never_ok() {
    let p = free_ports(1);
    let stack = Stack::new(&format!(
        "[services.bad]\ncommand = \"sh -c 'echo about-to-fail-7731; exit 3'\"\nrestart = \"no\"\nport = {}\n\n\
         [services.after]\ncommand = \"sleep 300\"\ndepends_on = [\"bad\"]\n",
        p[0]
    ));
    let agent = Agent::start(&stack, &[]).await;
    let started = agent
        .call("fpctl_start", json!({"services": ["after"], "wait": false}))
        .await;
    assert_ne!(started.is_error, Some(true), "{}", text(&started));

    let r = agent
        .call(
            "fpctl_wait",
            json!({"services": ["bad", "after"], "timeout_s": 60}),
        )
        .await;
    assert_eq!(r.is_error, Some(true), "never ok: {}", text(&r));
    let v = r.structured_content.clone().unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(
        v["timed_out"], false,
        "answered at the failure, not the timeout: {v}"
    );
    let missing = v["not_reached"].as_array().unwrap();
    let bad = missing.iter().find(|m| m["service"] == "bad").expect("bad");
    assert_eq!(bad["state"], "failed", "{v}");
    assert!(bad["reason"].is_object(), "{v}");
    let tail = serde_json::to_string(&bad["log_tail"]).unwrap();
    assert!(tail.contains("about-to-fail-7731"), "{v}");
    let after = missing
        .iter()
        .find(|m| m["service"] == "after")
        .expect("after");
    assert_eq!(after["state"], "blocked", "{v}");
    assert!(text(&r).contains("about-to-fail-7731"), "{}", text(&r));
    // The wait said how far it got as it went.
    let seen = agent.progress.0.lock().unwrap().clone();
    assert!(seen.iter().any(|m| m.contains("waiting for")), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reload_after_an_edit_shows_the_change_and_changes_nothing() {
    let p = free_ports(2);
    let web = http_service("web", p[1], "", "depends_on = [\"db\"]");
    let stack = Stack::new(&format!("{}{web}", http_service("db", p[0], "", "")));
    stack.run(&["start"]).expect(0);
    let (db, web_pid) = (stack.pid_of("db").unwrap(), stack.pid_of("web").unwrap());
    let agent = Agent::start(&stack, &[]).await;

    stack.write(
        "services.toml",
        &format!("{}{web}", http_service("db", p[0], "--name db-renamed", "")),
    );
    let plan = agent.ok("fpctl_reload", json!({})).await;
    assert_eq!(plan["dry_run"], true, "{plan}");
    let changes = plan["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["service"] == "db" && c["kind"] == "changed"),
        "{plan}"
    );
    assert!(text(&agent.call("fpctl_reload", json!({})).await).contains("nothing was changed"));
    assert_eq!(stack.pid_of("db"), Some(db), "db kept running");
    assert_eq!(stack.pid_of("web"), Some(web_pid));
    // Still the same plan: nothing was applied.
    let again = agent.ok("fpctl_reload", json!({"dry_run": true})).await;
    assert_eq!(again["changes"], plan["changes"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_service_name_is_a_tool_error_with_the_nearest_name() {
    let stack = two_services();
    let agent = Agent::start(&stack, &[]).await;
    for (tool, args) in [
        ("fpctl_status", json!({"services": ["wbe"]})),
        ("fpctl_logs", json!({"name": "wbe"})),
        ("fpctl_service", json!({"name": "wbe"})),
        ("fpctl_restart", json!({"services": ["wbe"]})),
        ("fpctl_wait", json!({"services": ["wbe"]})),
    ] {
        let r = agent.call(tool, args).await;
        assert_eq!(r.is_error, Some(true), "{tool}: {}", text(&r));
        assert!(
            text(&r).contains("did you mean \"web\""),
            "{tool}: {}",
            text(&r)
        );
    }
    let r = agent.call("fpctl_statu", json!({})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("fpctl_status"), "{}", text(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_offers_no_tool_that_changes_the_stack() {
    let stack = two_services();
    stack.run(&["start"]).expect(0);
    let agent = Agent::start(&stack, &["--read-only"]).await;
    let names = agent.tool_names().await;
    assert!(names.contains(&"fpctl_status".to_string()), "{names:?}");
    for m in MUTATING {
        assert!(!names.contains(&m.to_string()), "{m} offered: {names:?}");
    }
    let tools = agent.client.list_all_tools().await.unwrap();
    assert!(tools
        .iter()
        .all(|t| t.annotations.as_ref().unwrap().read_only_hint == Some(true)));
    let refused = agent.call("fpctl_stop", json!({"services": ["db"]})).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(text(&refused).contains("read-only"), "{}", text(&refused));
    assert_eq!(stack.state_of("db"), "online");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_gives_every_error_of_a_broken_file_with_line_and_column() {
    let stack = two_services();
    stack.run(&["start"]).expect(0);
    let agent = Agent::start(&stack, &[]).await;
    assert_eq!(agent.ok("fpctl_validate", json!({})).await["ok"], true);

    let good = std::fs::read_to_string(stack.file("services.toml")).unwrap();
    let broken = format!("{good}\n[services.extra]\ncommand = \"true\"\nport = \"eighty\"\n");
    let line = broken
        .lines()
        .position(|l| l.starts_with("port = \"eighty\""))
        .unwrap()
        + 1;
    stack.write("services.toml", &broken);
    let v = agent.ok("fpctl_validate", json!({})).await;
    assert_eq!(v["ok"], false, "{v}");
    let e = &v["errors"][0];
    assert_eq!(e["line"], line, "{v}");
    assert_eq!(e["column"], 8, "{v}");
    assert!(e["message"].as_str().unwrap().contains("port"), "{v}");
    // The running stack stays in reach.
    let status = agent.ok("fpctl_status", json!({})).await;
    assert_eq!(row(&status, "web")["state"], "online");
}

/// `POST /mcp` with a JSON-RPC body, as raw HTTP (to set any Host).
fn post_mcp(port: u16, headers: &str, body: &Value) -> (u16, String) {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\n{headers}Content-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

/// The JSON-RPC answer in an HTTP answer (a JSON body or an event).
fn rpc_answer(raw: &str) -> Value {
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json = body
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or(body);
    let start = json.find('{').unwrap_or(0);
    let end = json.rfind('}').map_or(json.len(), |e| e + 1);
    serde_json::from_str(&json[start..end]).unwrap_or_else(|e| panic!("{e}: {raw}"))
}

fn initialize() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}
        }
    })
}

fn list_tools() -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
}

fn api_stack(extra: &str) -> (Stack, u16) {
    let api = free_port();
    let p = free_ports(1);
    let stack = Stack::new(&format!(
        "[project]\napi = \"127.0.0.1:{api}\"\napi_token = \"mcp-token-0123456789abcdef\"\n{extra}\n{}",
        http_service("web", p[0], "", "")
    ));
    stack.run(&["start"]).expect(0);
    (stack, api)
}

#[test]
fn mcp_over_http_takes_the_token_and_refuses_a_foreign_host_or_origin() {
    let (_stack, port) = api_stack("");
    let token = "Authorization: Bearer mcp-token-0123456789abcdef\r\n";
    let here = format!("Host: 127.0.0.1:{port}\r\n");

    let (code, raw) = post_mcp(port, &here, &initialize());
    assert_eq!(code, 401, "{raw}");
    let (code, raw) = post_mcp(
        port,
        &format!("{here}Authorization: Bearer wrong\r\n"),
        &initialize(),
    );
    assert_eq!(code, 401, "{raw}");
    let (code, raw) = post_mcp(
        port,
        &format!("Host: evil.example:{port}\r\n{token}"),
        &initialize(),
    );
    assert_eq!(code, 403, "{raw}");
    let (code, raw) = post_mcp(
        port,
        &format!("{here}{token}Origin: http://evil.example\r\n"),
        &initialize(),
    );
    assert_eq!(code, 403, "{raw}");

    let (code, raw) = post_mcp(port, &format!("{here}{token}"), &initialize());
    assert_eq!(code, 200, "{raw}");
    let init = rpc_answer(&raw);
    assert_eq!(init["result"]["serverInfo"]["name"], "fpctl", "{init}");

    let (code, raw) = post_mcp(port, &format!("{here}{token}"), &list_tools());
    assert_eq!(code, 200, "{raw}");
    let tools = rpc_answer(&raw);
    let names = serde_json::to_string(&tools["result"]["tools"]).unwrap();
    assert!(
        names.contains("fpctl_status") && names.contains("fpctl_stop"),
        "{tools}"
    );

    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "fpctl_status", "arguments": {}}});
    let (code, raw) = post_mcp(port, &format!("{here}{token}"), &call);
    assert_eq!(code, 200, "{raw}");
    let status = rpc_answer(&raw);
    let result = &status["result"]["structuredContent"];
    assert_eq!(row(result, "web")["state"], "online", "{status}");
}

#[test]
fn a_read_only_api_offers_only_the_read_tools_over_http() {
    let (_stack, port) = api_stack("api_read_only = true");
    let headers =
        format!("Host: 127.0.0.1:{port}\r\nAuthorization: Bearer mcp-token-0123456789abcdef\r\n");
    let (code, raw) = post_mcp(port, &headers, &list_tools());
    assert_eq!(code, 200, "{raw}");
    let tools = rpc_answer(&raw);
    let names = serde_json::to_string(&tools["result"]["tools"]).unwrap();
    assert!(names.contains("fpctl_status"), "{tools}");
    for m in MUTATING {
        assert!(!names.contains(&format!("\"{m}\"")), "{m} offered: {tools}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_log_answer_is_cut_to_64_kib_keeps_the_newest_lines_and_says_so() {
    let stack = Stack::new("");
    stack.write(
        "spam.py",
        "import time\nfor i in range(3000):\n    print(f'line-{i}-' + 'x' * 100, flush=True)\nprint('all-written', flush=True)\ntime.sleep(300)\n",
    );
    stack.write(
        "services.toml",
        &format!(
            "[services.spam]\ncommand = \"python3 {}\"\n",
            stack.file("spam.py").display()
        ),
    );
    stack.run(&["start"]).expect(0);
    wait_until("spam wrote every line", Duration::from_secs(20), || {
        stack.log("spam").contains("all-written")
    });
    let agent = Agent::start(&stack, &[]).await;
    let r = agent
        .call("fpctl_logs", json!({"name": "spam", "tail": 2000}))
        .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let v = r.structured_content.clone().unwrap();
    let size = serde_json::to_string(&v).unwrap().len() + text(&r).len();
    assert!(size <= 64 * 1024, "{size} bytes");
    assert_eq!(v["truncated"], true);
    let lines = v["lines"].as_array().unwrap();
    assert!(lines.len() > 100 && lines.len() < 2000, "{}", lines.len());
    assert_eq!(lines.last().unwrap()["text"], "all-written");
    assert_eq!(
        v["omitted"].as_u64().unwrap() as usize + lines.len(),
        2000,
        "2000 asked for, each either kept or counted as left out"
    );
}

//! `success_exit_codes`: which exit codes count as success. A oneshot that
//! exits with one is completed and its dependents start; a long-running
//! service that exits with one is stopped, restarted only under
//! `restart = "always"`.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// The events of `service` in `fpctl events --json`, oldest first.
fn events_of(stack: &Stack, service: &str) -> Vec<Value> {
    let r = stack.run(&["events", service, "--json"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    r.stdout()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn count_kind(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["kind"] == kind).count()
}

#[test]
fn a_oneshot_that_exits_with_a_success_code_is_completed_and_its_dependent_starts() {
    let port = free_port();
    let stack = Stack::new(&format!(
        r#"
[services.migrate]
command = "sh -c 'echo migrated; exit 3'"
oneshot = true
success_exit_codes = [0, 3]
{api}"#,
        api = http_service("api", port, "", "depends_on = [\"migrate\"]"),
    ));
    let r = stack.run(&["start"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    let migrate = stack.service("migrate");
    assert_eq!(migrate["state"], "completed", "{migrate}");
    assert_eq!(migrate["detail"], "exited with code 3", "{migrate}");
    assert_eq!(stack.state_of("api"), "online");
    assert!(http_get(port, "/health").is_some());
    let (code, _) = stack.check_json();
    assert_eq!(code, 0, "a completed oneshot is a success for check");
}

#[test]
fn a_oneshot_exit_code_left_out_of_the_list_fails_and_blocks_its_dependent() {
    let port = free_port();
    // 0 is not listed: it no longer counts.
    let stack = Stack::new(&format!(
        r#"
[services.migrate]
command = "true"
oneshot = true
success_exit_codes = [3]
{api}"#,
        api = http_service("api", port, "", "depends_on = [\"migrate\"]"),
    ));
    let r = stack.run(&["start"]);
    assert_eq!(r.code(), 1, "{}", r.all());
    assert_eq!(stack.state_of("migrate"), "failed");
    assert_eq!(stack.state_of("api"), "blocked");
}

#[test]
fn a_service_that_exits_with_a_success_code_under_on_failure_stays_stopped() {
    let stack = Stack::new(
        r#"
[services.worker]
command = "sh -c 'sleep 1; exit 3'"
restart = "on-failure"
success_exit_codes = [0, 3]
"#,
    );
    stack.run(&["start"]).expect(0);
    wait_until(
        "the worker exits with its success code",
        Duration::from_secs(10),
        || stack.state_of("worker") == "stopped",
    );
    let worker = stack.service("worker");
    assert_eq!(worker["detail"], "exited with success code 3", "{worker}");
    assert_eq!(
        worker["activity"],
        serde_json::json!({"doing": "exited_success", "code": 3})
    );
    assert_eq!(worker["restarts"], 0, "{worker}");
    assert_eq!(worker["reason"], Value::Null, "not a failure: {worker}");
    let events = events_of(&stack, "worker");
    assert_eq!(count_kind(&events, "spawned"), 1, "{events:?}");
    assert_eq!(count_kind(&events, "restart"), 0, "{events:?}");
    assert_eq!(count_kind(&events, "failed"), 0, "{events:?}");
    assert_eq!(count_kind(&events, "stopped"), 1, "{events:?}");
    // A restart would have been at once: the first one has no backoff. The
    // log has one run only.
    assert_eq!(count_lines(&stack.log("worker"), "starting:"), 1);
    // The table says it too.
    let table = stack.run(&["check"]).stdout();
    assert!(table.contains("exited with success code 3"), "{table}");
}

#[test]
fn a_code_not_listed_is_a_failure_that_on_failure_restarts() {
    let stack = Stack::new(
        r#"
[services.worker]
command = "sh -c 'sleep 1; exit 0'"
restart = "on-failure"
max_restarts = 1
success_exit_codes = [3]
"#,
    );
    stack.run(&["start"]).expect(0);
    wait_until(
        "the worker is restarted, then given up on",
        Duration::from_secs(15),
        || stack.state_of("worker") == "failed",
    );
    let events = events_of(&stack, "worker");
    assert_eq!(count_kind(&events, "restart"), 1, "{events:?}");
}

#[test]
fn under_restart_always_a_success_exit_is_restarted() {
    let stack = Stack::new(
        r#"
[services.worker]
command = "sh -c 'sleep 1; exit 3'"
restart = "always"
max_restarts = 10
success_exit_codes = [0, 3]
"#,
    );
    stack.run(&["start"]).expect(0);
    wait_until(
        "the worker is restarted after its success exit",
        Duration::from_secs(10),
        || count_kind(&events_of(&stack, "worker"), "restart") >= 1,
    );
    let events = events_of(&stack, "worker");
    let restart = events.iter().find(|e| e["kind"] == "restart").unwrap();
    assert_eq!(
        restart["data"]["why"],
        serde_json::json!({"cause": "exit", "exit": {"code": 3}}),
        "{restart}"
    );
    wait_until("the worker runs again", Duration::from_secs(10), || {
        stack.state_of("worker") == "online"
    });
    assert!(stack.service("worker")["restarts"].as_u64().unwrap() >= 1);
}

//! `disabled = true`: left out of a plain `start`, started on demand: when
//! named, and when a service being started depends on it (transitively).
//! A disabled service that is not running never fails `check`.

use std::time::Duration;

use crate::common::*;

/// `web` depends on `cache`, which depends on `db`; `db` and `cache` are
/// disabled. `tool` is disabled and nothing depends on it.
fn chain(ports: &[u16]) -> Stack {
    Stack::new(&format!(
        "{db}{cache}{web}{tool}",
        db = http_service("db", ports[0], "", "disabled = true"),
        cache = http_service(
            "cache",
            ports[1],
            "",
            "disabled = true\ndepends_on = [\"db\"]"
        ),
        web = http_service("web", ports[2], "", "depends_on = [\"cache\"]"),
        tool = http_service("tool", ports[3], "", "disabled = true"),
    ))
}

#[test]
fn a_disabled_chain_starts_on_demand_for_its_dependent_and_a_plain_start_leaves_the_rest_out() {
    let ports = free_ports(4);
    let stack = chain(&ports);
    let r = stack.run(&["start"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    for name in ["db", "cache", "web"] {
        assert_eq!(stack.state_of(name), "online", "{name}");
    }
    assert!(http_get(ports[0], "/health").is_some(), "db answers");
    // Nothing needs `tool`: it stays out, and does not fail `check`.
    let tool = stack.service("tool");
    assert_eq!(tool["state"], "stopped", "{tool}");
    assert_eq!(tool["detail"], "disabled", "{tool}");
    assert!(!port_open(ports[3]));
    let (code, v) = stack.check_json();
    assert_eq!(code, 0, "a disabled service at rest fails nothing: {v}");
    // The supervisor's own view (the API, state.json) says so too.
    let saved = stack.saved_state().expect("state.json");
    assert_eq!(
        saved["services"]["tool"]["activity"],
        serde_json::json!({"doing": "disabled"}),
        "{saved}"
    );
}

#[test]
fn starting_a_dependent_by_name_starts_its_disabled_dependencies() {
    let ports = free_ports(4);
    let stack = chain(&ports);
    let r = stack.run(&["start", "web"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    assert_eq!(stack.state_of("db"), "online");
    assert_eq!(stack.state_of("cache"), "online");
    assert_eq!(stack.state_of("web"), "online");
}

#[test]
fn a_disabled_service_starts_when_named_and_stops_and_restarts_like_any() {
    let ports = free_ports(4);
    let stack = chain(&ports);
    let r = stack.run(&["start", "tool"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    assert_eq!(stack.state_of("tool"), "online");
    assert!(http_get(ports[3], "/health").is_some());
    // Only what it needs came with it.
    assert_eq!(stack.state_of("web"), "stopped");
    let pid = stack.pid_of("tool").expect("tool runs");
    let r = stack.run(&["restart", "tool"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    let again = stack.pid_of("tool").expect("tool runs again");
    assert_ne!(pid, again, "restart gave it a new process");
    let r = stack.run(&["stop", "tool"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    wait_until("tool's process is gone", Duration::from_secs(10), || {
        !pid_alive(again)
    });
    let tool = stack.service("tool");
    assert_eq!(tool["state"], "stopped", "{tool}");
    assert_eq!(tool["detail"], "disabled", "{tool}");
}

#[test]
fn restarting_a_dependent_alone_starts_its_stopped_disabled_dependency() {
    let ports = free_ports(4);
    let stack = chain(&ports);
    stack.run(&["start"]).expect(0);
    // Stopping db takes cache and web down with it.
    stack.run(&["stop", "db"]).expect(0);
    assert_eq!(stack.state_of("web"), "stopped");
    // A restart of web alone used to leave it blocked ("dependency is
    // disabled"); now what it needs starts for it.
    let r = stack.run(&["restart", "web"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    for name in ["db", "cache", "web"] {
        assert_eq!(stack.state_of(name), "online", "{name}");
    }
}

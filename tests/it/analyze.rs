//! `fpctl analyze`: the critical chain of the last start, from what the
//! supervisor recorded as it happened.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// How long the middle tier's service takes to listen.
const API_DELAY_MS: u64 = 1500;

/// Three tiers: db, then api (slowed by `API_DELAY_MS`), then web; `side`
/// in the first tier is quick and bounds nothing.
fn three_tiers(ports: &[u16]) -> Stack {
    let delay = API_DELAY_MS as f64 / 1000.0;
    Stack::new(&format!(
        r#"
[[tier]]
name = "data"

[[tier]]
name = "core"

[[tier]]
name = "apps"
{db}tier = "data"
{side}tier = "data"
{api}tier = "core"
{web}tier = "apps"
"#,
        db = http_service("db", ports[0], "", ""),
        side = http_service("side", ports[1], "", ""),
        api = http_service(
            "api",
            ports[2],
            &format!("--ready-after {delay}"),
            "depends_on = [\"db\"]"
        ),
        web = http_service("web", ports[3], "", "depends_on = [\"api\"]"),
    ))
}

fn analysis(stack: &Stack) -> Value {
    let r = stack.run(&["analyze", "--json"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}: {}", r.all()))
}

fn service<'a>(a: &'a Value, name: &str) -> &'a Value {
    a["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {a}"))
}

fn ms(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not a number of ms: {v}"))
}

#[test]
fn the_critical_chain_names_the_slow_middle_service_and_its_time() {
    let ports = free_ports(4);
    let stack = three_tiers(&ports);
    let r = stack.run(&["start"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    let a = analysis(&stack);
    // api waited for the whole first tier: the one of db and side that was
    // ready last is what it waited for.
    let db_ready = ms(&service(&a, "db")["ready_ms"]);
    let side_ready = ms(&service(&a, "side")["ready_ms"]);
    let first = if db_ready >= side_ready { "db" } else { "side" };
    assert_eq!(
        a["critical_chain"],
        serde_json::json!(["web", "api", first]),
        "{a}"
    );
    let api = service(&a, "api");
    assert_eq!(api["state"], "online");
    assert_eq!(api["after"], first, "{api}");
    assert!(ms(&api["spawn_to_ready_ms"]) >= API_DELAY_MS, "{api}");
    assert!(ms(&api["ready_ms"]) >= API_DELAY_MS, "{api}");
    assert!(db_ready.max(side_ready) <= ms(&api["launched_ms"]), "{a}");
    let web = service(&a, "web");
    assert_eq!(web["after"], "api", "{web}");
    assert!(ms(&web["launched_ms"]) >= ms(&api["ready_ms"]), "{a}");
    assert_eq!(ms(&a["total_ms"]), ms(&web["ready_ms"]), "{a}");
    assert!(ms(&a["total_ms"]) >= API_DELAY_MS, "{a}");
    // Every service of the start is in the record, in the chain or not.
    assert_eq!(a["services"].as_array().unwrap().len(), 4, "{a}");
    // The same in words, as systemd-analyze draws it.
    let r = stack.run(&["analyze"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    let text = r.stdout();
    let chain: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("web @") || l.contains("└─"))
        .collect();
    assert_eq!(chain.len(), 3, "{text}");
    assert!(chain[0].starts_with("web @"), "{text}");
    assert!(chain[1].starts_with("└─api @"), "{text}");
    assert!(chain[2].starts_with(&format!("  └─{first} @")), "{text}");
    assert!(text.contains("SPAWN TO READY"), "{text}");
}

#[test]
fn a_start_that_starts_nothing_keeps_the_record_of_the_last_one() {
    let ports = free_ports(4);
    let stack = three_tiers(&ports);
    stack.run(&["start"]).expect(0);
    let first = analysis(&stack);
    stack.run(&["start"]).expect(0);
    let again = analysis(&stack);
    assert_eq!(first["began"], again["began"], "{first}\n{again}");
    // A new start of something stopped is a new record, with only it.
    stack.run(&["stop", "web"]).expect(0);
    stack.run(&["start", "web"]).expect(0);
    let web_only = analysis(&stack);
    assert_ne!(first["began"], web_only["began"]);
    assert_eq!(web_only["critical_chain"], serde_json::json!(["web"]));
    assert_eq!(web_only["services"].as_array().unwrap().len(), 1);
}

#[test]
fn without_a_supervisor_analyze_says_so_and_exits_1() {
    let stack = Stack::new("[services.web]\ncommand = \"sleep 60\"\n");
    let r = stack.run(&["analyze"]);
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        r.stderr().contains("no supervisor is running"),
        "{}",
        r.all()
    );
    assert!(r.stdout().is_empty(), "{}", r.all());
}

#[test]
fn a_supervisor_that_started_nothing_has_no_start_to_analyze() {
    let stack = Stack::new("[services.web]\ncommand = \"sleep 60\"\ndisabled = true\n");
    // A plain start of a stack whose only service is disabled starts the
    // supervisor and nothing else.
    stack.run(&["start"]).expect(0);
    wait_until("a supervisor runs", Duration::from_secs(10), || {
        stack.supervisor_pid().is_some_and(pid_alive)
    });
    let r = stack.run(&["analyze"]);
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(r.stderr().contains("recorded no start yet"), "{}", r.all());
}

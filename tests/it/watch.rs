//! `watch`: a change to a watched file restarts the service (setup first
//! when a setup input changed); ignored files restart nothing.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

fn watch_events(s: &Stack, service: &str) -> Vec<Value> {
    s.run(&["events", service, "--json", "-n", "1000"])
        .expect(0)
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "watch")
        .collect()
}

/// The pid of `service` once it differs from `old`, and how long that took.
fn next_pid(s: &Stack, service: &str, old: i32, limit: Duration) -> Option<(i32, Duration)> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(pid) = s.pid_of(service).filter(|&p| p != old) {
            if s.state_of(service) != "stopped" {
                return Some((pid, t0.elapsed()));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn an_edited_watched_file_restarts_the_service_and_ignored_ones_do_not() {
    let port = free_port();
    let s = Stack::new(&format!(
        r#"
[services.api]
command = "python3 {httpd} --port ${{PORT}} --name api"
dir = "app"
port = {port}
watch = ["**/*.py", "!**/vendor/**"]
health = {{ http = "/health", interval = "100ms" }}

[services.client]
command = "sleep 600"
depends_on = ["api"]
"#,
        httpd = httpd()
    ));
    s.write("app/src/main.py", "print(1)\n");
    // A folder pattern (never watched) and a file pattern (in a watched
    // folder, so its events arrive and must be dropped).
    s.write("app/.gitignore", "generated/\n*_gen.py\n");
    s.write("app/generated/out.py", "x = 1\n");
    s.write("app/src/schema_gen.py", "x = 1\n");
    // The project's own .gitignore counts too, relative to its folder.
    s.write(".gitignore", "app/build/\n");
    s.write("app/build/out.py", "x = 1\n");
    s.write("app/vendor/lib.py", "x = 1\n");
    s.run(&["start"]).expect(0);
    let api = s.pid_of("api").unwrap();
    let client = s.pid_of("client").unwrap();

    // Edits the globs exclude, .gitignore excludes, or no glob matches.
    s.write("app/generated/out.py", "x = 2\n");
    s.write("app/src/schema_gen.py", "x = 2\n");
    s.write("app/build/out.py", "x = 2\n");
    s.write("app/vendor/lib.py", "x = 2\n");
    s.write("app/src/notes.txt", "hello\n");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(s.pid_of("api"), Some(api), "an ignored edit restarted api");
    assert!(watch_events(&s, "api").is_empty());

    s.write("app/src/main.py", "print(2)\n");
    let (new, took) = next_pid(&s, "api", api, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no restart after an edit:\n{}", s.log("api")));
    assert!(took < Duration::from_secs(1), "restart took {took:?}");
    assert!(!pid_alive(api), "the old api still runs");
    wait_until("api online again", Duration::from_secs(10), || {
        s.state_of("api") == "online"
    });
    assert_eq!(s.pid_of("api"), Some(new));
    // Dependents are not restarted.
    assert_eq!(s.pid_of("client"), Some(client));
    let events = watch_events(&s, "api");
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0]["detail"]
            .as_str()
            .unwrap()
            .contains("src/main.py"),
        "{events:?}"
    );

    // A folder made after the start is watched too.
    s.write("app/pkg/mod.py", "x = 1\n");
    let (_, _) = next_pid(&s, "api", new, Duration::from_secs(5))
        .expect("no restart after a file in a new folder");
}

#[test]
fn an_edited_requirements_file_runs_setup_again_before_the_restart() {
    let port = free_port();
    let s = Stack::new(&format!(
        r#"
[services.api]
command = "python3 {httpd} --port ${{PORT}} --name api"
port = {port}
setup = "venv"
watch = ["*.py"]
health = {{ http = "/health" }}
"#,
        httpd = httpd()
    ));
    s.write("requirements.txt", "# nothing yet\n");
    s.run_within(&["start"], Duration::from_secs(120)).expect(0);
    let api = s.pid_of("api").unwrap();
    assert_eq!(count_lines(&s.log("api"), "setup: done"), 1);

    s.write("requirements.txt", "# still nothing\n");
    next_pid(&s, "api", api, Duration::from_secs(120))
        .unwrap_or_else(|| panic!("no restart:\n{}", s.log("api")));
    wait_until("api online again", Duration::from_secs(30), || {
        s.state_of("api") == "online"
    });
    let log = s.log("api");
    assert_eq!(count_lines(&log, "setup: done"), 2, "{log}");
    let events = watch_events(&s, "api");
    assert!(
        events[0]["detail"]
            .as_str()
            .unwrap()
            .contains("requirements.txt"),
        "{events:?}"
    );
}

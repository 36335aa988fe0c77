//! How a stop treats a service's process group: the configured stop signal
//! reaches every process of the group before anything is killed, and a
//! service that ignores it is killed once its stop_timeout has passed.

use std::time::{Duration, Instant};

use crate::common::*;

/// A service whose leader forks a worker into its own process group. The
/// worker traps SIGUSR1, records it, and exits; the leader, on SIGUSR1, waits
/// for the worker before it exits. Signalling the leader alone leaves both
/// waiting until the stop_timeout kill, and the record is never written.
const GROUP: &str = r#"
import os, signal, sys, time

record = sys.argv[1]

def note(text):
    with open(record, "a") as f:
        f.write(text + "\n")

worker = os.fork()
if worker == 0:
    def on_stop(sig, _):
        note(f"worker {os.getpid()} got {sig}")
        os._exit(0)
    signal.signal(signal.SIGUSR1, on_stop)
    note(f"worker {os.getpid()} ready")
    while True:
        time.sleep(1)

def on_stop(sig, _):
    note(f"leader {os.getpid()} got {sig}")
    os.waitpid(worker, 0)
    note("leader done")
    os._exit(0)

signal.signal(signal.SIGUSR1, on_stop)
os.write(1, f"leader {os.getpid()} worker {worker}\n".encode())
while True:
    time.sleep(1)
"#;

#[test]
fn stop_sends_the_stop_signal_to_the_whole_group_before_any_kill() {
    let s = Stack::new(
        r#"
[services.pair]
command = "python3 group.py record.txt"
stop_signal = "SIGUSR1"
stop_timeout = "20s"
"#,
    );
    s.write("group.py", GROUP);
    s.run(&["start"]).expect(0);
    let record = || std::fs::read_to_string(s.file("record.txt")).unwrap_or_default();
    wait_until("the worker is ready", Duration::from_secs(10), || {
        record().contains("ready")
    });
    let leader = s.pid_of("pair").expect("pair has a pid");

    let t = Instant::now();
    s.run(&["stop"]).expect(0);
    let took = t.elapsed();
    let text = record();
    let usr1 = libc::SIGUSR1;
    assert!(
        text.contains(&format!("leader {leader} got {usr1}")),
        "the leader did not get SIGUSR1:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("worker ") && l.ends_with(&format!("got {usr1}"))),
        "the worker (not the group leader) never got the stop signal:\n{text}"
    );
    assert!(
        text.contains("leader done"),
        "the leader was killed before it finished its graceful stop:\n{text}"
    );
    // Graceful: nothing waited for the 20 s stop_timeout.
    assert!(
        took < Duration::from_secs(10),
        "stop took {took:?}: the group was not signalled, only killed at stop_timeout"
    );
    assert!(!pid_alive(leader));
}

/// Ignores SIGTERM (leader and a worker in its group) and serves HTTP.
const STUBBORN: &str = r#"
import os, signal, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

signal.signal(signal.SIGTERM, signal.SIG_IGN)
worker = os.fork()
if worker == 0:
    with open("worker.pid", "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

#[test]
fn a_service_that_ignores_sigterm_is_killed_after_its_stop_timeout() {
    let port = free_port();
    let s = Stack::new(&format!(
        r#"
[services.stubborn]
command = "python3 stubborn.py ${{PORT}}"
port = {port}
health = {{ http = "/" }}
stop_timeout = "500ms"
"#
    ));
    s.write("stubborn.py", STUBBORN);
    s.run(&["start"]).expect(0);
    let leader = s.pid_of("stubborn").expect("stubborn has a pid");
    let mut worker = 0;
    wait_until("worker pid written", Duration::from_secs(10), || {
        worker = std::fs::read_to_string(s.file("worker.pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        worker > 0
    });
    let supervisor = s.supervisor_pid().expect("supervisor pid");

    let t = Instant::now();
    s.run_within(&["stop"], Duration::from_secs(15)).expect(0);
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "stop of a service with stop_timeout = 500ms took {took:?}"
    );
    for (what, pid) in [
        ("leader", leader),
        ("worker", worker),
        ("supervisor", supervisor),
    ] {
        wait_until(
            &format!("{what} {pid} gone"),
            Duration::from_secs(2),
            || !pid_alive(pid),
        );
    }
    assert!(!port_open(port), "something still listens on {port}");
}

/// Several services stopped at once, each with a grandchild that left its
/// process group (setsid) but kept the service's marker: one sweep of /proc
/// serves them all, kills every one of them, and nothing of a service that
/// was not stopped.
#[test]
fn services_stopped_together_lose_their_escaped_grandchildren_and_only_theirs() {
    let names = ["a1", "a2", "a3", "a4", "a5", "keep"];
    let mut toml = String::new();
    for n in names {
        toml.push_str(&format!(
            "[services.{n}]\ncommand = '''sh -c 'setsid sh -c \"echo \\$\\$ > {n}.pid; exec sleep 1000\" & exec sleep 1000' '''\n\n"
        ));
    }
    let mut s = Stack::new(&toml);
    s.run(&["start"]).expect(0);
    let mut escaped = Vec::new();
    for n in names {
        let file = s.file(&format!("{n}.pid"));
        wait_until(
            &format!("{n}'s grandchild"),
            Duration::from_secs(10),
            || std::fs::read_to_string(&file).is_ok_and(|t| t.trim().parse::<i32>().is_ok()),
        );
        let pid: i32 = std::fs::read_to_string(&file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        s.own_pids.push(pid);
        assert!(pid_alive(pid));
        escaped.push(pid);
    }
    s.run(&["stop", "a1", "a2", "a3", "a4", "a5"]).expect(0);
    wait_until(
        "the stopped services' grandchildren to be gone",
        Duration::from_secs(5),
        || escaped[..5].iter().all(|&p| !pid_alive(p)),
    );
    assert!(
        pid_alive(escaped[5]),
        "the grandchild of a service that was not stopped was killed"
    );
    s.run(&["stop"]).expect(0);
    wait_until(
        "the last grandchild to be gone",
        Duration::from_secs(5),
        || !pid_alive(escaped[5]),
    );
}

/// While services.toml has an error, the commands that act on the running
/// stack work from the config the supervisor runs, and say so; with no
/// supervisor, they refuse with the error (exit 2).
#[test]
fn a_broken_services_toml_never_leaves_the_running_stack_out_of_reach() {
    let ports = free_ports(2);
    let s = Stack::new(&format!(
        "{}{}",
        http_service("api", ports[0], "", ""),
        http_service("web", ports[1], "", "depends_on = [\"api\"]"),
    ));
    s.run(&["start"]).expect(0);
    let pids = s.recorded_pids();
    // A syntax error on line 2, column 1.
    let good = std::fs::read_to_string(s.file("services.toml")).unwrap();
    s.write("services.toml", &format!("\n[services.api\n{good}"));
    s.run(&["validate"]).expect(2);
    let warned = |r: &Run| {
        let err = r.stderr();
        assert!(
            err.contains("services.toml has an error (2:")
                && err.contains("); acting on the running stack as last loaded"),
            "no warning:\n{}",
            r.all()
        );
    };
    let r = s.run(&["check"]).expect(0);
    warned(&r);
    assert!(
        r.stdout().contains("api") && r.stdout().contains("online"),
        "{}",
        r.all()
    );
    let r = s.run(&["check", "--json"]).expect(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["summary"]["online"], 2, "{v}");
    warned(&s.run(&["logs", "api"]).expect(0));
    warned(&s.run(&["events"]).expect(0));
    warned(&s.run(&["probe", "web"]).expect(0));
    let r = s.run(&["dashboard", "--no-open"]).expect(0);
    warned(&r);
    assert!(
        r.stdout().contains("dashboard: http://127.0.0.1:"),
        "{}",
        r.all()
    );
    // A partial stop, then the whole stack and the supervisor.
    warned(&s.run(&["stop", "web"]).expect(0));
    assert!(port_open(ports[0]) && !port_open(ports[1]));
    warned(&s.run(&["stop"]).expect(0));
    wait_until("every process is gone", Duration::from_secs(10), || {
        pids.iter().all(|&p| !pid_alive(p))
    });
    // Nothing runs: the file's error is all there is to say.
    for args in [&["check"][..], &["stop"], &["logs"]] {
        let r = s.run(args).expect(2);
        assert!(r.stderr().contains("services.toml:2:"), "{}", r.all());
        assert!(
            !r.stderr().contains("acting on the running stack"),
            "{}",
            r.all()
        );
    }
    // Start never runs a broken file.
    s.run(&["start"]).expect(2);
}

/// The progress lines of a command's stdout (`[  0.05s] name  state …`).
fn progress_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with('[')).collect()
}

/// `stop api` where `web` depends on `api`: each service that goes down
/// reads `stopping`, then `stopped`, in aligned columns; a service that runs
/// on is not listed; the output names `web` as taken down with `api` and how
/// it comes back, and `start api` does bring it back.
#[test]
fn stop_says_what_it_stops_in_columns_and_start_brings_back_its_dependents() {
    let ports = free_ports(3);
    let s = Stack::new(&format!(
        "{}{}{}",
        http_service("api", ports[0], "", ""),
        http_service("web", ports[1], "", "depends_on = [\"api\"]"),
        http_service("independent", ports[2], "", ""),
    ));
    s.run(&["start"]).expect(0);
    let r = s.run(&["stop", "api"]).expect(0);
    let out = r.stdout();
    let lines = progress_lines(&out);
    for name in ["api", "web"] {
        for state in ["stopping", "stopped"] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.split_whitespace().skip(2).collect::<Vec<_>>() == [name, state]),
                "no `{name} {state}` line:\n{out}"
            );
        }
    }
    assert!(
        !out.contains("stopped  stopping")
            && !out.contains("online")
            && !out.contains("independent"),
        "lines that contradict themselves, or are noise:\n{out}"
    );
    // Every state word starts in the same column.
    let columns: Vec<usize> = lines
        .iter()
        .map(|l| {
            let name_at = l.find("] ").unwrap() + 2;
            let rest = &l[name_at..];
            let name_end = name_at + rest.find(' ').unwrap();
            name_end + l[name_end..].find(|c: char| c != ' ').unwrap()
        })
        .collect();
    assert!(
        columns.windows(2).all(|w| w[0] == w[1]),
        "the state column does not line up:\n{out}"
    );
    assert!(
        out.contains("also stopped web, which depends on api; `fpctl start api` starts it again"),
        "{out}"
    );
    assert_eq!(s.state_of("independent"), "online");

    // What that stop took down comes back with what it depended on.
    s.run(&["start", "api"]).expect(0);
    assert_eq!(s.state_of("web"), "online");
    // A dependent stopped by its own name stays stopped.
    s.run(&["stop", "web"]).expect(0);
    s.run(&["stop", "api"]).expect(0);
    s.run(&["start", "api"]).expect(0);
    assert_eq!(s.state_of("web"), "stopped");
}

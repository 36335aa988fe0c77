//! What `start` says while it works: a line every 10 s for a setup or a
//! health wait that goes on, the ports a service listens on instead of its
//! own, failure tails of the current run only, Ctrl-C and an interrupted
//! start explained once; and `validate`'s warning about a PORT override.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn slow_steps_are_reported_every_10s_and_a_wrong_port_is_named() {
    let [port, wrong]: [u16; 2] = free_ports(2).try_into().unwrap();
    let s = Stack::new(&format!(
        r#"
[services.portal]
shell = true
command = "python3 {httpd} --port $PORT --name portal"
port = {port}
env = {{ PORT = "{wrong}" }}
health = {{ http = "/health", start_timeout = "12s" }}

[services.installer]
command = "sleep 600"
setup = ["echo fetching packages; sleep 12"]
"#,
        httpd = httpd()
    ));
    let v = s.run(&["validate"]).expect(0);
    assert!(
        v.stderr().contains(&format!(
            "env sets PORT = \"{wrong}\", but fpctl exports PORT={port}"
        )),
        "{}",
        v.all()
    );
    let out = s.run(&["start"]);
    let text = out.all();
    assert_eq!(out.code(), 1, "{text}");
    assert!(
        text.contains("still waiting (1") && text.contains("connection refused"),
        "no 'still waiting' line with the last probe:\n{text}"
    );
    assert!(
        text.contains("setting up (1") && text.contains("fetching packages"),
        "no progress line for the running setup:\n{text}"
    );
    assert!(
        text.contains(&format!("listens on {wrong}, not {port}")),
        "no wrong-port hint:\n{text}"
    );
}

#[test]
fn failure_tail_holds_only_the_current_run() {
    let toml = |word: &str| {
        format!(
            "[services.job]\nshell = true\ncommand = \"echo {word}-run; exit 3\"\nrestart = \"no\"\n"
        )
    };
    let s = Stack::new(&toml("first"));
    s.run(&["start"]).expect(1);
    std::fs::write(s.file("services.toml"), toml("second")).unwrap();
    let out = s.run(&["start"]).expect(1);
    let err = out.stderr();
    assert!(err.contains("second-run"), "{err}");
    assert!(!err.contains("first-run"), "the tail crosses runs:\n{err}");
    // The log itself keeps both.
    assert!(s.log("job").contains("first-run"));
}

fn slow_setup_stack() -> Stack {
    Stack::new(
        r#"
[services.app]
command = "sleep 600"
setup = ["sleep 3"]

[services.web]
command = "sleep 600"
depends_on = ["app"]
"#,
    )
}

#[test]
fn ctrl_c_during_start_says_the_stack_goes_on() {
    let s = slow_setup_stack();
    let child = s
        .cmd(&["start"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the supervisor to run", Duration::from_secs(10), || {
        s.supervisor_pid().is_some()
    });
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("goes on starting in the background")
            && err.contains("fpctl check")
            && err.contains("fpctl stop"),
        "{err}"
    );
    // It did go on.
    wait_until("web online", Duration::from_secs(30), || {
        s.state_of("web") == "online"
    });
}

#[test]
fn a_start_interrupted_by_stop_says_why_once() {
    let s = slow_setup_stack();
    let child = s
        .cmd(&["start"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the supervisor to run", Duration::from_secs(10), || {
        s.supervisor_pid().is_some()
    });
    let t = Instant::now();
    s.run(&["stop"]).expect(0);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the stop waited for the setup"
    );
    assert_eq!(
        count_lines(&text, "stopped by `fpctl stop` while starting"),
        1,
        "{text}"
    );
    assert!(!text.contains("is stopped: \n"), "{text}");
    assert!(!text.contains("is stopped:"), "{text}");
}

#[test]
fn on_a_terminal_a_live_line_shows_the_setup_step_and_its_last_output() {
    let s = Stack::new(
        r#"
[services.app]
command = "sleep 600"
setup = ["echo unpacking wheels; sleep 2"]
"#,
    );
    // `script` gives fpctl a pseudo-terminal as its stdout.
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &format!("{BIN} start"), "/dev/null"])
        .current_dir(s.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    let out = output_within(cmd, Duration::from_secs(60)).expect("start through script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("setup: sh -c ") && text.contains("| unpacking wheels"),
        "no live setup line:\n{text}"
    );
    assert!(text.contains("everything online"), "{text}");
}

#[test]
fn with_recorded_times_failure_tails_setup_lines_and_log_probes_still_work() {
    let toml = |word: &str| {
        format!(
            r#"[project]
log_timestamps = true

[services.job]
shell = true
command = "echo {word}-run; exit 3"
restart = "no"

[services.worker]
shell = true
command = "echo warming up; sleep 0.3; echo ready; sleep 600"
setup = ["echo unpacking wheels"]
health = {{ log = "^ready$" }}
"#
        )
    };
    let s = Stack::new(&toml("first"));
    s.run(&["start", "job"]).expect(1);
    std::fs::write(s.file("services.toml"), toml("second")).unwrap();
    let out = s.run(&["start", "job"]).expect(1);
    let err = out.stderr();
    assert!(err.contains("second-run"), "{err}");
    assert!(!err.contains("first-run"), "the tail crosses runs:\n{err}");
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z").unwrap();
    assert!(
        !time.is_match(&err),
        "the report shows recorded times:\n{err}"
    );
    assert!(time.is_match(&s.log("job")), "{}", s.log("job"));

    // The log probe matches the service's own text, `^ready$`, behind the
    // time; the setup's output is stamped like the rest.
    s.run(&["start", "worker"]).expect(0);
    assert_eq!(s.state_of("worker"), "online");
    let log = s.log("worker");
    for needle in ["Z [fpctl] setup: sh -c", "Z unpacking wheels", "Z ready"] {
        assert!(log.contains(needle), "no {needle:?} in:\n{log}");
    }
    assert!(log.lines().all(|l| time.is_match(l)), "{log}");
}

/// The seconds of each progress line (`[  1.23s] …`) and the rest of it.
fn timed_lines(out: &str) -> Vec<(f64, String)> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('[')?;
            let (secs, line) = rest.split_once("s]")?;
            Some((secs.trim().parse().ok()?, line.trim().to_string()))
        })
        .collect()
}

/// A `start` with a supervisor running first applies the edited file (a
/// reload), then starts: one block of lines on one clock from the command's
/// start, each service's state said once, and the total time the whole.
#[test]
fn a_second_start_shows_one_block_on_one_clock() {
    let ports = free_ports(2);
    let toml = |boot: &str| {
        format!(
            "{}{}",
            http_service("api", ports[0], &format!("--ready-after {boot}"), ""),
            http_service("web", ports[1], "", "depends_on = [\"api\"]"),
        )
    };
    let s = Stack::new(&toml("0.2"));
    s.run(&["start"]).expect(0);
    s.write("services.toml", &toml("0.6"));
    let r = s.run(&["start"]).expect(0);
    let out = r.stdout();
    assert!(out.contains("~ api (command changed)"), "{out}");
    let lines = timed_lines(&out);
    assert!(!lines.is_empty(), "{out}");
    assert!(
        lines.windows(2).all(|w| w[0].0 <= w[1].0),
        "the clock goes back:\n{out}"
    );
    let mut seen = std::collections::HashSet::new();
    for (_, line) in &lines {
        assert!(seen.insert(line.clone()), "said twice: {line}\n{out}");
    }
    // The api took at least 0.6 s to be ready again: the total says so.
    let took = out
        .lines()
        .find_map(|l| l.strip_prefix("ok: everything online in "))
        .unwrap_or_else(|| panic!("no final line:\n{out}"));
    let secs = match took.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().unwrap() / 1000.0,
        None => took.trim_end_matches('s').parse::<f64>().unwrap(),
    };
    assert!(
        secs >= 0.6,
        "everything online in {took}, after a 0.6 s boot:\n{out}"
    );
}

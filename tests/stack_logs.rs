//! The logs of the whole stack: `fpctl logs` with no service or several,
//! merged behind a `name |` prefix, `-f` following all of them in the order
//! lines are written; `fpctl up` attaching to a running stack and detaching
//! on Ctrl-C without stopping anything.

mod common;

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// A service that prints "NAME-line" whenever the file go-NAME appears.
fn echoer(name: &str) -> String {
    format!(
        "[services.{name}]\nshell = true\ncommand = \"echo {name} ready; while :; do if [ -f go-{name} ]; then rm go-{name}; echo {name}-line; fi; sleep 0.05; done\"\n"
    )
}

/// Spawn fpctl with its stdout collected as it comes.
fn spawn_collecting(s: &Stack, args: &[&str]) -> (Child, Arc<Mutex<String>>) {
    let mut child = s
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().unwrap();
    let sink = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, seen)
}

fn trigger(s: &Stack, name: &str, seen: &Arc<Mutex<String>>, times: usize) {
    std::fs::write(s.file(&format!("go-{name}")), "").unwrap();
    wait_until(
        &format!("{name}-line #{times}"),
        Duration::from_secs(10),
        || {
            seen.lock()
                .unwrap()
                .matches(&format!("{name} | {name}-line"))
                .count()
                >= times
        },
    );
}

fn interrupt(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
}

#[test]
fn logs_of_several_services_are_merged_and_followed_in_order() {
    let s = Stack::new(&format!(
        "{}{}{}",
        echoer("alpha"),
        echoer("bravo"),
        echoer("gamma")
    ));
    s.run(&["start"]).expect(0);
    wait_until("both ready lines", Duration::from_secs(10), || {
        s.log("alpha").contains("alpha ready") && s.log("bravo").contains("bravo ready")
    });
    // No service: all of them, prefixed.
    let all = s.run(&["logs"]).expect(0).stdout();
    for name in ["alpha", "bravo", "gamma"] {
        assert!(all.contains(&format!("{name} ")), "{all}");
    }
    assert!(
        all.contains("| alpha ready") && all.contains("| bravo ready"),
        "{all}"
    );
    // Several: only those.
    let two = s
        .run(&["logs", "alpha", "bravo", "-n", "1"])
        .expect(0)
        .stdout();
    assert!(!two.contains("gamma"), "{two}");
    assert_eq!(two.lines().count(), 2, "{two}");
    // One: the file as it is, no prefix.
    let one = s.run(&["logs", "alpha"]).expect(0).stdout();
    assert!(!one.contains(" | "), "{one}");

    let (mut child, seen) = spawn_collecting(&s, &["logs", "-f", "alpha", "bravo"]);
    wait_until("the history", Duration::from_secs(10), || {
        seen.lock().unwrap().contains("bravo ready")
    });
    trigger(&s, "bravo", &seen, 1);
    trigger(&s, "alpha", &seen, 1);
    trigger(&s, "bravo", &seen, 2);
    let text = seen.lock().unwrap().clone();
    let order: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with("-line"))
        .map(|l| l.split(" |").next().unwrap().trim())
        .collect();
    assert_eq!(order, ["bravo", "alpha", "bravo"], "{text}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn up_attaches_to_a_running_stack_and_detaches_without_stopping_it() {
    let s = Stack::new(&format!("{}{}", echoer("alpha"), echoer("bravo")));
    s.run(&["start"]).expect(0);
    let before = (s.pid_of("alpha"), s.pid_of("bravo"));
    let (mut child, seen) = spawn_collecting(&s, &["up"]);
    wait_until("attached", Duration::from_secs(10), || {
        seen.lock()
            .unwrap()
            .contains("attached to the running stack")
    });
    trigger(&s, "alpha", &seen, 1);
    trigger(&s, "bravo", &seen, 1);
    interrupt(&child);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("detached: the stack keeps running"), "{err}");
    assert_eq!(s.state_of("alpha"), "online");
    assert_eq!((s.pid_of("alpha"), s.pid_of("bravo")), before);
}

//! The control socket's subscription: a snapshot, then every change of a
//! service's status in order, read by a plain client of the socket.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

const SERVICES: usize = 20;

fn stack() -> Stack {
    let mut toml = String::new();
    for i in 0..SERVICES {
        toml.push_str(&format!(
            "[services.s{i}]\ncommand = \"sleep 300\"\nrestart = \"always\"\n\n"
        ));
    }
    Stack::new(&toml)
}

/// Subscribe on the stack's socket; every line read goes to the channel.
fn subscribe(s: &Stack) -> mpsc::Receiver<Value> {
    let socket = s.path().join(".fpctl").join("fpctl.sock");
    assert!(socket.exists(), "no socket at {}", socket.display());
    let mut stream = UnixStream::connect(&socket).unwrap();
    let request = json!({"v": 2, "request": "subscribe"}).to_string() + "\n";
    stream.write_all(request.as_bytes()).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let value: Value = serde_json::from_str(&line).expect("a JSON line");
            if tx.send(value).is_err() {
                return;
            }
        }
    });
    rx
}

/// Every pid that the subscription showed for each service, until `until`
/// holds for what was seen (or 20 s pass).
fn pids_seen(
    rx: &mpsc::Receiver<Value>,
    seen: &mut BTreeMap<String, BTreeSet<i64>>,
    until: impl Fn(&BTreeMap<String, BTreeSet<i64>>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !until(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(msg) = rx.recv_timeout(left) else {
            panic!("the subscription stopped short: saw {seen:?}");
        };
        let rows: Vec<Value> = match msg["response"].as_str() {
            Some("status") => msg["services"].as_array().cloned().unwrap_or_default(),
            Some("update") if msg["type"] == "service" => vec![msg.clone()],
            _ => continue,
        };
        for row in rows {
            if let (Some(name), Some(pid)) = (row["name"].as_str(), row["pid"].as_i64()) {
                seen.entry(name.to_string()).or_default().insert(pid);
            }
        }
    }
}

fn pids(s: &Stack) -> BTreeMap<String, i64> {
    let (_, status) = s.check_json();
    status["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| Some((r["name"].as_str()?.to_string(), r["pid"].as_i64()?)))
        .collect()
}

#[test]
fn a_subscriber_sees_every_restart_of_a_storm() {
    let s = stack();
    s.run(&["start"]).expect(0);
    let rx = subscribe(&s);
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(first["response"], "status", "{first}");
    assert_eq!(first["services"].as_array().unwrap().len(), SERVICES);
    assert!(first["supervisor_pid"].as_i64().is_some(), "{first}");

    let mut seen: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut expected: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    // Three rounds of restarts of all of them, and one of kill -9 of all.
    for round in 0..4 {
        let before = pids(&s);
        if round < 3 {
            s.run(&["restart"]).expect(0);
        } else {
            for pid in before.values() {
                unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
            }
        }
        wait_until(
            "every service has a new pid",
            Duration::from_secs(20),
            || {
                let now = pids(&s);
                now.len() == SERVICES && now.iter().all(|(n, p)| before.get(n) != Some(p))
            },
        );
        wait_until("every service online", Duration::from_secs(20), || {
            let (code, _) = s.check_json();
            code == 0
        });
        for (name, pid) in pids(&s) {
            expected.entry(name).or_default().insert(pid);
        }
    }
    pids_seen(&rx, &mut seen, |seen| {
        expected
            .iter()
            .all(|(n, want)| seen.get(n).is_some_and(|got| want.is_subset(got)))
    });
    // The supervisor's end ends the subscription.
    s.run(&["stop"]).expect(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the subscription outlived the supervisor")
            }
        }
    }
}

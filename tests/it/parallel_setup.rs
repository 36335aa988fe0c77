//! Setups run ahead of readiness: all at once (bounded by
//! `max_parallel_setup`), while launches still wait for dependencies; two
//! services sharing a `.venv` never set it up together.

use std::time::{Duration, Instant};

use crate::common::*;

/// `(begin, end)` pairs, in seconds, from lines "NAME begin T" / "NAME end T".
fn intervals(text: &str) -> Vec<(String, f64, f64)> {
    let mut open = std::collections::HashMap::new();
    let mut done = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [name, what, t] = parts[..] else { continue };
        let t: f64 = t.parse().unwrap();
        match what {
            "begin" => {
                open.insert(name.to_string(), t);
            }
            _ => done.push((name.to_string(), open[name], t)),
        }
    }
    done
}

fn timed_setup(name: &str, secs: u32) -> String {
    format!(
        r#"setup = ["echo {name} begin $(date +%s.%N) >> ../times", "sleep {secs}", "echo {name} end $(date +%s.%N) >> ../times"]"#
    )
}

/// With the default bound (the number of cores, at least 4), so three
/// setups run together on a 2-core machine too.
#[test]
fn setups_run_together_while_launches_wait_for_dependencies() {
    let [db, a, b]: [u16; 3] = free_ports(3).try_into().unwrap();
    let mut toml = String::new();
    toml += &http_service(
        "db",
        db,
        "",
        &format!("dir = \"w\"\n{}", timed_setup("db", 2)),
    );
    for (name, port) in [("a", a), ("b", b)] {
        let extra = format!(
            "dir = \"w\"\ndepends_on = [\"db\"]\n{}",
            timed_setup(name, 2)
        );
        toml += &http_service(name, port, "", &extra);
    }
    let s = Stack::new(&toml);
    std::fs::create_dir_all(s.file("w")).unwrap();
    let t = Instant::now();
    s.run(&["start"]).expect(0);
    let took = t.elapsed();
    let spans = intervals(&std::fs::read_to_string(s.file("times")).unwrap());
    assert_eq!(spans.len(), 3, "{spans:?}");
    let last_begin = spans.iter().map(|x| x.1).fold(f64::MIN, f64::max);
    let first_end = spans.iter().map(|x| x.2).fold(f64::MAX, f64::min);
    assert!(
        last_begin < first_end,
        "the three setups did not overlap: {spans:?}"
    );
    // Three 2 s setups cost about 2 s, not 6.
    assert!(took < Duration::from_millis(5000), "start took {took:?}");
    // Each dependent was spawned only once db was online.
    let events = s.run(&["events", "--json"]).expect(0).stdout();
    let when = |svc: &str, kind: &str| {
        events
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["service"] == svc && e["kind"] == kind)
            .and_then(|e| e["ts"].as_f64())
            .unwrap_or_else(|| panic!("no {kind} event of {svc} in {events}"))
    };
    let db_online = when("db", "online");
    for svc in ["a", "b"] {
        assert!(
            when(svc, "spawned") >= db_online,
            "{svc} launched before db was online"
        );
    }
}

#[test]
fn max_parallel_setup_bounds_setups() {
    let mut toml = "[project]\nmax_parallel_setup = 1\n".to_string();
    for name in ["a", "b"] {
        toml += &format!(
            "[services.{name}]\ncommand = \"sleep 600\"\ndir = \"w\"\n{}\n",
            timed_setup(name, 1)
        );
    }
    let s = Stack::new(&toml);
    std::fs::create_dir_all(s.file("w")).unwrap();
    s.run(&["start"]).expect(0);
    let mut spans = intervals(&std::fs::read_to_string(s.file("times")).unwrap());
    spans.sort_by(|x, y| x.1.total_cmp(&y.1));
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert!(spans[0].2 <= spans[1].1, "setups overlapped: {spans:?}");
}

#[test]
fn services_sharing_a_venv_never_set_it_up_together() {
    let s = Stack::new(
        r#"
[services.one]
dir = "app"
setup = "venv"
command = "sleep 600"

[services.two]
dir = "app"
setup = "venv"
command = "sleep 600"
"#,
    );
    std::fs::create_dir_all(s.file("app")).unwrap();
    // A python3 that notes when it runs, first on PATH for the supervisor.
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v python3"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let times = s.file("times");
    s.write(
        "bin/python3",
        &format!(
            "#!/bin/sh\necho py$$ begin $(date +%s.%N) >> {t}\nsleep 1\n{real} \"$@\"\nrc=$?\necho py$$ end $(date +%s.%N) >> {t}\nexit $rc\n",
            t = times.display(),
            real = real.trim()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        s.file("bin/python3"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        s.file("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let out = output_within(
        {
            let mut c = s.cmd(&["start"]);
            c.env("PATH", path);
            c
        },
        Duration::from_secs(60),
    )
    .expect("start finished");
    assert!(out.status.success(), "{out:?}");
    let mut spans = intervals(&std::fs::read_to_string(&times).unwrap());
    spans.sort_by(|x, y| x.1.total_cmp(&y.1));
    assert!(!spans.is_empty());
    for w in spans.windows(2) {
        assert!(
            w[0].2 <= w[1].1,
            "two setups of app/.venv overlapped: {spans:?}"
        );
    }
}

//! Reload, end to end: a running stack follows edits to services.toml.
//! Unchanged services keep their process; changed ones restart in
//! dependency order; an invalid file touches nothing.

use std::time::Duration;

use crate::common::*;

/// Every live process carrying `name`'s marker (`FPCTL_INSTANCE`, which
/// fpctl gives a service and its descendants). The marker is read from a
/// process of the project that stays up (`anchor`), never from a pid that
/// may have ended and been reused meanwhile.
fn processes_of(s: &Stack, anchor: &str, name: &str) -> Vec<i32> {
    let pid = s.pid_of(anchor).expect("the anchor service runs");
    let marker = environ_var(pid, "FPCTL_INSTANCE").expect("a marker");
    let (project, _) = marker.rsplit_once(':').expect("PROJECT:SERVICE");
    let marker = format!("{project}:{name}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| pid_alive(p))
        .filter(|&p| environ_var(p, "FPCTL_INSTANCE").as_deref() == Some(marker.as_str()))
        .collect()
}

/// The process group of `pid` (/proc/PID/stat, after the command name).
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split(' ').nth(2)?.parse().ok()
}

fn environ_var(pid: i32, var: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{var}=");
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn pids(s: &Stack, names: &[&str]) -> Vec<Option<i32>> {
    names.iter().map(|n| s.pid_of(n)).collect()
}

/// Three HTTP services: db, api (depends on db), web (on its own).
fn three(ports: &[u16], api_args: &str) -> String {
    format!(
        "{}{}{}",
        http_service("db", ports[0], "", ""),
        http_service("api", ports[1], api_args, "depends_on = [\"db\"]"),
        http_service("web", ports[2], "", ""),
    )
}

fn started(toml: &str) -> Stack {
    let s = Stack::new(toml);
    let r = s.run(&["start"]);
    assert_eq!(r.code(), 0, "start:\n{}", r.all());
    s
}

#[test]
fn an_edited_command_restarts_that_service_only() {
    let ports = free_ports(3);
    let s = started(&three(&ports, ""));
    let before = pids(&s, &["db", "api", "web"]);
    assert!(before.iter().all(Option::is_some), "{before:?}");
    s.write("services.toml", &three(&ports, "--status 200"));

    let r = s.run(&["reload"]);
    assert_eq!(r.code(), 0, "reload:\n{}", r.all());
    assert!(
        r.stdout().contains("~ api (command changed)"),
        "{}",
        r.all()
    );
    assert!(!r.stdout().contains("~ db"), "{}", r.all());
    let after = pids(&s, &["db", "api", "web"]);
    assert_eq!(after[0], before[0], "db kept its process");
    assert_eq!(after[2], before[2], "web kept its process");
    assert_ne!(after[1], before[1], "api was restarted");
    assert!(!pid_alive(before[1].unwrap()), "the old api is gone");
    assert_eq!(s.state_of("api"), "online");
    assert_eq!(processes_of(&s, "api", "api"), vec![after[1].unwrap()]);
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let ports = free_ports(3);
    let s = started(&three(&ports, ""));
    let before = pids(&s, &["db", "api", "web"]);
    s.write("services.toml", &three(&ports, "--status 200"));
    let r = s.run(&["reload", "--dry-run"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(
        r.stdout().contains("~ api (command changed)"),
        "{}",
        r.all()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(pids(&s, &["db", "api", "web"]), before);
}

#[test]
fn an_added_service_starts_and_a_removed_one_stops() {
    let ports = free_ports(4);
    // web ignores its stop signal, so its removal takes stop_timeout.
    let slow_stop = three(&ports, "").replacen(
        "--name web \"\nport",
        "--name web \"\nstop_signal = \"SIGWINCH\"\nstop_timeout = \"1s\"\nport",
        1,
    );
    assert_ne!(slow_stop, three(&ports, ""));
    let s = started(&slow_stop);
    let web = s.pid_of("web").unwrap();
    let db = s.pid_of("db").unwrap();
    // web goes, worker comes.
    let edited = format!(
        "{}{}{}",
        http_service("db", ports[0], "", ""),
        http_service("api", ports[1], "", "depends_on = [\"db\"]"),
        http_service("worker", ports[3], "", "depends_on = [\"db\"]"),
    );
    s.write("services.toml", &edited);
    let r = s.run(&["reload"]);
    assert_eq!(r.code(), 0, "reload:\n{}", r.all());
    assert!(r.stdout().contains("+ worker"), "{}", r.all());
    assert!(r.stdout().contains("- web"), "{}", r.all());
    assert_eq!(s.state_of("worker"), "online");
    assert!(port_open(ports[3]));
    // The reload answers once what it removed has stopped.
    assert!(
        !pid_alive(web),
        "the removed web still runs after the reload"
    );
    assert!(!port_open(ports[2]), "web's port is free");
    assert_eq!(s.pid_of("db"), Some(db), "db kept its process");
    // A named start of the new service works too (it is known).
    let r = s.run(&["start", "worker"]);
    assert_eq!(r.code(), 0, "{}", r.all());
}

#[test]
fn start_with_a_running_supervisor_applies_the_edits() {
    let ports = free_ports(4);
    let s = started(&three(&ports, ""));
    let db = s.pid_of("db").unwrap();
    let mut edited = three(&ports, "");
    edited.push_str(&http_service("worker", ports[3], "", ""));
    s.write("services.toml", &edited);
    let r = s.run(&["start"]);
    assert_eq!(r.code(), 0, "start:\n{}", r.all());
    assert!(r.stdout().contains("+ worker"), "{}", r.all());
    assert_eq!(s.state_of("worker"), "online");
    assert_eq!(s.pid_of("db"), Some(db));
}

#[test]
fn a_moved_port_restarts_the_service_and_its_dependents_only() {
    let ports = free_ports(4);
    let s = started(&three(&ports, ""));
    let before = pids(&s, &["db", "api", "web"]);
    let moved = three(&[ports[3], ports[1], ports[2]], "");
    s.write("services.toml", &moved);
    let r = s.run(&["reload"]);
    assert_eq!(r.code(), 0, "reload:\n{}", r.all());
    assert!(r.stdout().contains("~ db ("), "{}", r.all());
    assert!(
        r.stdout().contains("~ api (FPCTL_PORT_DB changed)"),
        "{}",
        r.all()
    );
    let after = pids(&s, &["db", "api", "web"]);
    assert_ne!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_eq!(after[2], before[2], "web does not depend on db");
    assert!(port_open(ports[3]), "db listens on its new port");
    assert!(!port_open(ports[0]), "and not on the old one");
    // The restarted dependent sees the new port.
    let api = after[1].unwrap();
    assert_eq!(
        environ_var(api, "FPCTL_PORT_DB"),
        Some(ports[3].to_string())
    );
}

#[test]
fn an_invalid_file_touches_nothing_and_exits_2() {
    let ports = free_ports(3);
    let s = started(&three(&ports, ""));
    let before = pids(&s, &["db", "api", "web"]);
    let broken = three(&ports, "").replace("depends_on = [\"db\"]", "depends_on = [\"dbx\"]");
    s.write("services.toml", &broken);
    let r = s.run(&["reload"]);
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(r.stderr().contains("services.toml:"), "{}", r.all());
    // SIGHUP with the same file: the supervisor refuses it too.
    let sup = s.supervisor_pid().expect("a supervisor");
    // SAFETY: kill(2) on the supervisor this test started.
    unsafe {
        libc::kill(sup, libc::SIGHUP);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(pid_alive(sup), "the supervisor survives a bad reload");
    // `check` needs a valid file to read.
    s.write("services.toml", &three(&ports, ""));
    assert_eq!(pids(&s, &["db", "api", "web"]), before);
    assert_eq!(s.state_of("api"), "online");
}

#[test]
fn sighup_reloads() {
    let ports = free_ports(3);
    let s = started(&three(&ports, ""));
    let before = pids(&s, &["db", "api", "web"]);
    s.write("services.toml", &three(&ports, "--status 200"));
    let sup = s.supervisor_pid().expect("a supervisor");
    // SAFETY: kill(2) on the supervisor this test started.
    unsafe {
        libc::kill(sup, libc::SIGHUP);
    }
    // The supervisor takes the file in at once (`check` stops saying that
    // the file differs from what runs)...
    wait_until(
        "the SIGHUP to load the file",
        Duration::from_secs(5),
        || {
            !s.run(&["check", "--json"])
                .stderr()
                .contains("fpctl reload")
        },
    );
    // ...and a reload asked for now waits for that one to finish, then
    // finds nothing left to do.
    let r = s.run(&["reload"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(
        r.stdout().contains("services.toml: no changes"),
        "{}",
        r.all()
    );
    let after = pids(&s, &["db", "api", "web"]);
    assert_ne!(after[1], before[1], "api was not restarted by the SIGHUP");
    assert_eq!(s.state_of("api"), "online");
    assert_eq!(after[0], before[0]);
    assert_eq!(after[2], before[2]);
}

#[test]
fn a_reload_that_keeps_a_port_restarts_no_dependent() {
    let ports = free_ports(3);
    let s = started(&three(&ports, ""));
    let before = pids(&s, &["db", "api", "web"]);
    // db's command changes, its port does not: api sees the same
    // FPCTL_PORT_DB and keeps running.
    let edited = three(&ports, "").replacen("--name db", "--name db --status 200", 1);
    s.write("services.toml", &edited);
    let r = s.run(&["reload"]);
    assert_eq!(r.code(), 0, "reload:\n{}", r.all());
    assert!(r.stdout().contains("~ db (command changed)"), "{}", r.all());
    assert!(!r.stdout().contains("~ api"), "{}", r.all());
    let after = pids(&s, &["db", "api", "web"]);
    assert_ne!(after[0], before[0], "db was restarted");
    assert_eq!(
        after[1], before[1],
        "api, whose dependency kept its port, kept its process"
    );
    assert_eq!(after[2], before[2]);
    assert_eq!(s.state_of("db"), "online");
    assert!(pid_alive(before[1].unwrap()));
}

#[test]
fn watch_and_api_read_only_edits_are_reported_and_restart_nothing() {
    let ports = free_ports(3);
    let s = started(&three(&ports, ""));
    let before = pids(&s, &["db", "api", "web"]);
    let edited = format!(
        "[project]\napi_read_only = true\n{}",
        three(&ports, "").replacen(
            "[services.web]\n",
            "[services.web]\nwatch = [\"*.txt\"]\nwatch_debounce = \"50ms\"\n",
            1
        )
    );
    s.write("services.toml", &edited);
    let r = s.run(&["reload", "--dry-run"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    for line in [
        "~ [project] api_read_only: false -> true",
        "~ web (watch changed; no restart)",
    ] {
        assert!(r.stdout().contains(line), "no {line:?} in:\n{}", r.all());
    }
    assert!(!r.stdout().contains("no changes"), "{}", r.all());
    let r = s.run(&["reload"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(
        r.stdout().contains("~ web (watch changed; no restart)")
            && r.stdout().contains("api_read_only: false -> true"),
        "{}",
        r.all()
    );
    assert_eq!(
        pids(&s, &["db", "api", "web"]),
        before,
        "a process was restarted"
    );
    // Applied: a watched file's edit now restarts web.
    s.write("notes.txt", "edited\n");
    wait_until(
        "web restarted by its new watch",
        Duration::from_secs(10),
        || s.pid_of("web").is_some_and(|p| Some(p) != before[2]),
    );
    // And nothing is left to apply.
    let r = s.run(&["reload", "--dry-run"]);
    assert!(r.stdout().contains("no changes"), "{}", r.all());
}

#[test]
fn concurrent_reloads_each_answer_once_the_changes_are_online() {
    let ports = free_ports(3);
    let s = started(&three(&ports, ""));
    let before = s.pid_of("api");
    // The new api is ready 1.5 s after it starts, and stamps when.
    s.write(
        "services.toml",
        &three(&ports, "--ready-after 1.5 --stamp stamps"),
    );
    let reloads: Vec<_> = (0..2)
        .map(|_| {
            let cmd = s.cmd(&["reload"]);
            std::thread::spawn(move || {
                let out = output_within(cmd, Duration::from_secs(60)).expect("reload finishes");
                (std::time::SystemTime::now(), out)
            })
        })
        .collect();
    let answers: Vec<_> = reloads.into_iter().map(|h| h.join().unwrap()).collect();
    let stamps = std::fs::read_to_string(s.file("stamps")).expect("the new api stamped");
    let ready: f64 = stamps
        .lines()
        .find_map(|l| l.strip_prefix("api ready "))
        .expect("a ready stamp")
        .parse()
        .unwrap();
    for (done, out) in &answers {
        let r = Run(out.clone());
        assert_eq!(r.code(), 0, "{}", r.all());
        let done = done
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            done >= ready,
            "a reload answered {:.2} s before the api it restarted was ready:\n{}",
            ready - done,
            r.all()
        );
    }
    // One of them applied the edit, the other found nothing left.
    let said = |needle: &str| {
        answers
            .iter()
            .filter(|(_, o)| String::from_utf8_lossy(&o.stdout).contains(needle))
            .count()
    };
    assert_eq!(said("~ api (command changed)"), 1);
    assert_eq!(said("services.toml: no changes"), 1);
    assert_ne!(s.pid_of("api"), before);
    assert_eq!(s.state_of("api"), "online");
}

#[test]
fn twenty_reloads_during_a_crash_loop_never_double_spawn() {
    let ports = free_ports(2);
    let crashy = "[services.crashy]\ncommand = \"python3 -c 'import time; time.sleep(0.2); exit(1)'\"\nmax_restarts = 1000\n";
    let web = |v: u32| http_service("web", ports[0], &format!("--status 20{v}"), "");
    let toml = |v: u32| format!("{crashy}{}", web(v % 2));
    let s = Stack::new(&toml(0));
    let r = s.run(&["start", "web"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    // The crash loop never settles, so its start is left waiting.
    let mut waiting = s
        .cmd(&["start", "crashy"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start crashy");
    wait_until("crashy to crash-loop", Duration::from_secs(10), || {
        s.service("crashy")["restarts"].as_i64().unwrap_or(0) >= 2
    });
    for v in 1..=20 {
        s.write("services.toml", &toml(v));
        let r = s.run(&["reload"]);
        assert_eq!(r.code(), 0, "reload {v}:\n{}", r.all());
    }
    assert_eq!(s.state_of("web"), "online");
    let web_pid = s.pid_of("web").expect("web runs");
    assert_eq!(
        processes_of(&s, "web", "web"),
        vec![web_pid],
        "one web process"
    );
    let log = s.log("web");
    let starts = log.matches("[fpctl] starting:").count();
    let exits = log
        .lines()
        .filter(|l| l.starts_with("[fpctl] process "))
        .count();
    assert_eq!(starts, exits + 1, "every launch but the last ended:\n{log}");
    // crashy never has two launches at once: each launch is one process
    // group (a launch may be a short tree: python3 can be a pyenv shim).
    for _ in 0..20 {
        let groups: std::collections::BTreeSet<i32> = processes_of(&s, "web", "crashy")
            .into_iter()
            .filter_map(process_group)
            .collect();
        assert!(groups.len() <= 1, "two crashy launches at once: {groups:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = waiting.kill();
    let _ = waiting.wait();
    let r = s.run(&["stop"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(!pid_alive(web_pid));
}

#[test]
fn check_between_edit_and_reload_shows_the_running_config() {
    let ports = free_ports(4);
    let s = started(&three(&ports, ""));
    let web = s.pid_of("web").unwrap();
    // web's port moves in the file, and a service is added; nothing reloads.
    let mut edited = three(&[ports[0], ports[1], ports[3]], "");
    edited.push_str("[services.extra]\ncommand = \"sleep 100\"\n");
    s.write("services.toml", &edited);
    let r = s.run(&["check", "--json"]);
    assert!(r.stderr().contains("fpctl reload"), "{}", r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    let svc = |name: &str| {
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap()
            .clone()
    };
    let w = svc("web");
    assert_eq!(w["pid"], web, "{w}");
    assert_eq!(w["port"], ports[2], "the running port, not the file's: {w}");
    assert_eq!(w["state"], "online", "{w}");
    assert_eq!(svc("extra")["state"], "stopped");
    // Once reloaded, the file and the stack agree again.
    assert_eq!(s.run(&["reload"]).code(), 0);
    let r = s.run(&["check", "--json"]);
    assert!(!r.stderr().contains("fpctl reload"), "{}", r.all());
    assert_eq!(s.service("web")["port"], ports[3]);
}

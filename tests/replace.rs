//! `start --replace` / `replace_stale`: a hung, stale copy of the service's
//! own command on its port is stopped; a foreign process never is.

mod common;

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::*;

fn stack(port: u16, extra: &str) -> Stack {
    Stack::new(&format!(
        r#"
[services.api]
command = "python3 {httpd} --port ${{PORT}} --name api"
port = {port}
stop_timeout = "1s"
health = {{ http = "/health", timeout = "300ms" }}
{extra}
"#,
        httpd = httpd()
    ))
}

/// Start httpd.py by hand on `port` and freeze it: it keeps the port but
/// never answers.
fn hung_copy(s: &mut Stack, port: u16, name: &str) -> i32 {
    let pid = s.spawn_httpd(&["--port", &port.to_string(), "--name", name]);
    wait_until("the copy listens", Duration::from_secs(10), || {
        port_open(port)
    });
    kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    pid
}

#[test]
fn a_port_held_by_a_stale_copy_suggests_start_replace() {
    let port = free_port();
    let mut s = stack(port, "");
    let stale = hung_copy(&mut s, port, "api");
    let r = s.run(&["start"]);
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        r.all().contains(&format!("pid {stale}"))
            && r.all().contains(
                "it runs this service's own command, so it is likely a stale copy: `fpctl start --replace` stops it"
            ),
        "{}",
        r.all()
    );
    assert!(pid_alive(stale));
    kill(Pid::from_raw(stale), Signal::SIGCONT).unwrap();
}

#[test]
fn a_port_held_by_another_program_suggests_another_port() {
    let port = free_port();
    let mut s = stack(port, "");
    let other = hung_copy(&mut s, port, "someone-else");
    let r = s.run(&["start"]);
    assert_eq!(r.code(), 1, "{}", r.all());
    assert!(
        r.all().contains(&format!("pid {other}"))
            && r.all()
                .contains("stop that process, or give \"api\" another port in services.toml"),
        "{}",
        r.all()
    );
    assert!(!r.all().contains("--replace"), "{}", r.all());
    kill(Pid::from_raw(other), Signal::SIGCONT).unwrap();
}

#[test]
fn replace_stops_a_hung_copy_of_the_service_itself() {
    let port = free_port();
    let mut s = stack(port, "");
    let stale = hung_copy(&mut s, port, "api");

    // By default fpctl refuses, naming the holder.
    let r = s.run(&["start"]);
    assert_ne!(r.code(), 0);
    assert!(r.all().contains(&format!("pid {stale}")), "{}", r.all());
    assert!(pid_alive(stale));

    let r = s.run_within(&["start", "--replace"], Duration::from_secs(30));
    assert_eq!(r.code(), 0, "{}", r.all());
    assert!(!pid_alive(stale), "the stale copy still runs");
    assert_eq!(s.state_of("api"), "online");
    assert_ne!(s.pid_of("api"), Some(stale));
    let log = s.log("api");
    assert!(
        log.contains(&format!("replaced a stale copy: pid {stale}")) && log.contains("SIGKILL"),
        "{log}"
    );
}

#[test]
fn replace_stale_in_the_file_never_touches_a_foreign_process() {
    let port = free_port();
    let mut s = stack(port, "replace_stale = true");
    let foreign = hung_copy(&mut s, port, "someone-else");
    let r = s.run(&["start"]);
    assert_ne!(r.code(), 0, "{}", r.all());
    assert!(
        r.all().contains(&format!("pid {foreign}"))
            && r.all()
                .contains("left alone: its command line is not the command of \"api\""),
        "{}",
        r.all()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(pid_alive(foreign), "a foreign process was stopped");
    kill(Pid::from_raw(foreign), Signal::SIGCONT).unwrap();
}

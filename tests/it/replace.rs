//! `start --replace` / `replace_stale`: a hung, stale copy of the service's
//! own command on its port is stopped; a foreign process never is.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::*;

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

/// The pid a script wrote into `file`, once it is there.
fn pid_in(s: &Stack, file: &str) -> i32 {
    let mut pid = None;
    wait_until(file, Duration::from_secs(10), || {
        pid = std::fs::read_to_string(s.file(file))
            .ok()
            .and_then(|t| t.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap()
}

/// A script without job control (make, CI, `run.sh`) shares its process
/// group with what it starts in the background and with the `fpctl start
/// --replace` it runs: replacing a stale copy must signal that copy and its
/// descendants, never the group, or the script and fpctl die with it.
#[test]
fn replace_from_a_script_without_job_control_kills_neither_the_script_nor_fpctl() {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let ports = free_ports(2);
    let mut s = Stack::new(&format!(
        r#"
[services.api]
command = "python3 {httpd} --port ${{PORT}} --name api"
port = {api}
stop_timeout = "1s"
health = {{ http = "/health", timeout = "300ms" }}

[services.web]
command = "python3 {httpd} --port ${{PORT}} --name web"
port = {web}
stop_timeout = "1s"
health = {{ http = "/health", timeout = "300ms" }}
"#,
        httpd = httpd(),
        api = ports[0],
        web = ports[1],
    ));
    // One stale copy in the script's own process group, one in a session
    // of its own; then, once the test froze both, the start.
    let script = format!(
        r#"python3 {httpd} --port {api} --name api & echo $! > api.pid
(exec setsid python3 {httpd} --port {web} --name web) & echo $! > web.pid
while [ ! -e go ]; do sleep 0.05; done
"$FPCTL" start --replace
echo "fpctl start exited $?"
"#,
        httpd = httpd(),
        api = ports[0],
        web = ports[1],
    );
    let mut sh = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(s.path())
        .env("FPCTL", BIN)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Its own group, so that a group kill cannot reach the test itself.
        .process_group(0)
        .spawn()
        .expect("spawn sh");
    let script_pid = sh.id() as i32;
    s.own_pids.push(script_pid);
    let api = pid_in(&s, "api.pid");
    let web = pid_in(&s, "web.pid");
    s.own_pids.extend([api, web]);
    let group = |pid: i32| nix::unistd::getpgid(Some(Pid::from_raw(pid))).unwrap();
    assert_eq!(
        group(api),
        group(script_pid),
        "api's copy must share the script's group"
    );
    // web's copy leaves the group once setsid has run, which is before it
    // listens: the pid file is written earlier, by the script.
    wait_until("both copies listen", Duration::from_secs(10), || {
        port_open(ports[0]) && port_open(ports[1])
    });
    assert_ne!(group(web), group(script_pid));
    for pid in [api, web] {
        kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    }
    s.write("go", "");

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = sh.try_wait().unwrap() {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "the script hangs");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    sh.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    sh.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(
        status.success() && out.contains("fpctl start exited 0"),
        "the script or its fpctl start did not survive ({status}):\n{out}\n{err}"
    );
    assert!(
        !pid_alive(api) && !pid_alive(web),
        "a stale copy still runs"
    );
    assert_eq!(s.state_of("api"), "online");
    assert_eq!(s.state_of("web"), "online");
    let log = s.log("api");
    assert!(
        log.contains(&format!("signalled pid {api}")) && log.contains("not its process group"),
        "the log does not say what was signalled:\n{log}"
    );
}

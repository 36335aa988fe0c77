//! Health probes beyond plain http: https against a local server with a
//! self-signed certificate (made here with rcgen), and the `log` kind.

use std::time::Duration;

use crate::common::{wait_until, Stack};

/// A self-signed certificate for 127.0.0.1 / localhost, written as
/// cert.pem and key.pem into the stack's folder.
fn self_signed(stack: &Stack) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("generate a certificate");
    stack.write("cert.pem", &cert.cert.pem());
    stack.write("key.pem", &cert.signing_key.serialize_pem());
}

fn tlsd() -> String {
    format!("{}/tests/fixtures/tlsd.py", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn https_probe_accepts_a_self_signed_certificate_only_when_insecure() {
    let ports = crate::common::free_ports(2);
    let stack = Stack::new(&format!(
        r#"
[services.tls]
command = "python3 {tlsd} --port ${{PORT}} --cert cert.pem --key key.pem"
port = {p}
health = {{ http = "https://127.0.0.1:${{PORT}}/health", insecure = true }}

[services.strict]
command = "sleep 100"
health = {{ http = "https://127.0.0.1:{p}/health", start_timeout = "2s" }}
profiles = ["strict"]
"#,
        tlsd = tlsd(),
        p = ports[0]
    ));
    self_signed(&stack);
    let r = stack.run(&["start", "tls"]).expect(0);
    assert!(r.all().contains("online"), "{}", r.all());
    let tls = stack.service("tls");
    assert_eq!(tls["state"], "online");
    assert_eq!(tls["detail"], "healthy", "{tls}");

    // The same server, verified: its certificate is nobody's.
    let strict = stack.service("strict");
    assert_ne!(strict["state"], "online");
    let detail = strict["detail"].as_str().unwrap_or_default().to_lowercase();
    assert!(detail.contains("certificate"), "{strict}");
    let r = stack
        .run(&["start", "--profile", "strict", "strict"])
        .expect(1);
    assert!(
        r.all().to_lowercase().contains("certificate"),
        "{}",
        r.all()
    );
}

#[test]
fn log_probe_brings_a_worker_online_when_its_line_appears() {
    let stack = Stack::new(
        r#"
[services.worker]
command = "echo booting; sleep 0.3; echo 'worker ready: 4 threads'; sleep 100"
shell = true
health = { log = "ready: \\d+ threads", interval = "200ms" }

[services.consumer]
command = "sleep 100"
depends_on = ["worker"]
"#,
    );
    stack.run(&["start"]).expect(0);
    let worker = stack.service("worker");
    assert_eq!(worker["state"], "online");
    assert_eq!(worker["detail"], "worker ready: 4 threads");
    assert_eq!(stack.state_of("consumer"), "online");

    // After a restart the old line no longer counts: the worker is online
    // again only once it prints the line anew.
    stack.run(&["restart", "worker"]).expect(0);
    let log = stack.log("worker");
    let printed = log
        .lines()
        .filter(|l| l.starts_with("worker ready: 4 threads"))
        .count();
    assert_eq!(printed, 2, "{log}");
}

#[test]
fn log_probe_ignores_lines_from_before_the_launch() {
    let stack = Stack::new(
        r#"
[services.worker]
command = "echo still booting; sleep 100"
shell = true
health = { log = "worker ready", start_timeout = "1500ms" }
"#,
    );
    // A line from an earlier run, and fpctl's own note naming the pattern.
    stack.write(
        ".fpctl/logs/worker.log",
        "[fpctl] starting: old run\nworker ready\n",
    );
    let r = stack.run(&["start"]).expect(1);
    assert!(
        r.all()
            .contains("no line matching /worker ready/ since launch"),
        "{}",
        r.all()
    );
    wait_until("worker failed", Duration::from_secs(5), || {
        stack.state_of("worker") == "failed"
    });
}

const LOG_READY_WORKER: &str = r#"
[services.worker]
command = "echo worker ready; sleep 100"
shell = true
health = { log = "worker ready", interval = "200ms" }

[services.other]
command = "sleep 100"
"#;

/// `check` and `probe` of the worker both say it is not ready.
fn assert_not_ready(stack: &Stack, when: &str) {
    let r = stack.run(&["check", "worker", "--json"]);
    assert_eq!(r.code(), 1, "check passes {when}:\n{}", r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_ne!(v["services"][0]["state"], "online", "{when}: {v}");
    let r = stack.run(&["probe", "worker"]);
    assert_eq!(r.code(), 1, "probe passes {when}:\n{}", r.all());
    assert!(r.stdout().contains("no live run"), "{when}:\n{}", r.all());
}

#[test]
fn a_log_check_never_proves_a_stopped_service_ready() {
    let stack = Stack::new(LOG_READY_WORKER);
    stack.run(&["start"]).expect(0);
    stack.run(&["probe", "worker"]).expect(0);
    stack.run(&["check", "worker"]).expect(0);
    // Stopped while the supervisor runs on (another service is up) ...
    stack.run(&["stop", "worker"]).expect(0);
    assert_eq!(stack.state_of("worker"), "stopped");
    assert_not_ready(&stack, "after `stop worker`");
    // ... and with no supervisor at all.
    stack.run(&["stop"]).expect(0);
    assert_not_ready(&stack, "after `stop`");
    assert!(stack.log("worker").contains("worker ready"));
}

#[test]
fn a_log_check_never_proves_a_run_that_was_killed_ready() {
    let stack = Stack::new(LOG_READY_WORKER);
    stack.run(&["start"]).expect(0);
    let worker = stack.pid_of("worker").expect("worker runs");
    let other = stack.pid_of("other").expect("other runs");
    let supervisor = stack.supervisor_pid().expect("a supervisor");
    // Everything dies at once: nobody writes the end of the run in the log,
    // and no process is left for a new supervisor to adopt.
    // SAFETY: kill(2) on processes this test's stack started.
    unsafe {
        libc::kill(supervisor, libc::SIGKILL);
        libc::kill(-worker, libc::SIGKILL);
        libc::kill(-other, libc::SIGKILL);
    }
    wait_until("the stack is gone", Duration::from_secs(5), || {
        [worker, other, supervisor]
            .iter()
            .all(|&p| !crate::common::pid_alive(p))
    });
    assert_not_ready(&stack, "after the run was killed");
}

#[test]
fn tls_needs_no_system_openssl() {
    let out = std::process::Command::new("ldd")
        .arg(crate::common::BIN)
        .output()
        .expect("run ldd");
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{libs}");
    assert!(
        !libs.contains("libssl") && !libs.contains("libcrypto"),
        "fpctl links OpenSSL:\n{libs}"
    );
}

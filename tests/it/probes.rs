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

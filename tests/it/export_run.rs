//! Exported compose files, proven by running them: `docker compose up
//! --wait` on the real engine, with the local test image, then `down`.
//! Without an engine, the compose v2 plugin or the test image, they fail.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::containers::{require_engine, IMAGE};

/// A compose project of this test's own, taken down at the end by its
/// name, whatever happens.
struct Compose {
    project: String,
    file: std::path::PathBuf,
}

impl Compose {
    fn run(&self, args: &[&str]) -> std::process::Output {
        let file = self.file.display().to_string();
        let mut all = vec!["compose", "-p", self.project.as_str(), "-f", file.as_str()];
        all.extend(args);
        let mut c = Command::new("docker");
        c.args(&all);
        output_within(c, Duration::from_secs(180)).unwrap_or_else(|o| {
            panic!(
                "docker {} did not finish:\n{}",
                all.join(" "),
                String::from_utf8_lossy(&o.stderr)
            )
        })
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-t", "1", "-v", "--remove-orphans"]);
    }
}

/// Export the stack to compose and bring it up with `--wait`: every service
/// healthy (or, for a oneshot, completed). Returns the project to check.
fn export_and_wait(s: &Stack) -> Compose {
    require_engine();
    let version = Command::new("docker").args(["compose", "version"]).output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "`docker compose` (v2) is missing: run `bash ../shared/setup/containers.sh` first"
    );
    s.run(&["export", "compose", "-o", "compose.yaml"])
        .expect(0);
    let compose = Compose {
        project: format!("fpctlexport{}", free_port()),
        file: s.file("compose.yaml"),
    };
    let up = compose.run(&["up", "-d", "--wait", "--wait-timeout", "120"]);
    assert!(
        up.status.success(),
        "compose up --wait failed:\n{}\n{}\n--- compose.yaml:\n{}\n--- ps:\n{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr),
        std::fs::read_to_string(s.file("compose.yaml")).unwrap(),
        String::from_utf8_lossy(&compose.run(&["ps", "-a"]).stdout),
    );
    compose
}

fn container_table(args: &str) -> String {
    format!("image = \"{IMAGE}\"\nargs = {args}\n")
}

const HTTPD: &str = r#"["httpd", "-f", "-p", "8080", "-h", "/www"]"#;

#[test]
fn an_exported_stack_with_http_tcp_exec_and_log_checks_reaches_healthy() {
    let [a, b, c, d] = [free_port(), free_port(), free_port(), free_port()];
    let toml = format!(
        r#"
[services.web]
port = {a}
health = {{ http = "/health" }}
[services.web.container]
{web}container_port = 8080

[services.raw]
port = {b}
health = {{ tcp = true }}
[services.raw.container]
{web}container_port = 8080

[services.checked]
port = {c}
health = {{ exec = "wget -qO- http://127.0.0.1:8080/health" }}
[services.checked.container]
{web}container_port = 8080

[services.logged]
port = {d}
health = {{ log = "serving" }}
[services.logged.container]
{logged}container_port = 8080

[services.client]
depends_on = ["web", "raw", "checked", "logged"]
[services.client.container]
{client}
"#,
        web = container_table(HTTPD),
        logged =
            container_table(r#"["sh", "-c", "echo serving && exec httpd -f -p 8080 -h /www"]"#),
        client = container_table(
            r#"["sh", "-c", "wget -qO- http://$FPCTL_HOST_WEB:$FPCTL_PORT_WEB/health && exec sleep 3600"]"#
        ),
    );
    let s = Stack::new(&toml);
    let text_of = || std::fs::read_to_string(s.file("compose.yaml")).unwrap();
    let compose = export_and_wait(&s);
    let text = text_of();
    // A log check has no compose equivalent: its dependents wait for it
    // to start, never for a health it does not have.
    assert!(!text.contains("wget -q -O /dev/null -T"), "{text}");
    for port in [a, b, c, d] {
        assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200), "{port}");
    }
    let ps = compose.run(&["ps", "--format", "{{.Service}} {{.Health}}"]);
    let ps = String::from_utf8_lossy(&ps.stdout).to_string();
    for name in ["web", "raw", "checked"] {
        assert!(ps.contains(&format!("{name} healthy")), "{ps}");
    }
}

#[test]
fn an_exported_oneshot_completes_before_its_dependent_starts() {
    let port = free_port();
    let toml = format!(
        r#"
[services.migrate]
oneshot = true
[services.migrate.container]
{migrate}
[services.web]
port = {port}
health = {{ http = "/health" }}
depends_on = ["migrate"]
[services.web.container]
{web}container_port = 8080
volumes = ["./shared:/www/shared"]
"#,
        migrate = container_table(r#"["sh", "-c", "echo migrated"]"#),
        web = container_table(HTTPD),
    );
    let s = Stack::new(&toml);
    std::fs::create_dir_all(s.file("shared")).unwrap();
    std::fs::write(s.file("shared/x"), "x").unwrap();
    let compose = export_and_wait(&s);
    assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
    assert_eq!(http_get(port, "/shared/x").map(|r| r.0), Some(200));
    let ps = compose.run(&[
        "ps",
        "-a",
        "--format",
        "{{.Service}} {{.State}} {{.ExitCode}}",
    ]);
    let ps = String::from_utf8_lossy(&ps.stdout).to_string();
    assert!(ps.contains("migrate exited 0"), "{ps}");
}

#[test]
fn exported_replicas_are_one_service_of_n_replicas_on_a_published_port_range() {
    let base = free_range(3);
    let toml = format!(
        r#"
[services.web]
port = {base}
replicas = 3
health = {{ http = "/health" }}
[services.web.container]
{web}container_port = 8080
"#,
        web = container_table(HTTPD),
    );
    let s = Stack::new(&toml);
    let compose = export_and_wait(&s);
    let text = std::fs::read_to_string(s.file("compose.yaml")).unwrap();
    assert!(text.contains("replicas: 3"), "{text}");
    assert!(!text.contains("web-2"), "one service per instance:\n{text}");
    let ps = compose.run(&["ps", "-q", "web"]);
    assert_eq!(String::from_utf8_lossy(&ps.stdout).lines().count(), 3);
    for port in base..base + 3 {
        assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200), "{port}");
    }
}

#[test]
fn an_exported_mixed_native_and_container_stack_reaches_healthy() {
    let [db, api] = [free_port(), free_port()];
    let toml = format!(
        r#"
[services.db]
port = {db}
health = {{ tcp = true }}
[services.db.container]
{web}container_port = 8080

[services.api]
command = "python3 {httpd} --port ${{PORT}} --name api"
port = {api}
health = {{ http = "/health" }}
depends_on = ["db"]
[services.api.container]
entrypoint = ["sh", "-c"]
{api_c}
"#,
        web = container_table(HTTPD),
        api_c = container_table(
            r#"["wget -qO- http://$FPCTL_HOST_DB:$FPCTL_PORT_DB/health && exec httpd -f -p $PORT -h /www"]"#
        ),
        httpd = httpd(),
    );
    let s = Stack::new(&toml);
    // The same file runs natively first.
    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("api"), "online");
    s.run(&["stop"]).expect(0);
    let _compose = export_and_wait(&s);
    assert_eq!(http_get(api, "/health").map(|r| r.0), Some(200));
}

#[test]
fn a_live_scale_never_leaks_into_an_export() {
    let base = free_range(3);
    let toml = format!(
        r#"
[services.web]
command = "python3 {httpd} --port ${{PORT}} --name web"
port = {base}
replicas = 2
health = {{ http = "/health" }}
[services.web.container]
{web}container_port = 8080
"#,
        httpd = httpd(),
        web = container_table(HTTPD),
    );
    let s = Stack::new(&toml);
    s.run(&["start"]).expect(0);
    s.run(&["scale", "web=3"]).expect(0);
    assert_eq!(s.state_of("web-3"), "online");
    let out = s.run(&["export", "compose"]).expect(0).stdout();
    assert!(out.contains("replicas: 2"), "{out}");
    assert!(
        out.contains(&format!("127.0.0.1:{}-{}:8080", base, base + 1)),
        "{out}"
    );
    let k8s = s.run(&["export", "kubernetes"]).expect(0).stdout();
    assert!(k8s.contains("replicas: 2"), "{k8s}");
    s.stop_all();
}

//! The environment as compose users expect it (`.env`, `--env-file`,
//! `--no-dotenv`, `[project] env`, `FPCTL_PROFILES`) and `fpctl exec`.

use crate::common::{wait_until, Stack};
use std::time::Duration;

/// A service that writes what it was given to its log, then waits.
fn echo_service(name: &str, text: &str) -> String {
    format!(
        r#"
[services.{name}]
command = "echo {text}; sleep 100"
shell = true
"#
    )
}

fn wait_for_log(stack: &Stack, service: &str, needle: &str) {
    wait_until(
        &format!("{needle:?} in {service}'s log"),
        Duration::from_secs(10),
        || stack.log(service).contains(needle),
    );
}

#[test]
fn dotenv_beside_the_file_is_read_and_its_secrets_are_redacted() {
    let stack = Stack::new(&echo_service(
        "greeter",
        "greeting=${GREETING} token=${API_TOKEN}",
    ));
    stack.write(
        ".env",
        "GREETING=hello-from-dotenv\nAPI_TOKEN=s3cr3t-t0ken\n",
    );
    let start = stack.run(&["start"]).expect(0);
    wait_for_log(&stack, "greeter", "greeting=hello-from-dotenv");
    // The service prints the token itself (its own business); fpctl's note
    // of the command it started does not.
    let log = stack.log("greeter");
    let note = log
        .lines()
        .find(|l| l.starts_with("[fpctl] starting:"))
        .expect("a starting note");
    assert!(
        note.contains("token=***") && !note.contains("s3cr3t"),
        "{note}"
    );
    let events = stack.run(&["events"]).expect(0);
    for out in [start.all(), events.all(), stack.run(&["check"]).all()] {
        assert!(!out.contains("s3cr3t-t0ken"), "secret shown:\n{out}");
    }
}

#[test]
fn env_file_flag_overrides_dotenv_and_no_dotenv_turns_it_off() {
    let stack = Stack::new(&echo_service("greeter", "greeting=${GREETING}"));
    stack.write(".env", "GREETING=from-dotenv\n");
    stack.write("other.env", "GREETING=from-other-file\n");
    stack.run(&["--env-file", "other.env", "start"]).expect(0);
    wait_for_log(&stack, "greeter", "greeting=from-other-file");
    assert!(!stack.log("greeter").contains("from-dotenv"));
    stack.run(&["stop"]).expect(0);

    let r = stack.run(&["--no-dotenv", "validate"]).expect(2);
    assert!(
        r.stderr().contains("variable \"GREETING\" is not set"),
        "{}",
        r.all()
    );
    let r = stack
        .run(&["--env-file", "missing.env", "validate"])
        .expect(2);
    assert!(r.stderr().contains("missing.env"), "{}", r.all());
    // fpctl's own environment wins over .env, as in compose.
    let r = stack
        .cmd(&["graph"])
        .env("GREETING", "from-shell")
        .output()
        .unwrap();
    assert!(r.status.success());
}

#[test]
fn project_env_applies_to_every_service_and_a_service_env_overrides_it() {
    let stack = Stack::new(
        r#"
[project]
env = { STAGE = "shared-stage", REGION = "eu" }

[services.one]
command = "echo one stage=$STAGE region=$REGION; sleep 100"
shell = true

[services.two]
command = "echo two stage=$STAGE region=$REGION; sleep 100"
shell = true
env = { REGION = "us" }
"#,
    );
    stack.run(&["start"]).expect(0);
    wait_for_log(&stack, "one", "one stage=shared-stage region=eu");
    wait_for_log(&stack, "two", "two stage=shared-stage region=us");
}

#[test]
fn fpctl_profiles_works_like_the_profile_flag() {
    let stack = Stack::new(
        r#"
[services.always]
command = "sleep 100"

[services.debugger]
command = "sleep 100"
profiles = ["debug"]

[services.batch]
command = "sleep 100"
profiles = ["batch"]

[services.other]
command = "sleep 100"
profiles = ["other"]
"#,
    );
    let out = stack
        .cmd(&["start"])
        .env("FPCTL_PROFILES", "debug,batch")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for (name, state) in [
        ("always", "online"),
        ("debugger", "online"),
        ("batch", "online"),
        ("other", "stopped"),
    ] {
        assert_eq!(stack.state_of(name), state, "{name}");
    }
}

#[test]
fn an_unknown_profile_is_a_usage_error_naming_the_known_ones() {
    let stack = Stack::new(
        r#"
[services.always]
command = "sleep 100"

[services.debugger]
command = "sleep 100"
profiles = ["debug"]

[services.batch]
command = "sleep 100"
profiles = ["batch"]
"#,
    );
    for args in [
        &["start", "--profile", "nosuch"][..],
        &["check", "--profile", "nosuch"],
        &["up", "--profile", "nosuch"],
        &["export", "compose", "--profile", "nosuch"],
    ] {
        let r = stack.run(args);
        assert_eq!(r.code(), 2, "fpctl {}:\n{}", args.join(" "), r.all());
        assert!(
            r.stderr().contains("no profile named \"nosuch\" in ")
                && r.stderr().contains("its profiles: batch, debug"),
            "fpctl {}:\n{}",
            args.join(" "),
            r.all()
        );
    }
    // A near miss, through the environment, gets a suggestion.
    let out = stack
        .cmd(&["start"])
        .env("FPCTL_PROFILES", "debugg")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("(did you mean \"debug\"?)"), "{err}");
    // Nothing was started.
    assert!(
        stack.supervisor_pid().is_none(),
        "a supervisor was started for an unknown profile"
    );
    // A file with no profiles says so.
    let plain = Stack::new(&echo_service("one", "x"));
    let r = plain.run(&["check", "--profile", "dev"]);
    assert_eq!(r.code(), 2, "{}", r.all());
    assert!(r.stderr().contains("it defines no profiles"), "{}", r.all());
    // A known one still works.
    stack.run(&["start", "--profile", "debug"]).expect(0);
    assert_eq!(stack.state_of("debugger"), "online");
    assert_eq!(stack.state_of("batch"), "stopped");
}

#[test]
fn exec_runs_in_the_service_environment_with_the_venv_first_on_path() {
    let ports = crate::common::free_ports(2);
    let stack = Stack::new(&format!(
        r#"
[services.db]
command = "sleep 100"
port = {db}

[services.app]
dir = "app"
setup = "venv"
command = "python -m http.server ${{PORT}}"
port = {app}
env = {{ GREETING = "hi from ${{FPCTL_PORT_DB}}" }}
"#,
        db = ports[0],
        app = ports[1]
    ));
    stack.write("app/README", "the app");
    // The venv that `setup = "venv"` makes.
    let venv = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip", ".venv"])
        .current_dir(stack.file("app"))
        .status()
        .unwrap();
    assert!(venv.success());
    let r = stack
        .run(&[
            "exec",
            "app",
            "--",
            "python",
            "-c",
            "import os, sys; print(sys.executable); print(os.environ['PATH'].split(':')[0]); \
             print(os.getcwd()); print(os.environ['PORT'], os.environ['GREETING'])",
        ])
        .expect(0);
    let app = stack.file("app").canonicalize().unwrap();
    let stdout = r.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        std::path::Path::new(lines[0]).parent().unwrap(),
        app.join(".venv/bin"),
        "{}",
        r.all()
    );
    assert_eq!(
        std::path::Path::new(lines[1]).canonicalize().unwrap(),
        app.join(".venv/bin")
    );
    assert_eq!(std::path::Path::new(lines[2]).canonicalize().unwrap(), app);
    assert_eq!(lines[3], format!("{} hi from {}", ports[1], ports[0]));
    // The exit code is the command's own.
    stack
        .run(&["exec", "app", "--", "sh", "-c", "exit 7"])
        .expect(7);
    let r = stack.run(&["exec", "ap", "--", "true"]).expect(2);
    assert!(r.stderr().contains("did you mean \"app\""), "{}", r.all());
    let r = stack
        .run(&["exec", "app", "--", "no-such-program-here"])
        .expect(2);
    assert!(r.stderr().contains("no-such-program-here"), "{}", r.all());
}

/// A service's process is spawned as `Command` would spawn it: the program
/// found in the service's own `PATH` (a file there that is not executable
/// is passed over), run in its folder with stdin from /dev/null, in a
/// process group of its own, SIGPIPE at its default and no signal blocked,
/// with its own variables over the shared ones.
#[test]
fn a_service_runs_from_its_own_path_in_its_own_group_with_default_signals() {
    let port = crate::common::free_port();
    let stack = Stack::new(&format!(
        r#"
[services.probe]
dir = "work"
command = "report-self"
port = {port}
health = {{ log = "reported" }}
env = {{ PATH = "NOTEXEC:BIN:/usr/bin:/bin", MARK = "own" }}
"#
    ));
    let (notexec, bin) = (stack.file("notexec"), stack.file("bin"));
    let toml = std::fs::read_to_string(stack.file("services.toml")).unwrap();
    stack.write(
        "services.toml",
        &toml
            .replace("NOTEXEC", notexec.to_str().unwrap())
            .replace("BIN", bin.to_str().unwrap()),
    );
    stack.write("work/README", "the service's folder");
    stack.write("notexec/report-self", "#!/bin/sh\necho wrong program\n");
    let script = r#"#!/bin/sh
read -r _ _ _ _ pgid _ < /proc/$$/stat
echo "pid=$$ pgid=$pgid"
# grep's own: the shell blocks signals while it waits, and what its
# children get is what it was given.
grep -E '^Sig(Ign|Blk):' /proc/self/status
echo "stdin=$(readlink /proc/$$/fd/0)"
echo "cwd=$(pwd -P)"
echo "mark=$MARK port=$PORT own_port=$FPCTL_PORT_PROBE"
echo reported
exec sleep 100
"#;
    stack.write("bin/report-self", script);
    use std::os::unix::fs::PermissionsExt;
    let exec = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(stack.file("bin/report-self"), exec).unwrap();
    std::fs::set_permissions(
        stack.file("notexec/report-self"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    stack.run(&["start"]).expect(0);
    let log = stack.log("probe");
    assert!(!log.contains("wrong program"), "{log}");
    let line = |key: &str| -> String {
        log.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in:\n{log}"))
            .trim()
            .to_string()
    };
    let ids = line("pid=");
    let (pid, pgid) = ids.split_once(" pgid=").expect("pid and pgid");
    assert_eq!(pid, pgid, "not a group of its own:\n{log}");
    let ignored = u64::from_str_radix(&line("SigIgn:"), 16).unwrap();
    assert_eq!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE ignored:\n{log}"
    );
    assert_eq!(
        u64::from_str_radix(&line("SigBlk:"), 16).unwrap(),
        0,
        "{log}"
    );
    assert_eq!(line("stdin="), "/dev/null");
    let work = stack.file("work").canonicalize().unwrap();
    assert_eq!(line("cwd="), work.to_str().unwrap());
    assert_eq!(
        line("mark="),
        format!("own port={port} own_port={port}"),
        "{log}"
    );
}

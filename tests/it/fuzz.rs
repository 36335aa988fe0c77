//! Fuzzing with proptest: arbitrary input to the services.toml parser and to
//! the control protocol must never panic, and a live supervisor must survive
//! hostile socket traffic. Scale with FPCTL_FUZZ_CASES (default 2000) for
//! long runs: `FPCTL_FUZZ_CASES=200000 cargo test --release --test it fuzz::`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use crate::common::*;

fn cases() -> u32 {
    std::env::var("FPCTL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// Pieces of real services.toml syntax, so random documents reach past the
/// TOML parser into validation.
fn toml_fragment() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "command",
        "port",
        "depends_on",
        "tier",
        "health",
        "http",
        "tcp",
        "exec",
        "env",
        "env_file",
        "setup",
        "restart",
        "max_restarts",
        "stop_signal",
        "stop_timeout",
        "profiles",
        "oneshot",
        "disabled",
        "dir",
        "shell",
        "interval",
        "timeout",
        "retries",
        "expect_json",
        "expect_status",
        "max_memory",
        "log_max_size",
        "log_keep",
        "log_timestamps",
        "name",
        "title",
        "log_dir",
        "start_timeout",
        "bogus",
    ]);
    let values = prop::sample::select(vec![
        "\"x\"",
        "\"\"",
        "1",
        "0",
        "-1",
        "70000",
        "99999999999999999999",
        "true",
        "[]",
        "[\"a\"]",
        "[\"a\", \"b\"]",
        "{ http = \"/h\" }",
        "{ tcp = true }",
        "{ exec = \"true\" }",
        "\"${PORT}\"",
        "\"${NOPE}\"",
        "\"1s\"",
        "\"5 parsecs\"",
        "\"SIGTERM\"",
        "\"venv\"",
        "\"npm\"",
        "1.5",
        "{ }",
        "[[1]]",
        "\"\\u0000\"",
    ]);
    let headers = prop::sample::select(vec![
        "[services.a]",
        "[services.b]",
        "[services.\"c d\"]",
        "[[tier]]",
        "[project]",
        "[services]",
        "[services.a.health]",
        "[services.a.env]",
        "",
    ]);
    (headers, keys, values).prop_map(|(h, k, v)| format!("{h}\n{k} = {v}\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = fpctl::config::load_str(Path::new("/nonexistent/services.toml"), text);
    }

    #[test]
    fn parser_never_panics_on_fragments(parts in prop::collection::vec(toml_fragment(), 0..24)) {
        let text = parts.concat();
        if let Err(e) = fpctl::config::load_str(Path::new("/nonexistent/services.toml"), text) {
            // Every error names the file and a line:column.
            let msg = e.to_string();
            prop_assert!(msg.contains("services.toml:"), "{}", msg);
        }
    }

    #[test]
    fn protocol_decode_never_panics(line in ".{0,300}") {
        let _ = fpctl::control::decode(&line);
    }

    #[test]
    fn protocol_decode_never_panics_on_json_like(
        v in prop::option::of(0u64..3),
        req in prop::sample::select(vec!["start", "stop", "restart", "status", "bogus", ""]),
        services in prop::collection::vec("[a-z\\\\\"]{0,8}", 0..4),
        extra in "[{}\\[\\]:,\"a-z0-9]{0,40}",
    ) {
        let v = v.map(|v| format!("\"v\":{v},")).unwrap_or_default();
        let line = format!("{{{v}\"request\":\"{req}\",\"services\":{services:?},\"profiles\":[]{extra}}}");
        let _ = fpctl::control::decode(&line);
    }
}

/// Hostile traffic on the socket of a live supervisor: each message gets an
/// error reply (or the connection is closed), and the supervisor keeps
/// serving and supervising.
#[test]
fn supervisor_survives_hostile_socket_traffic() {
    let port = free_port();
    let s = Stack::new(&http_service("web", port, "", ""));
    s.run(&["start"]).expect(0);
    let supervisor = s.supervisor_pid().expect("supervisor pid");
    let socket = s.file(".fpctl/fpctl.sock");
    let web = s.pid_of("web").unwrap();

    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: (cases() / 10).max(50),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let messages = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        "\\{\"v\":1,\"request\":\"[a-z]{0,8}\".{0,64}\\}\n".prop_map(String::into_bytes),
        Just(b"{\"v\":99,\"request\":\"status\"}\n".to_vec()),
        Just(b"{\"request\":\"status\"}\n".to_vec()),
        Just(b"{\"v\":1,\"request\":\"start\",\"services\":[\"nope\"],\"profiles\":[]}\n".to_vec()),
        Just(b"{\"v\":1,\"request\":\"stop\",\"services\":[\"../../etc\"]}\n".to_vec()),
        Just(vec![b'{'; 70_000]),
    ];
    runner
        .run(&messages, |msg| {
            let mut stream = UnixStream::connect(&socket).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(15)))
                .unwrap();
            let _ = stream.write_all(&msg);
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            // Whatever came back is well-formed JSON lines.
            for line in reply.lines() {
                let v: serde_json::Value = serde_json::from_str(line).expect("reply is JSON");
                prop_assert!(v.get("response").is_some(), "{}", line);
            }
            Ok(())
        })
        .unwrap();

    // Still the same supervisor, still supervising the same process.
    assert!(pid_alive(supervisor), "the supervisor died");
    assert_eq!(s.supervisor_pid(), Some(supervisor));
    assert_eq!(s.state_of("web"), "online");
    assert_eq!(s.pid_of("web"), Some(web));
}

//! Runs the real binary on malformed services.toml files and checks that each
//! is rejected the way the spec promises: exit code 2, one
//! `services.toml:LINE:COL:` pointing at the offending place, a message naming
//! what is wrong, nothing on stdout and never a panic.
//!
//! The corpus lives in `tests/corpus/invalid/`, one case per file. Each starts
//! with two comment lines:
//!
//! ```toml
//! # expect: <substring the error output must contain>
//! # at: LINE:COL
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_fpctl");

/// A command for the binary with a predictable environment: no FPCTL_FILE
/// from the caller, no colour, and the corpus's "unset" variable really unset.
fn fpctl(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd)
        .env_remove("FPCTL_FILE")
        .env_remove("FPCTL_CORPUS_SURELY_UNSET")
        .env("NO_COLOR", "1");
    cmd
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/invalid")
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus/invalid exists")
        .map(|e| e.expect("readable corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// `# expect:` and `# at:` from the first two lines (the rest of a file may
/// be anything, even bytes that are not UTF-8).
fn header(bytes: &[u8]) -> Result<(String, (usize, usize)), String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let expect = lines
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .ok_or("first line is not `# expect: ...`")?
        .to_string();
    let at = lines
        .next()
        .and_then(|l| l.strip_prefix("# at: "))
        .ok_or("second line is not `# at: LINE:COL`")?;
    let (line, col) = at
        .trim()
        .split_once(':')
        .and_then(|(l, c)| Some((l.parse().ok()?, c.parse().ok()?)))
        .ok_or_else(|| format!("bad `# at:` value {at:?}"))?;
    if expect.trim().is_empty() {
        return Err("empty `# expect:`".into());
    }
    Ok((expect, (line, col)))
}

/// Write `bytes` as services.toml in a fresh folder and run `validate` on it.
fn validate_bytes(bytes: &[u8]) -> (TempDir, Output, Duration) {
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("services.toml");
    std::fs::write(&file, bytes).expect("write services.toml");
    let started = Instant::now();
    let out = fpctl(dir.path())
        .arg("-f")
        .arg(&file)
        .arg("validate")
        .output()
        .expect("run fpctl");
    (dir, out, started.elapsed())
}

/// Every way `validate` must reject a file; `Err` describes what was wrong.
fn check_rejected(out: &Output, expect: &str, at: (usize, usize)) -> Result<(), String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut problems = Vec::new();
    if out.status.code() != Some(2) {
        problems.push(format!("exit status {:?}, want 2", out.status.code()));
    }
    let location = format!("services.toml:{}:{}:", at.0, at.1);
    if !stderr.contains(&location) {
        problems.push(format!("stderr lacks {location:?}"));
    }
    if !stderr.contains(expect) {
        problems.push(format!("stderr lacks {expect:?}"));
    }
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        problems.push("the binary panicked".into());
    }
    if !stdout.is_empty() {
        problems.push(format!("stdout is not empty: {stdout:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n--- stderr:\n{stderr}", problems.join("; ")))
    }
}

#[test]
fn corpus_is_not_empty() {
    let files = corpus_files();
    assert!(
        files.len() >= 30,
        "only {} corpus files in {}",
        files.len(),
        corpus_dir().display()
    );
}

#[test]
fn every_corpus_file_is_rejected_with_its_location() {
    let files = corpus_files();
    assert!(files.len() >= 30, "the corpus went missing");
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).expect("read corpus file");
        let (expect, at) = match header(&bytes) {
            Ok(h) => h,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let (_dir, out, _) = validate_bytes(&bytes);
        if let Err(e) = check_rejected(&out, &expect, at) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus files misbehaved:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

/// Every message of the corpus, exactly: `NAME.toml` is checked against
/// `NAME.stderr` beside it (the temp folder's path written as `$DIR`).
/// `BLESS=1 cargo test --release --test it invalid_config::` rewrites the expected files.
#[test]
fn every_corpus_message_matches_its_snapshot() {
    let bless = std::env::var_os("BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for path in corpus_files() {
        let bytes = std::fs::read(&path).expect("read corpus file");
        let (dir, out, _) = validate_bytes(&bytes);
        let root = dir.path().canonicalize().unwrap();
        let got = String::from_utf8_lossy(&out.stderr)
            .replace(&root.display().to_string(), "$DIR")
            .replace(&dir.path().display().to_string(), "$DIR");
        let expected_path = path.with_extension("stderr");
        if bless {
            std::fs::write(&expected_path, &got).expect("write snapshot");
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}:
--- expected ({})
{want}--- got
{got}",
                path.display(),
                expected_path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus messages differ from their snapshots (BLESS=1 rewrites them):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// (line, col) of the first occurrence of `needle` in `text`, 1-based.
fn position_of(text: &str, needle: &str) -> (usize, usize) {
    let offset = text.find(needle).expect("needle in text");
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[test]
fn ten_thousand_services_with_one_bad_dependency() {
    const N: usize = 10_000;
    let mut text = String::from(
        "[project]\nname = \"big\"\n\n[[tier]]\nname = \"t0\"\n\n[[tier]]\nname = \"t1\"\n\n\
         [[tier]]\nname = \"t2\"\n\n[[tier]]\nname = \"t3\"\n\n",
    );
    for i in 0..N {
        let tier = i * 4 / N;
        text.push_str(&format!(
            "[services.svc{i}]\ntier = \"t{tier}\"\ncommand = \"run --id {i}\"\n"
        ));
        if i + 1 == N {
            text.push_str(&format!(
                "depends_on = [\"svc{}\", \"svc{}-missing\"]\n",
                i - 1,
                i - 1
            ));
        } else if i > 0 {
            text.push_str(&format!("depends_on = [\"svc{}\"]\n", i - 1));
        }
        text.push('\n');
    }
    let bad = format!("\"svc{}-missing\"", N - 2);
    let at = position_of(&text, &bad);
    let (_dir, out, took) = validate_bytes(text.as_bytes());
    check_rejected(&out, &format!("unknown dependency {bad}"), at).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches(" error: ").count(),
        1,
        "exactly one error expected:\n{stderr}"
    );
    assert!(took < Duration::from_secs(10), "validate took {took:?}");
}

#[test]
fn non_utf8_file_is_rejected_at_the_first_bad_byte() {
    let mut bytes = b"[services.web]\ncommand = \"node ".to_vec();
    bytes.extend_from_slice(&[0xC3, 0x28, 0xFF, 0xFE]);
    bytes.extend_from_slice(b" server.js\"\nport = 3000\n");
    let (_dir, out, _) = validate_bytes(&bytes);
    check_rejected(&out, "not valid UTF-8", (2, 17)).unwrap();

    // Garbage from the very first byte.
    let bytes: Vec<u8> = (0..=255u8).rev().cycle().take(4096).collect();
    let (_dir, out, _) = validate_bytes(&bytes);
    check_rejected(&out, "not valid UTF-8", (1, 1)).unwrap();
}

#[test]
fn zero_byte_and_crlf_files() {
    let (_dir, out, _) = validate_bytes(b"");
    check_rejected(&out, "no services defined", (1, 1)).unwrap();

    let crlf = b"[services.web]\r\ncommand = \"node server.js\"\r\nport = 70000\r\n";
    let (_dir, out, _) = validate_bytes(crlf);
    check_rejected(&out, "port 70000", (3, 8)).unwrap();
}

#[test]
fn columns_count_characters_not_bytes() {
    let text = "# åäö ✓\n[services.web]\ncommand = \"node server.js\"\n\
                env = { \"ÅÄÖ\" = \"ä\", B = \"${FPCTL_CORPUS_SURELY_UNSET}\" }\n";
    let (_dir, out, _) = validate_bytes(text.as_bytes());
    check_rejected(&out, "FPCTL_CORPUS_SURELY_UNSET", (4, 26)).unwrap();
}

#[test]
fn several_problems_are_all_reported_in_file_order() {
    let text = "[services.a]\ncommand = \"run a\"\nport = 0\n\n\
                [services.b]\ncommand = \"run b\"\ndepends_on = [\"c\"]\n";
    let (_dir, out, _) = validate_bytes(text.as_bytes());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let first = stderr.find("services.toml:3:8:").expect(&stderr);
    let second = stderr.find("services.toml:7:15:").expect(&stderr);
    assert!(first < second, "{stderr}");
    assert!(stderr.contains("2 errors"), "{stderr}");
}

/// The `services.toml:LINE:COL: error:` lines of an output, in order.
fn error_places(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split_once(": error: "))
        .map(|(place, _)| place.to_string())
        .collect()
}

/// Type errors (an unknown field, a bad enum value, a wrong type, a wrong
/// type inside an inline table) and checks of meaning (a tier's range, an
/// unknown dependency, an unknown signal), in three services and a tier:
/// one run lists them all, not one round each.
#[test]
fn seven_independent_mistakes_are_reported_in_one_run() {
    let bytes = std::fs::read(corpus_dir().join("seven_independent_mistakes.toml")).unwrap();
    let (_dir, out, _) = validate_bytes(&bytes);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let places = error_places(&stderr);
    assert_eq!(
        places,
        [
            "services.toml:6:9",
            "services.toml:12:1",
            "services.toml:13:11",
            "services.toml:16:11",
            "services.toml:19:40",
            "services.toml:23:15",
            "services.toml:24:15",
        ],
        "{stderr}"
    );
    assert!(stderr.contains("7 errors in services.toml"), "{stderr}");
}

/// A port that is wrong leaves `${PORT}`, the health check's path and
/// other services' `${FPCTL_PORT_WEB}` without a value: those follow from
/// the one error and are not reported again.
#[test]
fn one_bad_port_is_one_error() {
    let bytes = std::fs::read(corpus_dir().join("bad_port_cascade.toml")).unwrap();
    let (_dir, out, _) = validate_bytes(&bytes);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(error_places(&stderr), ["services.toml:6:8"], "{stderr}");
    // A field left out for its type is reported once too.
    let text =
        "[services.web]\ncommand = [1]\nport = 3000\nhealth = { http = \"/h\", tcp = [1] }\n";
    let (_dir, out, _) = validate_bytes(text.as_bytes());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        error_places(&stderr),
        ["services.toml:2:11", "services.toml:4:31"],
        "{stderr}"
    );
}

fn repo_services_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("services.toml")
}

fn repo_service_names() -> Vec<String> {
    let path = repo_services_toml();
    let text = std::fs::read_to_string(&path).expect("read services.toml");
    let config = fpctl::config::load_str(&path, text).expect("the repository's file is valid");
    assert!(!config.services.is_empty());
    config.services.iter().map(|s| s.name.clone()).collect()
}

fn run_ok(args: &[&str]) -> String {
    let dir = TempDir::new().unwrap();
    let out = fpctl(dir.path())
        .arg("-f")
        .arg(repo_services_toml())
        .args(args)
        .output()
        .expect("run fpctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "fpctl {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn repository_services_toml_validates_and_graphs() {
    let names = repo_service_names();

    let summary = run_ok(&["validate"]);
    assert!(summary.contains("ok"), "{summary}");
    assert!(summary.contains("services.toml"), "{summary}");
    let count = format!("{} service", names.len());
    assert!(summary.contains(&count), "{summary} lacks {count:?}");

    let graph = run_ok(&["graph"]);
    for name in &names {
        let shown = graph
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(name.as_str()))
            .count();
        assert_eq!(shown, 1, "{name} should be listed once in:\n{graph}");
    }

    let dot = run_ok(&["graph", "--dot"]);
    assert!(dot.trim_start().starts_with("digraph"), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
    assert_eq!(dot.matches('{').count(), dot.matches('}').count(), "{dot}");
    for name in &names {
        assert!(
            dot.contains(&format!("\"{name}\"")),
            "{name} missing:\n{dot}"
        );
    }
}

#[test]
fn repository_graph_lists_dependencies_before_dependents() {
    let path = repo_services_toml();
    let text = std::fs::read_to_string(&path).unwrap();
    let config = fpctl::config::load_str(&path, text).unwrap();
    let graph = run_ok(&["graph"]);
    let line_of = |name: &str| {
        graph
            .lines()
            .position(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not in graph output:\n{graph}"))
    };
    let dot = run_ok(&["graph", "--dot"]);
    for s in &config.services {
        for &d in &s.depends_on {
            let dep = &config.services[d].name;
            assert!(line_of(dep) < line_of(&s.name), "{dep} after {}", s.name);
            let edge = format!("\"{}\" -> \"{dep}\"", s.name);
            assert!(dot.contains(&edge), "{edge} missing:\n{dot}");
        }
    }
}

#[test]
fn no_services_toml_anywhere() {
    let dir = TempDir::new().unwrap();
    if let Some(found) = dir
        .path()
        .ancestors()
        .map(|a| a.join("services.toml"))
        .find(|p| p.is_file())
    {
        eprintln!(
            "skipped: {} exists above the temp dir, so discovery finds it",
            found.display()
        );
        return;
    }
    let out = fpctl(dir.path()).arg("validate").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no services.toml found"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty());
}

const GOOD: &str = "[services.web]\ncommand = \"node server.js\"\nport = 3000\n";

#[test]
fn services_toml_is_found_by_walking_up() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("services.toml"), GOOD).unwrap();
    let deep = dir.path().join("a/b/c");
    std::fs::create_dir_all(&deep).unwrap();
    let out = fpctl(&deep).arg("validate").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 service"), "{stdout}");
}

#[test]
fn fpctl_file_environment_variable() {
    let stack = TempDir::new().unwrap();
    let good = stack.path().join("good.toml");
    std::fs::write(&good, GOOD).unwrap();
    let bad = stack.path().join("bad.toml");
    std::fs::write(&bad, "[services.web]\ncommand = \"x\"\nport = 0\n").unwrap();
    let elsewhere = TempDir::new().unwrap();

    // FPCTL_FILE alone is enough.
    let out = fpctl(elsewhere.path())
        .env("FPCTL_FILE", &good)
        .arg("validate")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("good.toml"), "{stdout}");

    // And its errors carry that file's name and location.
    let out = fpctl(elsewhere.path())
        .env("FPCTL_FILE", &bad)
        .arg("validate")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.toml:3:8:"), "{stderr}");

    // -f wins over FPCTL_FILE.
    let out = fpctl(elsewhere.path())
        .env("FPCTL_FILE", &bad)
        .arg("-f")
        .arg(&good)
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A FPCTL_FILE that does not exist is an error, not a fallback.
    let out = fpctl(stack.path())
        .env("FPCTL_FILE", stack.path().join("missing.toml"))
        .arg("validate")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing.toml"), "{stderr}");
}

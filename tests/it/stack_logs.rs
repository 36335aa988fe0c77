//! The logs of the whole stack: `fpctl logs` with no service or several,
//! merged behind a `name |` prefix, `-f` following all of them in the order
//! lines are written; `fpctl up` attaching to a running stack and detaching
//! on Ctrl-C without stopping anything; recorded times (`log_timestamps`):
//! merged history in true order, `-t`, `--since`, rotation.

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

/// A service that prints "NAME-line" whenever the file go-NAME appears.
fn echoer(name: &str) -> String {
    format!(
        "[services.{name}]\nshell = true\ncommand = \"echo {name} ready; while :; do if [ -f go-{name} ]; then rm go-{name}; echo {name}-line; fi; sleep 0.05; done\"\n"
    )
}

/// Spawn fpctl with its stdout collected as it comes.
fn spawn_collecting(s: &Stack, args: &[&str]) -> (Child, Arc<Mutex<String>>) {
    let mut child = s
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().unwrap();
    let sink = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, seen)
}

fn trigger(s: &Stack, name: &str, seen: &Arc<Mutex<String>>, times: usize) {
    std::fs::write(s.file(&format!("go-{name}")), "").unwrap();
    wait_until(
        &format!("{name}-line #{times}"),
        Duration::from_secs(10),
        || {
            seen.lock()
                .unwrap()
                .matches(&format!("{name} | {name}-line"))
                .count()
                >= times
        },
    );
}

fn interrupt(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
}

#[test]
fn logs_of_several_services_are_merged_and_followed_in_order() {
    let s = Stack::new(&format!(
        "{}{}{}",
        echoer("alpha"),
        echoer("bravo"),
        echoer("gamma")
    ));
    s.run(&["start"]).expect(0);
    wait_until("both ready lines", Duration::from_secs(10), || {
        s.log("alpha").contains("alpha ready") && s.log("bravo").contains("bravo ready")
    });
    // No service: all of them, prefixed.
    let all = s.run(&["logs"]).expect(0).stdout();
    for name in ["alpha", "bravo", "gamma"] {
        assert!(all.contains(&format!("{name} ")), "{all}");
    }
    assert!(
        all.contains("| alpha ready") && all.contains("| bravo ready"),
        "{all}"
    );
    // Several: only those.
    let two = s
        .run(&["logs", "alpha", "bravo", "-n", "1"])
        .expect(0)
        .stdout();
    assert!(!two.contains("gamma"), "{two}");
    assert_eq!(two.lines().count(), 2, "{two}");
    // One: the file as it is, no prefix.
    let one = s.run(&["logs", "alpha"]).expect(0).stdout();
    assert!(!one.contains(" | "), "{one}");

    let (mut child, seen) = spawn_collecting(&s, &["logs", "-f", "alpha", "bravo"]);
    wait_until("the history", Duration::from_secs(10), || {
        seen.lock().unwrap().contains("bravo ready")
    });
    trigger(&s, "bravo", &seen, 1);
    trigger(&s, "alpha", &seen, 1);
    trigger(&s, "bravo", &seen, 2);
    let text = seen.lock().unwrap().clone();
    let order: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with("-line"))
        .map(|l| l.split(" |").next().unwrap().trim())
        .collect();
    assert_eq!(order, ["bravo", "alpha", "bravo"], "{text}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn up_attaches_to_a_running_stack_and_detaches_without_stopping_it() {
    // alpha records times, which `up` does not show: `trigger` waits for
    // `alpha | alpha-line` exactly as the service wrote it.
    let s = Stack::new(&format!(
        "{}log_timestamps = true\n{}",
        echoer("alpha"),
        echoer("bravo")
    ));
    s.run(&["start"]).expect(0);
    let before = (s.pid_of("alpha"), s.pid_of("bravo"));
    let (mut child, seen) = spawn_collecting(&s, &["up"]);
    wait_until("attached", Duration::from_secs(10), || {
        seen.lock()
            .unwrap()
            .contains("attached to the running stack")
    });
    trigger(&s, "alpha", &seen, 1);
    trigger(&s, "bravo", &seen, 1);
    interrupt(&child);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("detached: the stack keeps running"), "{err}");
    assert_eq!(s.state_of("alpha"), "online");
    assert_eq!((s.pid_of("alpha"), s.pid_of("bravo")), before);
}

/// A `[services.NAME]` running `script` with `sh -c`, then sleeping.
fn scripted(name: &str, script: &str, extra: &str) -> String {
    format!("[services.{name}]\nshell = true\ncommand = \"{script}; sleep 600\"\n{extra}\n")
}

/// `until [ -f FILE ]; do sleep 0.02; done`
fn wait_file(f: &str) -> String {
    format!("until [ -f {f} ]; do sleep 0.02; done")
}

/// The recorded time at the start of `text`, if it is one.
fn time_of(text: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339(text.get(..24)?).ok()
}

/// Whether a log holds a line that is `text` (behind a time or not), not
/// only fpctl's note of the command that prints it.
fn has_line(log: &str, text: &str) -> bool {
    log.lines()
        .any(|l| l == text || l.ends_with(&format!("Z {text}")))
}

/// The lines of `out` whose text (after `name | `) is one of `texts`, as
/// `name | text`, the rest of the line as printed.
fn lines_with<'a>(out: &'a str, texts: &[&str]) -> Vec<&'a str> {
    out.lines()
        .filter(|l| texts.iter().any(|t| l.ends_with(&format!(" {t}"))))
        .collect()
}

/// alpha and bravo hand a baton back and forth through files, 200 ms
/// apart, so their lines have one true order: a1 b1 a2 b2 a3; a4 comes
/// when the test creates `s5`.
fn interleaved() -> Stack {
    let alpha = format!(
        "echo a1; sleep 0.2; touch s1; {}; echo a2; sleep 0.2; touch s3; {}; echo a3; {}; echo a4",
        wait_file("s2"),
        wait_file("s4"),
        wait_file("s5")
    );
    let bravo = format!(
        "{}; echo b1; sleep 0.2; touch s2; {}; echo b2; sleep 0.2; touch s4",
        wait_file("s1"),
        wait_file("s3")
    );
    Stack::new(&format!(
        "[project]\nlog_timestamps = true\n\n{}{}",
        scripted("alpha", &alpha, ""),
        scripted("bravo", &bravo, "")
    ))
}

const ORDER: [&str; 5] = ["a1", "b1", "a2", "b2", "a3"];

#[test]
fn recorded_times_merge_the_stack_history_in_true_order() {
    let s = interleaved();
    s.run(&["start"]).expect(0);
    wait_until("a3 in alpha's log", Duration::from_secs(20), || {
        has_line(&s.log("alpha"), "a3")
    });

    // Merged, in the order the lines were written, without the times.
    let all = s.run(&["logs"]).expect(0).stdout();
    let got = lines_with(&all, &ORDER);
    let want: Vec<String> = ORDER
        .iter()
        .map(|t| {
            format!(
                "{} | {t}",
                if t.starts_with('a') { "alpha" } else { "bravo" }
            )
        })
        .collect();
    assert_eq!(got, want, "{all}");
    assert!(
        all.lines().all(|l| !l.contains("Z ")),
        "a time shows without -t:\n{all}"
    );

    // -t: every line has a time, and they never go back.
    let timed = s.run(&["logs", "-t"]).expect(0).stdout();
    let times: Vec<std::time::SystemTime> = timed
        .lines()
        .map(|l| {
            let after = l.split_once(" | ").unwrap_or_else(|| panic!("{l}")).1;
            time_of(after).unwrap_or_else(|| panic!("no time in {l:?}:\n{timed}"))
        })
        .collect();
    assert!(times.len() >= 5, "{timed}");
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "times go back:\n{timed}"
    );
    assert_eq!(lines_with(&timed, &ORDER).len(), 5, "{timed}");

    // One service: as it wrote it.
    let one = s.run(&["logs", "alpha"]).expect(0).stdout();
    let texts: Vec<&str> = one.lines().filter(|l| !l.starts_with("[fpctl]")).collect();
    assert_eq!(texts, ["a1", "a2", "a3"], "{one}");

    // The file: a time on every line, fpctl's notes included, and plain
    // text for grep.
    let raw = s.log("alpha");
    assert!(raw.contains("Z [fpctl] starting: "), "{raw}");
    for line in raw.lines() {
        assert!(time_of(line).is_some(), "a line without a time: {line:?}");
    }
    let grep = std::process::Command::new("grep")
        .args(["-c", " a2$", ".fpctl/logs/alpha.log"])
        .current_dir(s.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&grep.stdout).trim(), "1");

    // -f -t on several: followed lines have their time too.
    let (mut child, seen) = spawn_collecting(&s, &["logs", "-f", "-t", "alpha", "bravo"]);
    wait_until("the history", Duration::from_secs(10), || {
        seen.lock().unwrap().lines().any(|l| l.ends_with(" a3"))
    });
    std::fs::write(s.file("s5"), "").unwrap();
    wait_until("a4 followed", Duration::from_secs(10), || {
        seen.lock().unwrap().lines().any(|l| l.ends_with(" a4"))
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.lock().unwrap().clone();
    let a4 = lines_with(&text, &["a4"]);
    assert_eq!(a4.len(), 1, "{text}");
    let after = a4[0].split_once(" | ").unwrap().1;
    assert!(time_of(after).is_some(), "{text}");
}

#[test]
fn since_leaves_out_lines_recorded_before_it() {
    let s = Stack::new(&scripted(
        "alpha",
        &format!(
            "echo early-1; echo early-2; {}; echo late-1; echo late-2",
            wait_file("go")
        ),
        "log_timestamps = true",
    ));
    s.run(&["start"]).expect(0);
    wait_until("the early lines", Duration::from_secs(10), || {
        has_line(&s.log("alpha"), "early-2")
    });
    std::thread::sleep(Duration::from_millis(500));
    let cut = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::write(s.file("go"), "").unwrap();
    wait_until("the late lines", Duration::from_secs(10), || {
        has_line(&s.log("alpha"), "late-2")
    });
    for since in [cut.as_str(), "2s"] {
        let out = s.run(&["logs", "--since", since, "alpha"]).expect(0);
        let text = out.stdout();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            ["late-1", "late-2"],
            "--since {since}:\n{}",
            out.all()
        );
        assert!(!out.stderr().contains("left out"), "{}", out.all());
    }
    // -n still limits what --since lets through.
    let last = s.run(&["logs", "--since", &cut, "-n", "1"]).expect(0);
    assert_eq!(last.stdout().trim(), "alpha | late-2", "{}", last.all());
}

#[test]
fn a_bad_since_is_a_usage_error_naming_it() {
    let s = Stack::new(&scripted("alpha", "echo hi", ""));
    let out = s.run(&["logs", "--since", "yesterday-ish"]).expect(2);
    let err = out.stderr();
    assert!(
        err.contains("\"yesterday-ish\" is neither a duration"),
        "{}",
        out.all()
    );
    assert!(out.stdout().is_empty(), "{}", out.all());
}

#[test]
fn a_service_without_times_is_shown_with_a_blank_column_and_named_by_since() {
    let s = Stack::new(&format!(
        "[project]\nlog_timestamps = true\n\n{}{}",
        scripted("alpha", "echo alpha-says", ""),
        scripted("bravo", "echo bravo-says", "log_timestamps = false")
    ));
    s.run(&["start"]).expect(0);
    wait_until("both lines", Duration::from_secs(10), || {
        has_line(&s.log("alpha"), "alpha-says") && has_line(&s.log("bravo"), "bravo-says")
    });
    assert!(time_of(&s.log("alpha")).is_some());
    assert!(time_of(&s.log("bravo")).is_none(), "{}", s.log("bravo"));

    // Only bravo: said once that nothing records times; still printed.
    let out = s.run(&["logs", "-t", "bravo"]).expect(0);
    assert_eq!(
        count_lines(&out.stderr(), "log_timestamps = true"),
        1,
        "{}",
        out.all()
    );
    let blank = " ".repeat(25);
    assert!(
        out.stdout().contains(&format!("{blank}bravo-says")),
        "{}",
        out.all()
    );

    // Both: alpha records times, so no note; bravo's text lines up with
    // alpha's behind a blank column.
    let out = s.run(&["logs", "-t"]).expect(0);
    assert!(!out.stderr().contains("log_timestamps"), "{}", out.all());
    let text = out.stdout();
    let a = lines_with(&text, &["alpha-says"]);
    let b = lines_with(&text, &["bravo-says"]);
    assert_eq!((a.len(), b.len()), (1, 1), "{text}");
    assert_eq!(
        a[0].find("alpha-says"),
        b[0].find("bravo-says"),
        "columns differ:\n{text}"
    );
    assert!(b[0].contains(&format!("| {blank}bravo-says")), "{text}");

    // --since cannot place bravo's lines: said once, and left out.
    let out = s.run(&["logs", "--since", "10m"]).expect(0);
    assert_eq!(count_lines(&out.stderr(), "bravo"), 1, "{}", out.all());
    assert!(out.stderr().contains("--since cannot"), "{}", out.all());
    assert!(!out.stdout().contains("bravo"), "{}", out.all());
    assert!(out.stdout().contains("alpha | alpha-says"), "{}", out.all());
}

#[test]
fn times_and_rotation_together_lose_no_line() {
    const N: usize = 3000;
    let s = Stack::new(&format!(
        "[services.writer]\ncommand = \"seq 1 {N}\"\noneshot = true\nlog_timestamps = true\nlog_max_size = \"4KB\"\nlog_keep = 100\n"
    ));
    s.run(&["start"]).expect(0);
    let dir = s.file(".fpctl/logs");
    let mut files: Vec<(u32, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let rank = match name.strip_prefix("writer.log") {
                Some("") => 0,
                Some(n) => n.strip_prefix('.')?.parse().ok()?,
                None => return None,
            };
            Some((rank, std::fs::read_to_string(dir.join(&name)).unwrap()))
        })
        .collect();
    assert!(
        files.len() > 10,
        "rotation did not happen: {} files",
        files.len()
    );
    // Oldest first: writer.log.N … writer.log.1, writer.log.
    files.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
    let mut numbers = Vec::new();
    for (rank, text) in &files {
        for line in text.lines() {
            let t =
                time_of(line).unwrap_or_else(|| panic!("writer.log.{rank}: no time on {line:?}"));
            assert!(t <= std::time::SystemTime::now());
            if let Ok(n) = line[25..].parse::<usize>() {
                numbers.push(n);
            }
        }
    }
    assert_eq!(
        numbers,
        (1..=N).collect::<Vec<_>>(),
        "lines lost or out of order"
    );

    // `logs` reads back through the rotated files.
    let since = s
        .run(&["logs", "writer", "--since", "10m"])
        .expect(0)
        .stdout();
    let shown: Vec<usize> = since.lines().filter_map(|l| l.parse().ok()).collect();
    assert_eq!(shown, (1..=N).collect::<Vec<_>>());
    let last = s.run(&["logs", "writer", "-n", "500"]).expect(0).stdout();
    let shown: Vec<usize> = last.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(shown.len() >= 498, "{} lines", shown.len());
    assert_eq!(shown.last(), Some(&N));
    assert!(shown.windows(2).all(|w| w[1] == w[0] + 1), "{last}");
}

#[test]
fn a_reload_that_turns_times_on_restarts_the_service() {
    let toml = |extra: &str| scripted("alpha", "echo hello", extra);
    let s = Stack::new(&toml(""));
    s.run(&["start"]).expect(0);
    let before = s.pid_of("alpha");
    std::fs::write(s.file("services.toml"), toml("log_timestamps = true")).unwrap();
    let out = s.run(&["reload"]).expect(0);
    assert!(out.all().contains("log_timestamps"), "{}", out.all());
    assert_ne!(s.pid_of("alpha"), before);
    wait_until("a stamped hello", Duration::from_secs(10), || {
        s.log("alpha")
            .lines()
            .any(|l| l.ends_with("Z hello") && time_of(l).is_some())
    });
}

/// `fpctl up` in the foreground: Ctrl-C stops everything, the last lines
/// the service wrote while stopping (and fpctl's note of its exit) are
/// printed, and the exit code is 130, as shells expect after Ctrl-C.
#[test]
fn up_in_the_foreground_exits_130_after_ctrl_c_with_the_last_lines_printed() {
    let s = Stack::new(
        "[services.polite]\nshell = true\ncommand = \"trap 'echo polite is leaving; exit 0' TERM; echo polite ready; while :; do sleep 0.05; done\"\n",
    );
    let (mut child, seen) = spawn_collecting(&s, &["up"]);
    wait_until("polite is up", Duration::from_secs(15), || {
        seen.lock().unwrap().contains("polite | polite ready")
    });
    let pid = s.pid_of("polite").expect("polite runs");
    interrupt(&child);
    let status = child.wait().unwrap();
    assert!(!pid_alive(pid), "polite still runs after up exited");
    // The pipe is closed once up exited: what it printed is all there.
    wait_until(
        "up's output read to its end",
        Duration::from_secs(5),
        || Arc::strong_count(&seen) == 1,
    );
    let out = seen.lock().unwrap().clone();
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(
        out.contains("polite | polite is leaving") && out.contains("polite | [fpctl] process"),
        "up exited before the last lines were printed:\n{out}"
    );
}

/// What a service writes that is not UTF-8 comes out of `fpctl logs` byte
/// for byte, as `cat` shows it: alone, merged, with -t, --since and -f.
#[test]
fn logs_print_what_the_service_wrote_byte_for_byte() {
    const RAW: &[u8] = b"bytes \xff\xfe and \xc3( end";
    let s = Stack::new(&format!(
        "{}log_timestamps = true\n{}",
        scripted(
            "timed",
            "printf 'bytes \\\\377\\\\376 and \\\\303( end\\\\n'",
            ""
        ),
        scripted(
            "plain",
            "printf 'bytes \\\\377\\\\376 and \\\\303( end\\\\n'",
            ""
        ),
    ));
    s.run(&["start"]).expect(0);
    let log = |name: &str| std::fs::read(s.file(&format!(".fpctl/logs/{name}.log"))).unwrap();
    wait_until(
        "both services wrote their line",
        Duration::from_secs(10),
        || {
            ["timed", "plain"]
                .iter()
                .all(|n| log(n).windows(RAW.len()).any(|w| w == RAW))
        },
    );
    let bytes_of = |args: &[&str]| s.run(args).expect(0).0.stdout;
    let has = |out: &[u8], line: &[u8]| out.windows(line.len()).any(|w| w == line);
    let mut alone = RAW.to_vec();
    alone.push(b'\n');
    for name in ["timed", "plain"] {
        let out = bytes_of(&["logs", name]);
        assert!(
            has(&out, &alone),
            "logs {name}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    let merged = bytes_of(&["logs"]);
    for prefix in [&b"timed | "[..], b"plain | "] {
        let line = [prefix, RAW].concat();
        assert!(
            has(&merged, &line),
            "merged: {}",
            String::from_utf8_lossy(&merged)
        );
    }
    let out = bytes_of(&["logs", "-t", "timed"]);
    assert!(
        has(&out, &[b"Z ", RAW].concat()),
        "-t: {}",
        String::from_utf8_lossy(&out)
    );
    let out = bytes_of(&["logs", "--since", "1h", "timed"]);
    assert!(
        has(&out, &alone),
        "--since: {}",
        String::from_utf8_lossy(&out)
    );
    assert!(!has(&out, "\u{fffd}".as_bytes()));

    // Followed: a line written after `logs -f` began.
    let mut child = s
        .cmd(&["logs", "-f", "plain"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            let _ = tx.send(all.clone());
        }
    });
    let later = b"later \xff line\n";
    let wait_for = |needle: &[u8]| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = rx
                .recv_timeout(Duration::from_millis(200))
                .unwrap_or_default();
            if has(&got, needle) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
        }
    };
    assert!(wait_for(&alone), "the history before following");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(s.file(".fpctl/logs/plain.log"))
            .unwrap();
        f.write_all(later).unwrap();
    }
    let followed = wait_for(later);
    let _ = child.kill();
    let _ = child.wait();
    assert!(followed, "-f did not print the line byte for byte");
}

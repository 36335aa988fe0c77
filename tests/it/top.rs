//! `fpctl top`. The screens are drawn on ratatui's TestBackend from a
//! status stream recorded off a real supervisor's socket
//! (`tests/snapshots/top/stream.jsonl`) and compared with their snapshots
//! (`BLESS=1` rewrites them). Then the real binary runs under a real pty
//! (tmux) against a real stack: what it shows, its keys, a crash seen
//! live, quitting, signals and a panic that leave the terminal as it was;
//! and off a terminal, the pipe mode and `--once`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fpctl::control::{Envelope, Response};
use fpctl::top::{draw, Action, App, Key, Look, Ring, Tail};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

use crate::common::*;

fn snapshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/top")
}

/// The app after the recorded stream: a snapshot, then a restart of `db`
/// and a `kill -9` of `api` as they happened, on a frozen clock.
fn recorded() -> App {
    let text = std::fs::read_to_string(snapshots().join("stream.jsonl")).unwrap();
    let mut app = App::new(vec![
        ("core".into(), Some("Core".into())),
        ("apps".into(), Some("Applications".into())),
    ]);
    let now = Instant::now();
    app.now = Some(now);
    app.supervisor_started = now.checked_sub(Duration::from_secs(95));
    for line in text.lines() {
        let e: Envelope<Response> = serde_json::from_str(line).expect("a recorded line");
        app.apply(e.body);
    }
    app
}

fn terminal(app: &App, w: u16, h: u16, color: bool) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(f, app, Look { color })).unwrap();
    t
}

/// The screen as text, one line per row, trailing blanks cut.
fn text_of(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width)
            .map(|x| buf[(x, y)].symbol().to_string())
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn screen(app: &App, w: u16, h: u16) -> String {
    text_of(&terminal(app, w, h, false))
}

/// Compare with `tests/snapshots/top/NAME.txt`; BLESS=1 rewrites it.
fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshots().join(format!("{name}.txt"));
    if std::env::var_os("BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "the {name} screen differs from {} (BLESS=1 rewrites it):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

fn keys(app: &mut App, keys: &str) -> Vec<Action> {
    keys.chars().filter_map(|c| app.key(Key::Char(c))).collect()
}

#[test]
fn the_table_screen_from_a_recorded_stream() {
    let app = recorded();
    let s = screen(&app, 120, 30);
    // What the stream said last: db restarted (new pid), api crashed once
    // and is back.
    assert!(s.contains("19780"), "{s}");
    assert!(s.contains("19992"), "{s}");
    assert!(s.contains("broken"), "{s}");
    assert_snapshot("table_120x30", &s);
}

#[test]
fn the_narrow_screen_at_80x24_keeps_every_service_state_and_detail() {
    let app = recorded();
    let s = screen(&app, 80, 24);
    for name in ["db", "cache", "api", "worker-1", "worker-2", "broken"] {
        assert!(
            s.lines()
                .any(|l| l.trim_start().starts_with(&format!("{name} "))),
            "{name} is not on the 80x24 screen:\n{s}"
        );
    }
    assert!(s.lines().all(|l| l.chars().count() <= 80));
    assert!(s.contains("STATE") && s.contains("DETAIL"), "{s}");
    assert_snapshot("narrow_80x24", &s);
}

#[test]
fn the_log_pane_renders_a_services_colours_and_no_other_escape() {
    let mut app = recorded();
    keys(&mut app, "j");
    assert_eq!(app.selected.as_deref(), Some("cache"));
    let mut ring = Ring::default();
    Tail::open(
        vec![("cache".into(), snapshots().join("cache.log"))],
        &mut ring,
    );
    app.logs = ring;
    keys(&mut app, "t");
    let t = terminal(&app, 100, 24, true);
    let s = text_of(&t);
    assert!(s.contains("red alert and green bold"), "{s}");
    assert!(!s.contains("[31m") && !s.contains("]0;title"), "{s}");
    assert!(s.contains("no screen clearing here"), "{s}");
    // The service's red is a style of the cells, not text.
    let buf = t.backend().buffer();
    let red = (0..buf.area.height)
        .flat_map(|y| (0..buf.area.width).map(move |x| (x, y)))
        .find(|&(x, y)| {
            buf[(x, y)].symbol() == "r" && buf[(x + 1, y)].symbol() == "e" && {
                let next: String = (x..x + 9).map(|x| buf[(x, y)].symbol()).collect();
                next == "red alert"
            }
        })
        .expect("a red alert on the screen");
    assert_eq!(buf[red].fg, Color::Red);
    assert!(buf.content.iter().all(|c| !c.symbol().contains('\x1b')));
    assert_snapshot("log_pane", &screen(&app, 100, 24));
}

#[test]
fn the_merged_log_pane_prefixes_each_line_with_its_service_in_time_order() {
    let mut app = recorded();
    let mut ring = Ring::default();
    Tail::open(
        vec![
            ("cache".into(), snapshots().join("cache.log")),
            ("db".into(), snapshots().join("db.log")),
        ],
        &mut ring,
    );
    app.logs = ring;
    keys(&mut app, "az");
    let s = screen(&app, 80, 24);
    let lines: Vec<&str> = s.lines().filter(|l| l.contains(" | ")).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("cache | red alert")),
        "{s}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("db    | line 23")),
        "{s}"
    );
    // In time order: db's line 22 (11:12:05.209) before cache's 11:12:05.212.
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
    assert!(at("line 22") < at("line 23"));
    assert_snapshot("merged_log_zoomed", &s);
}

#[test]
fn the_filter_screen_shows_only_matching_services() {
    let mut app = recorded();
    keys(&mut app, "/wor");
    let s = screen(&app, 80, 24);
    assert!(s.contains("worker-1") && s.contains("worker-2"), "{s}");
    assert!(!s.contains(" db ") && !s.contains("broken"), "{s}");
    assert_eq!(app.selected.as_deref(), Some("worker-1"));
    assert_snapshot("filter", &s);
}

#[test]
fn the_help_screen_lists_every_key() {
    let mut app = recorded();
    keys(&mut app, "?");
    let s = screen(&app, 80, 24);
    for (key, _) in fpctl::top::KEYS {
        assert!(s.contains(key), "{key} is not in the help:\n{s}");
    }
    assert_snapshot("help", &s);
    // Any key closes it.
    keys(&mut app, " ");
    assert!(!screen(&app, 80, 24).contains("any key closes this"));
}

#[test]
fn the_events_pane_and_the_stop_everything_question() {
    let mut app = recorded();
    keys(&mut app, "e");
    let s = screen(&app, 80, 24);
    assert!(s.contains("killed by SIGKILL"), "{s}");
    assert_snapshot("events", &s);
    keys(&mut app, "X");
    assert_snapshot("stop_everything", &screen(&app, 80, 24));
}

#[test]
fn keys_ask_for_actions_on_the_selected_service_and_stop_everything_only_after_yes() {
    let mut app = recorded();
    assert_eq!(keys(&mut app, "jj"), []);
    assert_eq!(app.selected.as_deref(), Some("api"));
    assert_eq!(keys(&mut app, "r"), [Action::Restart("api".into())]);
    assert_eq!(keys(&mut app, "x"), [Action::Stop("api".into())]);
    assert_eq!(keys(&mut app, "s"), [Action::Start("api".into())]);
    assert_eq!(keys(&mut app, "p"), [Action::Probe("api".into())]);
    assert_eq!(keys(&mut app, "Xn"), []);
    assert_eq!(keys(&mut app, "Xy"), [Action::StopAll]);
    assert_eq!(keys(&mut app, "R"), [Action::ReloadPlan]);
    app.plan(
        &[fpctl::control::Change {
            service: "api".into(),
            kind: fpctl::control::ChangeKind::Changed,
            reasons: vec!["command".into()],
            live: Vec::new(),
        }],
        None,
    );
    assert!(screen(&app, 80, 24).contains("y applies it"));
    assert_eq!(keys(&mut app, "y"), [Action::ReloadApply]);
    assert_eq!(app.key(Key::Ctrl('c')), Some(Action::Quit));
    assert_eq!(keys(&mut app, "q"), [Action::Quit]);
}

// ---- under a real pty ----

/// A tmux server of the test's own (its socket in the stack's folder)
/// running one shell command in an 80x24 (or other) window; killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Run `fpctl top ARGS` in `dir`; when it exits the shell prints its
    /// exit code and whether the tty is back in canonical mode with echo.
    fn top(dir: &Path, args: &str, env: &str, size: (u16, u16)) -> Tmux {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = dir.join(format!("tmux{n}.sock"));
        let script = format!(
            "cd '{}' && {env} '{BIN}' top {args}; echo EXIT=$?; \
             stty -a | tr ' ;' '\\n\\n' | grep -E '^-?(icanon|echo)$' | tr '\\n' ' '; echo; sleep 600",
            dir.display()
        );
        let t = Tmux { socket };
        let status = t
            .cmd()
            .args(["-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &size.0.to_string(), "-y", &size.1.to_string()])
            .args(["-s", "t", &script])
            .env("TERM", "xterm-256color")
            .env("NO_COLOR", "1")
            .env_remove("FPCTL_FILE")
            .status()
            .expect("tmux runs");
        assert!(status.success());
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn display(&self, what: &str) -> String {
        let out = self
            .cmd()
            .args(["display", "-p", "-t", "t", what])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let ok = self
                .cmd()
                .args(["send-keys", "-t", "t", k])
                .status()
                .unwrap()
                .success();
            assert!(ok);
        }
    }

    /// Wait until the screen satisfies `cond`; the screen.
    fn wait(&self, what: &str, limit: Duration, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.screen();
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pid of `fpctl top`: the child of the pane's shell.
    fn top_pid(&self) -> i32 {
        let shell = self.display("#{pane_pid}");
        let children =
            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
        children
            .split_whitespace()
            .next()
            .expect("the shell runs fpctl top")
            .parse()
            .unwrap()
    }

    /// The terminal is as it was: the normal screen, a cursor, canonical
    /// mode and echo.
    fn assert_restored(&self, s: &str) {
        assert_eq!(self.display("#{alternate_on}"), "0", "{s}");
        assert_eq!(self.display("#{cursor_flag}"), "1", "{s}");
        assert!(
            s.contains("icanon echo"),
            "the tty is not back to normal:\n{s}"
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// A row of the table: the cells under each heading, by the heading's
/// place on the screen.
fn cell(screen: &str, service: &str, heading: &str) -> Option<String> {
    let head = screen.lines().find(|l| l.contains("SERVICE"))?;
    let start = head.find(heading)?;
    let end = head[start + heading.len()..]
        .find(|c: char| c != ' ')
        .map(|i| start + heading.len() + i)
        .unwrap_or(head.len());
    let row = screen
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{service} ")))?;
    let row: Vec<char> = row.chars().collect();
    let cell: String = row
        .get(start..end.min(row.len()))
        .unwrap_or_default()
        .iter()
        .collect();
    Some(cell.trim().to_string())
}

fn stack() -> Stack {
    let port = free_port();
    Stack::new(&format!(
        r#"
[project]
name = "toptest"

[[tier]]
name = "core"

[[tier]]
name = "apps"

{api}
tier = "core"

[services.worker]
tier = "apps"
command = "sleep 600"

[services.mailer]
tier = "apps"
command = "sleep 600"
"#,
        api = http_service("api", port, "", "").trim_end()
    ))
}

#[test]
fn top_under_a_pty_shows_every_service_restarts_one_sees_a_crash_and_quits_cleanly() {
    let s = stack();
    s.run(&["start"]).expect(0);
    let t = Tmux::top(s.path(), "", "", (80, 24));
    let screen = t.wait("every service online", Duration::from_secs(10), |sc| {
        ["api", "worker", "mailer"]
            .iter()
            .all(|n| cell(sc, n, "STATE").as_deref() == Some("online"))
    });
    assert!(screen.contains("toptest"), "{screen}");

    // `r` on worker (selected through the filter) gives it a new pid.
    let old = s.pid_of("worker").unwrap().to_string();
    assert_eq!(
        cell(&screen, "worker", "PID").as_deref(),
        Some(old.as_str())
    );
    t.keys(&["/", "worker", "Enter", "r"]);
    let screen = t.wait("worker restarted", Duration::from_secs(15), |sc| {
        cell(sc, "worker", "PID").is_some_and(|p| p != old && p != "-")
            && cell(sc, "worker", "STATE").as_deref() == Some("online")
    });
    assert!(screen.contains("restarted worker"), "{screen}");
    let new = cell(&screen, "worker", "PID").unwrap();
    assert_eq!(s.pid_of("worker").unwrap().to_string(), new);

    // A crash shows from the stream within 2 s.
    t.keys(&["Escape"]);
    t.wait("the filter cleared", Duration::from_secs(5), |sc| {
        cell(sc, "api", "STATE").is_some()
    });
    let pid = s.pid_of("api").unwrap();
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    t.wait("api's restart", Duration::from_secs(2), |sc| {
        cell(sc, "api", "RESTARTS").as_deref() == Some("1")
    });
    let seen = killed.elapsed();
    assert!(seen < Duration::from_secs(2), "{seen:?}");
    t.wait("api online again", Duration::from_secs(15), |sc| {
        cell(sc, "api", "STATE").as_deref() == Some("online")
            && cell(sc, "api", "PID").is_some_and(|p| p != pid.to_string())
    });

    // A resize redraws at the new size, with more columns.
    let ok = t
        .cmd()
        .args(["resize-window", "-t", "t", "-x", "170", "-y", "40"])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    t.wait("the wide columns", Duration::from_secs(5), |sc| {
        sc.contains("RESTARTS_TOTAL") && sc.contains("PROBES")
    });
    let ok = t
        .cmd()
        .args(["resize-window", "-t", "t", "-x", "80", "-y", "24"])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    t.wait("back to 80 columns", Duration::from_secs(5), |sc| {
        !sc.contains("RESTARTS_TOTAL")
    });

    // `q` leaves within 1 s, the terminal as it was, the stack running.
    let supervisor = s.supervisor_pid().unwrap();
    let asked = Instant::now();
    t.keys(&["q"]);
    let screen = t.wait("top exits", Duration::from_secs(5), |sc| {
        sc.contains("icanon")
    });
    let took = asked.elapsed();
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(took < Duration::from_secs(1), "q took {took:?}");
    t.assert_restored(&screen);
    assert!(pid_alive(supervisor));
    for name in ["api", "worker", "mailer"] {
        assert_eq!(s.state_of(name), "online", "{name}");
    }
    s.stop_all();
}

#[test]
fn top_with_no_supervisor_exits_1_and_says_how_to_start_one() {
    let s = stack();
    let t = Tmux::top(s.path(), "", "", (80, 24));
    let screen = t.wait("top exits", Duration::from_secs(10), |sc| {
        sc.contains("icanon")
    });
    assert!(screen.contains("EXIT=1"), "{screen}");
    assert!(screen.contains("no supervisor is running"), "{screen}");
    assert!(screen.contains("`fpctl start`"), "{screen}");
    t.assert_restored(&screen);
    // Off a terminal too.
    let r = s.run(&["top", "--once"]).expect(1);
    assert!(r.stderr().contains("fpctl start"), "{}", r.all());
}

#[test]
fn top_restores_the_terminal_after_sigterm_sighup_and_a_panic() {
    let s = stack();
    s.run(&["start"]).expect(0);
    for (signal, code) in [
        (nix::sys::signal::Signal::SIGTERM, 143),
        (nix::sys::signal::Signal::SIGHUP, 129),
    ] {
        let t = Tmux::top(s.path(), "", "", (80, 24));
        t.wait("top's table", Duration::from_secs(10), |sc| {
            cell(sc, "mailer", "STATE").as_deref() == Some("online")
        });
        assert_eq!(t.display("#{alternate_on}"), "1");
        let pid = t.top_pid();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
        let screen = t.wait("top exits", Duration::from_secs(5), |sc| {
            sc.contains("icanon")
        });
        assert!(
            screen.contains(&format!("EXIT={code}")),
            "{signal}: {screen}"
        );
        t.assert_restored(&screen);
        drop(t);
    }
    let t = Tmux::top(s.path(), "", "FPCTL_TOP_TEST_PANIC=1", (80, 24));
    let screen = t.wait("top panics", Duration::from_secs(10), |sc| {
        sc.contains("icanon")
    });
    assert!(screen.contains("EXIT=101"), "{screen}");
    assert!(screen.contains("panicking on purpose"), "{screen}");
    t.assert_restored(&screen);
    // The stack never noticed.
    assert_eq!(s.state_of("mailer"), "online");
    s.stop_all();
}

#[test]
fn top_off_a_terminal_prints_the_table_every_2s_and_once_exits_as_check() {
    let mut s = stack();
    s.run(&["start"]).expect(0);
    let r = s.run(&["top", "--once"]).expect(0);
    assert!(r.stdout().contains("RESTARTS_TOTAL"), "{}", r.all());
    assert!(r.stdout().contains("3 online"), "{}", r.all());

    let mut child = s
        .cmd(&["top"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    s.own_pids.push(pid);
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    let mut summaries = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while summaries.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, line) = rx.recv_timeout(left).expect("three tables within 10 s");
        assert!(!line.contains('\x1b'), "colour in a pipe: {line:?}");
        if line.contains(" online,") {
            summaries.push(at);
        }
    }
    for pair in summaries.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > Duration::from_millis(1500) && gap < Duration::from_millis(3000),
            "{gap:?} between tables"
        );
    }
    let _ = child.kill();
    let _ = child.wait();

    // `--once` exits 1 when something is not online.
    s.run(&["stop", "mailer"]).expect(0);
    let r = s.run(&["top", "--once"]).expect(1);
    assert!(r.stdout().contains("stopped"), "{}", r.all());
    s.stop_all();
}

#[test]
fn top_stops_starts_probes_reloads_with_its_plan_and_stops_everything_after_yes() {
    let s = stack();
    let t = Tmux::top(s.path(), "--start", "", (100, 30));
    t.wait("started and shown", Duration::from_secs(20), |sc| {
        ["api", "worker", "mailer"]
            .iter()
            .all(|n| cell(sc, n, "STATE").as_deref() == Some("online"))
    });
    // `x` stops the selected service, `s` starts it again.
    t.keys(&["/", "mailer", "Enter", "x"]);
    let sc = t.wait("mailer stopped", Duration::from_secs(15), |sc| {
        cell(sc, "mailer", "STATE").as_deref() == Some("stopped")
    });
    t.wait("the stop's result", Duration::from_secs(5), |sc| {
        sc.contains("stopped mailer")
    });
    assert_eq!(s.state_of("mailer"), "stopped", "{sc}");
    t.keys(&["s"]);
    t.wait("mailer online again", Duration::from_secs(15), |sc| {
        cell(sc, "mailer", "STATE").as_deref() == Some("online") && sc.contains("started mailer")
    });
    // `p` probes; a service with nothing to probe says why.
    t.keys(&["p"]);
    t.wait("the probe's answer", Duration::from_secs(5), |sc| {
        sc.contains("probe mailer: it has neither a health check nor a port")
    });
    t.keys(&["Escape", "/", "api", "Enter", "p"]);
    t.wait("api's probe", Duration::from_secs(10), |sc| {
        sc.contains("probe api: healthy in")
    });
    t.keys(&["Escape"]);

    // `R` shows the plan; nothing changes until `y`.
    let old = s.pid_of("mailer").unwrap();
    let toml = std::fs::read_to_string(s.file("services.toml")).unwrap();
    s.write(
        "services.toml",
        &toml.replace(
            "[services.mailer]\ntier = \"apps\"\ncommand = \"sleep 600\"",
            "[services.mailer]\ntier = \"apps\"\ncommand = \"sleep 601\"",
        ),
    );
    t.keys(&["R"]);
    let sc = t.wait("the reload plan", Duration::from_secs(10), |sc| {
        sc.contains("y applies it")
    });
    assert!(sc.contains("mailer"), "{sc}");
    assert_eq!(s.pid_of("mailer"), Some(old));
    t.keys(&["y"]);
    t.wait("reloaded", Duration::from_secs(15), |sc| {
        sc.contains("reloaded services.toml")
            && cell(sc, "mailer", "PID").is_some_and(|p| p != old.to_string() && p != "-")
    });

    // `X` asks first; `n` keeps everything, `y` stops the stack.
    let supervisor = s.supervisor_pid().unwrap();
    t.keys(&["X"]);
    t.wait("the question", Duration::from_secs(5), |sc| {
        sc.contains("Stop every service and the supervisor?")
    });
    t.keys(&["n"]);
    t.wait("nothing stopped", Duration::from_secs(5), |sc| {
        sc.contains("nothing stopped")
    });
    assert!(pid_alive(supervisor));
    t.keys(&["X", "y"]);
    t.wait("the supervisor gone", Duration::from_secs(20), |sc| {
        sc.contains("the supervisor has exited")
    });
    wait_until("the supervisor exits", Duration::from_secs(10), || {
        !pid_alive(supervisor)
    });
    t.keys(&["q"]);
    let sc = t.wait("top exits", Duration::from_secs(5), |sc| {
        sc.contains("icanon")
    });
    assert!(sc.contains("EXIT=0"), "{sc}");
}

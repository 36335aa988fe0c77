//! The test harness: a project in a temp dir, the real fpctl binary, and a
//! guard that stops everything the test started, by the pids and process
//! groups fpctl recorded, even when the test fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_fpctl");

/// The Python test service, by absolute path.
pub fn httpd() -> String {
    format!("{}/tests/fixtures/httpd.py", env!("CARGO_MANIFEST_DIR"))
}

/// A `[services.NAME]` table running the test HTTP service on `port` with
/// an http health check; `args` go to httpd.py, `extra` is more TOML.
pub fn http_service(name: &str, port: u16, args: &str, extra: &str) -> String {
    format!(
        r#"
[services.{name}]
command = "python3 {httpd} --port ${{PORT}} --name {name} {args}"
port = {port}
health = {{ http = "/health" }}
{extra}
"#,
        httpd = httpd()
    )
}

/// The ports tests hand to services: below the kernel's ephemeral range
/// (`ip_local_port_range`), so that no outgoing connection of another test
/// (the connection-flood test holds hundreds) can take a port between the
/// moment a test picks it and the moment its service binds it. Each pick
/// moves a counter on, so two tests of this run never get the same port.
fn port_pool() -> (u32, u32) {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    if low > 12_000 {
        (10_000, low)
    } else {
        (61_000, 65_535)
    }
}

static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// `n` consecutive ports that are all free right now, and that no other
/// pick of this run has handed out.
pub fn free_range(n: u16) -> u16 {
    use std::sync::atomic::Ordering;
    let (lo, hi) = port_pool();
    let span = hi - lo;
    let n32 = u32::from(n);
    // Start where another test run on this machine is unlikely to be.
    let _ = NEXT_PORT.compare_exchange(
        0,
        (std::process::id() * 7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..2000 {
        let offset = NEXT_PORT.fetch_add(n32, Ordering::SeqCst) % span;
        if offset + n32 > span {
            continue;
        }
        let first = (lo + offset) as u16;
        if (first..first + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return first;
        }
    }
    panic!("no {n} consecutive free ports found in {lo}-{hi}");
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    free_range(1)
}

/// `n` free ports, all different.
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

/// Poll `cond` until it holds or `timeout` passes; panics with `what`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)) != Some("Z"),
        Err(_) => false,
    }
}

/// How long one fpctl command may take in a test before the test fails.
/// Generous: the slowest legitimate command is a first start with a real
/// `pip install` or `npm install` on a loaded machine.
pub const RUN_LIMIT: Duration = Duration::from_secs(180);

/// How long the cleanup `fpctl stop` may take.
pub const STOP_LIMIT: Duration = Duration::from_secs(30);

/// Run `cmd` with its output captured; kill it after `limit`. `Err` holds
/// what it printed until then.
pub fn output_within(mut cmd: Command, limit: Duration) -> Result<Output, Output> {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fpctl");
    let pipe_reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = pipe_reader(Box::new(child.stdout.take().unwrap()));
    let err = pipe_reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let (status, finished) = loop {
        if let Some(status) = child.try_wait().expect("wait for fpctl") {
            break (status, true);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break (child.wait().expect("wait for fpctl"), false);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // A background supervisor may hold the pipes open after a killed
    // command: read what is there without waiting for its end.
    let collect = |h: std::thread::JoinHandle<Vec<u8>>| {
        if finished {
            return h.join().unwrap_or_default();
        }
        let until = Instant::now() + Duration::from_millis(500);
        while !h.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            h.join().unwrap_or_default()
        } else {
            b"(output unavailable: the pipe is still held open)".to_vec()
        }
    };
    let output = Output {
        status,
        stdout: collect(out),
        stderr: collect(err),
    };
    if finished {
        Ok(output)
    } else {
        Err(output)
    }
}

pub struct Stack {
    pub dir: tempfile::TempDir,
    /// Extra pids the test started itself, killed on drop.
    pub own_pids: Vec<i32>,
    /// Set when the cleanup stop hung: the drop then fails the test.
    stop_hung: bool,
}

impl Stack {
    /// A project whose services.toml is `toml`.
    pub fn new(toml: &str) -> Stack {
        Stack::new_in(&std::env::temp_dir(), toml)
    }

    /// A project in a new folder under `parent`.
    pub fn new_in(parent: &Path, toml: &str) -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("fpctl-test")
            .tempdir_in(parent)
            .expect("temp dir");
        std::fs::write(dir.path().join("services.toml"), toml).unwrap();
        Stack {
            dir,
            own_pids: Vec::new(),
            stop_hung: false,
        }
    }

    /// A project folder with no services.toml yet (for `init` / `import`).
    pub fn empty() -> Stack {
        let s = Stack::new("");
        std::fs::remove_file(s.file("services.toml")).unwrap();
        s
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.file(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, text).unwrap();
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("FPCTL_FILE")
            .stdin(Stdio::null());
        c
    }

    /// Run fpctl to completion, failing the test (not hanging it) when it
    /// takes longer than [`RUN_LIMIT`].
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_within(args, RUN_LIMIT)
    }

    /// Run fpctl to completion within `limit`, or fail the test.
    pub fn run_within(&self, args: &[&str], limit: Duration) -> Run {
        let what = format!("fpctl {}", args.join(" "));
        match output_within(self.cmd(args), limit) {
            Ok(out) => Run(out),
            Err(partial) => panic!(
                "{what} did not finish within {limit:?}; it was killed. Output so far:\n{}",
                Run(partial).all()
            ),
        }
    }

    /// `check --json`, parsed.
    pub fn check_json(&self) -> (i32, Value) {
        let r = self.run(&["check", "--json"]);
        let v: Value = serde_json::from_str(&r.stdout())
            .unwrap_or_else(|e| panic!("check --json printed no JSON ({e}):\n{}", r.all()));
        (r.code(), v)
    }

    /// One service's entry in `check --json`.
    pub fn service(&self, name: &str) -> Value {
        let (_, v) = self.check_json();
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in check --json"))
    }

    pub fn state_of(&self, name: &str) -> String {
        self.service(name)["state"].as_str().unwrap().to_string()
    }

    pub fn pid_of(&self, name: &str) -> Option<i32> {
        self.service(name)["pid"].as_i64().map(|p| p as i32)
    }

    /// The state file fpctl keeps.
    pub fn saved_state(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.file(".fpctl/state.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn supervisor_pid(&self) -> Option<i32> {
        self.saved_state()?["supervisor_pid"]
            .as_i64()
            .map(|p| p as i32)
    }

    /// Every pid fpctl recorded for a service.
    pub fn recorded_pids(&self) -> Vec<i32> {
        let Some(state) = self.saved_state() else {
            return Vec::new();
        };
        let mut pids: Vec<i32> = state["services"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|s| s["pid"].as_i64())
                    .map(|p| p as i32)
                    .collect()
            })
            .unwrap_or_default();
        pids.extend(state["supervisor_pid"].as_i64().map(|p| p as i32));
        pids
    }

    /// `fpctl stop`, then wait until every process it recorded is gone.
    pub fn stop_all(&self) {
        let pids = self.recorded_pids();
        self.run(&["stop"]).expect(0);
        wait_until(
            "every process fpctl started is gone",
            Duration::from_secs(15),
            || pids.iter().all(|&p| !pid_alive(p)),
        );
    }

    pub fn log(&self, service: &str) -> String {
        std::fs::read_to_string(self.file(&format!(".fpctl/logs/{service}.log")))
            .unwrap_or_default()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Recorded with their start times, so a pid reused by another
        // process after fpctl recorded it is never signalled.
        let recorded: Vec<(i32, u64)> = self
            .saved_state()
            .map(|state| {
                let mut v: Vec<(i32, u64)> = state["services"]
                    .as_object()
                    .map(|m| {
                        m.values()
                            .filter_map(|s| Some((s["pid"].as_i64()? as i32, s["ticks"].as_u64()?)))
                            .collect()
                    })
                    .unwrap_or_default();
                if let (Some(p), Some(t)) = (
                    state["supervisor_pid"].as_i64(),
                    state["supervisor_ticks"].as_u64(),
                ) {
                    v.push((p as i32, t));
                }
                v
            })
            .unwrap_or_default();
        // Bounded, so that a stop that hangs fails the test instead of
        // hanging it; the kills below clean up either way.
        if let Err(partial) = output_within(self.cmd(&["stop"]), STOP_LIMIT) {
            eprintln!(
                "cleanup: fpctl stop did not finish within {STOP_LIMIT:?}:\n{}",
                Run(partial).all()
            );
            if !std::thread::panicking() {
                self.stop_hung = true;
            }
        }
        // Whatever is left: the groups and pids recorded (if still the same
        // processes), then our own.
        let still_ours = recorded
            .into_iter()
            .filter(|&(pid, ticks)| fpctl::process::is_same_process(pid, ticks))
            .map(|(pid, _)| pid);
        for pid in still_ours.chain(self.own_pids.iter().copied()) {
            // SAFETY: kill(2) with a recorded pid or process group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
        }
        if self.stop_hung {
            panic!("the cleanup `fpctl stop` hung for {STOP_LIMIT:?}");
        }
    }
}

/// Output of one fpctl run, with helpers for assertions.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }
    /// Assert the exit code, showing all output when it differs.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(self.code(), code, "unexpected exit code:\n{}", self.all());
        self
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// A plain HTTP/1.0 GET on 127.0.0.1:`port`: the status code and the body,
/// or None when nothing answers within 5 s.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// How many lines of `text` contain `needle`.
pub fn count_lines(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

impl Stack {
    /// Start `python3 tests/fixtures/httpd.py ARGS…` by hand (not through
    /// fpctl), in its own process group; its pid is killed on drop. It is
    /// deliberately not reaped: a zombie's pid cannot be reused before the
    /// drop signals it (and `pid_alive` treats a zombie as dead).
    #[allow(clippy::zombie_processes)]
    pub fn spawn_httpd(&mut self, args: &[&str]) -> i32 {
        use std::os::unix::process::CommandExt;
        let child = Command::new("python3")
            .arg(httpd())
            .args(args)
            .current_dir(self.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn python3 httpd.py");
        let pid = child.id() as i32;
        self.own_pids.push(pid);
        pid
    }
}

//! Chaos tests: the real fpctl binary against real processes, each test
//! trying to break one promise (restart accounting under random kills, a
//! bounded crash loop, lossless log rotation, the memory limit, secrets,
//! the socket's owner check, concurrent commands).

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use serde_json::Value;

// ---------------------------------------------------------------- helpers

/// xorshift64*: enough randomness to pick victims and pauses.
struct Rng(u64);

impl Rng {
    fn seeded() -> (Rng, u64) {
        let seed = std::env::var("FPCTL_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                d.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
            });
        (Rng(seed.max(1)), seed)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// The fields of /proc/PID/stat after the command name: index 0 is field 3
/// (state), so field N is at index N - 3.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// A process's start time (field 22), to tell it from a later one that
/// reuses its pid.
fn start_ticks(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// User + system CPU time of a process (fields 14 and 15), in clock ticks.
fn cpu_ticks(pid: i32) -> Option<u64> {
    let f = stat_fields(pid)?;
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Whether the very process that had `ticks` as its start time still lives.
fn same_process_alive(pid: i32, ticks: u64) -> bool {
    pid_alive(pid) && start_ticks(pid) == Some(ticks)
}

/// The value of `var` in a process's environment.
fn environ_var(pid: i32, var: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{var}=");
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Every live (non-zombie) process whose FPCTL_INSTANCE is exactly `marker`.
fn marked_processes(marker: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid_alive(pid))
        .filter(|&pid| environ_var(pid, "FPCTL_INSTANCE").as_deref() == Some(marker))
        .collect()
}

/// `fpctl events [SVC] --json`, parsed, one object per event.
fn events_json(s: &Stack, service: &str) -> Vec<Value> {
    let r = s.run(&["events", service, "--json", "-n", "100000"]);
    assert_eq!(r.code(), 0, "events failed:\n{}", r.all());
    r.stdout()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect()
}

fn kinds<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// `[services.NAME]` running httpd.py with an http health check on
/// /health (plus `health_extra` fields) and any `extra` TOML lines.
fn http_service(name: &str, port: u16, health_extra: &str, extra: &str) -> String {
    format!(
        r#"
[services.{name}]
command = "python3 {httpd} --port ${{PORT}} --name {name}"
port = {port}
health = {{ http = "/health"{health_extra} }}
{extra}
"#,
        httpd = httpd()
    )
}

fn all_services(v: &Value) -> &Vec<Value> {
    v["services"].as_array().expect("services array")
}

fn states(v: &Value) -> String {
    all_services(v)
        .iter()
        .map(|s| format!("{}={}", s["name"].as_str().unwrap_or("?"), s["state"]))
        .collect::<Vec<_>>()
        .join(" ")
}

// ------------------------------------------------------------------ tests

/// Random SIGKILLs of online services for FPCTL_CHAOS_SECS seconds: every
/// kill is counted as exactly one restart, every service comes back, and
/// each runs exactly one process.
#[test]
fn chaos_random_kills_are_each_restarted_once() {
    const N: usize = 5;
    let secs: u64 = std::env::var("FPCTL_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let ports = free_ports(N);
    let names: Vec<String> = (0..N).map(|i| format!("s{i}")).collect();
    let toml: String = names
        .iter()
        .zip(&ports)
        .map(|(n, &p)| http_service(n, p, ", interval = \"200ms\"", "max_restarts = 1000"))
        .collect();
    let s = Stack::new(&toml);
    s.run(&["start"]).expect(0);

    let (mut rng, seed) = Rng::seeded();
    println!("chaos: seed {seed} (set FPCTL_CHAOS_SEED to replay), {secs} s");
    let mut kills = vec![0u32; N];
    let mut killed: Vec<(usize, i32, u64)> = Vec::new();
    let mut skipped = 0u32;
    let begin = Instant::now();
    while begin.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(rng.range(200, 501)));
        let i = rng.range(0, N as u64) as usize;
        let svc = s.service(&names[i]);
        let pid = svc["pid"].as_i64().map(|p| p as i32);
        match (svc["state"].as_str(), pid) {
            (Some("online"), Some(pid)) => {
                let Some(ticks) = start_ticks(pid) else {
                    skipped += 1;
                    continue;
                };
                // SAFETY: kill(2) on the pid fpctl reports for this service.
                if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                    kills[i] += 1;
                    killed.push((i, pid, ticks));
                }
            }
            _ => skipped += 1,
        }
    }
    println!(
        "chaos: {} kills {:?}, {skipped} picks not online",
        killed.len(),
        kills
    );
    assert!(!killed.is_empty(), "the chaos loop killed nothing");

    let mut last = Value::Null;
    wait_until(
        "all 5 services online again",
        Duration::from_secs(45),
        || {
            let (_, v) = s.check_json();
            let ok = all_services(&v).iter().all(|x| x["state"] == "online");
            last = v;
            ok
        },
    );
    let (_, v) = s.check_json();
    println!("chaos: after recovery: {}", states(&v));
    for (i, name) in names.iter().enumerate() {
        let svc = all_services(&v)
            .iter()
            .find(|x| x["name"] == name.as_str())
            .unwrap();
        let restarts = svc["restarts"].as_i64().unwrap();
        assert_eq!(
            restarts,
            i64::from(kills[i]),
            "{name}: restarts {restarts} but {} kills (seed {seed}); events:\n{}",
            kills[i],
            s.run(&["events", name, "-n", "1000"]).stdout()
        );
        let pid = svc["pid"].as_i64().expect("an online service has a pid") as i32;
        assert!(pid_alive(pid), "{name}: reported pid {pid} is not alive");
        let marker = environ_var(pid, "FPCTL_INSTANCE").expect("service carries the marker");
        assert!(marker.ends_with(&format!(":{name}")), "marker {marker}");
        let live = marked_processes(&marker);
        assert_eq!(live, vec![pid], "{name}: live processes of the service");
    }
    for &(i, pid, ticks) in &killed {
        assert!(
            !same_process_alive(pid, ticks),
            "{}: killed pid {pid} is still alive",
            names[i]
        );
    }
}

/// A service that exits at once, `restart = "always"`: fpctl restarts it
/// exactly max_restarts times with backoff, then gives up, and the whole
/// storm costs the supervisor little CPU.
#[test]
fn crash_storm_is_bounded_and_cheap() {
    let s = Stack::new(
        r#"
[services.crashy]
command = ["false"]
restart = "always"
max_restarts = 6
"#,
    );
    let t = Instant::now();
    // Without a health check a spawned process counts as online, so start
    // may return before the first crash; the storm goes on in the background.
    let r = s.run(&["start"]);
    println!(
        "crash storm: start exited {} after {:?}",
        r.code(),
        t.elapsed()
    );
    wait_until("crashy is failed", Duration::from_secs(20), || {
        s.state_of("crashy") == "failed"
    });
    let took = t.elapsed();
    let sup = s.supervisor_pid().expect("supervisor pid in state.json");
    let ticks = cpu_ticks(sup).expect("supervisor's /proc stat");
    println!("crash storm: failed after {took:?}; supervisor pid {sup} used {ticks} CPU ticks");
    assert!(
        ticks < 50,
        "the supervisor used {ticks} ticks (> 0.5 s) for 7 launches"
    );
    assert_eq!(s.service("crashy")["restarts"], 6);
    let events = events_json(&s, "crashy");
    let restarts = kinds(&events, "restart").len();
    let failed = kinds(&events, "failed");
    assert_eq!(restarts, 6, "restart events: {events:#?}");
    assert_eq!(failed.len(), 1, "failed events: {events:#?}");
    // The storm respected the backoff: 0 + 100 + 200 + 400 + 800 + 1600 ms.
    assert!(
        took >= Duration::from_millis(3000),
        "failed after only {took:?}"
    );
}

/// A oneshot writing ~100 MB of numbered lines as fast as it can, through
/// log rotation at 5 MB: every line lands exactly once, in order.
#[test]
fn log_rotation_under_a_fast_writer_loses_nothing() {
    const LINES: u64 = 2_100_000;
    const PAD: usize = 40;
    const MAX: u64 = 5_000_000;
    let script = format!(
        "import sys,time\n\
         N={LINES};B=50000;P=' '+'x'*{PAD}\n\
         t=time.time();n=0\n\
         for a in range(0,N,B):\n    \
         n+=sys.stdout.write((P+'\\n').join(map(str,range(a,min(a+B,N))))+P+'\\n')\n\
         sys.stdout.flush();d=time.time()-t\n\
         open('rate.txt','w').write('%d %f'%(n,d))\n"
    );
    let s = Stack::new(&format!(
        r#"
[project]
log_max_size = "5MB"
log_keep = 100

[services.writer]
command = ["python3", "-c", {script:?}]
oneshot = true
"#,
        script = script
    ));
    let t = Instant::now();
    s.run(&["start"]).expect(0);
    let took = t.elapsed();
    let rate = std::fs::read_to_string(s.file("rate.txt")).expect("rate.txt");
    let (bytes, secs) = rate.split_once(' ').unwrap();
    let (bytes, secs): (f64, f64) = (bytes.parse().unwrap(), secs.parse().unwrap());
    let mbps = bytes / secs / 1e6;
    println!(
        "log rotation: wrote {:.1} MB in {secs:.2} s = {mbps:.0} MB/s (start took {took:?})",
        bytes / 1e6
    );
    if mbps < 50.0 {
        println!("log rotation: NOTE the writer ran below 50 MB/s on this machine");
    }

    let read_all = || -> (Vec<(String, u64)>, Vec<u8>) {
        let base = s.file(".fpctl/logs/writer.log");
        let mut files = Vec::new();
        let mut k = 1;
        loop {
            let p = format!("{}.{k}", base.display());
            if !std::path::Path::new(&p).exists() {
                break;
            }
            files.push(p);
            k += 1;
        }
        files.reverse();
        files.push(base.display().to_string());
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        for f in &files {
            let data = std::fs::read(f).unwrap();
            sizes.push((f.clone(), data.len() as u64));
            all.extend_from_slice(&data);
        }
        (sizes, all)
    };
    let pad = format!(" {}", "x".repeat(PAD));
    let verify = |all: &[u8]| -> Result<(), String> {
        let text = std::str::from_utf8(all).map_err(|e| format!("not UTF-8: {e}"))?;
        let mut want = 0u64;
        for (no, line) in text.lines().enumerate() {
            if line.starts_with("[fpctl]") {
                continue;
            }
            let ok = line
                .strip_suffix(pad.as_str())
                .and_then(|n| n.parse::<u64>().ok())
                == Some(want);
            if !ok {
                return Err(format!(
                    "line {no} of the joined logs is {:?}, expected number {want}",
                    &line[..line.len().min(120)]
                ));
            }
            want += 1;
        }
        if want != LINES {
            return Err(format!("{want} numbered lines, expected {LINES}"));
        }
        Ok(())
    };
    let (sizes, all) = read_all();
    println!(
        "log rotation: {} files, largest {} bytes",
        sizes.len(),
        sizes.iter().map(|x| x.1).max().unwrap_or(0)
    );
    if let Err(e) = verify(&all) {
        // Tell a late writer apart from a lost or mangled line.
        std::thread::sleep(Duration::from_secs(3));
        let (_, later) = read_all();
        let after = verify(&later).err().unwrap_or_else(|| "complete".into());
        panic!("logs wrong right after start returned: {e}\n3 s later: {after}");
    }
    for (f, size) in &sizes {
        assert!(
            *size <= MAX + 1_000_000,
            "{f} is {size} bytes, far over log_max_size {MAX}"
        );
    }
    assert!(sizes.len() >= 20, "expected ~20 files, got {sizes:?}");
}

/// A service that grows past max_memory is killed with a "memory" event
/// and restarted, and comes back online.
#[test]
fn memory_limit_restarts_the_service() {
    let port = free_port();
    let s = Stack::new(&format!(
        r#"
[services.hog]
command = "python3 hog.py"
port = {port}
health = {{ http = "/health" }}
max_memory = "80MB"
"#
    ));
    s.write(
        "hog.py",
        r#"import http.server, os, threading, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
print("hog: listening", flush=True)
time.sleep(1)
b = bytearray(150 * 1024 * 1024)
for i in range(0, len(b), 4096):
    b[i] = 1
print("hog: allocated", flush=True)
while True:
    time.sleep(1)
"#,
    );
    s.run(&["start"]).expect(0);
    let t = Instant::now();
    wait_until("hog restarted", Duration::from_secs(20), || {
        s.service("hog")["restarts"].as_i64().unwrap_or(0) >= 1
    });
    println!("memory: first restart after {:?}", t.elapsed());
    let events = events_json(&s, "hog");
    let memory = kinds(&events, "memory");
    assert!(!memory.is_empty(), "no memory event: {events:#?}");
    let detail = memory[0]["detail"].as_str().unwrap_or_default();
    println!("memory: event detail: {detail}");
    assert!(detail.contains("max_memory"), "memory detail: {detail}");
    wait_until(
        "hog online again after a restart",
        Duration::from_secs(20),
        || {
            let v = s.service("hog");
            v["state"] == "online" && v["restarts"].as_i64().unwrap_or(0) >= 1
        },
    );
}

/// Secret values (env_file values, env entries with secret-looking names)
/// never appear in what fpctl prints or notes, even in failures.
#[test]
fn secrets_are_never_printed() {
    const TOKEN: &str = "tok-abc-123456";
    const PASS: &str = "hunter2-very-secret";
    let ports = free_ports(2);
    // bad's health check (a port nobody opens) keeps it `starting` until it
    // exits, so that `start` reports its failure, with its log, every time.
    let s = Stack::new(&format!(
        r#"
[services.good]
command = "python3 {httpd} --port ${{PORT}} --name ${{API_TOKEN}}-${{DB_PASS}}"
port = {good_port}
env_file = "secrets.env"
env = {{ API_TOKEN = "{TOKEN}" }}
health = {{ http = "/health" }}

[services.bad]
command = ["python3", "-c", "import sys; sys.exit(1)", "--token", "${{API_TOKEN}}", "--pass", "${{DB_PASS}}"]
env_file = "secrets.env"
env = {{ API_TOKEN = "{TOKEN}" }}
port = {bad_port}
health = {{ tcp = true }}
max_restarts = 0
"#,
        httpd = httpd(),
        good_port = ports[0],
        bad_port = ports[1],
    ));
    s.write("secrets.env", &format!("DB_PASS={PASS}\n"));
    let mut outputs: Vec<(String, String)> = Vec::new();
    let start = s.run(&["start"]);
    assert_eq!(start.code(), 1, "bad must fail:\n{}", start.all());
    outputs.push(("start".into(), start.all()));
    wait_until("good online", Duration::from_secs(10), || {
        s.state_of("good") == "online"
    });
    for args in [
        &["check"][..],
        &["check", "--json"],
        &["check", "bad"],
        &["events"],
        &["events", "--json"],
        &["events", "bad"],
        &["restart", "good"],
        &["start", "bad"],
        &["logs", "bad"],
        &["validate"],
        &["graph"],
    ] {
        outputs.push((args.join(" "), s.run(args).all()));
    }
    for svc in ["good", "bad"] {
        let notes: String = s
            .log(svc)
            .lines()
            .filter(|l| l.starts_with("[fpctl]"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            notes.contains("[fpctl] starting:"),
            "{svc}'s log has no starting note:\n{}",
            s.log(svc)
        );
        outputs.push((format!("[fpctl] lines of {svc}.log"), notes));
    }
    // fpctl's own files (state, events, supervisor log), not service logs.
    for entry in std::fs::read_dir(s.file(".fpctl")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            outputs.push((path.display().to_string(), text));
        }
    }
    let failing = s.log("bad");
    println!("secrets: bad.log:\n{failing}");
    for (what, text) in &outputs {
        for secret in [TOKEN, PASS] {
            assert!(
                !text.contains(secret),
                "`{what}` shows the secret {secret:?}:\n{text}"
            );
        }
    }
    // The outputs did say something about the failure.
    assert!(outputs[0].1.contains("bad"), "{}", outputs[0].1);
}

/// The supervisor's socket is for its owner only: the modes are 0700/0600,
/// and another uid can neither connect nor, with the modes opened up, get
/// an answer; the supervisor keeps working.
#[test]
fn another_uid_cannot_talk_to_the_supervisor() {
    let port = free_port();
    let s = Stack::new(&http_service("web", port, "", ""));
    s.run(&["start"]).expect(0);
    let state_dir = s.file(".fpctl");
    let sock = s.file(".fpctl/fpctl.sock");
    let dir_mode = std::fs::metadata(&state_dir).unwrap().permissions().mode() & 0o7777;
    let meta = std::fs::metadata(&sock).expect("socket exists");
    assert!(
        meta.file_type().is_socket(),
        "{} is not a socket",
        sock.display()
    );
    let sock_mode = meta.permissions().mode() & 0o7777;
    assert_eq!(dir_mode, 0o700, ".fpctl mode is {dir_mode:o}");
    assert_eq!(sock_mode, 0o600, "socket mode is {sock_mode:o}");

    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skip: not root, cannot run a connect attempt as another uid");
        return;
    }
    // A python the other uid can run (pyenv shims under /root are not).
    let as_nobody = |python: &str, code: &str| -> Option<std::process::Output> {
        let via_setpriv = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args([python, "-c", code])
            .current_dir("/")
            .stdin(Stdio::null())
            .output();
        match via_setpriv {
            Ok(o) => Some(o),
            Err(_) => Command::new("runuser")
                .args(["-u", "nobody", "--", python, "-c", code])
                .current_dir("/")
                .stdin(Stdio::null())
                .output()
                .ok(),
        }
    };
    let Some(python) = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
        .into_iter()
        .find(|p| {
            as_nobody(p, "import os; print(os.getuid())")
                .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "65534")
        })
    else {
        println!("skip: neither setpriv nor runuser can run a system python3 as uid 65534");
        return;
    };
    // The temp dir itself is 0700; open it so that only fpctl's own modes
    // stand in the way.
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let code = format!(
        r#"
import socket
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect({path:?})
except OSError as e:
    print("CONNECT-FAILED", e.errno, e)
    raise SystemExit(0)
print("CONNECTED")
def read_all():
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
try:
    # Whatever the supervisor says unasked, then an attempt at a request.
    s.settimeout(2)
    try:
        print("GREETING", read_all().decode(errors="replace"))
    except socket.timeout:
        print("GREETING-TIMEOUT")
    s.settimeout(5)
    s.sendall(b'{{"v":1,"request":"status"}}\n')
    print("REPLY", read_all().decode(errors="replace"))
except OSError as e:
    print("IO-ERROR", e.errno, e)
"#,
        path = sock.display().to_string()
    );
    let attempt = |label: &str| -> String {
        let out = as_nobody(python, &code).expect("run python as nobody");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("socket ({label}): {}", text.trim());
        text
    };

    // 1. As fpctl left it: the other uid cannot even reach the socket.
    let text = attempt("as created");
    assert!(
        text.contains("CONNECT-FAILED 13"),
        "another uid could connect, or failed otherwise: {text}"
    );

    // 2. With the modes opened up by hand, the peer check still refuses.
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let text = attempt("modes opened");
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(text.contains("CONNECTED"), "could not connect: {text}");
    assert!(
        !text.contains("\"response\":\"status\"") && !text.contains("\"services\""),
        "another uid got a status reply: {text}"
    );
    // Refused: an error message, or the connection closed / reset.
    assert!(
        text.contains("\"error\"") || text.contains("IO-ERROR") || text.contains("REPLY \n"),
        "expected an error reply or a closed connection: {text}"
    );

    // The supervisor still serves its owner.
    let sup = s.supervisor_pid().unwrap();
    s.run(&["check"]).expect(0);
    s.run(&["restart", "web"]).expect(0);
    assert_eq!(s.state_of("web"), "online");
    assert_eq!(s.supervisor_pid(), Some(sup), "the supervisor was replaced");
}

/// 20 fpctl commands at once (start, start a, restart b, stop c, check…)
/// on overlapping services of a two-tier stack: none hangs, and afterwards
/// one `start` brings everything online with exactly one process per
/// service.
///
/// Includes a `stop` that a concurrent `start` overrides: the stop still
/// returns (the service came to a stop once), and the start wins.
#[test]
fn concurrent_commands_do_not_deadlock_or_duplicate() {
    concurrency_storm(&[
        &["start"],
        &["start", "a"],
        &["restart", "b"],
        &["stop", "c"],
        &["check"],
        &["check", "--json"],
        &["start", "e"],
        &["restart", "d", "f"],
    ]);
}

/// The same storm without `stop`: starts, restarts and checks at once.
#[test]
fn concurrent_starts_restarts_and_checks_do_not_deadlock_or_duplicate() {
    concurrency_storm(&[
        &["start"],
        &["start", "a"],
        &["restart", "b"],
        &["check"],
        &["check", "--json"],
        &["start", "e"],
        &["restart", "d", "f"],
        &["restart", "c"],
    ]);
}

/// Fire 20 commands cycling through `variants` at once on a two-tier stack of
/// six services (b and d need a, e needs b, f needs c); all must exit within
/// 60 s; then `start` must bring all online with one process each.
fn concurrency_storm(variants: &[&[&str]]) {
    let names = ["a", "b", "c", "d", "e", "f"];
    let ports = free_ports(names.len());
    let deps = ["", "a", "", "a", "b", "c"];
    let tiers = ["core", "core", "core", "apps", "apps", "apps"];
    let mut toml = String::from("[[tier]]\nname = \"core\"\n\n[[tier]]\nname = \"apps\"\n");
    for i in 0..names.len() {
        let mut extra = format!("tier = \"{}\"\n", tiers[i]);
        if !deps[i].is_empty() {
            extra += &format!("depends_on = [\"{}\"]\n", deps[i]);
        }
        toml += &http_service(names[i], ports[i], "", &extra);
    }
    let s = Stack::new(&toml);

    const CMDS: usize = 20;
    let deadline = Instant::now() + Duration::from_secs(60);
    let barrier = Arc::new(Barrier::new(CMDS));
    let handles: Vec<_> = (0..CMDS)
        .map(|k| {
            let args: Vec<String> = variants[k % variants.len()]
                .iter()
                .map(|a| a.to_string())
                .collect();
            let out = File::create(s.file(&format!("cmd-{k}.out"))).unwrap();
            let mut cmd = s.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>());
            cmd.stdout(out.try_clone().unwrap()).stderr(out);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let t = Instant::now();
                let mut child = cmd.spawn().expect("spawn fpctl");
                loop {
                    if let Some(st) = child.try_wait().unwrap() {
                        return (args, Some(st.code().unwrap_or(-1)), t.elapsed());
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return (args, None, t.elapsed());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut hung = Vec::new();
    for (k, (args, code, took)) in results.iter().enumerate() {
        println!(
            "concurrency: fpctl {} -> {code:?} in {took:?}",
            args.join(" ")
        );
        if code.is_none() {
            let out = std::fs::read_to_string(s.file(&format!("cmd-{k}.out"))).unwrap_or_default();
            hung.push(format!("fpctl {}:\n{out}", args.join(" ")));
        }
    }
    let r = s.run(&["start"]);
    assert_eq!(r.code(), 0, "start after the storm:\n{}", r.all());
    let (code, v) = s.check_json();
    assert_eq!(code, 0, "not all online: {}", states(&v));
    for name in names {
        let svc = all_services(&v).iter().find(|x| x["name"] == name).unwrap();
        assert_eq!(svc["state"], "online", "{name}: {svc}");
        let pid = svc["pid"].as_i64().expect("pid") as i32;
        let marker = environ_var(pid, "FPCTL_INSTANCE").expect("marker");
        assert!(marker.ends_with(&format!(":{name}")), "marker {marker}");
        let live = marked_processes(&marker);
        let log = s.log(name);
        assert_eq!(
            live,
            vec![pid],
            "{name}: live processes {live:?}, fpctl says {pid}; log:\n{log}"
        );
        // The log agrees: every launch but the current one has exited.
        let starts = log.matches("[fpctl] starting:").count();
        let exits = log
            .lines()
            .filter(|l| l.starts_with("[fpctl] process "))
            .count();
        assert_eq!(starts, exits + 1, "{name}: log:\n{log}");
    }
    assert!(
        hung.is_empty(),
        "{} command(s) still running after 60 s:\n{}",
        hung.len(),
        hung.join("\n")
    );
}

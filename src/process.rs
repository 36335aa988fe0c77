//! Spawning, signalling and reaping processes.
//!
//! Every child fpctl starts goes through [`spawn`]: it gets its own process
//! group and a marker variable (`FPCTL_INSTANCE`) that its descendants inherit,
//! so that a stop reaches the whole tree, even a grandchild that left the group
//! with `setsid`. One reaper task owns every `waitpid` in the process: it
//! answers each child's exit on a oneshot channel and silently reaps orphans
//! that were re-parented to us as a child subreaper. Nothing else may wait.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
use nix::sys::signal::{killpg, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use crate::env_block::{self, SharedEnv};

/// The variable every service (and so every descendant) carries.
pub const MARKER_VAR: &str = "FPCTL_INSTANCE";

/// How a process ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Ended, but not our child, so its status is unknown (an adopted process).
    Unknown,
}

impl Exit {
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with code {c}"),
            Exit::Signal(s) => match Signal::try_from(*s) {
                Ok(sig) => write!(f, "killed by {}", sig.as_str()),
                Err(_) => write!(f, "killed by signal {s}"),
            },
            Exit::Unknown => write!(f, "exited (status unknown)"),
        }
    }
}

#[derive(Default)]
struct Reaper {
    waiting: HashMap<i32, oneshot::Sender<Exit>>,
    /// Exits seen before their spawner registered (the child was quick).
    early: HashMap<i32, Exit>,
}

static REAPER: OnceLock<Mutex<Reaper>> = OnceLock::new();

fn reaper() -> &'static Mutex<Reaper> {
    REAPER.get_or_init(Default::default)
}

/// Start the reaper task. Call once, inside the tokio runtime, before spawning.
pub fn init() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
            .expect("install SIGCHLD handler");
        tokio::spawn(async move {
            loop {
                reap_all();
                // Signals coalesce, but reap_all takes every exited child,
                // and a SIGCHLD that arrives meanwhile is kept for recv: the
                // timeout is only a safety net, so it is long (an idle
                // supervisor should not wake for it).
                let _ = tokio::time::timeout(Duration::from_secs(30), sigchld.recv()).await;
            }
        });
    });
}

fn reap_all() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => deliver(pid.as_raw(), Exit::Code(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                deliver(pid.as_raw(), Exit::Signal(sig as i32))
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

fn deliver(pid: i32, exit: Exit) {
    let mut r = reaper().lock().expect("reaper lock");
    match r.waiting.remove(&pid) {
        Some(tx) => {
            let _ = tx.send(exit);
        }
        None => {
            // Either an orphan we adopted (nobody waits for it) or a child
            // whose spawner has not registered yet. Bound the map.
            if r.early.len() > 4096 {
                r.early.clear();
            }
            r.early.insert(pid, exit);
        }
    }
}

fn register(pid: i32) -> oneshot::Receiver<Exit> {
    let (tx, rx) = oneshot::channel();
    let mut r = reaper().lock().expect("reaper lock");
    match r.early.remove(&pid) {
        Some(exit) => {
            let _ = tx.send(exit);
        }
        None => {
            r.waiting.insert(pid, tx);
        }
    }
    rx
}

/// What to run.
pub struct SpawnSpec<'a> {
    pub argv: &'a [String],
    pub dir: &'a Path,
    /// Variables shared by every service of a config (`FPCTL_PORT_*`,
    /// `FPCTL_HOST_*`), set before `env`, which may override them.
    pub shared: &'a SharedEnv,
    pub env: &'a [(String, String)],
    /// Value of [`MARKER_VAR`] for the child and its descendants.
    pub marker: Option<&'a str>,
}

/// No shared variables: the supervisor's own environment only.
pub fn no_shared_env() -> &'static SharedEnv {
    static NONE: OnceLock<SharedEnv> = OnceLock::new();
    NONE.get_or_init(SharedEnv::default)
}

/// A running child: its pid is also its process group id.
pub struct Child {
    pub pid: i32,
    pub start_ticks: Option<u64>,
    pub exit: oneshot::Receiver<Exit>,
}

fn spawn_command(mut cmd: Command, what: &str) -> io::Result<Child> {
    let child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {what}: {e}")))?;
    let pid = child.id() as i32;
    // The std handle is dropped without waiting: the reaper owns the wait.
    drop(child);
    Ok(registered(pid))
}

fn registered(pid: i32) -> Child {
    let exit = register(pid);
    Child {
        pid,
        start_ticks: start_ticks(pid),
        exit,
    }
}

/// Spawn `spec` in a process group of its own, stdin from /dev/null and
/// stdout and stderr to `out`, as `Command` would, but with the config's
/// environment block as it is (see [`crate::env_block`]).
fn spawn_spec(spec: &SpawnSpec<'_>, out: BorrowedFd<'_>) -> io::Result<Child> {
    let what = &spec.argv[0];
    let failed = |e: io::Error| io::Error::new(e.kind(), format!("cannot run {what}: {e}"));
    let env = spec.shared.with(
        spec.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(spec.marker.map(|m| (MARKER_VAR, m))),
    )?;
    let program = find_program(what, spec.dir, env.get("PATH")).map_err(failed)?;
    let args = spec
        .argv
        .iter()
        .map(|a| env_block::c_string(a.as_str()))
        .collect::<io::Result<Vec<_>>>()?;
    let dir = env_block::c_string(spec.dir.as_os_str())?;
    let null = File::open("/dev/null")?;
    let mut actions = PosixSpawnFileActions::init()?;
    actions.add_dup2(out.as_raw_fd(), 1)?;
    actions.add_dup2(out.as_raw_fd(), 2)?;
    actions.add_dup2(null.as_raw_fd(), 0)?;
    // SAFETY: PosixSpawnFileActions is a transparent wrapper of the libc
    // type, initialised above and alive for the call; `dir` outlives it.
    let rc = unsafe {
        libc::posix_spawn_file_actions_addchdir_np(
            (&mut actions as *mut PosixSpawnFileActions).cast::<libc::posix_spawn_file_actions_t>(),
            dir.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    let mut attr = PosixSpawnAttr::init()?;
    // As Command does: SIGPIPE back to its default (Rust ignores it), no
    // blocked signals, and a process group of its own.
    let mut pipe = SigSet::empty();
    pipe.add(Signal::SIGPIPE);
    attr.set_sigdefault(&pipe)?;
    attr.set_sigmask(&SigSet::empty())?;
    attr.set_pgroup(Pid::from_raw(0))?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETPGROUP
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK,
    )?;
    let pid = nix::spawn::posix_spawn(program.as_c_str(), &actions, &attr, &args, &env.entries())
        .map_err(|e| failed(e.into()))?;
    Ok(registered(pid.as_raw()))
}

/// The absolute path of `program` as this process's `PATH` finds it.
pub fn program_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH");
    let found = find_program(program, Path::new("/"), path.as_deref()).ok()?;
    let bytes = found.as_bytes();
    Some(std::path::PathBuf::from(
        <OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes),
    ))
}

/// Where `exec` finds `program`: as given when it names a path (relative
/// to `dir`, where the child runs), else the first executable file of that
/// name in `path` (the child's own `PATH`, as `Command` looks it up).
fn find_program(program: &str, dir: &Path, path: Option<&OsStr>) -> io::Result<CString> {
    if program.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if program.contains('/') {
        return env_block::c_string(program);
    }
    let path = path.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    let mut denied = false;
    for entry in std::env::split_paths(path) {
        let candidate = dir.join(entry).join(program);
        match nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK) {
            Ok(()) if candidate.is_file() => return env_block::c_string(candidate),
            Ok(()) => {}
            Err(nix::errno::Errno::EACCES) => denied = true,
            Err(_) => {}
        }
    }
    Err(io::Error::from_raw_os_error(if denied {
        libc::EACCES
    } else {
        libc::ENOENT
    }))
}

/// Spawn with stdout and stderr going to `log` (a file opened for append,
/// or the write end of a log writer's pipe).
pub fn spawn_logged(spec: &SpawnSpec<'_>, log: impl AsFd) -> io::Result<Child> {
    spawn_spec(spec, log.as_fd())
}

/// Start a log writer (`fpctl __log`) that appends what it reads to `path`,
/// rotating it and recording times as `options` say; returns the write end
/// of its pipe for the service's output, and the writer, which exits once
/// every write end is closed and all that was written is in the file.
pub fn spawn_log_writer(
    path: &Path,
    options: crate::logger::Options,
) -> io::Result<(OwnedFd, Child)> {
    let (reader, writer) = std::io::pipe()?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("__log").arg(path);
    if let Some(rotation) = options.rotation {
        cmd.arg("--max-size")
            .arg(rotation.max_size.to_string())
            .arg("--keep")
            .arg(rotation.keep.to_string());
    }
    if options.timestamps {
        cmd.arg("--timestamps");
    }
    cmd.stdin(reader)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let child = spawn_command(cmd, "the log writer")?;
    Ok((OwnedFd::from(writer), child))
}

/// How long the last output of a process may take to reach its log file
/// through a log writer once the process has ended.
pub const LOG_DRAIN: Duration = Duration::from_secs(2);

/// Run to completion with output appended to `log`; with `stamped_path`
/// (the log's path), through a log writer that puts the time in front of
/// every line, and only once that writer has put the last line in the file.
pub async fn run_logged(
    spec: &SpawnSpec<'_>,
    log: &File,
    stamped_path: Option<&Path>,
) -> io::Result<Exit> {
    let lost = || io::Error::other("child exit was lost");
    let Some(path) = stamped_path else {
        return spawn_logged(spec, log)?.exit.await.map_err(|_| lost());
    };
    let options = crate::logger::Options {
        rotation: None,
        timestamps: true,
    };
    let (pipe, writer) = spawn_log_writer(path, options)?;
    let child = spawn_logged(spec, &pipe);
    drop(pipe);
    let exit = child?.exit.await.map_err(|_| lost());
    let _ = tokio::time::timeout(LOG_DRAIN, writer.exit).await;
    exit
}

/// Run with a deadline, capturing stdout and stderr together. On timeout the
/// whole group is killed and `Ok(None)` is returned.
pub async fn run_captured(
    spec: &SpawnSpec<'_>,
    timeout: Duration,
) -> io::Result<Option<(Exit, String)>> {
    let (reader, writer) = std::io::pipe()?;
    let child = spawn_spec(spec, writer.as_fd())?;
    // Our copy of the write end is closed, so that EOF arrives when the
    // child and its descendants are done.
    drop(writer);
    let mut reader = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?;
    let pid = child.pid;
    let work = async {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // Read what fits in a small buffer; a chatty probe must not grow us.
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if out.len() < 64 * 1024 => out.extend_from_slice(&buf[..n]),
                Ok(_) => {}
            }
        }
        let exit = child.exit.await.unwrap_or(Exit::Signal(9));
        (exit, String::from_utf8_lossy(&out).into_owned())
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(done) => Ok(Some(done)),
        Err(_) => {
            signal_group(pid, Signal::SIGKILL);
            Ok(None)
        }
    }
}

/// Watch a process that is not our child (adopted from an earlier
/// supervisor): the receiver fires when it ends. Uses a pidfd, so the exit is
/// seen at once, without polling.
pub fn watch_foreign(pid: i32) -> io::Result<oneshot::Receiver<Exit>> {
    // SAFETY: pidfd_open(pid, 0) returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd was just returned to us and is owned by nobody else.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open until dropped.
    let fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    }
    .map_err(|e| io::Error::other(e.to_string()))?;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        // A pidfd becomes readable when the process exits.
        let _ = fd.readable().await;
        let _ = tx.send(Exit::Unknown);
    });
    Ok(rx)
}

/// Send `sig` to a process group; false when the group no longer exists.
pub fn signal_group(pgid: i32, sig: Signal) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), sig).is_ok()
}

pub fn signal_pid(pid: i32, sig: Signal) -> bool {
    pid > 1 && nix::sys::signal::kill(Pid::from_raw(pid), sig).is_ok()
}

/// The process's start time in clock ticks since boot (/proc/PID/stat field
/// 22): with the pid, it identifies a process even after its pid is reused.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether `pid` is still the very process that started at `ticks`.
pub fn is_same_process(pid: i32, ticks: u64) -> bool {
    start_ticks(pid) == Some(ticks) && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .and_then(|i| s.get(i + 2..i + 3).map(|c| c == "Z"))
        })
        .unwrap_or(false)
}

pub fn pid_alive(pid: i32) -> bool {
    pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

/// Live children of `pid`; for a child subreaper, that includes orphans of
/// its descendants that were re-parented to it.
pub fn children_of(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&c| parent_of(c) == Some(pid) && !is_zombie(c))
        .collect()
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name: state, then ppid.
    stat[stat.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
}

/// Whether `pid` is `ancestor` or one of its descendants.
pub fn descends_from(pid: i32, ancestor: i32) -> bool {
    let mut p = pid;
    for _ in 0..256 {
        if p == ancestor {
            return true;
        }
        match parent_of(p) {
            Some(parent) if parent > 0 && parent != p => p = parent,
            _ => return false,
        }
    }
    false
}

/// The argument vector of a process.
pub fn argv(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    (!args.is_empty()).then_some(args)
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A marker unique to a project folder, shared by all its services; a
/// service's processes carry `FPCTL_INSTANCE=<marker>:<service>`.
pub fn project_marker(root: &Path) -> String {
    crate::config::project_marker(root)
}

/// Whether `pid` carries `FPCTL_INSTANCE=marker` in its environment.
pub fn has_marker(pid: i32, marker: &str) -> bool {
    let needle = format!("{MARKER_VAR}={marker}");
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
        .unwrap_or(false)
}

/// Every live process carrying `FPCTL_INSTANCE=marker` in its environment
/// (with `prefix`, any value starting with `marker`).
pub fn marked_pids(marker: &str, prefix: bool) -> Vec<i32> {
    pids_marked(|value| {
        if prefix {
            value.starts_with(marker)
        } else {
            value == marker
        }
    })
}

/// Every live process (but us) whose marker is exactly one of `markers`:
/// one pass over /proc for many services.
pub fn pids_marked_with(markers: &std::collections::HashSet<&str>) -> Vec<i32> {
    pids_marked(|value| markers.contains(value))
}

/// Every live process (but us) whose [`MARKER_VAR`] value `keep` accepts.
fn pids_marked(keep: impl Fn(&str) -> bool) -> Vec<i32> {
    let key = format!("{MARKER_VAR}=");
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me && !is_zombie(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0).any(|kv| {
                    kv.strip_prefix(key.as_bytes())
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .is_some_and(&keep)
                })
            })
        })
        .collect()
}

/// A live process group leader carrying `FPCTL_INSTANCE=<prefix>...`: what
/// a supervisor killed at any instant may have started without recording.
#[derive(Debug, Clone)]
pub struct MarkedLeader {
    pub pid: i32,
    pub ticks: u64,
    /// The marker's full value.
    pub marker: String,
    pub argv: Vec<String>,
}

/// Every live process group leader whose marker starts with `prefix`.
pub fn marked_leaders(prefix: &str) -> Vec<MarkedLeader> {
    let needle = format!("{MARKER_VAR}={prefix}");
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me && !is_zombie(pid))
        .filter(|&pid| {
            nix::unistd::getpgid(Some(Pid::from_raw(pid))).ok() == Some(Pid::from_raw(pid))
        })
        .filter_map(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let kv = env
                .split(|b| *b == 0)
                .find(|kv| kv.starts_with(needle.as_bytes()))?;
            let marker = String::from_utf8_lossy(&kv[MARKER_VAR.len() + 1..]).into_owned();
            let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()?
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some(MarkedLeader {
                pid,
                ticks: start_ticks(pid)?,
                marker,
                argv,
            })
        })
        .collect()
}

/// Raise the soft limit on open files to the hard one: a supervisor of a
/// thousand services holds a probe connection to each at once. Returns the
/// new soft limit. Services inherit it.
pub fn raise_fd_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a
    // live rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

/// Give back memory the supervisor does not use between bursts: freed heap
/// (glibc keeps it otherwise), and the pages of its own executable, most of
/// which only ran once (argument and config parsing, start-up). They stay
/// in the page cache; what the probe path needs faults back in at once.
pub fn trim_resident() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
    let (Ok(exe), Ok(maps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/maps"),
    ) else {
        return;
    };
    let exe = exe.to_string_lossy();
    // Read-only and code mappings only: their pages are clean copies of the
    // file; written pages would go to swap, if there is any.
    let read_only = |l: &str| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|p| !p.contains('w'))
    };
    for line in maps
        .lines()
        .filter(|l| l.ends_with(exe.as_ref()) && read_only(l))
    {
        let Some((start, end)) = line
            .split_whitespace()
            .next()
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| {
                Some((
                    usize::from_str_radix(a, 16).ok()?,
                    usize::from_str_radix(b, 16).ok()?,
                ))
            })
        else {
            continue;
        };
        // SAFETY: MADV_RANDOM and MADV_PAGEOUT on a mapping of our own
        // executable only change how its clean file pages are read and ask
        // the kernel to reclaim them; they fault back in when they run again.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_RANDOM);
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT);
        }
    }
}

/// One malloc arena for the whole process. The dispatcher runs on one
/// thread; the short-lived helper threads (a /proc walk, a kill sweep) would
/// each get an arena of their own from glibc and leave about 500 KiB of it
/// resident after they exit. They allocate little, so sharing one arena
/// costs no contention worth measuring.
pub fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter of glibc's allocator,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Become a child subreaper: orphaned descendants are re-parented to us
/// (and reaped by the reaper) instead of to init.
pub fn set_subreaper() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The command line of a process, for messages.
pub fn cmdline(pid: i32) -> Option<String> {
    argv(pid).map(|a| a.join(" "))
}

/// Every listening TCP socket of this host, where /proc tells: its inode
/// link text (`socket:[N]`) and its port.
fn listening_sockets() -> std::collections::HashMap<String, u16> {
    let mut sockets = std::collections::HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let port = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if let Some(port) = port {
                sockets.insert(format!("socket:[{}]", f[9]), port);
            }
        }
    }
    sockets
}

/// Whether anything listens on TCP `port` in the network namespace of
/// `pid` (a container's process: its namespace is not ours); an error when
/// its tables cannot be read.
pub fn listens_in_netns_of(pid: i32, port: u16) -> io::Result<bool> {
    let mut read_any = false;
    for table in ["tcp", "tcp6"] {
        let text = match std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound && read_any => continue,
            Err(e) => return Err(e),
        };
        read_any = true;
        let listening = text.lines().skip(1).any(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() > 3
                && f[3] == "0A"
                && f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        });
        if listening {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The listening sockets among a process's open files, as ports.
fn ports_of(pid: i32, sockets: &std::collections::HashMap<String, u16>) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut ports: Vec<u16> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| sockets.get(target.to_str()?).copied())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The process listening on a local TCP port, where /proc tells.
pub fn port_holder(port: u16) -> Option<(i32, String)> {
    let mut sockets = listening_sockets();
    sockets.retain(|_, p| *p == port);
    if sockets.is_empty() {
        return None;
    }
    all_pids()
        .into_iter()
        .find(|&pid| !ports_of(pid, &sockets).is_empty())
        .map(|pid| (pid, cmdline(pid).unwrap_or_default()))
}

/// The TCP ports each of `pids` listens on (those that listen at all).
pub fn listening_ports(pids: &[i32]) -> Vec<(i32, Vec<u16>)> {
    let sockets = listening_sockets();
    if sockets.is_empty() {
        return Vec::new();
    }
    pids.iter()
        .map(|&pid| (pid, ports_of(pid, &sockets)))
        .filter(|(_, ports)| !ports.is_empty())
        .collect()
}

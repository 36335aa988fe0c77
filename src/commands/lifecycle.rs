//! `start`, `up`, `restart`, `stop` and the hidden `__supervise`: the
//! commands that drive a supervisor.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::load;
use crate::config::Config;
use crate::control::{Client, ErrorKind, Request, Response};
use crate::status::Failure;
use crate::{graph, output, process, state, supervisor};
use crate::{Error, Outcome, Result};

/// How long a client waits for a new supervisor to answer.
const SUPERVISOR_BOOT: Duration = Duration::from_secs(10);

pub fn start(
    file: Option<&Path>,
    services: Vec<String>,
    profiles: Vec<String>,
    replace: bool,
    containers: bool,
) -> Result<Outcome> {
    let config = load_for_run(file, containers)?;
    graph::select(&config, &services, &profiles)?;
    // One display for the reload and the start: one clock, and a service's
    // line only when it changed.
    let display = crate::progress::Display::for_stdout(&config);
    // A running supervisor first takes up the edits to services.toml.
    if let Some(mut client) = Client::connect(&state::socket_path(&config)) {
        let reply = client
            .request_with(Request::Reload { dry_run: false }, |r| match r {
                // Quiet when the file did not change.
                Response::Plan { changes, api: None } if changes.is_empty() => {}
                Response::Progress(p) => display.show(p),
                _ => print_update(r, &display),
            })
            .map_err(|e| Error::other("lost the supervisor", e))?;
        match reply {
            Response::Done {
                ok: false,
                failures,
            } => report_failures(&failures),
            // Refused (the API's new address cannot be bound): the stack
            // runs the old file, which the user must know.
            Response::Error { kind, message } if !matches!(kind, ErrorKind::ShuttingDown) => {
                return Err(Error::Other(message))
            }
            _ => {}
        }
    }
    let request = Request::Start {
        services,
        profiles,
        replace,
    };
    drive(&config, request, "online", display)
}

/// services.toml, after recording `--containers` for the supervisor's
/// life: every reader of the config then runs those services in their
/// containers.
fn load_for_run(file: Option<&Path>, containers: bool) -> Result<Config> {
    let config = load(file)?;
    if !containers {
        return Ok(config);
    }
    if config.services.iter().all(|s| s.container.is_none()) {
        output::print_warning("--containers: no service has a [services.NAME.container] table; everything runs natively");
        return Ok(config);
    }
    crate::scale::request_containers(&config.root)
        .map_err(|e| Error::other("cannot record --containers", e))?;
    load(file)
}

/// `reload`: apply the edits to services.toml to the running stack.
pub fn reload(file: Option<&Path>, dry_run: bool) -> Result<Outcome> {
    // An invalid file stops here, with file:line:column, before the
    // supervisor hears of it.
    let config = load(file)?;
    let Some(mut client) = Client::connect(&state::socket_path(&config)) else {
        println!("no supervisor is running; `fpctl start` reads services.toml afresh");
        return Ok(Outcome::Success);
    };
    let display = crate::progress::Display::for_stdout(&config);
    let reply = client
        .request_with(Request::Reload { dry_run }, |r| print_update(r, &display))
        .map_err(|e| Error::other("lost the supervisor", e))?;
    display.finish();
    finish(
        reply,
        display.started(),
        if dry_run { "planned" } else { "reloaded" },
    )
}

/// A progress line, or a reload plan (one line per changed service).
fn print_update(r: &Response, display: &crate::progress::Display) {
    match r {
        Response::Progress(p) => display.show(p),
        Response::Plan { changes, api: None } if changes.is_empty() => {
            println!("services.toml: no changes")
        }
        Response::Plan { changes, api } => {
            if let Some(a) = api {
                println!("{a}");
            }
            for c in changes {
                println!("{c}");
            }
        }
        _ => {}
    }
}

pub fn restart(file: Option<&Path>, services: Vec<String>) -> Result<Outcome> {
    let (config, _) = super::load_running(file)?;
    graph::select(&config, &services, &[])?;
    let display = crate::progress::Display::for_stdout(&config);
    drive(&config, Request::Restart { services }, "online", display)
}

pub fn stop(file: Option<&Path>, services: Vec<String>) -> Result<Outcome> {
    let (config, _) = super::load_running(file)?;
    graph::select(&config, &services, &[])?;
    let Some(mut client) = supervisor_if_needed(&config)? else {
        println!("nothing is running");
        return Ok(Outcome::Success);
    };
    let display = crate::progress::Display::for_stop(&config);
    let named = config.expand_names(&services);
    let reply = client
        .request(
            Request::Stop {
                services: services.clone(),
            },
            |p| display.show(p),
        )
        .map_err(|e| Error::other("lost the supervisor", e))?;
    let outcome = finish(reply, display.started(), "stopped")?;
    // Dependents go down with what they depend on: say which, and how
    // they come back.
    let along: Vec<String> = display
        .went_down()
        .into_iter()
        .filter(|n| !named.contains(n))
        .collect();
    if !services.is_empty() && !along.is_empty() {
        println!(
            "also stopped {}, which depend{} on {}; `fpctl start {}` starts {} again",
            along.join(", "),
            if along.len() == 1 { "s" } else { "" },
            services.join(", "),
            services.join(" "),
            if along.len() == 1 { "it" } else { "them" },
        );
    }
    Ok(outcome)
}

/// Send a request to the project's supervisor (starting one if needed) and
/// report its progress and outcome.
fn drive(
    config: &Config,
    request: Request,
    goal: &str,
    display: crate::progress::Display,
) -> Result<Outcome> {
    on_interrupt_say(DETACHED, 130);
    let started = display.started();
    let deadline = started + SUPERVISOR_BOOT;
    loop {
        let mut client = connect_or_spawn(config)?;
        let reply = client
            .request(request.clone(), |p| display.show(p))
            .map_err(|e| Error::other("lost the supervisor", e))?;
        display.finish();
        // A supervisor that is shutting down hands over to a new one.
        if matches!(
            &reply,
            Response::Error {
                kind: ErrorKind::ShuttingDown,
                ..
            }
        ) && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        return finish(reply, started, goal);
    }
}

fn finish(reply: Response, started: Instant, goal: &str) -> Result<Outcome> {
    match reply {
        Response::Done { ok: true, .. } => {
            output::print_done(goal, started.elapsed());
            Ok(Outcome::Success)
        }
        Response::Done {
            ok: false,
            failures,
        } => {
            report_failures(&failures);
            Ok(Outcome::NotOnline)
        }
        // Bad names and bad files are the user's to fix (exit 2); the rest
        // is a runtime failure (exit 1).
        Response::Error { kind, message } => Err(Error::Refused { kind, message }),
        other => Err(Error::Other(format!(
            "unexpected reply from the supervisor: {other:?}"
        ))),
    }
}

fn report_failures(failures: &[Failure]) {
    // Services stopped while starting share one reason: say it once.
    let (stopped, failed): (Vec<&Failure>, Vec<&Failure>) = failures
        .iter()
        .partition(|f| f.state == crate::status::ServiceState::Stopped);
    if let Some(first) = stopped.first() {
        let names: Vec<&str> = stopped.iter().map(|f| f.service.as_str()).collect();
        output::print_interrupted(&first.reason, &names);
    }
    for f in failed {
        let tail = crate::service_log::current_run(&f.log, 10);
        output::print_failure(f, &tail);
    }
}

/// What Ctrl-C during `start` or `restart` prints: the supervisor carries
/// on without this command.
const DETACHED: &[u8] = b"\ninterrupted: the stack goes on starting in the background.\n  see how it goes: fpctl check\n  stop it:         fpctl stop\n";

/// What Ctrl-C in `up` attached to a running stack prints.
const UP_DETACHED: &[u8] =
    b"\ndetached: the stack keeps running (fpctl check shows it, fpctl stop stops it)\n";

/// On SIGINT, print `message` to stderr, then exit with `code`.
fn on_interrupt_say(message: &'static [u8], code: i32) {
    use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};
    static MESSAGE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
    static LEN: AtomicUsize = AtomicUsize::new(0);
    static CODE: AtomicI32 = AtomicI32::new(130);
    MESSAGE.store(message.as_ptr().cast_mut(), Ordering::SeqCst);
    LEN.store(message.len(), Ordering::SeqCst);
    CODE.store(code, Ordering::SeqCst);
    extern "C" fn on_sigint(_: libc::c_int) {
        // SAFETY: atomics, write(2) and _exit(2) are async-signal-safe; the
        // message is a static buffer.
        unsafe {
            let message = MESSAGE.load(Ordering::SeqCst);
            libc::write(2, message.cast(), LEN.load(Ordering::SeqCst));
            libc::_exit(CODE.load(Ordering::SeqCst));
        }
    }
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only calls async-signal-safe functions.
    if let Err(e) = unsafe { sigaction(Signal::SIGINT, &action) } {
        tracing::debug!("cannot catch Ctrl-C: {e}");
    }
}

/// Connect to the running supervisor, or start one in the background.
pub fn connect_or_spawn(config: &Config) -> Result<Client> {
    let socket = state::socket_path(config);
    if let Some(c) = Client::connect(&socket) {
        return Ok(c);
    }
    // A limit that remains fails now, not after the boot timeout.
    state::prepare_socket_dir(&socket)
        .map_err(|e| Error::other("cannot place the supervisor's socket", e))?;
    state::ensure_dirs(config)
        .map_err(|e| Error::other(format!("cannot create {}", config.state_dir().display()), e))?;
    let log_path = supervisor::log_path(config);
    let log = crate::service_log::open(&log_path)
        .map_err(|e| Error::other(format!("cannot open {}", log_path.display()), e))?;
    let exe =
        std::env::current_exe().map_err(|e| Error::other("cannot find the fpctl binary", e))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--file")
        .arg(&config.path)
        .arg("__supervise")
        .current_dir(&config.root)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| Error::other("log", e))?)
        .stderr(log);
    // SAFETY: setsid and sigprocmask are async-signal-safe; setsid detaches
    // the supervisor from our terminal and session so it outlives this
    // command. Its stop and reload signals stay blocked from its first
    // instruction until it handles them (a blocked signal waits, it is not
    // lost): a SIGHUP in its first milliseconds must not kill it.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            supervisor::block_signals();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::other("cannot start the supervisor", e))?;
    let deadline = Instant::now() + SUPERVISOR_BOOT;
    while Instant::now() < deadline {
        if let Some(c) = Client::connect(&socket) {
            return Ok(c);
        }
        // A child that lost the lock to a concurrent start exits at once:
        // reap it, and keep connecting to the winner.
        let _ = child.try_wait();
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(Error::Other(format!(
        "the supervisor did not come up within {}s; see {}",
        SUPERVISOR_BOOT.as_secs(),
        log_path.display()
    )))
}

/// `__supervise`: become the project's background supervisor.
pub fn supervise(file: Option<&Path>) -> Result<Outcome> {
    // Before anything else (the spawner blocked them already; this covers a
    // supervisor started another way): signals wait for their handlers.
    supervisor::block_signals();
    let config = load(file)?;
    init_tracing();
    // The lock may be held by a supervisor that serves (a concurrent start
    // won: leave it to that one) or by one that is shutting down after a
    // stop and no longer listens: wait for it to go, then take over.
    let deadline = Instant::now() + SUPERVISOR_BOOT;
    let lock = loop {
        if let Some(lock) = supervisor::try_lock(&config)? {
            break lock;
        }
        if Client::connect(&state::socket_path(&config)).is_some() || Instant::now() >= deadline {
            tracing::info!("another supervisor holds the lock; exiting");
            return Ok(Outcome::Success);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    supervisor::run(config, lock, None, false)?;
    Ok(Outcome::Success)
}

fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("FPCTL_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `up`: the supervisor in the foreground, every log interleaved.
pub fn up(
    file: Option<&Path>,
    services: Vec<String>,
    profiles: Vec<String>,
    containers: bool,
) -> Result<Outcome> {
    let config = load_for_run(file, containers)?;
    let selected = graph::select(&config, &services, &profiles)?;
    let names: Vec<String> = selected
        .iter()
        .map(|&i| config.services[i].name.clone())
        .collect();
    let Some(lock) = supervisor::try_lock(&config)? else {
        return attach(&config, &names);
    };
    let tailer = output::LogTailer::new(&config, &names);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tail = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || tailer.run_until(&done))
    };
    let display = crate::progress::Display::plain(&config);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = std::thread::spawn(move || {
        while let Some(r) = rx.blocking_recv() {
            match r {
                Response::Progress(p) => display.show(&p),
                Response::Done { ok: true, .. } => {
                    output::print_done("online", display.started().elapsed())
                }
                Response::Done {
                    ok: false,
                    failures,
                } => report_failures(&failures),
                Response::Error { message, .. } => eprintln!("error: {message}"),
                _ => {}
            }
        }
    });
    supervisor::run(
        config,
        lock,
        Some((
            Request::Start {
                services,
                profiles,
                replace: false,
            },
            tx,
        )),
        true,
    )?;
    // Everything is stopped: the last lines the services and fpctl wrote
    // (their shutdown output, the exit notes) are printed before exiting.
    let _ = progress.join();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = tail.join();
    // Stopped by Ctrl-C (or SIGTERM): exit as a shell expects, 128 + signal.
    Ok(match supervisor::stopped_by_signal() {
        Some(signal) => Outcome::Interrupted { signal },
        None => Outcome::Success,
    })
}

/// `up` while a supervisor runs: show every log live; Ctrl-C detaches and
/// leaves the stack running; the command ends when the supervisor does.
fn attach(config: &Config, names: &[String]) -> Result<Outcome> {
    let socket = state::socket_path(config);
    let Some(mut client) = Client::connect(&socket) else {
        return Err(Error::Other(
            "a supervisor holds this project but does not answer (it may be stopping); try again, or `fpctl stop`".into(),
        ));
    };
    let pid = match client.request(Request::Status, |_| {}) {
        Ok(Response::Status { snapshot, .. }) => snapshot
            .supervisor_pid
            .map_or_else(|| "?".to_string(), |p| p.to_string()),
        _ => "?".into(),
    };
    println!(
        "attached to the running stack (supervisor pid {pid}); Ctrl-C detaches and leaves it running"
    );
    on_interrupt_say(UP_DETACHED, 0);
    let tailer = output::LogTailer::new(config, names);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tail = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || tailer.run_until(&done))
    };
    while Client::connect(&socket).is_some() {
        std::thread::sleep(Duration::from_millis(500));
    }
    // Lines written last are printed before saying so.
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = tail.join();
    println!("the supervisor stopped");
    Ok(Outcome::Success)
}

/// A client for the supervisor, when one runs or must run: if the last one
/// died and left services running, a new one is started to adopt them.
pub fn supervisor_if_needed(config: &Config) -> Result<Option<Client>> {
    if let Some(c) = Client::connect(&state::socket_path(config)) {
        return Ok(Some(c));
    }
    // A supervisor that died without its clean exit leaves its pid in the
    // file, and may have started processes it had not recorded yet: they
    // carry the project's marker.
    let orphans = state::read(config).is_some_and(|saved| {
        let recorded = saved
            .services
            .values()
            .any(|r| match (r.status.pid, r.ticks) {
                (Some(pid), Some(ticks)) => process::is_same_process(pid, ticks),
                _ => false,
            });
        let died = saved.supervisor_pid.is_some();
        recorded
            || died
                && !process::marked_leaders(&format!("{}:", process::project_marker(&config.root)))
                    .is_empty()
    });
    if orphans {
        connect_or_spawn(config).map(Some)
    } else {
        Ok(None)
    }
}

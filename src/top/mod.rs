//! `fpctl top`: a live view of the running stack in the terminal, with
//! actions. It attaches to the supervisor's socket subscription (a
//! snapshot, then every change as it happens) and renders the status
//! model; it never owns the services, so quitting leaves the stack as it
//! is. Logs come from the log files, through a bounded ring. Off a
//! terminal it prints the `check --wide` table every 2 s (or once).
//!
//! Threads: one reads the subscription, one the terminal's keys, one
//! waits for SIGTERM/SIGHUP/SIGINT, and each action runs on its own; all
//! of them send [`Msg`]s to the loop that owns the [`App`] and draws.

mod app;
mod logs;
mod view;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{self, Config, Probe};
use crate::control::{Change, Client, Request, Response};
use crate::status::Snapshot;
use crate::{commands, graph, health, output, state};
use crate::{Error, Outcome, Result};

pub use app::{Action, App, Key, Mode, Pane};
pub use logs::{LogLine, Ring, Tail};
pub use view::{draw, Look, KEYS};

/// How often the pipe mode prints the table.
const PIPE_EVERY: Duration = Duration::from_secs(2);
/// How often the log files are looked at for new lines.
const LOG_EVERY: Duration = Duration::from_millis(250);
/// The longest the screen goes without a redraw (uptimes count on).
const TICK: Duration = Duration::from_secs(1);
/// Set (to anything) to make `top` panic after its first frame: how the
/// tests prove the terminal is restored after a panic.
const PANIC_VAR: &str = "FPCTL_TOP_TEST_PANIC";

pub fn top(file: Option<&Path>, start: bool, once: bool) -> Result<Outcome> {
    if start {
        commands::start(file, Vec::new(), Vec::new(), false, false)?;
    }
    let (config, _) = commands::load_running(file)?;
    let socket = state::socket_path(&config);
    let Some(client) = Client::connect(&socket) else {
        return Err(Error::Service(format!(
            "no supervisor is running for \"{}\" ({}): `fpctl start` starts the stack, \
             or `fpctl top --start` starts it and shows it",
            config.project.name,
            config.path.display()
        )));
    };
    if once {
        return once_table(&config, client);
    }
    if !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
        return pipe(&config, client);
    }
    tui(Arc::new(config), socket, client)
}

fn tiers(config: &Config) -> Vec<(String, Option<String>)> {
    config
        .tiers
        .iter()
        .map(|t| (t.name.clone(), t.title.clone()))
        .collect()
}

/// Whether the services `check` counts (those not only in a profile) are
/// all online, as `check` decides its exit code.
fn all_ok(config: &Config, snapshot: &Snapshot) -> bool {
    let counted: Vec<&str> = graph::select(config, &[], &[])
        .map(|set| {
            set.into_iter()
                .map(|i| config.services[i].name.as_str())
                .collect()
        })
        .unwrap_or_default();
    snapshot
        .services
        .iter()
        .filter(|s| counted.contains(&s.name.as_str()) || s.group.is_some())
        .all(|s| s.is_ok())
}

/// `--once`: the table, and exit 0 only when everything is online.
fn once_table(config: &Config, mut client: Client) -> Result<Outcome> {
    client.set_timeout(Some(Duration::from_secs(10)));
    let snapshot = match client.request(Request::Status, |_| {}) {
        Ok(Response::Status { snapshot, .. }) => snapshot,
        Ok(other) => return Err(Error::Other(format!("unexpected reply: {other:?}"))),
        Err(e) => return Err(Error::other("lost the supervisor", e)),
    };
    print!("{}", output::status_table(config, &snapshot, true));
    Ok(if all_ok(config, &snapshot) {
        Outcome::Success
    } else {
        Outcome::NotOnline
    })
}

/// Off a terminal: the table every 2 s, from the live stream, until the
/// supervisor exits or the reader goes away.
fn pipe(config: &Config, client: Client) -> Result<Outcome> {
    let (tx, rx) = mpsc::channel();
    let sub = client
        .subscribe()
        .map_err(|e| Error::other("cannot subscribe to the supervisor", e))?;
    read_stream(sub, tx);
    let mut app = App::new(tiers(config));
    let mut next = Instant::now();
    loop {
        let left = next.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Msg::Stream(r)) => {
                app.apply(*r);
                continue;
            }
            Ok(Msg::Gone) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                eprintln!("the supervisor has exited");
                return Ok(Outcome::NotOnline);
            }
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if app.services.is_empty() && app.supervisor_pid.is_none() {
            // The snapshot has not come yet.
            next = Instant::now() + Duration::from_millis(50);
            continue;
        }
        let snapshot = live_snapshot(&app);
        print!("{}", output::status_table(config, &snapshot, true));
        println!();
        if crate::stdio::stdout_closed() {
            return Ok(Outcome::Success);
        }
        next = Instant::now() + PIPE_EVERY;
    }
}

/// The app's model as a snapshot, uptimes as of now.
fn live_snapshot(app: &App) -> Snapshot {
    let services = (0..app.services.len())
        .map(|k| {
            let mut s = app.services[k].clone();
            s.uptime_s = app.uptime(k).map(crate::status::tenth);
            s
        })
        .collect();
    Snapshot::new(app.project.clone(), app.supervisor_pid, services)
}

/// What the loop hears.
enum Msg {
    Stream(Box<Response>),
    Gone,
    Key(Key),
    Resize,
    Signal(i32),
    /// An action's outcome: the text, and whether it went well.
    Done(String, bool),
    /// Progress of an action, for the status line.
    Progress(String),
    Plan(Vec<Change>, Option<String>),
}

fn read_stream(mut sub: crate::control::Subscription, tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || loop {
        match sub.recv() {
            Ok(Some(r)) => {
                if tx.send(Msg::Stream(Box::new(r))).is_err() {
                    return;
                }
            }
            _ => {
                let _ = tx.send(Msg::Gone);
                return;
            }
        }
    });
}

/// Puts the terminal back as it was: on drop, and from the panic hook.
struct Terminal;

impl Terminal {
    fn enter() -> std::io::Result<Terminal> {
        use ratatui::crossterm::{cursor, execute, terminal};
        // The panic hook restores the terminal before the message prints.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        terminal::enable_raw_mode()?;
        // No mouse capture: the terminal's own selection keeps working.
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        Ok(Terminal)
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    use ratatui::crossterm::{cursor, execute, terminal};
    let _ = execute!(
        std::io::stdout(),
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
    let _ = terminal::disable_raw_mode();
}

fn tui(config: Arc<Config>, socket: PathBuf, client: Client) -> Result<Outcome> {
    let (tx, rx) = mpsc::channel();
    // Signals first: from here on SIGTERM and SIGHUP restore the terminal.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| Error::other("cannot handle signals", e))?;
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let _ = tx.send(Msg::Signal(sig));
            }
        });
    }
    let sub = client
        .subscribe()
        .map_err(|e| Error::other("cannot subscribe to the supervisor", e))?;
    read_stream(sub, tx.clone());
    let mut app = App::new(tiers(&config));
    seed(&mut app, &config, &socket);
    let look = Look {
        color: colored::control::SHOULD_COLORIZE.should_colorize(),
    };
    let guard = Terminal::enter().map_err(|e| Error::other("cannot set up the terminal", e))?;
    read_keys(tx.clone());
    let mut term =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))
            .map_err(|e| Error::other("cannot set up the terminal", e))?;
    let prober = Prober::start(Arc::clone(&config), tx.clone());
    let mut tail: Option<(TailKey, logs::Tail)> = None;
    let mut last_log = Instant::now();
    let mut last_draw = Instant::now();
    let mut dirty = true;
    let panic_once = std::env::var_os(PANIC_VAR).is_some();
    let outcome = loop {
        // Follow the right log.
        let key = tail_key(&app);
        if tail.as_ref().map(|(k, _)| k) != Some(&key) {
            let logs = match &key {
                TailKey::All(names) => names
                    .iter()
                    .map(|n| (n.clone(), config.log_path(n)))
                    .collect(),
                TailKey::One(Some(n)) => vec![(n.clone(), config.log_path(n))],
                TailKey::One(None) => Vec::new(),
            };
            tail = Some((key, logs::Tail::open(logs, &mut app.logs)));
            last_log = Instant::now();
            dirty = true;
        } else if last_log.elapsed() >= LOG_EVERY && app.pane == Pane::Logs {
            if let Some((_, t)) = tail.as_mut() {
                let was = app.logs.lines.len() as u64 + app.logs.dropped;
                if t.poll(&mut app.logs) {
                    dirty = true;
                    // A scrolled view stays on the lines it shows.
                    if app.scroll > 0 {
                        let now = app.logs.lines.len() as u64 + app.logs.dropped;
                        app.scroll = (app.scroll + (now - was) as usize)
                            .min(app.logs.lines.len().saturating_sub(1));
                    }
                }
            }
            last_log = Instant::now();
        }
        if dirty || last_draw.elapsed() >= TICK {
            term.draw(|f| draw(f, &app, look))
                .map_err(|e| Error::other("cannot draw", e))?;
            last_draw = Instant::now();
            dirty = false;
            if panic_once {
                panic!("{PANIC_VAR} is set: panicking on purpose");
            }
        }
        let wait = LOG_EVERY
            .saturating_sub(last_log.elapsed())
            .min(TICK.saturating_sub(last_draw.elapsed()));
        let first = match rx.recv_timeout(wait) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break Outcome::Success,
        };
        // Everything that is waiting, then one frame.
        let mut quit = None;
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            dirty = true;
            match msg {
                Msg::Stream(r) => app.apply(*r),
                Msg::Gone => app.gone = true,
                Msg::Resize => {
                    let _ = term.autoresize();
                }
                Msg::Signal(sig) => {
                    quit = Some(Outcome::Interrupted { signal: sig });
                    break;
                }
                Msg::Done(text, ok) => app.done(text, ok),
                Msg::Progress(text) => app.done(text, true),
                Msg::Plan(changes, api) => app.plan(&changes, api),
                Msg::Key(k) => match app.key(k) {
                    Some(Action::Quit) => {
                        quit = Some(Outcome::Success);
                        break;
                    }
                    Some(Action::Probe(name)) => prober.probe(name, &app),
                    Some(action) => act(socket.clone(), action, tx.clone()),
                    None => {}
                },
            }
        }
        if let Some(outcome) = quit {
            break outcome;
        }
    };
    drop(term);
    drop(guard);
    Ok(outcome)
}

/// What the log pane follows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TailKey {
    One(Option<String>),
    All(Vec<String>),
}

fn tail_key(app: &App) -> TailKey {
    if app.all_logs {
        TailKey::All(app.services.iter().map(|s| s.name.clone()).collect())
    } else {
        TailKey::One(app.selected.clone())
    }
}

/// What there is to know before the stream says more: each service's
/// recent probes (for the sparklines), the recent events, and when the
/// supervisor started.
fn seed(app: &mut App, config: &Config, socket: &Path) {
    if let Some(mut c) = Client::connect(socket) {
        c.set_timeout(Some(Duration::from_secs(5)));
        if let Ok(Response::History { histories }) = c.request(
            Request::History {
                services: Vec::new(),
            },
            |_| {},
        ) {
            for (name, samples) in histories {
                let ring = app.probes.entry(name).or_default();
                for s in samples.iter().rev().take(app::SPARK).rev() {
                    ring.push_back((s.verdict != "down").then_some(s.latency_ms));
                }
            }
        }
    }
    let events = crate::events::read_all(&crate::events::path(config));
    for e in events.into_iter().rev().take(200).rev() {
        app.push_event(e);
    }
    if let Some(pid) = Client::connect(socket).and_then(|mut c| {
        c.set_timeout(Some(Duration::from_secs(5)));
        match c.request(Request::Status, |_| {}) {
            Ok(Response::Status { snapshot, .. }) => snapshot.supervisor_pid,
            _ => None,
        }
    }) {
        app.supervisor_started = process_age(pid).and_then(|age| Instant::now().checked_sub(age));
    }
}

/// How long a process has run, from /proc.
fn process_age(pid: i32) -> Option<Duration> {
    let ticks = crate::process::start_ticks(pid)?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let started = ticks as f64 / hz.max(1) as f64;
    Some(Duration::from_secs_f64((uptime - started).max(0.0)))
}

fn read_keys(tx: mpsc::Sender<Msg>) {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    std::thread::spawn(move || loop {
        let Ok(ev) = event::read() else { return };
        let msg = match ev {
            Event::Resize(..) => Msg::Resize,
            Event::Key(k) if k.kind != KeyEventKind::Release => {
                let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
                let key = match k.code {
                    KeyCode::Char(c) if ctrl => Key::Ctrl(c),
                    KeyCode::Char(c) => Key::Char(c),
                    KeyCode::Enter => Key::Enter,
                    KeyCode::Esc => Key::Esc,
                    KeyCode::Backspace => Key::Backspace,
                    KeyCode::Up => Key::Up,
                    KeyCode::Down => Key::Down,
                    KeyCode::PageUp => Key::PageUp,
                    KeyCode::PageDown => Key::PageDown,
                    KeyCode::Home => Key::Home,
                    KeyCode::End => Key::End,
                    KeyCode::Tab => Key::Tab,
                    _ => continue,
                };
                Msg::Key(key)
            }
            _ => continue,
        };
        if tx.send(msg).is_err() {
            return;
        }
    });
}

/// Run one action against the supervisor, on its own thread; its outcome
/// comes back as a [`Msg`].
fn act(socket: PathBuf, action: Action, tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        let (verb, done, request) = match &action {
            Action::Restart(n) => (
                format!("restart {n}"),
                format!("restarted {n}"),
                Request::Restart {
                    services: vec![n.clone()],
                },
            ),
            Action::Start(n) => (
                format!("start {n}"),
                format!("started {n}"),
                Request::Start {
                    services: vec![n.clone()],
                    profiles: Vec::new(),
                    replace: false,
                },
            ),
            Action::Stop(n) => (
                format!("stop {n}"),
                format!("stopped {n} (and what depends on it)"),
                Request::Stop {
                    services: vec![n.clone()],
                },
            ),
            Action::StopAll => (
                "stop everything".into(),
                "stopped everything".into(),
                Request::Stop {
                    services: Vec::new(),
                },
            ),
            Action::ReloadPlan => (
                "reload".into(),
                String::new(),
                Request::Reload { dry_run: true },
            ),
            Action::ReloadApply => (
                "reload".into(),
                "reloaded services.toml".into(),
                Request::Reload { dry_run: false },
            ),
            Action::Probe(_) | Action::Quit => return,
        };
        let Some(mut client) = Client::connect(&socket) else {
            let _ = tx.send(Msg::Done(
                format!("{verb} failed: no supervisor answers"),
                false,
            ));
            return;
        };
        let mut plan = None;
        let progress_tx = tx.clone();
        let reply = client.request_with(request, |r| match r {
            Response::Progress(p) => {
                let _ = progress_tx.send(Msg::Progress(format!(
                    "{verb}: {} {}",
                    p.service,
                    p.state.as_str()
                )));
            }
            Response::Plan { changes, api } => {
                plan = Some((changes.clone(), api.as_ref().map(|a| a.to_string())));
            }
            _ => {}
        });
        let msg = match reply {
            Ok(Response::Done { ok: true, .. }) if action == Action::ReloadPlan => {
                let (changes, api) = plan.unwrap_or_default();
                Msg::Plan(changes, api)
            }
            Ok(Response::Done { ok: true, .. }) => Msg::Done(done, true),
            Ok(Response::Done {
                ok: false,
                failures,
            }) => {
                let why: Vec<String> = failures
                    .iter()
                    .map(|f| format!("{} {}: {}", f.service, f.state.as_str(), f.reason))
                    .collect();
                Msg::Done(format!("{verb} failed: {}", why.join("; ")), false)
            }
            Ok(Response::Error { message, .. }) => {
                Msg::Done(format!("{verb} failed: {message}"), false)
            }
            Ok(other) => Msg::Done(format!("{verb}: unexpected reply {other:?}"), false),
            // Stopping everything ends the supervisor, which may hang up
            // before it answers.
            Err(_) if action == Action::StopAll => Msg::Done(done, true),
            Err(e) => Msg::Done(format!("{verb} failed: {e}"), false),
        };
        let _ = tx.send(msg);
    });
}

/// Runs the health checks asked for with `p`, one at a time, on a runtime
/// of its own (exec probes need its child reaper).
struct Prober {
    tx: mpsc::Sender<(String, bool)>,
}

impl Prober {
    fn start(config: Arc<Config>, out: mpsc::Sender<Msg>) -> Prober {
        let (tx, rx) = mpsc::channel::<(String, bool)>();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                crate::process::init();
                while let Ok((name, live)) = rx.recv() {
                    let msg = probe_one(&config, &name, live).await;
                    if out.send(msg).is_err() {
                        return;
                    }
                }
            });
        });
        Prober { tx }
    }

    fn probe(&self, name: String, app: &App) {
        let live = app
            .services
            .iter()
            .any(|s| s.name == name && s.pid.is_some());
        let _ = self.tx.send((name, live));
    }
}

async fn probe_one(config: &Config, name: &str, live: bool) -> Msg {
    let Some((_, svc)) = config.service(name) else {
        return Msg::Done(
            format!("probe {name}: not in services.toml as read here"),
            false,
        );
    };
    let (probe, timeout) = match (&svc.health, svc.port) {
        (Some(h), _) => (h.probe.clone(), h.timeout),
        (None, Some(port)) => (Probe::Tcp { port }, config::defaults::HEALTH_TIMEOUT),
        (None, None) => {
            return Msg::Done(
                format!("probe {name}: it has neither a health check nor a port"),
                false,
            )
        }
    };
    let mut r = health::probe(svc, &probe, timeout).await;
    if !live {
        commands::no_live_run(svc, &mut r);
    }
    let detail = svc.redact(r.detail.trim());
    let ok = r.verdict == health::Verdict::Healthy;
    Msg::Done(
        format!(
            "probe {name}: {} in {:.1}ms{}",
            r.verdict.as_str(),
            r.latency.as_secs_f64() * 1000.0,
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        ),
        ok,
    )
}

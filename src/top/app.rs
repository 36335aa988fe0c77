//! What `top` shows and where the user is in it: the status model as the
//! subscription last told it, the recent probes of each service, the
//! events, the log ring, and the selection, filter, panes and prompts. No
//! I/O here: keys come in and [`Action`]s go out, so that every screen can
//! be built from a recorded stream in a test.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::control::{Change, Response, Update};
use crate::status::{Event, ServiceStatus, Snapshot};

use super::logs::Ring;

/// How many probe latencies each service's sparkline shows.
pub const SPARK: usize = 12;
/// How many events the events pane keeps.
const EVENTS: usize = 500;

/// What a key asks of the world outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Restart(String),
    Start(String),
    Stop(String),
    StopAll,
    Probe(String),
    /// Ask for the reload's dry-run plan.
    ReloadPlan,
    ReloadApply,
    Quit,
}

/// Where keys go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing the services' filter.
    Filter,
    /// Typing a search of the log.
    Search,
    Help,
    /// `X`: waiting for `y`.
    ConfirmStopAll,
    /// `R`: the plan is shown, waiting for `y`.
    Plan(Vec<String>),
}

/// What the log pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Logs,
    Events,
}

/// A line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Tier(usize),
    /// A replicated service's line above its instances.
    Group(String),
    /// Index into `App::services`.
    Service(usize),
}

/// The result of an action, or a note, for the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub error: bool,
}

/// Keys, as `top` sees them (the terminal's own are mapped onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Ctrl(char),
    Enter,
    Esc,
    Backspace,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Tab,
}

pub struct App {
    pub project: String,
    pub supervisor_pid: Option<i32>,
    /// When the supervisor started, if known.
    pub supervisor_started: Option<Instant>,
    /// (name, title) of each tier, in order.
    pub tiers: Vec<(String, Option<String>)>,
    pub services: Vec<ServiceStatus>,
    /// When each service's status arrived (its uptime counts on from it).
    seen: Vec<Instant>,
    /// Recent probe latencies (None: the probe failed), oldest first.
    pub probes: HashMap<String, VecDeque<Option<f64>>>,
    pub events: VecDeque<Event>,
    pub logs: Ring,
    /// The selected service, by name (so it stays put as rows change).
    pub selected: Option<String>,
    pub filter: String,
    pub search: String,
    pub mode: Mode,
    pub pane: Pane,
    /// The log pane has the keys (`Enter`).
    pub log_focus: bool,
    /// All services' logs merged (`a`), else the selected one's.
    pub all_logs: bool,
    pub wrap: bool,
    pub zoom: bool,
    pub timestamps: bool,
    /// Lines up from the newest (0: following).
    pub scroll: usize,
    pub note: Option<Note>,
    /// The supervisor went away.
    pub gone: bool,
    /// A frozen clock, for tests.
    pub now: Option<Instant>,
}

impl App {
    pub fn new(tiers: Vec<(String, Option<String>)>) -> App {
        App {
            project: String::new(),
            supervisor_pid: None,
            supervisor_started: None,
            tiers,
            services: Vec::new(),
            seen: Vec::new(),
            probes: HashMap::new(),
            events: VecDeque::new(),
            logs: Ring::default(),
            selected: None,
            filter: String::new(),
            search: String::new(),
            mode: Mode::Normal,
            pane: Pane::Logs,
            log_focus: false,
            all_logs: false,
            wrap: false,
            zoom: false,
            timestamps: false,
            scroll: 0,
            note: None,
            gone: false,
            now: None,
        }
    }

    pub fn now(&self) -> Instant {
        self.now.unwrap_or_else(Instant::now)
    }

    /// Take in one message of the subscription.
    pub fn apply(&mut self, response: Response) {
        match response {
            Response::Status { snapshot, .. } => self.snapshot(snapshot),
            Response::Update(Update::Service(s)) => {
                let s = *s;
                let now = self.now();
                match self.services.iter().position(|x| x.name == s.name) {
                    Some(k) => {
                        self.services[k] = s;
                        self.seen[k] = now;
                    }
                    None => {
                        self.services.push(s);
                        self.seen.push(now);
                    }
                }
                self.keep_selection();
            }
            Response::Update(Update::Probe { service, sample }) => {
                let ring = self.probes.entry(service).or_default();
                if ring.len() == SPARK {
                    ring.pop_front();
                }
                ring.push_back((sample.verdict != "down").then_some(sample.latency_ms));
            }
            Response::Update(Update::Event(e)) => self.push_event(e),
            _ => {}
        }
    }

    pub fn push_event(&mut self, e: Event) {
        if self.events.len() == EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn snapshot(&mut self, snapshot: Snapshot) {
        let now = self.now();
        self.project = snapshot.project;
        self.supervisor_pid = snapshot.supervisor_pid;
        self.seen = vec![now; snapshot.services.len()];
        self.services = snapshot.services;
        // Services no longer in the stack (a reload removed them).
        self.probes
            .retain(|name, _| snapshot_has(&self.services, name));
        self.keep_selection();
    }

    /// Seconds the service's process has run, as of now.
    pub fn uptime(&self, k: usize) -> Option<f64> {
        let s = &self.services[k];
        let base = s.uptime_s?;
        let since = self.now().saturating_duration_since(self.seen[k]);
        Some(base + since.as_secs_f64())
    }

    /// Whether the filter lets a service through.
    fn shown(&self, s: &ServiceStatus) -> bool {
        let f = self.filter.to_lowercase();
        f.is_empty()
            || s.name.to_lowercase().contains(&f)
            || s.group
                .as_deref()
                .is_some_and(|g| g.to_lowercase().contains(&f))
    }

    /// The table's lines: tiers in order, each with its services (instances
    /// under their group's line), through the filter.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let mut tiers: Vec<&str> = self.tiers.iter().map(|(n, _)| n.as_str()).collect();
        // A tier the supervisor knows but the config read here does not.
        for s in &self.services {
            if !tiers.contains(&s.tier.as_str()) {
                tiers.push(&s.tier);
            }
        }
        for (t, tier) in tiers.iter().enumerate() {
            let members: Vec<usize> = (0..self.services.len())
                .filter(|&k| self.services[k].tier == *tier && self.shown(&self.services[k]))
                .collect();
            if members.is_empty() {
                continue;
            }
            rows.push(Row::Tier(t));
            let mut group: Option<&str> = None;
            for k in members {
                if let Some(g) = &self.services[k].group {
                    if group != Some(g.as_str()) {
                        group = Some(g.as_str());
                        rows.push(Row::Group(g.clone()));
                    }
                }
                rows.push(Row::Service(k));
            }
        }
        rows
    }

    /// The tier's name and title by its place in [`App::rows`]'s order.
    pub fn tier(&self, t: usize) -> (String, Option<String>) {
        if let Some(tier) = self.tiers.get(t) {
            return tier.clone();
        }
        let mut names: Vec<String> = self.tiers.iter().map(|(n, _)| n.clone()).collect();
        for s in &self.services {
            if !names.contains(&s.tier) {
                names.push(s.tier.clone());
            }
        }
        (names.get(t).cloned().unwrap_or_default(), None)
    }

    /// The services shown, in table order.
    pub fn visible(&self) -> Vec<usize> {
        self.rows()
            .into_iter()
            .filter_map(|r| match r {
                Row::Service(k) => Some(k),
                _ => None,
            })
            .collect()
    }

    pub fn selected_index(&self) -> Option<usize> {
        let name = self.selected.as_deref()?;
        self.services.iter().position(|s| s.name == name)
    }

    /// Keep a selection on a shown service.
    fn keep_selection(&mut self) {
        let visible = self.visible();
        let ok = self.selected_index().is_some_and(|k| visible.contains(&k));
        if !ok {
            self.selected = visible.first().map(|&k| self.services[k].name.clone());
        }
    }

    fn move_selection(&mut self, by: isize) {
        let visible = self.visible();
        if visible.is_empty() {
            return;
        }
        let at = self
            .selected_index()
            .and_then(|k| visible.iter().position(|&v| v == k))
            .unwrap_or(0);
        let to = (at as isize + by).clamp(0, visible.len() as isize - 1) as usize;
        let name = self.services[visible[to]].name.clone();
        if self.selected.as_deref() != Some(&name) {
            self.selected = Some(name);
            self.scroll = 0;
        }
    }

    fn say(&mut self, text: impl Into<String>, error: bool) {
        self.note = Some(Note {
            text: text.into(),
            error,
        });
    }

    /// An action's outcome, for the status line.
    pub fn done(&mut self, text: String, ok: bool) {
        self.say(text, !ok);
    }

    /// The reload's dry-run plan came: show it and wait for `y`.
    pub fn plan(&mut self, changes: &[Change], api: Option<String>) {
        let mut lines: Vec<String> = api.into_iter().collect();
        lines.extend(changes.iter().map(|c| c.to_string()));
        if lines.is_empty() {
            self.say("services.toml: no changes", false);
            self.mode = Mode::Normal;
        } else {
            self.mode = Mode::Plan(lines);
        }
    }

    /// Indexes into the ring of lines matching the search.
    pub fn matches(&self) -> Vec<usize> {
        if self.search.is_empty() {
            return Vec::new();
        }
        let needle = self.search.to_lowercase();
        self.logs
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| strip_ansi(&l.text).to_lowercase().contains(&needle))
            .map(|(i, _)| i)
            .collect()
    }

    /// Scroll so that the next (or previous) match is the bottom line.
    fn next_match(&mut self, forward: bool) {
        let n = self.logs.lines.len();
        if n == 0 {
            return;
        }
        let bottom = n - 1 - self.scroll.min(n - 1);
        let matches = self.matches();
        let found = if forward {
            matches.iter().find(|&&i| i > bottom).copied()
        } else {
            matches.iter().rev().find(|&&i| i < bottom).copied()
        };
        match found {
            Some(i) => self.scroll = n - 1 - i,
            None => self.say(format!("no more lines with \"{}\"", self.search), true),
        }
    }

    /// One key; the action it asks for, if any.
    pub fn key(&mut self, key: Key) -> Option<Action> {
        if let Key::Ctrl('c') = key {
            return Some(Action::Quit);
        }
        match self.mode.clone() {
            Mode::Filter => {
                match key {
                    Key::Enter => self.mode = Mode::Normal,
                    Key::Esc => {
                        self.filter.clear();
                        self.mode = Mode::Normal;
                    }
                    Key::Backspace => {
                        self.filter.pop();
                    }
                    Key::Char(c) => self.filter.push(c),
                    _ => {}
                }
                self.keep_selection();
                None
            }
            Mode::Search => {
                match key {
                    Key::Enter => {
                        self.mode = Mode::Normal;
                        self.next_match(false);
                    }
                    Key::Esc => {
                        self.search.clear();
                        self.mode = Mode::Normal;
                    }
                    Key::Backspace => {
                        self.search.pop();
                    }
                    Key::Char(c) => self.search.push(c),
                    _ => {}
                }
                None
            }
            Mode::Help => {
                self.mode = Mode::Normal;
                match key {
                    Key::Char('q') => Some(Action::Quit),
                    _ => None,
                }
            }
            Mode::ConfirmStopAll => {
                self.mode = Mode::Normal;
                if key == Key::Char('y') {
                    self.say("stopping everything…", false);
                    Some(Action::StopAll)
                } else {
                    self.say("nothing stopped", false);
                    None
                }
            }
            Mode::Plan(_) => {
                self.mode = Mode::Normal;
                if key == Key::Char('y') {
                    self.say("reloading…", false);
                    Some(Action::ReloadApply)
                } else {
                    self.say("reload cancelled: nothing changed", false);
                    None
                }
            }
            Mode::Normal => self.normal_key(key),
        }
    }

    fn normal_key(&mut self, key: Key) -> Option<Action> {
        let selected = self.selected.clone();
        let on_selected = |make: fn(String) -> Action| selected.clone().map(make);
        match key {
            Key::Char('q') => return Some(Action::Quit),
            Key::Esc if self.log_focus || self.zoom => {
                self.log_focus = false;
                self.zoom = false;
            }
            Key::Esc => {
                self.note = None;
                self.filter.clear();
                self.keep_selection();
            }
            Key::Enter | Key::Tab => {
                self.log_focus = !self.log_focus;
            }
            Key::Char('j') | Key::Down if self.log_focus => {
                self.scroll = self.scroll.saturating_sub(1)
            }
            Key::Char('k') | Key::Up if self.log_focus => {
                self.scroll = (self.scroll + 1).min(self.logs.lines.len().saturating_sub(1))
            }
            Key::Char('j') | Key::Down => self.move_selection(1),
            Key::Char('k') | Key::Up => self.move_selection(-1),
            Key::PageDown => self.scroll = self.scroll.saturating_sub(10),
            Key::PageUp => {
                self.scroll = (self.scroll + 10).min(self.logs.lines.len().saturating_sub(1))
            }
            Key::Char('G') | Key::End => self.scroll = 0,
            Key::Char('g') | Key::Home => self.scroll = self.logs.lines.len().saturating_sub(1),
            Key::Char('r') => {
                let a = on_selected(Action::Restart);
                if let Some(Action::Restart(n)) = &a {
                    self.say(format!("restarting {n}…"), false);
                }
                return a;
            }
            Key::Char('s') => {
                let a = on_selected(Action::Start);
                if let Some(Action::Start(n)) = &a {
                    self.say(format!("starting {n}…"), false);
                }
                return a;
            }
            Key::Char('x') => {
                let a = on_selected(Action::Stop);
                if let Some(Action::Stop(n)) = &a {
                    self.say(format!("stopping {n}…"), false);
                }
                return a;
            }
            Key::Char('p') => {
                let a = on_selected(Action::Probe);
                if let Some(Action::Probe(n)) = &a {
                    self.say(format!("probing {n}…"), false);
                }
                return a;
            }
            Key::Char('X') => {
                self.mode = Mode::ConfirmStopAll;
            }
            Key::Char('R') => {
                self.say("reading services.toml…", false);
                return Some(Action::ReloadPlan);
            }
            Key::Char('/') => {
                self.mode = Mode::Filter;
            }
            Key::Char('f') => {
                self.search.clear();
                self.mode = Mode::Search;
            }
            Key::Char('n') => self.next_match(false),
            Key::Char('N') => self.next_match(true),
            Key::Char('w') => self.wrap = !self.wrap,
            Key::Char('z') => self.zoom = !self.zoom,
            Key::Char('t') => self.timestamps = !self.timestamps,
            Key::Char('a') => {
                self.all_logs = !self.all_logs;
                self.scroll = 0;
            }
            Key::Char('e') => {
                self.pane = match self.pane {
                    Pane::Logs => Pane::Events,
                    Pane::Events => Pane::Logs,
                }
            }
            Key::Char('?') => self.mode = Mode::Help,
            _ => {}
        }
        None
    }
}

fn snapshot_has(services: &[ServiceStatus], name: &str) -> bool {
    services.iter().any(|s| s.name == name)
}

/// A line without its escape sequences (for searching it).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        // CSI: ESC [ params final(0x40..0x7e); other escapes: one char.
        if chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('\x40'..='\x7e').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

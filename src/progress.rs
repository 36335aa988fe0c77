//! What `start` and `restart` show while they wait. Off a terminal: one
//! plain line per change (and the supervisor's line every 10 s for a step
//! that goes on). On a terminal: a live line per service that is setting up
//! or starting, with its elapsed time, its setup step and the last line that
//! step wrote, redrawn in place (indicatif); a service that settles leaves
//! its final plain line above them.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Config;
use crate::output;
use crate::status::{Progress, ServiceState};

/// How much of a setup step a live line shows.
const STEP_WIDTH: usize = 32;

/// How often the live lines re-read the logs.
const REFRESH: Duration = Duration::from_millis(250);

/// What a command that waits on the supervisor shows: one clock from the
/// command's own start, whatever requests it makes (a `start` that first
/// reloads shows one block, not two whose times restart at 0), and a line
/// only when a service's state or detail changed since the last one.
pub struct Display {
    kind: Kind,
    started: std::time::Instant,
    /// The last (state, detail) shown per service.
    shown: Mutex<HashMap<String, (ServiceState, Option<String>)>>,
    /// The longest service name, for aligned columns.
    width: usize,
    /// For a stop: only services going down, not those that still run
    /// while they wait for their dependents.
    stopping: bool,
    went_down: Mutex<Vec<String>>,
}

enum Kind {
    Plain,
    Live(Arc<Live>),
}

impl Display {
    /// Live lines when stdout is a terminal, plain lines otherwise.
    pub fn for_stdout(config: &Config) -> Display {
        let width = name_width(config);
        let kind = if std::io::stdout().is_terminal() {
            Kind::Live(Live::new(config, width))
        } else {
            Kind::Plain
        };
        Display {
            kind,
            started: std::time::Instant::now(),
            shown: Mutex::new(HashMap::new()),
            width,
            stopping: false,
            went_down: Mutex::new(Vec::new()),
        }
    }

    /// Plain lines, wherever stdout goes (`up`, whose logs share it).
    pub fn plain(config: &Config) -> Display {
        Display {
            kind: Kind::Plain,
            started: std::time::Instant::now(),
            shown: Mutex::new(HashMap::new()),
            width: name_width(config),
            stopping: false,
            went_down: Mutex::new(Vec::new()),
        }
    }

    /// For a stop: a line when a service begins to stop and when it has;
    /// none for one that runs on until its dependents are down, or that was
    /// stopped already.
    pub fn for_stop(config: &Config) -> Display {
        Display {
            kind: Kind::Plain,
            started: std::time::Instant::now(),
            shown: Mutex::new(HashMap::new()),
            width: name_width(config),
            stopping: true,
            went_down: Mutex::new(Vec::new()),
        }
    }

    pub fn show(&self, p: &Progress) {
        let mut p = p.clone();
        p.elapsed_ms = self.started.elapsed().as_millis() as u64;
        {
            let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
            let now = (p.state, p.detail.clone());
            let first = !shown.contains_key(&p.service);
            if shown.get(&p.service) == Some(&now) {
                return;
            }
            shown.insert(p.service.clone(), now);
            if self.stopping && (p.state != ServiceState::Stopped || (first && p.detail.is_none()))
            {
                return;
            }
            // Went down while this command watched (not stopped before).
            if p.state == ServiceState::Stopped {
                let mut down = self.went_down.lock().unwrap_or_else(|e| e.into_inner());
                if !down.contains(&p.service) {
                    down.push(p.service.clone());
                }
            }
        }
        match &self.kind {
            Kind::Plain => output::print_progress(&p, self.width),
            Kind::Live(live) => live.show(&p),
        }
    }

    /// The services this display saw going down (a stop's own, and the
    /// dependents it took with them), in the order they began to.
    pub fn went_down(&self) -> Vec<String> {
        self.went_down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When the display began: the command's own clock.
    pub fn started(&self) -> std::time::Instant {
        self.started
    }

    /// Clear the live lines before the final words.
    pub fn finish(&self) {
        if let Kind::Live(live) = &self.kind {
            let bars = std::mem::take(&mut *live.bars.lock().unwrap_or_else(|e| e.into_inner()));
            for (bar, _) in bars.into_values() {
                bar.finish_and_clear();
            }
        }
    }
}

pub struct Live {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, (ProgressBar, String)>>,
    logs: HashMap<String, std::path::PathBuf>,
    /// The longest service name, for aligned lines.
    width: usize,
}

fn name_width(config: &Config) -> usize {
    config
        .services
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
}

impl Live {
    fn new(config: &Config, width: usize) -> Arc<Live> {
        let logs = config
            .services
            .iter()
            .map(|s| (s.name.clone(), config.log_path(&s.name)))
            .collect();
        let live = Arc::new(Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: Mutex::new(HashMap::new()),
            logs,
            width,
        });
        let weak = Arc::downgrade(&live);
        std::thread::spawn(move || {
            while let Some(live) = weak.upgrade() {
                live.refresh();
                drop(live);
                std::thread::sleep(REFRESH);
            }
        });
        live
    }

    fn show(&self, p: &Progress) {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let detail = p.detail.clone().unwrap_or_default();
        if p.state != ServiceState::Starting {
            if let Some((bar, _)) = bars.remove(&p.service) {
                bar.finish_and_clear();
            }
            self.multi.suspend(|| output::print_progress(p, self.width));
            return;
        }
        let (bar, shown) = bars.entry(p.service.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} {{prefix:{}}} {{elapsed:>4}} {{wide_msg}}",
                    self.width
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(p.service.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            (bar, String::new())
        });
        *shown = detail.clone();
        bar.set_message(detail);
    }

    /// A service in setup shows its step and the step's last line.
    fn refresh(&self) {
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        for (name, (bar, shown)) in bars.iter() {
            let setting_up = shown.starts_with("preparing") || shown.starts_with("setting up");
            let Some(log) = self.logs.get(name).filter(|_| setting_up) else {
                continue;
            };
            let status = crate::service_log::setup_status(log).filter(|(step, _)| step != "done");
            if let Some((step, last)) = status {
                let last = last.map(|l| format!(" | {l}")).unwrap_or_default();
                // The step is cut short so that its last line fits.
                let step = output::truncate(&step, STEP_WIDTH);
                bar.set_message(format!("setup: {step}{last}"));
            }
        }
    }
}

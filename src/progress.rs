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
use crate::control::{Progress, ServiceState};
use crate::output;

/// How much of a setup step a live line shows.
const STEP_WIDTH: usize = 32;

/// How often the live lines re-read the logs.
const REFRESH: Duration = Duration::from_millis(250);

pub enum Display {
    Plain,
    Live(Arc<Live>),
}

pub struct Live {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, (ProgressBar, String)>>,
    logs: HashMap<String, std::path::PathBuf>,
    /// The longest service name, for aligned lines.
    width: usize,
}

impl Display {
    /// Live lines when stdout is a terminal, plain lines otherwise.
    pub fn for_stdout(config: &Config) -> Display {
        if !std::io::stdout().is_terminal() {
            return Display::Plain;
        }
        let logs = config
            .services
            .iter()
            .map(|s| (s.name.clone(), config.log_path(&s.name)))
            .collect();
        let live = Arc::new(Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: Mutex::new(HashMap::new()),
            logs,
            width: config
                .services
                .iter()
                .map(|s| s.name.len())
                .max()
                .unwrap_or(0),
        });
        let weak = Arc::downgrade(&live);
        std::thread::spawn(move || {
            while let Some(live) = weak.upgrade() {
                live.refresh();
                drop(live);
                std::thread::sleep(REFRESH);
            }
        });
        Display::Live(live)
    }

    pub fn show(&self, p: &Progress) {
        match self {
            Display::Plain => output::print_progress(p),
            Display::Live(live) => live.show(p),
        }
    }

    /// Clear the live lines before the final words.
    pub fn finish(&self) {
        if let Display::Live(live) = self {
            let bars = std::mem::take(&mut *live.bars.lock().unwrap_or_else(|e| e.into_inner()));
            for (bar, _) in bars.into_values() {
                bar.finish_and_clear();
            }
        }
    }
}

impl Live {
    fn show(&self, p: &Progress) {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let detail = p.detail.clone().unwrap_or_default();
        if p.state != ServiceState::Starting {
            if let Some((bar, _)) = bars.remove(&p.service) {
                bar.finish_and_clear();
            }
            self.multi.suspend(|| output::print_progress(p));
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

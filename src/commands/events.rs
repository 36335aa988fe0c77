//! `fpctl events [SVC] [--json] [-f] [-n N]`: the event history, read from
//! `.fpctl/events.jsonl` (no supervisor needed); a replicated service's name
//! means all its instances.

use std::path::Path;
use std::time::Duration;

use colored::Colorize;

use crate::events::{self, Event};
use crate::{graph, Outcome, Result};

pub fn events(
    file: Option<&Path>,
    service: Option<&str>,
    json: bool,
    follow: bool,
    lines: usize,
) -> Result<Outcome> {
    let (config, _) = super::load_running(file)?;
    let names = match service {
        Some(name) => {
            let name = [name.to_string()];
            // The same "no service named … (did you mean …)" as every command.
            graph::select(&config, &name, &[])?;
            Some(config.expand_names(&name))
        }
        None => None,
    };
    let path = events::path(&config);
    let wanted = |e: &Event| names.as_ref().is_none_or(|n| n.contains(&e.service));
    let all: Vec<Event> = events::read_all(&path)
        .into_iter()
        .filter(|e| wanted(e))
        .collect();
    let mut last_ts = all.last().map(|e| e.ts).unwrap_or(0.0);
    for e in &all[all.len().saturating_sub(lines)..] {
        print_event(e, json);
    }
    if !follow {
        return Ok(Outcome::Success);
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let since = last_ts;
        let new: Vec<Event> = events::read_all(&path)
            .into_iter()
            .filter(|e| wanted(e) && e.ts > since)
            .collect();
        for e in new {
            last_ts = e.ts;
            print_event(&e, json);
        }
        // Its reader went away (`fpctl events -f | head`).
        if crate::stdio::stdout_closed() {
            return Ok(Outcome::Success);
        }
    }
}

fn print_event(e: &Event, json: bool) {
    if json {
        if let Ok(s) = serde_json::to_string(e) {
            println!("{s}");
        }
        return;
    }
    use crate::events::EventKind as K;
    let name = e.kind.as_str();
    let kind = match e.kind {
        K::Online | K::Completed | K::Adopted => name.green(),
        K::Failed | K::Offline | K::Memory => name.red(),
        K::Exited | K::Restart | K::Degraded | K::Blocked => name.yellow(),
        _ => name.normal(),
    };
    println!(
        "{}  {:<16} {:<10} {}",
        events::format_ts(e.ts).dimmed(),
        e.service,
        kind,
        e.detail
    );
}

//! Drawing `top`: the header, the service table (the columns of
//! `check --wide`, from `output`), the log or events pane, the status line
//! and the overlays (help, a confirmation, the reload plan). A pure
//! function of the [`App`]: the same state draws the same screen, which is
//! what the snapshot tests pin.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{strip_ansi, App, Mode, Pane, Row};
use crate::output;
use crate::status::{ServiceState, Summary};

/// The keys, as the help overlay and the README show them.
pub const KEYS: &[(&str, &str)] = &[
    ("j/k, arrows", "select a service (scroll, in the log)"),
    ("Enter", "focus the log (Esc: back)"),
    ("r", "restart"),
    ("s", "start"),
    ("x", "stop"),
    ("/", "filter services"),
    ("f", "search the log (n/N: next, previous)"),
    ("w", "wrap long lines"),
    ("z", "zoom the log"),
    ("t", "timestamps"),
    ("a", "all services' logs, merged"),
    ("e", "events pane"),
    ("p", "probe now"),
    ("R", "reload: the plan first, y applies"),
    ("X", "stop everything (asks first)"),
    ("?", "help"),
    ("q, Ctrl-C", "quit (the stack keeps running)"),
];

/// Drawing options that are not the app's state.
#[derive(Debug, Clone, Copy)]
pub struct Look {
    /// Colours (off: `NO_COLOR`, `--no-color`); words and bold stay.
    pub color: bool,
}

impl Look {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    fn dim(self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }
}

pub fn state_color(state: ServiceState) -> Color {
    match state {
        ServiceState::Online | ServiceState::Completed => Color::Green,
        ServiceState::Degraded | ServiceState::Starting => Color::Yellow,
        ServiceState::Offline | ServiceState::Failed => Color::Red,
        ServiceState::Blocked => Color::Magenta,
        ServiceState::Scheduled | ServiceState::Running => Color::Cyan,
        ServiceState::Stopped => Color::Gray,
    }
}

pub fn draw(frame: &mut Frame, app: &App, look: Look) {
    let area = frame.area();
    let [header, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header_line(app, look, header.width)), header);
    let rows = app.rows();
    if app.zoom {
        draw_pane(frame, app, look, body);
    } else {
        // The table takes what it needs, up to 60 % of the room; the log
        // pane the rest (at least 4 lines).
        let want = rows.len() as u16 + 1;
        let most = (body.height * 3 / 5).max(body.height.saturating_sub(4).min(want));
        let table_h = want.min(most).min(body.height);
        let [table, pane] =
            Layout::vertical([Constraint::Length(table_h), Constraint::Min(0)]).areas(body);
        draw_table(frame, app, look, &rows, table);
        if pane.height > 0 {
            draw_pane(frame, app, look, pane);
        }
    }
    frame.render_widget(Paragraph::new(status_line(app, look)), status);
    match &app.mode {
        Mode::Help => draw_help(frame, look, body),
        Mode::ConfirmStopAll => draw_box(
            frame,
            body,
            "stop everything",
            vec![
                Line::from("Stop every service and the supervisor?"),
                Line::from(""),
                Line::from(vec![
                    Span::styled("y", Style::new().add_modifier(Modifier::BOLD)),
                    Span::raw(" stops them, any other key does not"),
                ]),
            ],
        ),
        Mode::Plan(lines) => {
            let mut text: Vec<Line> = lines.iter().map(|l| Line::from(l.clone())).collect();
            text.push(Line::from(""));
            text.push(Line::from(vec![
                Span::styled("y", Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(" applies it, any other key cancels"),
            ]));
            draw_box(frame, body, "reload: what changes", text)
        }
        _ => {}
    }
}

/// The project, the supervisor, the counts by state, total memory and
/// CPU; shorter forms on a narrow terminal.
fn header_line(app: &App, look: Look, width: u16) -> Line<'static> {
    (0..3)
        .map(|short| header_variant(app, look, short))
        .find(|l| l.width() <= width as usize)
        .unwrap_or_else(|| header_variant(app, look, 2))
}

fn header_variant(app: &App, look: Look, short: u8) -> Line<'static> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut spans = vec![Span::styled(
        if app.project.is_empty() {
            "fpctl".to_string()
        } else {
            app.project.clone()
        },
        bold,
    )];
    match app.supervisor_pid {
        Some(pid) => {
            let mut s = if short < 2 {
                format!("  supervisor {pid}")
            } else {
                format!("  pid {pid}")
            };
            if let Some(started) = app.supervisor_started {
                let up = app.now().saturating_duration_since(started);
                s.push_str(&format!(" up {}", output::duration_short(up)));
            }
            spans.push(Span::raw(s));
        }
        None => spans.push(Span::styled("  no supervisor", look.fg(Color::Red))),
    }
    spans.push(Span::raw("  "));
    let summary = Summary::of(&app.services);
    let mut first = true;
    for state in ServiceState::ALL {
        let n = summary.count(state);
        let always = short == 0
            && matches!(
                state,
                ServiceState::Online | ServiceState::Degraded | ServiceState::Offline
            );
        if n == 0 && !always {
            continue;
        }
        if !first {
            spans.push(Span::raw(", "));
        }
        first = false;
        let style = if n > 0 && state != ServiceState::Stopped {
            look.fg(state_color(state))
        } else {
            Style::new()
        };
        spans.push(Span::styled(format!("{n} {}", state.as_str()), style));
    }
    let rss: u64 = app.services.iter().filter_map(|s| s.rss_bytes).sum();
    let cpu: f64 = app.services.iter().filter_map(|s| s.cpu_percent).sum();
    spans.push(Span::raw(format!(
        "  RSS {}  CPU {cpu:.1}%",
        output::bytes_short(rss)
    )));
    Line::from(spans)
}

/// The columns of `check --wide`, and after LATENCY the recent probes.
const PROBES: &str = "PROBES";
/// Columns dropped first when the terminal is narrow (by heading).
const DROP_ORDER: &[&str] = &[
    "RESTARTS_TOTAL",
    PROBES,
    "PORT",
    "RSS",
    "UPTIME",
    "CPU",
    "LATENCY",
    "PID",
    "RESTARTS",
];
/// The least room the detail column gets before other columns go.
const DETAIL_MIN: usize = 14;

fn headings() -> Vec<&'static str> {
    let mut h = output::headers(true);
    let at = h
        .iter()
        .position(|&c| c == "LATENCY")
        .map_or(h.len(), |i| i + 1);
    h.insert(at, PROBES);
    h
}

fn sparkline(samples: Option<&std::collections::VecDeque<Option<f64>>>) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let Some(samples) = samples.filter(|s| !s.is_empty()) else {
        return "-".to_string();
    };
    let top = samples.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
    samples
        .iter()
        .map(|s| match s {
            None => '×',
            Some(v) if top <= 0.0 => BARS[0],
            Some(v) => BARS[((v / top) * 7.0).round().clamp(0.0, 7.0) as usize],
        })
        .collect()
}

fn draw_table(frame: &mut Frame, app: &App, look: Look, rows: &[Row], area: Rect) {
    if area.height == 0 {
        return;
    }
    let headings = headings();
    let spark_at = headings.iter().position(|&h| h == PROBES).unwrap_or(0);
    let cells: Vec<Option<Vec<String>>> = rows
        .iter()
        .map(|r| match r {
            Row::Service(k) => {
                let mut s = app.services[*k].clone();
                s.uptime_s = app.uptime(*k);
                let mut c = output::cells(&s, true);
                c.insert(spark_at, sparkline(app.probes.get(&s.name)));
                Some(c)
            }
            _ => None,
        })
        .collect();
    let mut widths: Vec<usize> = headings.iter().map(|h| h.chars().count()).collect();
    for c in cells.iter().flatten() {
        for (w, cell) in widths.iter_mut().zip(c) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Drop columns until the others leave the detail its room.
    let detail = headings.len() - 1;
    let mut keep = vec![true; headings.len()];
    let room = area.width as usize;
    let used = |keep: &[bool]| -> usize {
        (0..detail)
            .filter(|&i| keep[i])
            .map(|i| widths[i] + 2)
            .sum::<usize>()
            + 1
    };
    for drop in DROP_ORDER {
        if used(&keep) + DETAIL_MIN <= room {
            break;
        }
        if let Some(i) = headings.iter().position(|h| h == drop) {
            keep[i] = false;
        }
    }
    let detail_w = room.saturating_sub(used(&keep));
    let line_of = |cells: &[String], styles: &[Style]| -> Vec<Span<'static>> {
        let mut spans = vec![Span::raw(" ")];
        for i in 0..headings.len() {
            if !keep[i] {
                continue;
            }
            let text = if i == detail {
                output::truncate(&cells[i], detail_w.max(1))
            } else {
                format!("{:<w$}  ", cells[i], w = widths[i])
            };
            spans.push(Span::styled(text, styles[i]));
        }
        spans
    };
    let mut lines: Vec<Line> = Vec::with_capacity(rows.len() + 1);
    let heads: Vec<String> = headings.iter().map(|h| h.to_string()).collect();
    lines.push(
        Line::from(line_of(&heads, &vec![Style::new(); heads.len()]))
            .style(look.dim().add_modifier(Modifier::BOLD)),
    );
    let selected = app.selected_index();
    let mut selected_line = 0;
    for (r, row) in rows.iter().enumerate() {
        match row {
            Row::Tier(t) => {
                let (name, title) = app.tier(*t);
                let text = match title {
                    Some(title) => format!("{title} ({name})"),
                    None => name,
                };
                lines.push(Line::from(Span::styled(
                    text,
                    Style::new().add_modifier(Modifier::BOLD),
                )));
            }
            Row::Group(g) => lines.push(Line::from(vec![
                Span::raw(" "),
                Span::styled(g.clone(), Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(format!("  {}", output::group_summary(&app.services, g))),
            ])),
            Row::Service(k) => {
                let s = &app.services[*k];
                let c = cells[r].as_ref().expect("a service row has cells");
                let mut styles = vec![Style::new(); c.len()];
                styles[2] = look.fg(state_color(s.state)).add_modifier(Modifier::BOLD);
                if s.state == ServiceState::Stopped {
                    styles[2] = look.dim();
                }
                let mut line = Line::from(line_of(c, &styles));
                if selected == Some(*k) {
                    selected_line = lines.len();
                    line = line.style(Style::new().add_modifier(Modifier::REVERSED));
                }
                lines.push(line);
            }
        }
    }
    // Scroll so that the selected line shows; the heading stays on top.
    let body = area.height as usize - 1;
    let skip = if body == 0 {
        0
    } else {
        (selected_line.saturating_sub(1) + 1)
            .saturating_sub(body)
            .min(lines.len().saturating_sub(1 + body))
    };
    let mut shown = vec![lines[0].clone()];
    shown.extend(lines.into_iter().skip(1 + skip).take(body));
    frame.render_widget(Paragraph::new(shown), area);
}

fn draw_pane(frame: &mut Frame, app: &App, look: Look, area: Rect) {
    let focus = if app.log_focus {
        Style::new().add_modifier(Modifier::BOLD)
    } else {
        look.dim()
    };
    let title = match app.pane {
        Pane::Events => " events ".to_string(),
        Pane::Logs => {
            let whose = if app.all_logs {
                "all services".to_string()
            } else {
                app.selected.clone().unwrap_or_else(|| "-".into())
            };
            let mut flags = Vec::new();
            flags.push(if app.scroll == 0 {
                "following".to_string()
            } else {
                format!("{} lines up", app.scroll)
            });
            if app.wrap {
                flags.push("wrap".into());
            }
            if app.timestamps {
                flags.push("times".into());
            }
            if !app.search.is_empty() {
                flags.push(format!("search \"{}\"", app.search));
            }
            format!(" log: {whose} ({}) ", flags.join(", "))
        }
    };
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(focus)
        .title(Span::styled(title, focus));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = inner.height as usize;
    let width = inner.width.max(1) as usize;
    if height == 0 {
        return;
    }
    let lines: Vec<Line> = match app.pane {
        Pane::Events => app
            .events
            .iter()
            .rev()
            .take(height)
            .rev()
            .map(|e| event_line(e, look))
            .collect(),
        Pane::Logs => log_lines(app, look, height, width),
    };
    let needed: usize = if app.wrap {
        lines.iter().map(|l| l.width().max(1).div_ceil(width)).sum()
    } else {
        lines.len()
    };
    let mut p = Paragraph::new(lines);
    if app.wrap {
        p = p
            .wrap(Wrap { trim: false })
            .scroll((needed.saturating_sub(height) as u16, 0));
    }
    frame.render_widget(p, inner);
}

fn event_line(e: &crate::status::Event, look: Look) -> Line<'static> {
    use crate::status::EventKind as K;
    let color = match e.kind {
        K::Online | K::Completed | K::Adopted => Some(Color::Green),
        K::Failed | K::Offline | K::Memory => Some(Color::Red),
        K::Exited | K::Restart | K::Degraded | K::Blocked => Some(Color::Yellow),
        _ => None,
    };
    let ts = crate::events::format_ts(e.ts);
    // The time of day is enough on a live screen.
    let ts = ts.get(11..19).unwrap_or(&ts).to_string();
    Line::from(vec![
        Span::styled(ts, look.dim()),
        Span::raw(format!("  {:<14} ", e.service)),
        Span::styled(
            format!("{:<9} ", e.kind.as_str()),
            color.map(|c| look.fg(c)).unwrap_or_default(),
        ),
        Span::raw(e.detail.clone()),
    ])
}

/// The bottom `height` lines of the log (above the scroll position), with
/// the service's own colours and the `name |` prefix when merged.
fn log_lines(app: &App, look: Look, height: usize, width: usize) -> Vec<Line<'static>> {
    let ring = &app.logs.lines;
    if ring.is_empty() {
        return vec![Line::styled(
            match &app.selected {
                Some(_) => "(nothing in the log yet)",
                None => "(no service)",
            },
            look.dim(),
        )];
    }
    let end = ring.len() - app.scroll.min(ring.len() - 1);
    let needle = app.search.to_lowercase();
    let name_w = ring
        .iter()
        .filter_map(|l| l.service.as_deref())
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = Vec::new();
    let mut rows = 0;
    for line in ring.range(..end).rev() {
        let mut spans = Vec::new();
        if app.timestamps {
            let t = line
                .time
                .map(|t| {
                    let s = humantime::format_rfc3339_millis(t).to_string();
                    s.get(11..23).unwrap_or(&s).to_string()
                })
                .unwrap_or_else(|| " ".repeat(12));
            spans.push(Span::styled(format!("{t} "), look.dim()));
        }
        if let Some(service) = &line.service {
            spans.push(Span::styled(
                format!("{service:<name_w$} | "),
                look.fg(Color::Cyan),
            ));
        }
        spans.extend(colored_spans(&line.text, look));
        let mut l = Line::from(spans);
        if !needle.is_empty() && strip_ansi(&line.text).to_lowercase().contains(&needle) {
            l = l.style(Style::new().add_modifier(Modifier::REVERSED));
        }
        rows += if app.wrap {
            l.width().max(1).div_ceil(width)
        } else {
            1
        };
        out.push(l);
        if rows >= height {
            break;
        }
    }
    out.reverse();
    out
}

/// A service's line as styled text: its SGR colour codes become styles,
/// any other escape or control character is dropped, so that nothing it
/// prints can move the cursor or change the terminal.
pub fn colored_spans(text: &str, look: Look) -> Vec<Span<'static>> {
    use ansi_to_tui::IntoText;
    let clean = only_sgr(text);
    let parsed: Option<Text<'static>> = clean.as_bytes().into_text().ok();
    let spans: Vec<Span<'static>> = match parsed {
        Some(t) => t.lines.into_iter().flat_map(|l| l.spans).collect(),
        None => vec![Span::raw(strip_ansi(&clean))],
    };
    spans
        .into_iter()
        .map(|mut s| {
            if s.content.chars().any(|c| c.is_control()) {
                s.content = s
                    .content
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect::<String>()
                    .into();
            }
            if !look.color {
                s.style = Style::new().add_modifier(s.style.add_modifier);
            }
            s
        })
        .collect()
}

/// `text` with its SGR sequences (colours, bold, …) and printable
/// characters only: every other escape sequence (cursor moves, screen
/// clearing, titles) and control character is dropped; a tab is a space.
fn only_sgr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    let mut seq = String::from("\x1b[");
                    for c in chars.by_ref() {
                        seq.push(c);
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                    if seq.ends_with('m') {
                        out.push_str(&seq);
                    }
                }
                // OSC (a title, a link): up to BEL or ESC \.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn status_line(app: &App, look: Look) -> Line<'static> {
    let key = Style::new().add_modifier(Modifier::BOLD);
    match &app.mode {
        Mode::Filter => {
            return Line::from(vec![
                Span::styled("/", key),
                Span::raw(format!("{}▏", app.filter)),
                Span::styled("  Enter keeps it, Esc clears it", look.dim()),
            ])
        }
        Mode::Search => {
            return Line::from(vec![
                Span::styled("search: ", key),
                Span::raw(format!("{}▏", app.search)),
                Span::styled("  Enter finds, Esc clears", look.dim()),
            ])
        }
        _ => {}
    }
    if app.gone {
        return Line::styled(
            "the supervisor has exited: `fpctl start` starts it again; q quits",
            look.fg(Color::Red).add_modifier(Modifier::BOLD),
        );
    }
    if let Some(note) = &app.note {
        let style = if note.error {
            look.fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            look.fg(Color::Green)
        };
        return Line::styled(note.text.clone(), style);
    }
    let mut spans = Vec::new();
    if !app.filter.is_empty() {
        spans.push(Span::styled(format!("filter \"{}\"  ", app.filter), key));
    }
    for (k, what) in [
        ("?", "help"),
        ("q", "quit"),
        ("r", "restart"),
        ("s", "start"),
        ("x", "stop"),
        ("/", "filter"),
        ("Enter", "log"),
        ("e", "events"),
    ] {
        spans.push(Span::styled(k, key));
        spans.push(Span::styled(format!(" {what}  "), look.dim()));
    }
    Line::from(spans)
}

fn draw_help(frame: &mut Frame, look: Look, area: Rect) {
    let w = KEYS.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:<w$}  "),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::styled("any key closes this", look.dim()));
    draw_box(frame, area, "keys", lines);
}

/// A box in the middle of `area`, over what is there.
fn draw_box(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line>) {
    let w = lines
        .iter()
        .map(|l| l.width())
        .max()
        .unwrap_or(0)
        .max(title.len() + 2) as u16
        + 4;
    let h = lines.len() as u16 + 2;
    let w = w.min(area.width);
    let h = h.min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(format!(" {title} "))
                .padding(ratatui::widgets::Padding::horizontal(1)),
        ),
        r,
    );
}

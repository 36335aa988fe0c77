//! A job's `schedule` in the words of other schedulers: systemd's
//! `OnCalendar=` and Kubernetes' five-field cron. Pure translations of the
//! cron expression (already checked by croner when the file was read),
//! each with the notes of what does not carry over.

use std::time::Duration;

use crate::config::{Schedule, When};

/// The cron fields, seconds first (`0` when the expression has five), or
/// why they cannot be translated.
fn fields(expr: &str) -> Result<[String; 6], String> {
    let expr = match expr.trim().to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
        "@monthly" => "0 0 1 * *".into(),
        "@weekly" => "0 0 * * 0".into(),
        "@daily" | "@midnight" => "0 0 * * *".into(),
        "@hourly" => "0 * * * *".into(),
        _ => expr.trim().to_string(),
    };
    let mut parts: Vec<String> = expr.split_whitespace().map(str::to_string).collect();
    if parts.len() == 5 {
        parts.insert(0, "0".into());
    }
    if let Some(odd) = parts.iter().find(|p| uses_extension(p)) {
        return Err(format!(
            "\"{odd}\" (last, nearest weekday, nth weekday) has no translation"
        ));
    }
    parts
        .try_into()
        .map_err(|_| "a cron expression of 5 or 6 fields".to_string())
}

/// Whether a cron field uses croner's extensions (`L`, `W`, `#`, `+`)
/// rather than numbers, names, ranges, steps and lists.
fn uses_extension(field: &str) -> bool {
    field.contains(['#', '+'])
        || field.split([',', '-', '/']).any(|part| {
            let p = part.to_ascii_lowercase();
            !p.is_empty()
                && p != "*"
                && p != "?"
                && p.parse::<u32>().is_err()
                && !MONTHS.contains(&p.as_str())
                && !DAYS.contains(&p.as_str())
        })
}

/// The values of one cron field, each a number, from `min` to `max`;
/// `names` are the words the field takes (`jan`, `sun`), from `min`.
fn values(field: &str, min: u32, max: u32, names: &[&str]) -> Result<Vec<u32>, String> {
    let number = |s: &str| -> Result<u32, String> {
        if let Some(k) = names.iter().position(|n| s.eq_ignore_ascii_case(n)) {
            return Ok(min + k as u32);
        }
        s.parse::<u32>()
            .map_err(|_| format!("\"{s}\" is not a value"))
    };
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| format!("bad step {s}"))?),
            None => (item, 1),
        };
        let (from, to) = match range {
            "*" | "?" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if item.contains('/') => (number(r)?, max),
                None => (number(r)?, number(r)?),
            },
        };
        let mut v = from;
        while v <= to {
            out.push(v);
            v += step.max(1);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A field as systemd writes it: `*`, `START/STEP`, or a list.
fn calendar_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok("*".into());
    }
    if let Some(step) = field.strip_prefix("*/") {
        return Ok(format!("{min:02}/{step}"));
    }
    let v = values(field, min, max, names)?;
    Ok(v.iter()
        .map(|x| format!("{x:02}"))
        .collect::<Vec<_>>()
        .join(","))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const SYSTEMD_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// The `OnCalendar=` values of a cron expression in zone `tz` (none: local
/// time): one, or two when both the day of the month and the weekday are
/// restricted (cron runs on either; systemd would want both).
pub fn on_calendar(expr: &str, tz: Option<&str>) -> Result<Vec<String>, String> {
    let [sec, min, hour, dom, mon, dow] = fields(expr)?;
    let time = format!(
        "{}:{}:{}",
        calendar_field(&hour, 0, 23, &[])?,
        calendar_field(&min, 0, 59, &[])?,
        calendar_field(&sec, 0, 59, &[])?
    );
    let month = calendar_field(&mon, 1, 12, &MONTHS)?;
    let weekdays = if dow == "*" || dow == "?" {
        None
    } else {
        let mut days: Vec<u32> = values(&dow, 0, 7, &DAYS)?
            .into_iter()
            .map(|d| d % 7)
            .collect();
        days.sort_unstable();
        days.dedup();
        Some(
            days.iter()
                .map(|&d| SYSTEMD_DAYS[d as usize])
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    let zone = tz.map(|z| format!(" {z}")).unwrap_or_default();
    let day_of_month = calendar_field(&dom, 1, 31, &[])?;
    Ok(match (weekdays, day_of_month.as_str()) {
        (None, _) => vec![format!("*-{month}-{day_of_month} {time}{zone}")],
        (Some(w), "*") => vec![format!("{w} *-{month}-* {time}{zone}")],
        (Some(w), _) => vec![
            format!("*-{month}-{day_of_month} {time}{zone}"),
            format!("{w} *-{month}-* {time}{zone}"),
        ],
    })
}

/// A systemd time span: `30min`, `1h 30min`, `1s`.
pub fn timespan(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut s = d.as_secs();
    let mut parts = Vec::new();
    for (unit, len) in [("d", 86400), ("h", 3600), ("min", 60), ("s", 1)] {
        if s >= len {
            parts.push(format!("{}{unit}", s / len));
            s %= len;
        }
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join(" ")
    }
}

/// The `[Timer]` lines of a schedule, and what does not carry over.
pub fn timer_lines(schedule: &Schedule) -> (Vec<String>, Vec<String>) {
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    match &schedule.when {
        When::Cron { expr, .. } => match on_calendar(expr, schedule.timezone.as_deref()) {
            Ok(values) => {
                lines.extend(values.into_iter().map(|v| format!("OnCalendar={v}")));
                if schedule.catch_up {
                    lines.push("Persistent=true".into());
                }
            }
            Err(why) => {
                notes.push(format!("its cron expression \"{expr}\" has no OnCalendar= form: {why}; the timer runs it daily at midnight instead"));
                lines.push("OnCalendar=daily".into());
            }
        },
        When::Every(d) => {
            let span = timespan(*d);
            if !schedule.run_on_start {
                lines.push(format!("OnActiveSec={span}"));
            }
            lines.push(format!("OnUnitActiveSec={span}"));
            if schedule.catch_up {
                notes.push("catch_up does not carry over for `every`: systemd keeps no record of an interval timer across reboots (Persistent= applies to OnCalendar= only)".into());
            }
        }
    }
    if schedule.run_on_start {
        lines.push("OnActiveSec=0".into());
    }
    // Timers are accurate to a minute unless told.
    lines.push("AccuracySec=1s".into());
    if schedule.concurrency == crate::config::Concurrency::Queue {
        notes.push("concurrency = \"queue\" does not carry over: systemd does not start a oneshot that is still running, so a run due during a run is skipped".into());
    }
    (lines, notes)
}

/// Intervals, in minutes, that a five-field cron repeats evenly.
const EVEN_MINUTES: [u64; 19] = [
    1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440,
];

/// The Kubernetes `schedule` of a job (five fields, by the minute), and
/// what does not carry over.
pub fn kubernetes_cron(schedule: &Schedule) -> (String, Vec<String>) {
    let mut notes = Vec::new();
    let cron = match &schedule.when {
        When::Cron { expr, .. } => {
            let parts: Vec<&str> = expr.split_whitespace().collect();
            if parts.len() == 6 {
                if parts[0].parse::<u32>().is_err() {
                    notes.push(format!("Kubernetes schedules by the minute: \"{expr}\" runs once a minute at most, at second 0"));
                } else if parts[0] != "0" {
                    notes.push(format!(
                        "Kubernetes schedules by the minute: the seconds field \"{}\" is dropped",
                        parts[0]
                    ));
                }
                parts[1..].join(" ")
            } else {
                if parts.iter().any(|p| uses_extension(p)) {
                    notes.push(format!(
                        "\"{expr}\" uses cron extensions (L, W, #) that Kubernetes does not know"
                    ));
                }
                expr.clone()
            }
        }
        When::Every(d) => {
            let minutes = (d.as_secs_f64() / 60.0).round().max(1.0) as u64;
            let nearest = *EVEN_MINUTES
                .iter()
                .min_by_key(|m| m.abs_diff(minutes))
                .expect("a list");
            if nearest * 60 != d.as_secs() || d.subsec_nanos() != 0 {
                notes.push(format!(
                    "every {} has no cron form: it runs every {} instead (the nearest that a cron schedule repeats evenly)",
                    humantime::format_duration(*d),
                    humantime::format_duration(Duration::from_secs(nearest * 60))
                ));
            }
            notes.push("`every` becomes a clock-aligned cron schedule: runs fall on round times, not counted from the start".into());
            match nearest {
                m if m < 60 => format!("*/{m} * * * *"),
                60 => "0 * * * *".into(),
                1440 => "0 0 * * *".into(),
                m => format!("0 */{} * * *", m / 60),
            }
        }
    };
    if schedule.run_on_start {
        notes.push("run_on_start does not carry over: a CronJob runs on its schedule only".into());
    }
    if schedule.concurrency == crate::config::Concurrency::Queue {
        notes.push("concurrency = \"queue\" becomes concurrencyPolicy: Forbid (a run due during a run is skipped)".into());
    }
    if schedule.timezone.is_none() && matches!(schedule.when, When::Cron { .. }) {
        notes.push("the cron schedule is read in the cluster controller's time zone (usually UTC), not this machine's: set timezone to pin it".into());
    }
    (cron, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_expressions_become_on_calendar_values() {
        let cases: [(&str, Option<&str>, &[&str]); 8] = [
            ("*/15 * * * *", None, &["*-*-* *:00/15:00"]),
            (
                "0 2 * * *",
                Some("Europe/Berlin"),
                &["*-*-* 02:00:00 Europe/Berlin"],
            ),
            ("*/5 * * * * *", None, &["*-*-* *:*:00/5"]),
            (
                "30 8 * * 1-5",
                None,
                &["Mon,Tue,Wed,Thu,Fri *-*-* 08:30:00"],
            ),
            ("0 0 1 jan,jul *", None, &["*-01,07-01 00:00:00"]),
            (
                "0 12 1 * sun",
                None,
                &["*-*-01 12:00:00", "Sun *-*-* 12:00:00"],
            ),
            ("0 9-17/4 * * 7", None, &["Sun *-*-* 09,13,17:00:00"]),
            ("@hourly", None, &["*-*-* *:00:00"]),
        ];
        for (expr, tz, want) in cases {
            assert_eq!(on_calendar(expr, tz).unwrap(), want, "{expr}");
        }
        for odd in ["0 0 L * *", "0 0 15W * *", "0 0 * * 5#2", "0 0 * * 5L"] {
            assert!(on_calendar(odd, None).is_err(), "{odd}");
        }
    }

    #[test]
    fn intervals_become_systemd_spans() {
        assert_eq!(timespan(Duration::from_secs(1800)), "30min");
        assert_eq!(timespan(Duration::from_secs(5400)), "1h 30min");
        assert_eq!(timespan(Duration::from_millis(1500)), "1500ms");
    }
}

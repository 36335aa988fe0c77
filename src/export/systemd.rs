//! systemd: a user unit `fpctl-PROJECT-NAME.service` per service and
//! `fpctl-PROJECT.target` that starts them all. Health gating goes through
//! `fpctl probe NAME --wait` in ExecStartPost, so a unit is active (and its
//! dependents start) only once its health check passes.

use std::cell::OnceCell;
use std::net::IpAddr;
use std::path::Path;

use super::mapping::{self, Plan};
use super::OutFile;
use crate::config::{RestartPolicy, Service, Setup};

/// The PATH a venv or npm service runs with (systemd's own, plus its tools).
const BASE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The engine's bridge gateway: unknown until a unit asks for it.
type Gateway = OnceCell<Option<IpAddr>>;

/// Unit names: anything but letters, digits and `-_.` becomes `-`.
fn unit_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

pub fn target_name(project: &str) -> String {
    format!("fpctl-{}.target", unit_part(project))
}

pub fn unit_name(project: &str, service: &str) -> String {
    format!(
        "fpctl-{}-{}.service",
        unit_part(project),
        unit_part(service)
    )
}

/// The units; `fpctl` is the binary ExecStartPost runs to probe health.
pub fn export(plan: &mut Plan, fpctl: &Path) -> Vec<OutFile> {
    let project = plan.config.project.name.clone();
    let mut files = Vec::new();
    // The bridge's gateway, asked of the engine once, when a unit needs it.
    let gateway = OnceCell::new();
    for &i in &plan.services.clone() {
        let text = unit(plan, i, fpctl, &gateway);
        files.push(OutFile::new(&unit_name(&project, &plan.svc(i).name), text));
        if let Some(timer) = timer(plan, i) {
            files.push(OutFile::new(
                &timer_name(&project, &plan.svc(i).name),
                timer,
            ));
        }
    }
    // A scheduled job starts by its timer.
    let wants: Vec<String> = plan
        .services
        .iter()
        .map(|&i| match plan.svc(i).schedule {
            Some(_) => timer_name(&project, &plan.svc(i).name),
            None => unit_name(&project, &plan.svc(i).name),
        })
        .collect();
    let title = format!(
        "systemd target of the fpctl stack \"{project}\": systemctl --user start {}",
        target_name(&project)
    );
    let mut notes = plan.notes_for(None);
    notes.extend(plan.notes.iter().filter(|n| {
        n.service.as_ref().is_some_and(|s| {
            plan.config
                .service(s)
                .is_some_and(|(i, _)| !plan.services.contains(&i))
        })
    }));
    let text = format!(
        "{}[Unit]\nDescription=fpctl stack {project}\nWants={}\n\n[Install]\nWantedBy=default.target\n",
        mapping::header(&title, &notes),
        wants.join(" ")
    );
    files.insert(0, OutFile::new(&target_name(&project), text));
    files
}

fn unit(plan: &mut Plan, i: usize, fpctl: &Path, gateway: &Gateway) -> String {
    let config = plan.config;
    let svc = plan.svc(i);
    let project = &config.project.name;
    let mut u = vec!["[Unit]".to_string()];
    u.push(format!("Description=fpctl {project}: {}", svc.name));
    u.push(format!("PartOf={}", target_name(project)));
    let deps: Vec<String> = plan
        .waits_for(i)
        .into_iter()
        .map(|(d, _)| unit_name(project, &plan.svc(d).name))
        .collect();
    if !deps.is_empty() {
        u.push(format!("Requires={}", deps.join(" ")));
        u.push(format!("After={}", deps.join(" ")));
    }
    if svc.restart != RestartPolicy::No {
        // fpctl gives up after max_restarts restarts in a row; a service
        // up for 30 s starts a new count.
        u.push("StartLimitIntervalSec=30s".into());
        u.push(format!("StartLimitBurst={}", svc.max_restarts + 1));
    }
    u.push(String::new());
    u.push("[Service]".into());
    if svc.schedule.is_some() {
        // Inactive again once a run ends, so that its timer can start it.
        u.push("Type=oneshot".into());
    } else if svc.oneshot {
        u.push("Type=oneshot".into());
        u.push("RemainAfterExit=yes".into());
    } else {
        u.push("Type=simple".into());
    }
    u.push(format!(
        "WorkingDirectory={}",
        escape(&svc.dir.display().to_string())
    ));
    if svc.in_container().is_some() {
        container_lines(plan, svc, gateway, &mut u);
    } else {
        native_lines(svc, &mut u);
    }
    if svc
        .health
        .as_ref()
        .is_some_and(|h| matches!(h.probe, crate::config::Probe::Log { .. }))
    {
        plan.note(&svc.name, "a log health check reads fpctl's log file, which systemd does not write (output goes to the journal): its start is not gated");
    } else if svc.health.is_some() {
        let probe = [
            fpctl.display().to_string(),
            "-f".into(),
            config.path.display().to_string(),
            "probe".into(),
            svc.name.clone(),
            format!("--wait={}", mapping::duration_text(svc.start_timeout)),
        ];
        u.push(format!("ExecStartPost={}", command_line(&probe)));
        // The probe's own --wait is the start timeout; setup may take long.
        u.push("TimeoutStartSec=infinity".into());
    }
    u.push(format!(
        "Restart={}",
        match svc.restart {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    ));
    if svc.restart != RestartPolicy::No {
        u.push("RestartSec=100ms".into());
    }
    // systemd always counts 0 as success; the other codes are added to it.
    let extra: Vec<String> = svc
        .success_exit_codes
        .iter()
        .filter(|&&c| c != 0)
        .map(i32::to_string)
        .collect();
    if !extra.is_empty() {
        u.push(format!("SuccessExitStatus={}", extra.join(" ")));
    }
    if !svc.success_exit_codes.contains(&0) {
        plan.note(
            &svc.name,
            "exit code 0 counts as success under systemd, though success_exit_codes leaves it out",
        );
    }
    u.push("KillMode=control-group".into());
    u.push(format!("KillSignal={}", svc.stop_signal.as_str()));
    // A container's stop is the engine's, which may take a little longer.
    let engine = if svc.in_container().is_some() {
        std::time::Duration::from_secs(15)
    } else {
        std::time::Duration::ZERO
    };
    u.push(format!(
        "TimeoutStopSec={}",
        mapping::duration_text(svc.stop_timeout + engine)
    ));
    if let Some(m) = svc.max_memory {
        u.push(format!("MemoryMax={m}"));
    }
    if svc.schedule.is_none() {
        u.push(String::new());
        u.push("[Install]".into());
        u.push(format!("WantedBy={}", target_name(project)));
    }
    notes(plan, svc);
    let title = format!(
        "systemd user unit of service \"{}\" of the fpctl stack \"{project}\"",
        svc.name
    );
    mapping::header(&title, &plan.notes_for(Some(&svc.name))) + &u.join("\n") + "\n"
}

/// A native service: its environment (with the PATH its setup gives it),
/// its setup before every start, and its command.
fn native_lines(svc: &Service, u: &mut Vec<String>) {
    let mut env = mapping::environment(svc);
    let runtime = crate::setup::runtime_env(svc);
    for (k, v) in runtime {
        let v = match k.as_str() {
            "PATH" => v
                .split(':')
                .next()
                .map(|first| format!("{first}:{BASE_PATH}"))
                .unwrap_or(v),
            _ => v,
        };
        env.retain(|(x, _)| *x != k);
        env.push((k, v));
    }
    for (k, v) in &env {
        u.push(format!("Environment={}", quote(&format!("{k}={v}"))));
    }
    for f in &svc.env_files {
        u.push(format!(
            "EnvironmentFile={}",
            escape(&f.display().to_string())
        ));
    }
    for cmd in setup_commands(svc) {
        let words = ["/bin/sh".to_string(), "-c".into(), cmd];
        u.push(format!("ExecStartPre={}", command_line(&words)));
    }
    let mut argv = svc.argv.clone();
    if matches!(svc.setup, Setup::Venv | Setup::Npm) && !argv[0].contains('/') {
        // The venv's or node_modules' bin comes first in PATH, which
        // systemd does not use to find the program itself.
        argv.insert(0, "/usr/bin/env".into());
    }
    u.push(format!("ExecStart={}", command_line(&argv)));
}

/// A container service runs as fpctl runs it: the engine's client,
/// attached, in the foreground (`run --rm --sig-proxy=false`), after a
/// container left by an earlier run is removed and its image is built (or
/// pulled when missing); a stop is the engine's `stop`, as the client
/// passes no signal on. Its variables reach the container by name (`-e
/// NAME`) from the unit's environment, as fpctl passes them.
///
/// A bridge container is published on 127.0.0.1 and, as fpctl does, on the
/// bridge's gateway, where the stack's other containers reach it: the
/// engine is asked for that address now, and a note says so when it does
/// not answer.
fn container_lines(plan: &mut Plan, svc: &Service, gateway: &Gateway, u: &mut Vec<String>) {
    let Some(c) = svc.in_container() else {
        return;
    };
    let rt = crate::container::Runtime::for_export(c.runtime);
    let marker = crate::process::project_marker(&plan.config.root);
    let gateway = match c.network {
        crate::config::Network::Bridge if svc.port.is_some() => {
            let found = *gateway.get_or_init(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()
                    .and_then(|t| t.block_on(crate::container::gateway(&rt)))
            });
            if found.is_none() {
                plan.note(
                    &svc.name,
                    "the container engine did not answer, so its port is published on 127.0.0.1 only: other containers cannot reach it (export again with the engine running)",
                );
            }
            found
        }
        _ => None,
    };
    let run = crate::container::run_spec(&rt, svc, &marker, gateway);
    for (k, v) in &run.env {
        u.push(format!("Environment={}", quote(&format!("{k}={v}"))));
    }
    // `-` first: no container to remove is no failure.
    let remove = [
        rt.program.clone(),
        "rm".into(),
        "-f".into(),
        run.name.clone(),
    ];
    u.push(format!("ExecStartPre=-{}", command_line(&remove)));
    match crate::container::build_argv(&rt, svc) {
        Some(build) => u.push(format!("ExecStartPre={}", command_line(&build))),
        None => {
            let image = shell_words::quote(&c.tag);
            let program = shell_words::quote(&rt.program);
            let pull = format!(
                "{program} image inspect {image} >/dev/null 2>&1 || {program} pull {image}"
            );
            let words = ["/bin/sh".to_string(), "-c".into(), pull];
            u.push(format!("ExecStartPre={}", command_line(&words)));
        }
    }
    u.push(format!("ExecStart={}", command_line(&run.argv)));
    let secs = svc.stop_timeout.as_millis().div_ceil(1000).to_string();
    let stop = [
        rt.program.clone(),
        "stop".into(),
        "-t".into(),
        secs,
        run.name,
    ];
    u.push(format!("ExecStop={}", command_line(&stop)));
}

pub fn timer_name(project: &str, service: &str) -> String {
    format!("fpctl-{}-{}.timer", unit_part(project), unit_part(service))
}

/// The timer that runs a scheduled job (none for other services).
fn timer(plan: &mut Plan, i: usize) -> Option<String> {
    let svc = plan.svc(i);
    let schedule = svc.schedule.as_ref()?;
    let project = plan.config.project.name.clone();
    let name = svc.name.clone();
    let (lines, notes) = super::schedule::timer_lines(schedule);
    let mut u = vec![
        "[Unit]".to_string(),
        format!(
            "Description=fpctl {project}: {name} on its schedule ({})",
            escape(&schedule.describe())
        ),
        format!("PartOf={}", target_name(&project)),
        String::new(),
        "[Timer]".into(),
    ];
    u.extend(lines.iter().map(|l| escape(l)));
    u.push(format!("Unit={}", unit_name(&project, &name)));
    u.push(String::new());
    u.push("[Install]".into());
    u.push(format!("WantedBy={}", target_name(&project)));
    let title =
        format!("systemd timer of the scheduled job \"{name}\" of the fpctl stack \"{project}\"");
    let notes: Vec<mapping::Note> = notes
        .into_iter()
        .map(|text| mapping::Note {
            service: Some(name.clone()),
            text,
        })
        .collect();
    let refs: Vec<&mapping::Note> = notes.iter().collect();
    Some(mapping::header(&title, &refs) + &u.join("\n") + "\n")
}

/// Setup as shell command lines, run before every start.
fn setup_commands(svc: &Service) -> Vec<String> {
    match &svc.setup {
        Setup::None => Vec::new(),
        Setup::Venv => vec![
            "python3 -m venv .venv && if [ -f requirements.txt ]; then .venv/bin/python -m pip install -r requirements.txt; fi".into(),
        ],
        Setup::Npm => vec!["if [ -f package-lock.json ]; then npm ci; else npm install; fi".into()],
        Setup::Commands(c) => c.clone(),
    }
}

fn notes(plan: &mut Plan, svc: &Service) {
    let name = svc.name.clone();
    if svc.health.is_some() && !svc.oneshot {
        plan.note_stack("health checks gate the start (ExecStartPost runs `fpctl probe --wait`); after that, systemd does not probe: a service that stops answering is not restarted (interval and retries do not apply)");
    }
    if svc.restart != RestartPolicy::No {
        plan.note_stack(
            "restarts come 100 ms apart (RestartSec), not with fpctl's doubling backoff",
        );
    }
    if svc.setup != Setup::None {
        plan.note(
            &name,
            "its setup runs before every start (ExecStartPre), not only when its inputs changed",
        );
    }
    if svc.log_rotation.is_some() {
        plan.note(
            &name,
            "log_max_size / log_keep do not apply: output goes to the journal",
        );
    }
    plan.note_profiles(svc);
}

/// `%` and `$` mean something to systemd everywhere (specifiers, variables).
fn escape(s: &str) -> String {
    s.replace('%', "%%")
}

/// One double-quoted word in systemd's syntax.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in escape(s).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A command line for Exec*=: words quoted where needed, `$` doubled so that
/// systemd does not expand it (fpctl has already expanded its variables).
fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            let w = w.replace('$', "$$");
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%$".contains(c));
            if plain {
                escape(&w)
            } else {
                quote(&w)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_keep_words_and_literal_dollars() {
        let argv: Vec<String> = ["sh", "-c", "echo \"$HOME\" 100%", "a\\b", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            command_line(&argv),
            r#"sh -c "echo \"$$HOME\" 100%%" "a\\b" """#
        );
    }
}

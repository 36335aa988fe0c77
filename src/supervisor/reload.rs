//! What a reload changes: two configs compared service by service, by name.
//!
//! A service is changed when anything that shapes its process differs:
//! command, folder, port, environment (after expansion), setup and its
//! inputs, health check, restart and stop settings. A dependent whose
//! dependency's port moved is changed too (it sees `FPCTL_PORT_<DEP>`).
//! Edits that change what the supervisor does around the process (`watch`,
//! tier and `depends_on`, which change the order only, profiles, …) are
//! changes too, listed apart: they apply without a restart.
//! Pure: the dispatcher decides what each change means for what runs.

use std::collections::BTreeSet;

use crate::config::{port_var_name, Config, Health, Probe, Service};
use crate::control::{Change, ChangeKind};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// In the new file's order; removed services last.
    pub changes: Vec<Change>,
}

/// Compare `old` and `new`. `setup_stale` says whether a service's setup
/// inputs changed since its setup last ran.
pub fn plan(old: &Config, new: &Config, setup_stale: impl Fn(&Service) -> bool) -> Plan {
    let mut changes = Vec::new();
    let mut moved_ports = BTreeSet::new();
    for svc in &new.services {
        if let Some((_, before)) = old.service(&svc.name) {
            if before.port != svc.port {
                moved_ports.insert(svc.name.clone());
            }
        }
    }
    for svc in &new.services {
        let Some((_, before)) = old.service(&svc.name) else {
            changes.push(Change {
                service: svc.name.clone(),
                kind: ChangeKind::Added,
                reasons: Vec::new(),
                live: Vec::new(),
            });
            continue;
        };
        let mut reasons = differences(before, svc);
        if setup_stale(svc) && !reasons.iter().any(|r| r == "setup") {
            reasons.push("setup inputs".into());
        }
        for &d in &svc.depends_on {
            let dep = &new.services[d].name;
            if moved_ports.contains(dep) {
                reasons.push(port_var_name(dep));
            }
        }
        let live = live_differences(old, before, new, svc);
        if !reasons.is_empty() || !live.is_empty() {
            changes.push(Change {
                service: svc.name.clone(),
                kind: ChangeKind::Changed,
                reasons,
                live,
            });
        }
    }
    for svc in &old.services {
        if new.service(&svc.name).is_none() {
            changes.push(Change {
                service: svc.name.clone(),
                kind: ChangeKind::Removed,
                reasons: Vec::new(),
                live: Vec::new(),
            });
        }
    }
    Plan { changes }
}

/// The names of the settings that differ between two definitions of one
/// service, as a user would call them.
fn differences(a: &Service, b: &Service) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |differs: bool, what: &str| {
        if differs {
            out.push(what.to_string());
        }
    };
    check(a.argv != b.argv, "command");
    check(a.dir != b.dir, "dir");
    check(a.port != b.port, "port");
    check(a.env != b.env, "env");
    check(a.setup != b.setup, "setup");
    check(!same_health(a.health.as_ref(), b.health.as_ref()), "health");
    check(
        a.restart != b.restart || a.max_restarts != b.max_restarts,
        "restart",
    );
    check(
        a.stop_signal != b.stop_signal || a.stop_timeout != b.stop_timeout,
        "stop",
    );
    check(a.start_timeout != b.start_timeout, "start_timeout");
    check(a.oneshot != b.oneshot, "oneshot");
    // Gaining or losing a schedule changes how the job starts.
    check(a.schedule.is_some() != b.schedule.is_some(), "schedule");
    check(a.max_memory != b.max_memory, "max_memory");
    check(a.log_rotation != b.log_rotation, "log_max_size");
    check(a.log_timestamps != b.log_timestamps, "log_timestamps");
    match (a.in_container().is_some(), b.in_container().is_some()) {
        (false, true) => check(true, "runs in its container"),
        (true, false) => check(true, "runs natively"),
        (true, true) => check(a.container != b.container, "container"),
        (false, false) => {}
    }
    out
}

/// The settings that differ and take effect without restarting the
/// process: what the supervisor does around it (watching, order, what a
/// start selects, replacing a stale copy) and what only exports read.
fn live_differences(old: &Config, a: &Service, new: &Config, b: &Service) -> Vec<String> {
    let names = |c: &Config, s: &Service| -> Vec<String> {
        s.depends_on
            .iter()
            .map(|&d| c.services[d].name.clone())
            .collect()
    };
    let mut out = Vec::new();
    let mut check = |differs: bool, what: &str| {
        if differs {
            out.push(what.to_string());
        }
    };
    check(
        a.watch != b.watch || a.watch_debounce != b.watch_debounce,
        "watch",
    );
    check(names(old, a) != names(new, b), "depends_on");
    check(old.tiers[a.tier].name != new.tiers[b.tier].name, "tier");
    check(a.profiles != b.profiles, "profiles");
    check(a.disabled != b.disabled, "disabled");
    check(a.replace_stale != b.replace_stale, "replace_stale");
    check(
        a.schedule.is_some() && b.schedule.is_some() && a.schedule != b.schedule,
        "schedule",
    );
    // Read when the process exits: the running one is judged by the new list.
    check(
        a.success_exit_codes != b.success_exit_codes,
        "success_exit_codes",
    );
    check(a.container != b.container, "container");
    out
}

fn same_health(a: Option<&Health>, b: Option<&Health>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.interval == b.interval
                && a.timeout == b.timeout
                && a.retries == b.retries
                && same_probe(&a.probe, &b.probe)
        }
        _ => false,
    }
}

fn same_probe(a: &Probe, b: &Probe) -> bool {
    match (a, b) {
        (
            Probe::Http {
                url: u1,
                expect_status: s1,
                expect_json: j1,
                insecure: i1,
            },
            Probe::Http {
                url: u2,
                expect_status: s2,
                expect_json: j2,
                insecure: i2,
            },
        ) => u1 == u2 && s1 == s2 && j1 == j2 && i1 == i2,
        (
            Probe::Log {
                pattern: p1,
                log: l1,
            },
            Probe::Log {
                pattern: p2,
                log: l2,
            },
        ) => p1.as_str() == p2.as_str() && l1 == l2,
        (Probe::Tcp { port: p1 }, Probe::Tcp { port: p2 }) => p1 == p2,
        (Probe::Exec { argv: a1 }, Probe::Exec { argv: a2 }) => a1 == a2,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use std::path::Path;

    fn config(text: &str) -> Config {
        load_str(Path::new("/tmp/x/services.toml"), text.to_string()).expect("valid")
    }

    fn shown(p: &Plan) -> Vec<String> {
        p.changes.iter().map(|c| c.to_string()).collect()
    }

    const BASE: &str = r#"
[services.db]
command = "db --port ${PORT}"
port = 7001
[services.api]
command = "api"
depends_on = ["db"]
[services.web]
command = "web"
"#;

    #[test]
    fn identical_files_change_nothing() {
        let p = plan(&config(BASE), &config(BASE), |_| false);
        assert!(p.changes.is_empty(), "{:?}", shown(&p));
    }

    #[test]
    fn an_edited_command_changes_that_service_only() {
        let new = BASE.replace("command = \"web\"", "command = \"web2\"");
        let p = plan(&config(BASE), &config(&new), |_| false);
        assert_eq!(shown(&p), ["~ web (command changed)"]);
    }

    #[test]
    fn a_moved_port_changes_the_service_and_its_dependents() {
        let new = BASE.replace("7001", "7002");
        let p = plan(&config(BASE), &config(&new), |_| false);
        assert_eq!(
            shown(&p),
            [
                "~ db (command, port, env changed)",
                "~ api (FPCTL_PORT_DB changed)"
            ]
        );
    }

    #[test]
    fn added_and_removed_services_are_listed() {
        let new = BASE.replace(
            "[services.web]\ncommand = \"web\"",
            "[services.worker]\ncommand = \"w\"",
        );
        let p = plan(&config(BASE), &config(&new), |_| false);
        assert_eq!(shown(&p), ["+ worker", "- web"]);
    }

    #[test]
    fn settings_applied_without_a_restart_are_changes_that_restart_nothing() {
        let new = BASE
            .replace(
                "command = \"web\"",
                "command = \"web\"\nwatch = [\"*.py\"]\nreplace_stale = true",
            )
            .replace("depends_on = [\"db\"]", "depends_on = []");
        let p = plan(&config(BASE), &config(&new), |_| false);
        assert_eq!(
            shown(&p),
            [
                "~ api (depends_on changed; no restart)",
                "~ web (watch, replace_stale changed; no restart)"
            ]
        );
        assert!(p.changes.iter().all(|c| !c.restarts()));
        let both = new.replace("command = \"web\"", "command = \"web2\"");
        let p = plan(&config(BASE), &config(&both), |_| false);
        assert_eq!(
            p.changes[1].to_string(),
            "~ web (command, watch, replace_stale changed)"
        );
        assert!(p.changes[1].restarts());
    }

    #[test]
    fn stale_setup_inputs_change_a_service() {
        let p = plan(&config(BASE), &config(BASE), |s| s.name == "api");
        assert_eq!(shown(&p), ["~ api (setup inputs changed)"]);
    }
}

//! Replacing a stale copy of a service: a process that holds the service's
//! port without answering its health check, runs the service's own command
//! and is not one of this supervisor's. Anything else on the port is left
//! alone, and the reason says why.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::config::Service;
use crate::process;

/// Stop `pid`, which holds `port` of `svc`, if it is a stale copy of `svc`:
/// its process group gets `stop_signal`, then SIGKILL after `stop_timeout`.
/// Ok is a line for the service's log; Err says why it was left alone.
pub async fn replace(svc: &Service, pid: i32, port: u16) -> Result<String, String> {
    if process::descends_from(pid, std::process::id() as i32) {
        return Err("left alone: it is a process of this supervisor".into());
    }
    let argv = process::argv(pid).unwrap_or_default();
    if !same_command(&argv, &svc.argv) {
        return Err(format!(
            "left alone: its command line is not the command of \"{}\", so it is not a stale copy",
            svc.name
        ));
    }
    let group = nix::unistd::getpgid(Some(Pid::from_raw(pid)))
        .map(Pid::as_raw)
        .ok()
        // Never our own group.
        .filter(|&g| g != nix::unistd::getpgrp().as_raw() && g > 1);
    let signal = |sig: Signal| match group {
        Some(g) => process::signal_group(g, sig),
        None => process::signal_pid(pid, sig),
    };
    signal(svc.stop_signal);
    let mut how = svc.stop_signal.as_str().to_string();
    if !gone_within(pid, svc.stop_timeout).await {
        signal(Signal::SIGKILL);
        how.push_str(", then SIGKILL");
        gone_within(pid, Duration::from_secs(2)).await;
    }
    // The kernel may hold the socket a moment after the exit.
    let t0 = Instant::now();
    while process::port_holder(port).is_some() && t0.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let whom = match group {
        Some(g) => format!("process group {g}"),
        None => format!("pid {pid}"),
    };
    Ok(format!(
        "replaced a stale copy: pid {pid} ({}) held port {port} without answering; stopped {whom} with {how}",
        argv.join(" ")
    ))
}

async fn gone_within(pid: i32, limit: Duration) -> bool {
    let t0 = Instant::now();
    while process::pid_alive(pid) {
        if t0.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    true
}

/// Whether a process's arguments are the service's command: the same
/// arguments, the program compared by its file name; for `sh -c CMD`, also
/// the words of CMD (a shell that exec'd its command).
pub(super) fn same_command(running: &[String], argv: &[String]) -> bool {
    let same = |a: &[String], b: &[String]| {
        let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        !a.is_empty() && a.len() == b.len() && name(&a[0]) == name(&b[0]) && a[1..] == b[1..]
    };
    if same(running, argv) {
        return true;
    }
    match argv {
        [sh, flag, cmd] if flag == "-c" && sh.ends_with("sh") => {
            let cmd = cmd.trim();
            let cmd = cmd.strip_prefix("exec ").unwrap_or(cmd);
            shell_words::split(cmd).is_ok_and(|words| same(running, &words))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::same_command;

    fn v(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn the_same_command_matches_and_another_does_not() {
        assert!(same_command(
            &v("/usr/bin/python3 app.py --port 1"),
            &v("python3 app.py --port 1")
        ));
        assert!(!same_command(
            &v("python3 app.py --port 2"),
            &v("python3 app.py --port 1")
        ));
        assert!(!same_command(&v("python3 other.py"), &v("python3 app.py")));
        let shell = vec![
            "sh".to_string(),
            "-c".into(),
            "exec python3 app.py --port 1".into(),
        ];
        assert!(same_command(&v("python3 app.py --port 1"), &shell));
        assert!(!same_command(&v("nc -l 1"), &shell));
    }
}

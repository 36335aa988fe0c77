//! Replacing a stale copy of a service: a process that holds the service's
//! port without answering its health check, runs the service's own command
//! and is not one of this supervisor's. Anything else on the port is left
//! alone, and the reason says why.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::config::Service;
use crate::process;
use crate::status::{NotReplaced, Replaced};

/// Stop `pid`, which holds `port` of `svc`, if it is a stale copy of `svc`:
/// it and its descendants get `stop_signal`, then SIGKILL after
/// `stop_timeout`. Never its process group or session: started by a script
/// without job control (make, CI, `run.sh`), the stale copy shares those
/// with the script and with the `fpctl start` that asked for its end.
/// Ok says what was signalled, for the service's log; Err why it was left
/// alone.
pub async fn replace(svc: &Service, pid: i32, port: u16) -> Result<Replaced, NotReplaced> {
    if process::descends_from(pid, std::process::id() as i32) {
        return Err(NotReplaced::OwnProcess);
    }
    let argv = process::argv(pid).unwrap_or_default();
    if !same_command(&argv, &svc.argv) {
        return Err(NotReplaced::OtherCommand);
    }
    let signalled = signal_tree(pid, svc.stop_signal);
    let mut signals = vec![svc.stop_signal.as_str()];
    if !gone_within(pid, svc.stop_timeout).await {
        signal_tree(pid, Signal::SIGKILL);
        // Descendants left behind by a parent that died first.
        for &(p, ticks) in &signalled {
            if process::is_same_process(p, ticks) {
                process::signal_pid(p, Signal::SIGKILL);
            }
        }
        signals.push(Signal::SIGKILL.as_str());
        gone_within(pid, Duration::from_secs(2)).await;
    }
    // The kernel may hold the socket a moment after the exit.
    let t0 = Instant::now();
    while process::port_holder(port).is_some() && t0.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Replaced {
        pid,
        command: argv.join(" "),
        port,
        descendants: signalled.iter().skip(1).map(|&(p, _)| p).collect(),
        signals,
    })
}

/// Send `sig` to `pid` and to every descendant it has now (never to this
/// supervisor's own processes); returns them, with their start times.
fn signal_tree(pid: i32, sig: Signal) -> Vec<(i32, u64)> {
    let me = std::process::id() as i32;
    let mut tree = Vec::new();
    let mut next = vec![pid];
    while let Some(p) = next.pop() {
        if p == me || tree.iter().any(|&(q, _)| q == p) {
            continue;
        }
        let Some(ticks) = process::start_ticks(p) else {
            continue;
        };
        tree.push((p, ticks));
        next.extend(process::children_of(p));
    }
    for &(p, _) in &tree {
        process::signal_pid(p, sig);
    }
    tree
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
pub fn same_command(running: &[String], argv: &[String]) -> bool {
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

//! Scheduled jobs on real processes: a oneshot with `schedule` runs on its
//! timer, a run that comes due during a run is skipped or queued, `stop
//! JOB` pauses and `start JOB` runs now, the schedule survives a
//! supervisor restart, `catch_up` makes up for a supervisor that was not
//! running, and `check` counts a failed last run only with `critical`.
//! `every = "1s"` keeps them fast.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// A job that records its start and end (Unix seconds) in `runs-NAME.txt`
/// and takes `secs` seconds, then exits with `code`.
fn job(name: &str, secs: f64, code: i32, schedule: &str) -> String {
    format!(
        r#"
[services.{name}]
oneshot = true
shell = true
command = "echo start $(date +%s.%N) >> runs-{name}.txt; sleep {secs}; echo end $(date +%s.%N) >> runs-{name}.txt; exit {code}"
schedule = {{ {schedule} }}
"#
    )
}

/// The (start, end) of each run so far; a run still going has no end.
fn runs(s: &Stack, name: &str) -> Vec<(f64, Option<f64>)> {
    let text = std::fs::read_to_string(s.file(&format!("runs-{name}.txt"))).unwrap_or_default();
    let mut out: Vec<(f64, Option<f64>)> = Vec::new();
    for line in text.lines() {
        let (what, ts) = line.split_once(' ').expect("a run line");
        let ts: f64 = ts.trim().parse().expect("a time");
        match what {
            "start" => out.push((ts, None)),
            _ => out.last_mut().expect("a start before an end").1 = Some(ts),
        }
    }
    out
}

fn events(s: &Stack, name: &str) -> Vec<Value> {
    let r = s.run(&["events", name, "--json", "-n", "100000"]);
    assert_eq!(r.code(), 0, "events failed:\n{}", r.all());
    r.stdout()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("an event line"))
        .collect()
}

fn has_event(s: &Stack, name: &str, kind: &str) -> bool {
    events(s, name).iter().any(|e| e["kind"] == kind)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// No run began before the one before it ended.
fn assert_no_overlap(runs: &[(f64, Option<f64>)]) {
    for pair in runs.windows(2) {
        let end = pair[0].1.expect("an earlier run ended");
        assert!(
            pair[1].0 >= end,
            "a run began at {} before the one before ended at {end}: {runs:?}",
            pair[1].0
        );
    }
}

fn kill_supervisor(s: &Stack) {
    let pid = s.supervisor_pid().expect("a supervisor runs");
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    wait_until("the supervisor is gone", Duration::from_secs(10), || {
        !pid_alive(pid)
    });
}

#[test]
fn a_scheduled_job_waits_for_its_timer_and_every_surface_shows_it() {
    let api = free_port();
    let toml = format!(
        "[project]\napi = \"127.0.0.1:{api}\"\n{}",
        job("tick", 0.1, 0, "every = \"1s\"")
    );
    let s = Stack::new(&toml);
    let began = now();
    // A plain start does not wait for a run: the job is settled once it is
    // scheduled.
    s.run(&["start"]).expect(0);
    let st = s.service("tick");
    assert!(
        st["state"] == "scheduled" || st["state"] == "running",
        "{st}"
    );
    let next = st["schedule"]["next_run"].as_f64().expect("a next run");
    assert!(next > began && next < now() + 1.5, "next run {next} {st}");
    assert_eq!(st["schedule"]["when"], "every 1s");

    wait_until("a run ended", Duration::from_secs(10), || {
        s.service("tick")["schedule"]["last_run"]["success"] == true
    });
    let first = runs(&s, "tick")[0].0;
    assert!(first >= began + 0.9, "the first run waited for the timer");

    // check --json (over the control socket), and its exit code.
    let (code, snap) = s.check_json();
    assert_eq!(code, 0, "{snap}");
    let st = snap["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "tick")
        .unwrap()
        .clone();
    let last = &st["schedule"]["last_run"];
    assert_eq!(last["exit"], serde_json::json!({"code": 0}), "{st}");
    assert!(last["duration_s"].as_f64().unwrap() >= 0.1, "{st}");
    assert!(last["started"].as_f64().unwrap() >= began, "{st}");
    // The table says it in words.
    let table = s.run(&["check", "--wide"]).stdout();
    assert!(
        table.contains("next run") && table.contains("last run ok"),
        "{table}"
    );
    // The state file keeps it (written once per burst of changes).
    wait_until(
        "state.json has the last run",
        Duration::from_secs(5),
        || s.saved_state().unwrap()["services"]["tick"]["schedule"]["last_run"].is_object(),
    );
    // The API.
    let token = std::fs::read_to_string(s.file(".fpctl/api-token")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body: Value = rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{api}/api/v1/services/tick"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let api_st = if body["schedule"].is_object() {
        &body
    } else {
        &body["service"]
    };
    assert!(api_st["schedule"]["next_run"].is_f64(), "{body}");
    assert!(api_st["schedule"]["last_run"].is_object(), "{body}");
    s.stop_all();
}

#[test]
fn a_run_that_comes_due_while_one_runs_is_skipped_with_an_event() {
    let s = Stack::new(&job("slow", 1.6, 0, "every = \"1s\""));
    s.run(&["start"]).expect(0);
    wait_until("a run was skipped", Duration::from_secs(15), || {
        has_event(&s, "slow", "skipped")
    });
    wait_until("two runs ended", Duration::from_secs(15), || {
        runs(&s, "slow").iter().filter(|r| r.1.is_some()).count() >= 2
    });
    s.stop_all();
    let runs = runs(&s, "slow");
    assert_no_overlap(&runs);
    let skipped = events(&s, "slow")
        .into_iter()
        .find(|e| e["kind"] == "skipped")
        .unwrap();
    assert!(skipped["data"]["due"].as_f64().is_some(), "{skipped}");
}

#[test]
fn with_concurrency_queue_a_run_due_during_a_run_follows_it_at_once() {
    let s = Stack::new(&job(
        "queued",
        1.6,
        0,
        "every = \"1s\", concurrency = \"queue\"",
    ));
    s.run(&["start"]).expect(0);
    wait_until("three runs ended", Duration::from_secs(20), || {
        runs(&s, "queued").iter().filter(|r| r.1.is_some()).count() >= 3
    });
    s.stop_all();
    let runs = runs(&s, "queued");
    assert_no_overlap(&runs);
    // Each run after the first was waiting: it began right as the one
    // before ended, not at the next tick.
    for pair in runs.windows(2).take(2) {
        let gap = pair[1].0 - pair[0].1.unwrap();
        assert!(gap < 0.5, "the queued run began {gap:.2}s late: {runs:?}");
    }
    assert!(has_event(&s, "queued", "queued"));
}

#[test]
fn stop_job_pauses_its_schedule_and_start_job_runs_it_now_and_resumes_it() {
    let s = Stack::new(&format!(
        "{}{}",
        job("often", 0.1, 0, "every = \"1s\""),
        job("hourly", 0.1, 0, "every = \"1h\"")
    ));
    s.run(&["start"]).expect(0);
    // Run now: `start JOB` answers once the run is over.
    s.run(&["start", "hourly"]).expect(0);
    assert_eq!(runs(&s, "hourly").len(), 1);
    let st = s.service("hourly");
    assert_eq!(st["state"], "scheduled", "{st}");
    assert_eq!(st["schedule"]["last_run"]["success"], true, "{st}");
    assert!(has_event(&s, "hourly", "run_now"));

    wait_until("often ran", Duration::from_secs(10), || {
        !runs(&s, "often").is_empty()
    });
    s.run(&["stop", "often"]).expect(0);
    let st = s.service("often");
    assert_eq!(st["state"], "stopped", "{st}");
    assert_eq!(st["schedule"]["paused"], true, "{st}");
    assert!(st["schedule"]["next_run"].is_null(), "{st}");
    assert!(has_event(&s, "often", "paused"));
    let paused_at = runs(&s, "often").len();
    // A plain start leaves a paused job paused.
    s.run(&["start"]).expect(0);
    let quiet_until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < quiet_until {
        assert_eq!(runs(&s, "often").len(), paused_at, "a paused job ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.service("often")["schedule"]["paused"], true);

    s.run(&["start", "often"]).expect(0);
    assert_eq!(runs(&s, "often").len(), paused_at + 1, "start JOB ran it");
    let resumed = events(&s, "often")
        .into_iter()
        .rev()
        .find(|e| e["kind"] == "run_now")
        .unwrap();
    assert_eq!(resumed["data"]["resumed"], true, "{resumed}");
    wait_until("the schedule goes on", Duration::from_secs(10), || {
        runs(&s, "often").len() >= paused_at + 2
    });
    s.stop_all();
}

#[test]
fn restart_job_runs_it_now_and_stops_a_run_in_progress_first() {
    let s = Stack::new(&format!(
        "{}{}",
        job("hourly", 0.1, 0, "every = \"1h\""),
        job("long", 4.0, 0, "every = \"1h\"")
    ));
    s.run(&["start"]).expect(0);
    // A restart of everything restarts services; a job keeps its timer.
    s.run(&["restart"]).expect(0);
    assert!(runs(&s, "hourly").is_empty(), "restart of all ran a job");
    assert_eq!(s.state_of("hourly"), "scheduled");

    // Naming the job runs it now and answers when the run is over.
    s.run(&["restart", "hourly"]).expect(0);
    let done = runs(&s, "hourly");
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].1.is_some(), "answered before the run ended");
    let st = s.service("hourly");
    assert_eq!(st["state"], "scheduled", "{st}");
    assert!(!st["schedule"]["next_run"].is_null(), "{st}");
    assert!(has_event(&s, "hourly", "run_now"));

    // A run in progress is stopped first, then a whole run goes.
    std::thread::scope(|scope| {
        let first = scope.spawn(|| s.run(&["start", "long"]));
        wait_until("the first run started", Duration::from_secs(10), || {
            runs(&s, "long").len() == 1
        });
        s.run(&["restart", "long"]).expect(0);
        let long = runs(&s, "long");
        assert_eq!(long.len(), 2, "{long:?}");
        assert!(
            long[0].1.is_none(),
            "the first run was not stopped: {long:?}"
        );
        assert!(long[1].1.is_some(), "answered before the second run ended");
        drop(first.join());
    });
    assert_eq!(s.state_of("long"), "scheduled");
    s.stop_all();
}

#[test]
fn a_paused_schedule_and_the_last_run_survive_a_supervisor_restart() {
    let s = Stack::new(&job("kept", 0.1, 0, "every = \"1s\""));
    s.run(&["start"]).expect(0);
    wait_until("a run ended", Duration::from_secs(10), || {
        s.service("kept")["schedule"]["last_run"]["success"] == true
    });
    s.run(&["stop", "kept"]).expect(0);
    let last = s.service("kept")["schedule"]["last_run"].clone();
    let ran = runs(&s, "kept").len();
    kill_supervisor(&s);
    s.run(&["start"]).expect(0);
    let st = s.service("kept");
    assert_eq!(st["schedule"]["paused"], true, "{st}");
    assert_eq!(st["schedule"]["last_run"], last, "{st}");
    let quiet_until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < quiet_until {
        assert_eq!(runs(&s, "kept").len(), ran, "a paused job ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.run(&["start", "kept"]).expect(0);
    assert_eq!(runs(&s, "kept").len(), ran + 1);
    s.stop_all();
}

#[test]
fn catch_up_runs_once_at_start_for_runs_missed_while_no_supervisor_ran() {
    let s = Stack::new(&format!(
        "{}{}",
        job("caught", 0.1, 0, "every = \"3s\", catch_up = true"),
        job("missed", 0.1, 0, "every = \"3s\"")
    ));
    s.run(&["start"]).expect(0);
    wait_until("both ran", Duration::from_secs(10), || {
        runs(&s, "caught").len() == 1 && runs(&s, "missed").len() == 1
    });
    s.stop_all();
    // Both come due while no supervisor runs.
    let seen = s.saved_state().unwrap()["services"]["caught"]["schedule"]["seen_until"]
        .as_f64()
        .unwrap();
    wait_until("a run was missed", Duration::from_secs(10), || {
        now() > seen + 3.5
    });
    let restarted = now();
    s.run(&["start"]).expect(0);
    wait_until("caught caught up", Duration::from_secs(3), || {
        runs(&s, "caught").len() == 2
    });
    let caught = runs(&s, "caught")[1].0;
    assert!(caught - restarted < 2.0, "the catch-up run waited");
    assert_eq!(
        runs(&s, "missed").len(),
        1,
        "without catch_up nothing ran yet"
    );
    assert!(has_event(&s, "caught", "catch_up"));
    assert!(!has_event(&s, "missed", "catch_up"));
    s.stop_all();
}

#[test]
fn check_fails_for_a_failed_last_run_only_when_the_job_is_critical() {
    let s = Stack::new(&format!(
        "{}{}{}",
        job("flaky", 0.0, 3, "every = \"1s\""),
        job("vital", 0.0, 3, "every = \"1s\", critical = true"),
        job(
            "yearly",
            0.0,
            0,
            "cron = \"0 0 1 1 *\", critical = true, timezone = \"UTC\""
        )
    ));
    s.run(&["start"]).expect(0);
    // Not run yet: fine.
    s.run(&["check", "yearly"]).expect(0);
    wait_until("both failed once", Duration::from_secs(10), || {
        let (_, snap) = s.check_json();
        snap["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["schedule"]["last_run"]["success"] == false)
            .count()
            == 2
    });
    let flaky = s.run(&["check", "flaky"]);
    assert_eq!(flaky.code(), 0, "{}", flaky.all());
    assert!(
        flaky.stdout().contains("last run failed") && flaky.stdout().contains("code 3"),
        "{}",
        flaky.all()
    );
    s.run(&["check", "vital"]).expect(1);
    s.run(&["check"]).expect(1);
    // A run asked for that fails makes `start JOB` fail, with its result.
    let now = s.run(&["start", "flaky"]);
    assert_eq!(now.code(), 1, "{}", now.all());
    assert!(now.all().contains("last run failed"), "{}", now.all());
    s.stop_all();
}

#[test]
fn validate_refuses_a_schedule_it_cannot_keep() {
    let cases = [
        (
            "[services.a]\ncommand = \"true\"\nschedule = { every = \"1m\" }\n",
            "services.toml:3:12",
            "needs oneshot = true",
        ),
        (
            "[services.a]\noneshot = true\ncommand = \"true\"\nschedule = { cron = \"61 * * * *\" }\n",
            "services.toml:4:21",
            "invalid cron expression",
        ),
        (
            "[services.a]\noneshot = true\ncommand = \"true\"\nschedule = { every = \"soon\" }\n",
            "services.toml:4:22",
            "invalid schedule every",
        ),
        (
            "[services.a]\noneshot = true\ncommand = \"true\"\nschedule = { cron = \"* * * * *\", timezone = \"Mars/Olympus\" }\n",
            "services.toml:4:45",
            "unknown time zone",
        ),
        (
            "[services.a]\noneshot = true\ncommand = \"true\"\nschedule = { catch_up = true }\n",
            "services.toml:4:12",
            "needs cron",
        ),
    ];
    for (toml, at, what) in cases {
        let s = Stack::new(toml);
        let r = s.run(&["validate"]);
        assert_eq!(r.code(), 2, "{toml}\n{}", r.all());
        assert!(
            r.stderr().contains(at) && r.stderr().contains(what),
            "{toml}\nwanted {at} {what}:\n{}",
            r.all()
        );
    }
}

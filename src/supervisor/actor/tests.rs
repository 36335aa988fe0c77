//! The dispatcher in-process: a real [`Supervisor`] with a test double for
//! its units. The double records every launch and hands it to the test,
//! which plays the unit: it reports spawns, probes and exits, and sees the
//! stops and kills the dispatcher sends. No process is started, so tier
//! gating, blocking, waiters, reload and backoff are tested in milliseconds.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::health::ProbeResult;
use crate::process::Exit;
use crate::supervisor::unit::{Launcher, Sink};

/// One launch, as the double saw it: the test plays its unit.
struct FakeUnit {
    id: ServiceId,
    gen: u64,
    ctl: mpsc::UnboundedReceiver<Ctl>,
    sink: Sink,
}

impl FakeUnit {
    fn report(&self, event: UnitEvent) {
        let _ = self.sink.send(Report {
            id: self.id.clone(),
            gen: self.gen,
            event,
        });
    }

    fn spawned(&self, pid: i32) {
        self.report(UnitEvent::Spawned {
            pid,
            ticks: None,
            at: state::now_unix(),
        });
    }

    fn probed(&self, verdict: Verdict) {
        self.report(UnitEvent::Probed(ProbeResult {
            verdict,
            detail: verdict.as_str().into(),
            latency: Duration::from_millis(1),
        }));
    }

    fn ended(&self, pid: i32, exit: Exit) {
        self.report(UnitEvent::Ended {
            pid: Some(pid),
            exit: Some(exit),
        });
    }

    /// The next control message within `limit`.
    async fn next_ctl(&mut self, limit: Duration) -> Option<Ctl> {
        tokio::time::timeout(limit, self.ctl.recv())
            .await
            .ok()
            .flatten()
    }
}

struct Double {
    launches: mpsc::UnboundedSender<FakeUnit>,
}

impl Launcher for Double {
    fn launch(&self, l: Launch, sink: Sink) -> Unit {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.launches.send(FakeUnit {
            id: l.id,
            gen: l.gen,
            ctl: rx,
            sink,
        });
        Unit::new(l.gen, tx)
    }

    fn sweep_all(&self, _marker: &str) {}
}

/// A dispatcher over `toml`, running as a task, with its launches.
struct Harness {
    dir: tempfile::TempDir,
    tx: mpsc::UnboundedSender<Msg>,
    launches: mpsc::UnboundedReceiver<FakeUnit>,
    next_pid: i32,
}

/// How long a test waits for something the dispatcher must do at once.
const SOON: Duration = Duration::from_secs(2);
/// How long a test watches for something that must not happen.
const QUIET: Duration = Duration::from_millis(50);

impl Harness {
    fn new(toml: &str) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("services.toml");
        std::fs::write(&path, toml).unwrap();
        let config = crate::config::load(Some(&path)).expect("a valid services.toml");
        state::ensure_dirs(&config).unwrap();
        let (launches_tx, launches) = mpsc::unbounded_channel();
        let double = Arc::new(Double {
            launches: launches_tx,
        });
        let (sup, tx) = Supervisor::new(Arc::new(config), double);
        tokio::spawn(sup.run());
        Harness {
            dir,
            tx,
            launches,
            next_pid: 1000,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn ask(&self, request: Request) -> Replies {
        let (reply, rx) = mpsc::unbounded_channel();
        self.tx
            .send(Msg::Client { request, reply })
            .expect("the dispatcher runs");
        Replies { rx }
    }

    fn start(&self, services: &[&str]) -> Replies {
        self.ask(Request::Start {
            services: services.iter().map(|s| s.to_string()).collect(),
            profiles: Vec::new(),
            replace: false,
        })
    }

    /// The next launch, which must come soon.
    async fn launched(&mut self) -> FakeUnit {
        tokio::time::timeout(SOON, self.launches.recv())
            .await
            .expect("a launch within 2 s")
            .expect("the dispatcher runs")
    }

    /// The names launched next, `n` of them, sorted.
    async fn launched_n(&mut self, n: usize) -> Vec<FakeUnit> {
        let mut units = Vec::new();
        for _ in 0..n {
            units.push(self.launched().await);
        }
        units.sort_by(|a, b| a.id.cmp(&b.id));
        units
    }

    /// No launch for a while.
    async fn no_launch(&mut self) {
        if let Ok(Some(u)) = tokio::time::timeout(QUIET, self.launches.recv()).await {
            panic!("unexpected launch of {}", u.id);
        }
    }

    /// Play a unit that spawns and answers its health check.
    fn up(&mut self, unit: &FakeUnit) -> i32 {
        self.next_pid += 1;
        unit.spawned(self.next_pid);
        unit.probed(Verdict::Healthy);
        self.next_pid
    }

    async fn statuses(&self) -> HashMap<String, ServiceStatus> {
        match self.ask(Request::Status).last().await {
            Response::Status { snapshot, .. } => snapshot
                .services
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect(),
            other => panic!("not a status: {other:?}"),
        }
    }

    async fn state_of(&self, name: &str) -> ServiceState {
        self.statuses().await[name].state
    }

    /// Wait until `name` is in `state`: reports and requests come on
    /// separate channels, so a status may be answered before a report
    /// sent just before it is read.
    async fn until(&self, name: &str, state: ServiceState) {
        let deadline = tokio::time::Instant::now() + SOON;
        while self.state_of(name).await != state {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} is not {state:?} within {SOON:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// The answers to one request.
struct Replies {
    rx: mpsc::UnboundedReceiver<Response>,
}

impl Replies {
    /// The final answer, with every progress line before it.
    async fn finish(mut self) -> (Vec<Response>, Response) {
        let mut before = Vec::new();
        loop {
            let r = tokio::time::timeout(SOON, self.rx.recv())
                .await
                .expect("an answer within 2 s")
                .expect("the dispatcher answers");
            match r {
                Response::Progress(_) | Response::Plan { .. } => before.push(r),
                last => return (before, last),
            }
        }
    }

    async fn last(self) -> Response {
        self.finish().await.1
    }

    /// Not answered yet.
    fn pending(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Response::Progress(_) | Response::Plan { .. }) => continue,
                Ok(other) => panic!("answered early: {other:?}"),
                Err(_) => return true,
            }
        }
    }
}

fn done_ok(r: &Response) -> bool {
    matches!(r, Response::Done { ok: true, failures } if failures.is_empty())
}

fn failed_names(r: &Response) -> Vec<String> {
    match r {
        Response::Done { failures, .. } => {
            let mut v: Vec<String> = failures.iter().map(|f| f.service.clone()).collect();
            v.sort();
            v
        }
        other => panic!("not a final answer: {other:?}"),
    }
}

const TWO_TIERS: &str = r#"
[[tier]]
name = "data"
[[tier]]
name = "apps"

[services.db]
tier = "data"
command = "db"
health = { tcp = 7001 }

[services.cache]
tier = "data"
command = "cache"
health = { tcp = 7002 }

[services.web]
tier = "apps"
command = "web"
health = { tcp = 7003 }
"#;

#[tokio::test]
async fn a_later_tier_starts_only_once_every_service_of_the_earlier_one_is_online() {
    let mut h = Harness::new(TWO_TIERS);
    let mut start = h.start(&[]);
    let data = h.launched_n(2).await;
    assert_eq!(
        data.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        ["cache", "db"]
    );
    h.no_launch().await;
    h.up(&data[0]);
    h.no_launch().await;
    // Spawned is not ready: only a passing probe is.
    h.next_pid += 1;
    data[1].spawned(h.next_pid);
    h.no_launch().await;
    data[1].probed(Verdict::Healthy);
    let web = h.launched().await;
    assert_eq!(web.id.as_str(), "web");
    assert!(start.pending(), "the start waits for web");
    h.up(&web);
    assert!(done_ok(&start.last().await));
}

#[tokio::test]
async fn a_failed_dependency_blocks_its_dependent_until_a_restart_brings_it_back() {
    let mut h = Harness::new(
        r#"
[services.db]
command = "db"
health = { tcp = 7001 }
restart = "no"

[services.web]
command = "web"
health = { tcp = 7002 }
depends_on = ["db"]
"#,
    );
    let start = h.start(&[]);
    let db = h.launched().await;
    db.spawned(2001);
    db.ended(2001, Exit::Code(1));
    let (_, last) = start.finish().await;
    assert_eq!(failed_names(&last), ["db", "web"]);
    assert_eq!(h.state_of("db").await, ServiceState::Failed);
    assert_eq!(h.state_of("web").await, ServiceState::Blocked);
    match &h.statuses().await["web"].reason {
        Some(crate::status::Reason::Blocked(BlockReason::Dependency { service, state })) => {
            assert_eq!((service.as_str(), *state), ("db", DepState::Failed));
        }
        other => panic!("web is blocked by db, not {other:?}"),
    }
    h.no_launch().await;

    let restart = h.ask(Request::Restart {
        services: vec!["db".into()],
    });
    let db = h.launched().await;
    assert_eq!(db.id.as_str(), "db");
    h.up(&db);
    let web = h.launched().await;
    assert_eq!(web.id.as_str(), "web", "the blocked dependent starts again");
    h.up(&web);
    assert!(done_ok(&restart.last().await));
    h.until("web", ServiceState::Online).await;
}

#[tokio::test]
async fn a_waiter_says_each_change_once_and_answers_once() {
    let mut h = Harness::new(TWO_TIERS);
    let start = h.start(&["db"]);
    let db = h.launched().await;
    h.up(&db);
    let (progress, last) = start.finish().await;
    assert!(done_ok(&last));
    let lines: Vec<(String, ServiceState, Option<String>)> = progress
        .iter()
        .filter_map(|r| match r {
            Response::Progress(p) => Some((p.service.clone(), p.state, p.detail.clone())),
            _ => None,
        })
        .collect();
    assert!(
        lines.iter().all(|(s, _, _)| s == "db"),
        "only what was asked for: {lines:?}"
    );
    assert_eq!(
        lines.last().map(|l| l.1),
        Some(ServiceState::Online),
        "the last line says online: {lines:?}"
    );
    let mut deduped = lines.clone();
    deduped.dedup();
    assert_eq!(deduped.len(), lines.len(), "no line repeated: {lines:?}");
    // A second start of what runs answers at once, launching nothing.
    assert!(done_ok(&h.start(&["db"]).last().await));
    h.no_launch().await;
}

#[tokio::test]
async fn a_stop_takes_dependents_down_first_and_answers_once_all_are_down() {
    let mut h = Harness::new(
        r#"
[services.db]
command = "db"
health = { tcp = 7001 }

[services.web]
command = "web"
health = { tcp = 7002 }
depends_on = ["db"]
"#,
    );
    let start = h.start(&[]);
    let mut db = h.launched().await;
    let db_pid = h.up(&db);
    let mut web = h.launched().await;
    let web_pid = h.up(&web);
    assert!(done_ok(&start.last().await));

    let mut stop = h.ask(Request::Stop {
        services: vec!["db".into()],
    });
    assert_eq!(web.next_ctl(SOON).await, Some(Ctl::Stop));
    assert_eq!(db.next_ctl(QUIET).await, None, "db waits for web");
    web.ended(web_pid, Exit::Signal(15));
    assert_eq!(db.next_ctl(SOON).await, Some(Ctl::Stop));
    assert!(stop.pending());
    db.ended(db_pid, Exit::Signal(15));
    assert!(done_ok(&stop.last().await));
    assert_eq!(h.state_of("db").await, ServiceState::Stopped);
    assert_eq!(h.state_of("web").await, ServiceState::Stopped);
}

#[tokio::test]
async fn a_crash_is_restarted_with_growing_backoff_until_max_restarts() {
    let mut h = Harness::new(
        r#"
[services.web]
command = "web"
health = { tcp = 7001 }
max_restarts = 2
"#,
    );
    let start = h.start(&[]);
    let first = h.launched().await;
    let pid = h.up(&first);
    assert!(done_ok(&start.last().await));

    // First crash: restarted at once.
    let crashed = tokio::time::Instant::now();
    first.ended(pid, Exit::Code(1));
    let second = h.launched().await;
    assert!(second.gen > first.gen, "a new launch number");
    let pid = h.up(&second);
    // Second crash in a row: after the backoff.
    let again = tokio::time::Instant::now();
    second.ended(pid, Exit::Code(1));
    let third = h.launched().await;
    let waited = again.elapsed();
    assert!(
        waited >= super::super::service::backoff(1),
        "the second restart waits {:?}, not {waited:?}",
        super::super::service::backoff(1)
    );
    assert!(crashed.elapsed() < Duration::from_secs(2));
    let status = &h.statuses().await["web"];
    assert_eq!((status.restarts, status.restarts_in_row), (2, 2));
    // A third crash in a row is over max_restarts: failed, no launch.
    third.spawned(3003);
    third.ended(3003, Exit::Code(1));
    h.until("web", ServiceState::Failed).await;
    h.no_launch().await;
    let status = &h.statuses().await["web"];
    assert!(
        matches!(
            status.reason,
            Some(crate::status::Reason::Failed(FailReason::GaveUp {
                max_restarts: 2,
                ..
            }))
        ),
        "{:?}",
        status.reason
    );
}

#[tokio::test]
async fn a_reload_restarts_what_changed_and_leaves_the_rest_running() {
    let mut h = Harness::new(TWO_TIERS);
    let start = h.start(&[]);
    let mut data = h.launched_n(2).await;
    for u in &data {
        h.up(u);
    }
    let mut web = h.launched().await;
    let web_pid = h.up(&web);
    assert!(done_ok(&start.last().await));

    let edited = TWO_TIERS.replace("command = \"web\"", "command = \"web --v2\"");
    std::fs::write(h.path().join("services.toml"), edited).unwrap();
    let reload = h.ask(Request::Reload { dry_run: false });
    assert_eq!(web.next_ctl(SOON).await, Some(Ctl::Stop));
    web.ended(web_pid, Exit::Signal(15));
    let web2 = h.launched().await;
    assert_eq!(web2.id.as_str(), "web");
    h.up(&web2);
    let (before, last) = reload.finish().await;
    assert!(done_ok(&last));
    let plan = before.iter().find_map(|r| match r {
        Response::Plan { changes, .. } => Some(changes.clone()),
        _ => None,
    });
    let plan = plan.expect("a plan before the answer");
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert_eq!(
        (plan[0].service.as_str(), plan[0].kind),
        ("web", ChangeKind::Changed)
    );
    for u in &mut data {
        assert_eq!(u.next_ctl(QUIET).await, None, "{} keeps running", u.id);
    }
    h.no_launch().await;
}

#[tokio::test]
async fn a_dry_run_reload_changes_nothing() {
    let mut h = Harness::new(TWO_TIERS);
    let start = h.start(&["db"]);
    let mut db = h.launched().await;
    h.up(&db);
    assert!(done_ok(&start.last().await));
    let edited = TWO_TIERS.replace("command = \"db\"", "command = \"db --v2\"");
    std::fs::write(h.path().join("services.toml"), edited).unwrap();
    let (before, last) = h.ask(Request::Reload { dry_run: true }).finish().await;
    assert!(done_ok(&last));
    assert!(
        before
            .iter()
            .any(|r| matches!(r, Response::Plan { changes, .. } if changes.len() == 1)),
        "the plan lists db: {before:?}"
    );
    assert_eq!(db.next_ctl(QUIET).await, None, "db keeps running");
    h.no_launch().await;
}

const DISABLED_CHAIN: &str = r#"
[services.db]
command = "db"
health = { tcp = 7001 }
disabled = true

[services.cache]
command = "cache"
health = { tcp = 7002 }
disabled = true
depends_on = ["db"]

[services.web]
command = "web"
health = { tcp = 7003 }
depends_on = ["cache"]
"#;

#[tokio::test]
async fn a_dependent_started_alone_starts_its_idle_disabled_dependencies_first() {
    let mut h = Harness::new(DISABLED_CHAIN);
    // A restart names web only: nothing selects its dependencies.
    let restart = h.ask(Request::Restart {
        services: vec!["web".into()],
    });
    let db = h.launched().await;
    assert_eq!(db.id.as_str(), "db");
    h.no_launch().await;
    h.up(&db);
    let cache = h.launched().await;
    assert_eq!(cache.id.as_str(), "cache");
    h.up(&cache);
    let web = h.launched().await;
    assert_eq!(web.id.as_str(), "web");
    h.up(&web);
    assert!(done_ok(&restart.last().await));
}

#[tokio::test]
async fn a_disabled_service_at_rest_says_so_and_blocks_nothing_it_is_not_asked_for() {
    let h = Harness::new(DISABLED_CHAIN);
    let st = h.statuses().await;
    assert_eq!(st["db"].state, ServiceState::Stopped);
    assert_eq!(st["db"].activity, Some(Activity::Disabled));
    assert_eq!(st["db"].detail.as_deref(), Some("disabled"));
    // An enabled service at rest says nothing.
    assert_eq!(st["web"].activity, None);
}

async fn analysis(h: &Harness) -> Option<crate::status::StartRecord> {
    match h.ask(Request::Analyze).last().await {
        Response::Analysis { record } => record,
        other => panic!("not an analysis: {other:?}"),
    }
}

#[tokio::test]
async fn the_start_record_keeps_each_step_and_what_each_service_waited_for() {
    let mut h = Harness::new(TWO_TIERS);
    assert_eq!(analysis(&h).await, None, "nothing started yet");
    let start = h.start(&[]);
    let data = h.launched_n(2).await;
    h.up(&data[1]); // db
    h.until("db", ServiceState::Online).await;
    h.up(&data[0]); // cache, ready last of the earlier tier
    let web = h.launched().await;
    h.up(&web);
    assert!(done_ok(&start.last().await));
    let record = analysis(&h).await.expect("a record");
    let names: Vec<&str> = record.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["db", "cache", "web"]);
    for s in &record.services {
        assert_eq!(s.state, ServiceState::Online, "{s:?}");
        let (l, sp, r) = (s.launched.unwrap(), s.spawned.unwrap(), s.ready.unwrap());
        assert!(record.began <= l && l <= sp && sp <= r, "{s:?}");
    }
    let web = record.get("web").unwrap();
    assert_eq!(web.after.as_deref(), Some("cache"));
    assert!(web.launched.unwrap() >= record.get("cache").unwrap().ready.unwrap());
    let chain: Vec<&str> = record
        .critical_chain()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(chain, ["web", "cache"]);
    // A start that starts nothing keeps the record.
    assert!(done_ok(&h.start(&[]).last().await));
    assert_eq!(analysis(&h).await.unwrap().began, record.began);
}

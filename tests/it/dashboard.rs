//! The dashboard in a real headless Chromium, driven over WebDriver
//! (chromedriver + fantoccini). Screenshots in light and dark mode are saved
//! under target/artifacts/.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

/// chromedriver on a free port, in its own process group (killed with the
/// stack), and a WebDriver session with a headless Chromium.
async fn browser(stack: &mut Stack) -> Client {
    let chromium = which("chromium")
        .or_else(|| which("chromium-browser"))
        .expect("chromium is needed for this test (apt-get install chromium; see .ci/run)");
    let driver = which("chromedriver")
        .expect("chromedriver is needed for this test (apt-get install chromium-driver)");
    let port = free_port();
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver")
    };
    stack.own_pids.push(child.id() as i32);
    std::mem::forget(child); // reaped by nobody; its group is killed on drop
    wait_until("chromedriver listens", Duration::from_secs(10), || {
        port_open(port)
    });
    let profile = stack.file("chromium-profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1100,760",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with headless Chromium")
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("script runs")
}

/// A service card's field (`state`, `pid`, …) as shown on the page.
async fn shown(c: &Client, service: &str, field: &str) -> Option<String> {
    let sel = format!(".svc[data-service='{service}'] .{field}");
    js(
        c,
        &format!("const e = document.querySelector(\"{sel}\"); return e ? e.textContent : null;"),
    )
    .await
    .as_str()
    .map(str::to_string)
}

async fn wait_shown(c: &Client, service: &str, field: &str, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = shown(c, service, field).await;
        if now.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service} {field} shows {now:?}, not {want:?}, after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Click what `css` finds. The grid is redrawn on every status, so an
/// element found a moment ago may be gone: find it again then.
async fn click(c: &Client, css: &str) {
    let mut last = None;
    for _ in 0..10 {
        match c.find(Locator::Css(css)).await {
            Ok(e) => match e.click().await {
                Ok(()) => return,
                Err(err) => last = Some(err.to_string()),
            },
            Err(err) => last = Some(err.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot click {css}: {last:?}");
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(artifacts().join(name), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_state_and_restarts_services() {
    let ports = free_ports(3);
    let api_port = free_port();
    let toml = format!(
        "[project]\nname = \"demo\"\napi = \"127.0.0.1:{api_port}\"\n\n[[tier]]\nname = \"data\"\ntitle = \"Data\"\n[[tier]]\nname = \"apps\"\ntitle = \"Applications\"\n{}{}{}",
        http_service("db", ports[0], "", "tier = \"data\""),
        http_service("api", ports[1], "", "tier = \"apps\"\ndepends_on = [\"db\"]"),
        http_service("web", ports[2], "", "tier = \"apps\"\ndepends_on = [\"api\"]"),
    ) + "\n[services.nightly]\ntier = \"data\"\noneshot = true\ncommand = \"true\"\nschedule = { every = \"1h\" }\n";
    let mut stack = Stack::new(&toml);
    stack.run(&["start"]).expect(0);
    let out = stack.run(&["dashboard", "--no-open"]).expect(0).stdout();
    // The printed link carries a one-time code, never the token.
    let url = out
        .split_whitespace()
        .find(|w| w.contains("#code="))
        .unwrap_or_else(|| panic!("no link in {out}"))
        .to_string();
    let c = browser(&mut stack).await;
    let result = run(&c, &stack, &url).await;
    let _ = c.close().await;
    result
}

async fn run(c: &Client, stack: &Stack, url: &str) {
    c.goto(url).await.unwrap();
    // Light mode first, whatever the system says.
    js(c, "localStorage.setItem('fpctl-theme', 'light'); document.documentElement.dataset.theme = 'light';").await;
    for name in ["db", "api", "web"] {
        wait_shown(c, name, "state", "online", Duration::from_secs(10)).await;
    }
    // A scheduled job shows its state, when it runs next, and no run yet.
    wait_shown(c, "nightly", "state", "scheduled", Duration::from_secs(10)).await;
    let next = shown(c, "nightly", "next-run").await;
    assert!(
        next.as_deref().is_some_and(|t| t.contains(':')),
        "the next run shows as {next:?}"
    );
    assert_eq!(shown(c, "nightly", "last-run").await.as_deref(), Some("-"));
    let pid = stack.pid_of("web").unwrap().to_string();
    wait_shown(c, "web", "pid", &pid, Duration::from_secs(5)).await;
    // The code left the address bar at once, and was traded for the token.
    let href = js(c, "return location.href").await;
    assert!(!href.as_str().unwrap().contains("code"), "{href}");
    let token = std::fs::read_to_string(stack.file(".fpctl/api-token")).unwrap();
    assert_eq!(
        js(c, "return sessionStorage.getItem('fpctl-token')").await,
        Value::from(token.trim())
    );
    // Memory and CPU reach the page with the supervisor's next samples.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rss = shown(c, "web", "rss").await;
        let cpu = shown(c, "web", "cpu").await;
        if rss.as_deref().is_some_and(|r| r.ends_with(" MB"))
            && cpu.as_deref().is_some_and(|c| c.ends_with('%'))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no memory and CPU figures on the page: {rss:?} {cpu:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    screenshot(c, "dashboard-light.png").await;

    // kill -9: the page shows offline, then online again, without a reload.
    js(c, r#"
        window.__sameLoad = true;
        window.__seen = [];
        const read = () => {
            const e = document.querySelector(".svc[data-service='web'] .state");
            const s = e && e.textContent;
            if (s && window.__seen[window.__seen.length - 1] !== s) window.__seen.push(s);
        };
        new MutationObserver(read).observe(document.getElementById("tiers"), { childList: true, subtree: true });
    "#).await;
    let old: i32 = pid.parse().unwrap();
    // SAFETY: kill(2) on the pid fpctl reported for the service.
    unsafe { libc::kill(old, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = js(c, "return window.__seen").await;
        let seen: Vec<String> = serde_json::from_value(seen).unwrap();
        let off = seen.iter().position(|s| s == "offline");
        if off.is_some_and(|k| seen[k..].iter().any(|s| s == "online")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "states seen after kill -9: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let revived = stack.pid_of("web").unwrap();
    assert_ne!(revived, old);
    wait_shown(
        c,
        "web",
        "pid",
        &revived.to_string(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        js(c, "return window.__sameLoad === true").await,
        Value::Bool(true)
    );

    // Click the card, then restart: the page shows the result and a new pid.
    click(c, ".svc[data-service='web']").await;
    c.wait()
        .for_element(Locator::Css("#details.show"))
        .await
        .unwrap();
    click(c, "#details button[data-action='restart']").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let result = loop {
        let text = c
            .find(Locator::Id("result"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("done") || text.contains("failed") {
            break text;
        }
        assert!(Instant::now() < deadline, "no restart result: {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let after = stack.pid_of("web").unwrap();
    assert_ne!(after, revived);
    assert!(
        result.contains(&format!("restart done: online, pid {after}")),
        "{result}"
    );
    wait_shown(c, "web", "pid", &after.to_string(), Duration::from_secs(5)).await;
    // The details show the service's settings and its log.
    let settings = c
        .find(Locator::Id("d-settings"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(settings.contains("api"), "{settings}");

    // Dark mode, by the toggle.
    c.find(Locator::Id("theme"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let bg = js(c, "return getComputedStyle(document.body).backgroundColor").await;
    assert_eq!(bg, Value::from("rgb(15, 20, 27)"));
    screenshot(c, "dashboard-dark.png").await;

    // A phone's width: one column, nothing wider than the screen.
    c.set_window_size(390, 844).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fits = js(
        c,
        "return document.documentElement.scrollWidth <= window.innerWidth",
    )
    .await;
    assert_eq!(fits, Value::Bool(true), "the page is wider than a phone");
    screenshot(c, "dashboard-phone.png").await;
    c.set_window_size(1100, 760).await.unwrap();

    // The supervisor goes away: a banner; a new one comes: recovery.
    let sup = stack.supervisor_pid().unwrap();
    // SAFETY: kill(2) on the supervisor pid fpctl recorded.
    unsafe { libc::kill(sup, libc::SIGKILL) };
    c.wait()
        .for_element(Locator::Css("#banner.show"))
        .await
        .unwrap();
    stack.run(&["check"]).expect(0); // starts a supervisor that adopts all
    let deadline = Instant::now() + Duration::from_secs(15);
    while js(
        c,
        "return document.getElementById('banner').classList.contains('show')",
    )
    .await
        == Value::Bool(true)
    {
        assert!(
            Instant::now() < deadline,
            "the banner stayed after recovery"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_shown(c, "web", "state", "online", Duration::from_secs(5)).await;
}

/// A reqwest client (fpctl links rustls without a default crypto provider).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// POST a code to the page's session endpoint: the status and the body.
async fn redeem(base: &str, code: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{base}api/v1/session"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_gets_a_one_time_code_on_its_command_line_never_the_token() {
    let api_port = free_port();
    let stack = Stack::new(&format!(
        "[project]\napi = \"127.0.0.1:{api_port}\"\n{}",
        http_service("web", free_port(), "", "")
    ));
    stack.run(&["start"]).expect(0);
    let token = std::fs::read_to_string(stack.file(".fpctl/api-token")).unwrap();
    let token = token.trim();
    // The browser fpctl opens: a script that writes down its command line,
    // which is what `ps` shows every local user.
    let argv = stack.file("browser-argv");
    stack.write(
        "browser",
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > {}.tmp && mv {0}.tmp {0}\n",
            argv.display()
        ),
    );
    std::fs::set_permissions(
        stack.file("browser"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut cmd = stack.cmd(&["dashboard"]);
    cmd.env("BROWSER", stack.file("browser"));
    let out = Run(output_within(cmd, RUN_LIMIT).unwrap())
        .expect(0)
        .stdout();
    wait_until("the browser is opened", Duration::from_secs(10), || {
        argv.exists()
    });
    let opened = std::fs::read_to_string(&argv).unwrap();
    assert!(
        !opened.contains(token),
        "the token is on the command line:\n{opened}"
    );
    let base = format!("http://127.0.0.1:{api_port}/");
    let browser_code = opened
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{base}#code=")))
        .unwrap_or_else(|| panic!("no one-time link in {opened}"))
        .to_string();
    let printed_code = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{base}#code=")))
        .unwrap_or_else(|| panic!("no one-time link in {out}"))
        .to_string();
    assert_ne!(browser_code, printed_code);

    // Each code is traded for the token once; a replay, or a code never
    // given, gets nothing.
    for code in [&browser_code, &printed_code] {
        let (status, body) = redeem(&base, code).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token"], token);
        let (status, body) = redeem(&base, code).await;
        assert_eq!(status, 401, "a replayed code: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("fpctl dashboard"),
            "{body}"
        );
        assert!(body.get("token").is_none());
    }
    assert_eq!(redeem(&base, &"0".repeat(64)).await.0, 401);
    // The exchange keeps the Host check (against DNS rebinding).
    let fresh = stack.run(&["dashboard", "--no-open"]).expect(0).stdout();
    let code = fresh
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{base}#code=")))
        .unwrap()
        .to_string();
    let r = client()
        .post(format!("{base}api/v1/session"))
        .header("Host", format!("rebound.example:{api_port}"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        redeem(&base, &code).await.0,
        200,
        "a refused request used up the code"
    );
}

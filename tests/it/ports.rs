//! The port registry: tier ranges, `port = "auto"` and `fpctl ports`.

use std::net::TcpListener;

use crate::common::*;

fn auto_stack(first: u16, last: u16) -> String {
    format!(
        r#"
[[tier]]
name = "apps"
ports = "{first}-{last}"

[services.web]
tier = "apps"
command = "python3 {httpd} --port ${{PORT}} --name web"
port = "auto"
health = {{ http = "/health" }}

[services.client]
tier = "apps"
command = "python3 {httpd} --port ${{PORT}} --name client --needs http://127.0.0.1:${{FPCTL_PORT_WEB}}/health"
port = "auto"
depends_on = ["web"]
health = {{ http = "/health" }}
"#,
        httpd = httpd()
    )
}

fn port_of(s: &Stack, name: &str) -> u16 {
    s.service(name)["port"].as_u64().expect("a port") as u16
}

#[test]
fn auto_ports_are_the_lowest_free_in_range_and_stay_stable_across_stop_and_start() {
    let first = free_range(6);
    // Something foreign holds the lowest port of the range.
    let squatter = TcpListener::bind(("127.0.0.1", first)).unwrap();
    let s = Stack::new(&auto_stack(first, first + 5));
    s.run(&["start"]).expect(0);
    let (web, client) = (port_of(&s, "web"), port_of(&s, "client"));
    assert_eq!(web, first + 1, "web did not get the lowest free port");
    assert_eq!(client, first + 2);
    assert!(
        http_get(web, "/health").is_some(),
        "web does not answer on {web}"
    );
    assert!(http_get(client, "/health").is_some());

    // Reloading the config while the services hold their ports keeps them.
    let r = s.run(&["ports", "--json"]).expect(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    let row = |name: &str| {
        v["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["service"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("web")["port"], web);
    assert_eq!(row("web")["auto"], true);
    assert_eq!(row("web")["state"], "service", "{v}");
    assert_eq!(row("web")["service"], "web");
    assert_eq!(v["tiers"][0]["next_free"], first + 3, "{v}");

    // Stopped, with the lower port free again: the recorded ports are kept.
    s.run(&["stop"]).expect(0);
    drop(squatter);
    s.run(&["start"]).expect(0);
    assert_eq!(
        port_of(&s, "web"),
        web,
        "web's auto port moved after a restart"
    );
    assert_eq!(port_of(&s, "client"), client);
    s.run(&["stop"]).expect(0);

    // Taken by something else while stopped: web moves, client keeps its own.
    let _thief = TcpListener::bind(("127.0.0.1", web)).unwrap();
    s.run(&["start"]).expect(0);
    let moved = port_of(&s, "web");
    assert_ne!(moved, web, "web kept a port something else holds");
    assert!((first..=first + 5).contains(&moved));
    assert_eq!(port_of(&s, "client"), client);
    assert!(http_get(moved, "/health").is_some());
}

#[test]
fn ports_reports_a_foreign_holder_with_its_pid() {
    let p = free_ports(2);
    let mut s = Stack::new(&format!(
        "{}{}",
        http_service("api", p[0], "", ""),
        http_service("web", p[1], "", ""),
    ));
    let foreign = s.spawn_httpd(&["--port", &p[1].to_string(), "--name", "intruder"]);
    wait_until(
        "the foreign server listens",
        std::time::Duration::from_secs(10),
        || port_open(p[1]),
    );
    s.run(&["start", "api"]).expect(0);
    let api = s.pid_of("api").expect("api's pid");

    let r = s.run(&["ports"]).expect(1);
    let out = r.stdout();
    assert!(
        out.contains(&format!("pid {foreign} (")) && out.contains("--name intruder"),
        "the table does not name the foreign holder:\n{out}"
    );
    assert!(out.contains("conflict: port"), "no conflict line:\n{out}");

    let r = s.run(&["ports", "--json"]).expect(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    let rows = v["ports"].as_array().unwrap();
    let web = rows.iter().find(|x| x["service"] == "web").unwrap();
    assert_eq!(web["state"], "foreign", "{v}");
    assert_eq!(web["pid"], foreign);
    assert!(web["command"].as_str().unwrap().contains("intruder"));
    assert!(web["conflict"].is_string());
    let api_row = rows.iter().find(|x| x["service"] == "api").unwrap();
    assert_eq!(api_row["state"], "service", "{v}");
    assert!(
        api_row["conflict"].is_null(),
        "the service's own port is reported as a conflict: {v}"
    );
    // The holder is api's process group (the leader or a child of it).
    let holder = api_row["pid"].as_i64().unwrap() as i32;
    assert!(holder == api || pid_alive(holder), "{v}");
}

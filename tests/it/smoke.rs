use crate::common::*;

#[test]
fn start_check_stop_one_http_service() {
    let port = free_port();
    let s = Stack::new(&http_service("web", port, "", ""));
    s.run(&["start"]).expect(0);
    assert_eq!(s.state_of("web"), "online");
    let pid = s.pid_of("web").expect("a pid");
    s.run(&["stop"]).expect(0);
    wait_until(
        "web's process is gone",
        std::time::Duration::from_secs(5),
        || !pid_alive(pid),
    );
}

//! A project in a folder too deep for `.fpctl/fpctl.sock` to fit in a Unix
//! socket address (108 bytes) still starts, answers and stops.

use crate::common::*;

#[test]
fn a_project_in_a_deep_folder_starts_and_stops() {
    let base = tempfile::Builder::new()
        .prefix("fpctl-deep")
        .tempdir()
        .expect("temp dir");
    let deep = base.path().join("a".repeat(60)).join("b".repeat(60));
    std::fs::create_dir_all(&deep).unwrap();
    let port = free_port();
    let s = Stack::new_in(&deep, &http_service("web", port, "", ""));
    assert!(
        s.file(".fpctl/fpctl.sock").as_os_str().len() > 108,
        "the folder is not deep enough to test anything"
    );
    let r = s.run(&["start"]);
    assert_eq!(r.code(), 0, "{}", r.all());
    let pid = s.pid_of("web").expect("web runs");
    assert_eq!(s.state_of("web"), "online");
    s.run(&["stop"]).expect(0);
    assert!(!pid_alive(pid));
    assert!(!port_open(port));
}

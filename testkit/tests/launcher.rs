//! The launcher against real processes: a service is waited for until it
//! answers, logs to its file and is gone once dropped; one that exits
//! before it is ready is reported with the end of its log.

use std::fs;
use std::time::Duration;

use chat_testkit::launcher::{free_addr, scratch_dir, Service};
use nix::sys::signal::kill;

#[tokio::test]
async fn a_service_logs_is_waited_for_and_stops_on_drop() {
    let (dir, logs) = scratch_dir(&format!("chat-testkit-{}", std::process::id())).unwrap();
    let addr = free_addr().unwrap();
    // A listener that prints, then waits to be stopped.
    let script = format!(
        "echo started; exec python3 -c 'import socket,time; s=socket.socket(); \
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
         s.bind((\"127.0.0.1\", {})); s.listen(); time.sleep(60)'",
        addr.port()
    );
    let mut service = Service::new("listener", "sh", &logs)
        .at(addr)
        .args(["-c", &script]);
    service.start().unwrap();
    service
        .wait_answering(&reqwest::Client::new(), None, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(service.is_running());
    let pid = service.pid().unwrap();
    assert!(service.log_tail(1).contains("started"));
    drop(service);
    assert!(kill(pid, None).is_err(), "the process outlived its Service");
    let _ = fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_service_that_exits_is_reported_with_its_log() {
    let (dir, logs) = scratch_dir(&format!("chat-testkit-exit-{}", std::process::id())).unwrap();
    let mut service = Service::new("failing", "sh", &logs)
        .at(free_addr().unwrap())
        .args(["-c", "echo bad config; exit 3"]);
    service.start().unwrap();
    let error = service
        .wait_ready(&reqwest::Client::new(), Duration::from_secs(20))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("exited") && error.contains("bad config"),
        "{error}"
    );
    let _ = fs::remove_dir_all(dir);
}

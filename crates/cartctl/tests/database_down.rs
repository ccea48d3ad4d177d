//! The commands that read PostgreSQL directly say why they cannot, rather than a pool's
//! "pool timed out" after waiting for nothing.

use std::net::TcpListener;
use std::process::Command;

/// A local port nothing listens on: bound, then let go.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cartctl"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("NATS_URL")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_refused_connection_is_reported_as_refused() {
    let url = format!("postgres://postgres@127.0.0.1:{}/cart", closed_port());
    for args in [
        &["events", "export", "--database-url", &url][..],
        &["projections", "rebuild", "--database-url", &url][..],
    ] {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("connect to PostgreSQL at {url}")),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.to_lowercase().contains("connection refused"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("timed out"), "{args:?}: {stderr}");
    }
}

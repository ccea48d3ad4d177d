//! NATS settings every cart binary shares: the seed list, and the replicas and
//! placement of the streams they create (`stream.rs`).
//!
//! The NATS seed list every binary reads from `NATS_URL` / `--nats-url`: one URL, or
//! several separated by commas (`nats://n1:4222,nats://n2:4222,nats://n3:4222`).
//!
//! async-nats takes the whole list: it connects to one of the servers (in random order,
//! so instances spread over a cluster) and, when that server goes away, reconnects to
//! another one of the list or to one the cluster announced. A single URL behaves as
//! before. This is the only place the setting is parsed, so every binary accepts the
//! same forms and refuses a bad list with the same message.

use async_nats::ServerAddr;

mod stream;

pub use stream::{ensure_stream, Replicas, StreamPlacement};

/// Why a seed list cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeedError {
    #[error("the NATS server list is empty")]
    Empty,
    /// An empty entry (`a,,b`, or a trailing comma): most likely a typo, so refused
    /// rather than skipped.
    #[error("NATS server {position} of the list is empty")]
    EmptyEntry { position: usize },
    #[error("NATS server {position} of the list, {entry:?}: {reason}")]
    Invalid {
        position: usize,
        entry: String,
        reason: String,
    },
}

/// The servers of `list`: comma-separated URLs (`nats://`, `tls://`, `ws://`, or
/// `host:port`), spaces around each allowed; positions in errors count from 1.
///
/// # Errors
/// An empty list, an empty entry, or an entry async-nats does not accept as a server
/// address.
pub fn servers(list: &str) -> Result<Vec<ServerAddr>, SeedError> {
    if list.trim().is_empty() {
        return Err(SeedError::Empty);
    }
    list.split(',')
        .enumerate()
        .map(|(i, entry)| {
            let (position, entry) = (i + 1, entry.trim());
            if entry.is_empty() {
                return Err(SeedError::EmptyEntry { position });
            }
            entry.parse::<ServerAddr>().map_err(|e| SeedError::Invalid {
                position,
                entry: entry.to_owned(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// `list` for logs: each server's host and port, without user names, passwords or
/// tokens (a seed URL may carry credentials).
pub fn display(servers: &[ServerAddr]) -> String {
    servers
        .iter()
        .map(|s| format!("{}:{}", s.host(), s.port()))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_url_is_a_list_of_one() {
        let list = servers("nats://127.0.0.1:4222").unwrap();
        assert_eq!(display(&list), "127.0.0.1:4222");
    }

    #[test]
    fn a_comma_separated_list_keeps_every_server_in_order() {
        let list = servers(" nats://n1:4222, n2:4223 ,tls://n3:4224").unwrap();
        assert_eq!(display(&list), "n1:4222,n2:4223,n3:4224");
        assert!(list[2].tls_required());
    }

    #[test]
    fn credentials_never_reach_the_displayed_list() {
        let list = servers("nats://user:secret@n1:4222,nats://token@n2:4222").unwrap();
        let shown = display(&list);
        assert!(
            !shown.contains("secret") && !shown.contains("token"),
            "{shown}"
        );
    }

    #[test]
    fn empty_lists_and_entries_are_refused_naming_the_position() {
        assert_eq!(servers(""), Err(SeedError::Empty));
        assert_eq!(servers("  "), Err(SeedError::Empty));
        assert_eq!(
            servers("nats://a:4222,,nats://b:4222"),
            Err(SeedError::EmptyEntry { position: 2 })
        );
        assert_eq!(
            servers("nats://a:4222,"),
            Err(SeedError::EmptyEntry { position: 2 })
        );
    }

    #[test]
    fn a_bad_entry_is_refused_naming_it() {
        let err = servers("nats://a:4222,http://b:4222").unwrap_err();
        match &err {
            SeedError::Invalid {
                position, entry, ..
            } => {
                assert_eq!(*position, 2);
                assert_eq!(entry, "http://b:4222");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("server 2"), "{err}");
    }
}

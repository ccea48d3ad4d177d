//! How many replicas the service's JetStream streams have, and where they go: from
//! settings (`--stream-replicas`, `--stream-placement-tags`), the same for every stream
//! the binaries create (`CART_EVENTS`, `CART_ORDERS`, the dead-letter stream).
//!
//! A stream that exists already keeps everything its operators set, except its number
//! of replicas, which follows the setting: raising it on a cluster makes JetStream copy
//! the stream to more nodes (its leader stays), so `--stream-replicas 3` on instances of
//! a cluster that grew from one node is all an operator does. When JetStream refuses the
//! change (a single server cannot hold 3 replicas, or not enough nodes carry the tags),
//! or the server is not in a cluster at all, where a stream has one copy whatever its
//! config says), the stream stays as it is and the refusal is logged as a warning naming the stream,
//! both counts and JetStream's reason; the service goes on with the stream as it is.

use async_nats::jetstream::{self, stream};

/// Replicas and placement of the streams a binary creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlacement {
    /// Copies of each stream in a JetStream cluster (1 on a single server; 3 or 5 on a
    /// cluster, at most the number of nodes).
    pub replicas: usize,
    /// Only nodes with all of these server tags hold the stream; none: any node.
    pub tags: Vec<String>,
}

impl Default for StreamPlacement {
    fn default() -> Self {
        Self {
            replicas: 1,
            tags: Vec::new(),
        }
    }
}

impl StreamPlacement {
    /// From the settings: `replicas` (0 is taken as 1) and comma-separated `tags`
    /// (empty entries ignored, so an empty setting means no tags).
    pub fn new(replicas: usize, tags: &str) -> Self {
        Self {
            replicas: replicas.max(1),
            tags: tags
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// `config` with these replicas and this placement.
    pub fn apply(&self, config: stream::Config) -> stream::Config {
        stream::Config {
            num_replicas: self.replicas,
            placement: (!self.tags.is_empty()).then(|| stream::Placement {
                cluster: None,
                tags: self.tags.clone(),
            }),
            ..config
        }
    }
}

/// What [`ensure_stream`] did to an existing stream's replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replicas {
    /// Created, or already as set.
    AsSet,
    /// Changed from `from` to the setting.
    Changed { from: usize },
    /// JetStream refused the change: the stream keeps `kept` replicas.
    Refused { kept: usize, reason: String },
}

/// Creates the stream of `config` with `placement` when it is missing; an existing one
/// gets `placement.replicas` (see the module's note), nothing else changes.
///
/// # Errors
/// The stream can be neither read nor created (JetStream's reason).
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
    placement: &StreamPlacement,
) -> Result<Replicas, String> {
    let name = config.name.clone();
    // A server outside a cluster takes any number in the stream's config but keeps one
    // copy: ask for one, and say that the setting is not met.
    let clustered = js
        .client()
        .server_info()
        .cluster
        .is_some_and(|c| !c.is_empty());
    if !clustered && placement.replicas > 1 {
        let reason = "the nats-server is not in a cluster: it holds one replica".to_owned();
        tracing::warn!(stream = %name, setting = placement.replicas, %reason, "the stream's replicas differ from the setting");
        let single = StreamPlacement {
            replicas: 1,
            ..placement.clone()
        };
        return match Box::pin(ensure_stream(js, config, &single)).await? {
            Replicas::AsSet | Replicas::Changed { .. } => Ok(Replicas::Refused { kept: 1, reason }),
            refused => Ok(refused),
        };
    }
    let mut existing = js
        .get_or_create_stream(placement.apply(config))
        .await
        .map_err(|e| e.to_string())?;
    let info = existing.info().await.map_err(|e| e.to_string())?;
    let from = info.config.num_replicas.max(1);
    if from == placement.replicas {
        return Ok(Replicas::AsSet);
    }
    let changed = stream::Config {
        num_replicas: placement.replicas,
        ..info.config.clone()
    };
    match js.update_stream(&changed).await {
        Ok(_) => {
            tracing::info!(stream = %name, from, to = placement.replicas, "JetStream stream replicas changed to the setting");
            Ok(Replicas::Changed { from })
        }
        Err(e) => {
            let reason = e.to_string();
            tracing::warn!(stream = %name, replicas = from, setting = placement.replicas, %reason, "JetStream refused to change the stream's replicas to the setting; the stream keeps its replicas");
            Ok(Replicas::Refused { kept: from, reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_replicas_and_tags() {
        let p = StreamPlacement::new(3, " ssd, eu-west ,");
        assert_eq!(p.replicas, 3);
        assert_eq!(p.tags, ["ssd", "eu-west"]);
        let config = p.apply(stream::Config {
            name: "S".into(),
            ..Default::default()
        });
        assert_eq!(config.num_replicas, 3);
        assert_eq!(config.placement.unwrap().tags, ["ssd", "eu-west"]);
    }

    #[test]
    fn the_defaults_are_one_replica_anywhere() {
        let p = StreamPlacement::new(0, "");
        assert_eq!(p, StreamPlacement::default());
        let config = p.apply(stream::Config::default());
        assert_eq!(config.num_replicas, 1);
        assert!(config.placement.is_none());
    }
}

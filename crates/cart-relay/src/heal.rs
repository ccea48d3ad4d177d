//! The feed heals itself when JetStream loses what it acknowledged.
//!
//! JetStream acknowledges a publish before it is on disk (nats-server 2.9 cannot be told
//! otherwise; later servers sync every two minutes unless `sync_interval: always`), so a
//! crash can take back acknowledged messages, and a purge or a deleted stream takes them
//! on purpose. The relay's checkpoint only ever moved on acknowledgements, so without a
//! check those events would never be published again.
//!
//! The checkpoint therefore carries the highest stream sequence JetStream acknowledged and
//! the `Nats-Msg-Id` stored there (`cart_store::relay`). On start, after every reconnect,
//! every `verify_every`, and whenever an acknowledgement is numbered at or below it, the
//! relay asks the stream for that message ([`Relay::verify`]):
//!
//! - still there with the same id: nothing to do;
//! - gone because the stream's own limits removed it (`max_age` passed since it was
//!   acknowledged, `max_msgs`, `max_bytes`, `max_msgs_per_subject`): nothing to do;
//! - the stream now ends before it (a lost tail, a stream made anew): rewind to the latest
//!   mark at or below the stream's last sequence whose message is still there, else to
//!   the start of the log;
//! - anything else (purged, deleted, another message at that sequence, the stream gone):
//!   rewind to the start of the log.
//!
//! Publishing again is safe: JetStream drops ids it still holds (`Nats-Msg-Id`), and a
//! consumer ignores a version of a cart or order it has seen. An id JetStream remembers
//! from a message it no longer holds (a purge keeps the duplicate window) is refused by
//! the publish pipeline until the window forgets it, so a stream's events still go out in
//! order.

use std::time::Duration;

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_nats::HeaderMap;
use cart_store::relay::{self, StoredAt};
use cart_store::Position;
use sqlx::PgConnection;

use crate::{metrics, Relay, RelayError};

/// How long marks are kept: far longer than a lazily syncing server can lose (about two
/// minutes of writes), short enough that the table stays a few thousand rows.
const KEEP_MARKS: Duration = Duration::from_secs(3600);

/// The `Nats-Msg-Id` of a stored message.
pub(crate) fn msg_id_of(headers: &HeaderMap) -> Option<&str> {
    headers.get("Nats-Msg-Id").map(|v| v.as_str())
}

/// What a check of the stream found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The stream holds the checkpoint's message (or nothing was published yet).
    Holds,
    /// The message is gone, removed by the stream's own limits.
    Expired(&'static str),
    /// The stream lost what it acknowledged: the checkpoint went back to `to`.
    Rewound { reason: String, to: Position },
}

/// Where to publish again from, once a loss is known.
enum Target {
    /// The latest mark at or below this sequence whose message is still stored.
    MarkAtOrBelow(u64),
    Start,
}

impl Relay {
    /// Checks that the stream still holds the message at the checkpoint's acknowledged
    /// sequence; rewinds the checkpoint when it lost it. Runs on the locked session.
    ///
    /// # Errors
    /// PostgreSQL or NATS failing; the checkpoint is then unchanged.
    pub async fn verify(&self, conn: &mut PgConnection) -> Result<Verdict, RelayError> {
        let name = self.config.checkpoint_name();
        let checkpoint = relay::checkpoint(conn, &name).await?;
        relay::prune_marks(conn, &name, KEEP_MARKS.as_secs_f64()).await?;
        let Some(stored) = checkpoint.stored else {
            return Ok(Verdict::Holds);
        };
        let lost = match self.js.get_stream(&self.config.stream).await {
            Ok(stream) => match self.judge(stream, &stored, checkpoint.age_secs).await? {
                Ok(verdict) => return Ok(verdict),
                Err(lost) => lost,
            },
            Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref j) if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND) => {
                ("the stream is gone".to_owned(), Target::Start)
            }
            Err(e) => return Err(self.stream_error(e)),
        };
        let (reason, target) = lost;
        let (to, kept) = self.target(conn, target).await?;
        relay::rewind(
            conn,
            &name,
            to,
            kept.as_ref(),
            kept.as_ref().map_or(0, |k| k.sequence),
        )
        .await?;
        tracing::error!(
            stream = %self.config.stream,
            log = self.config.log.name(),
            checkpoint = %checkpoint.position,
            acknowledged_sequence = stored.sequence,
            rewound_to = %to,
            "JetStream lost acknowledged messages ({reason}); the relay publishes again from {to}"
        );
        metrics::rewound(self.config.log.name());
        self.update(|s| {
            s.checkpoint = to;
            s.rewinds += 1;
            s.last_rewind = Some(reason.clone());
        });
        Ok(Verdict::Rewound { reason, to })
    }

    /// Looks for the checkpoint's message: `Ok` when nothing was lost, `Err` with why and
    /// from where to publish again when something was.
    async fn judge(
        &self,
        mut stream: stream::Stream,
        stored: &StoredAt,
        age_secs: f64,
    ) -> Result<Result<Verdict, (String, Target)>, RelayError> {
        let info = stream
            .info()
            .await
            .map_err(|e| self.stream_error(e))?
            .clone();
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let seq = stored.sequence;
        let lost = match stream.get_raw_message(seq).await {
            Ok(m) if msg_id_of(&m.headers) == Some(stored.msg_id.as_str()) => {
                return Ok(Ok(Verdict::Holds))
            }
            Ok(_) => (
                format!("another message is at sequence {seq}: the stream was made anew"),
                Target::Start,
            ),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => {
                let limits = &info.config;
                if seq > last {
                    (
                        format!(
                            "the stream ends at sequence {last}, before the acknowledged {seq}"
                        ),
                        Target::MarkAtOrBelow(last),
                    )
                } else if seq < first {
                    if limits.max_messages > 0 || limits.max_bytes > 0 {
                        return Ok(Ok(Verdict::Expired("the stream's max_msgs or max_bytes")));
                    }
                    if !limits.max_age.is_zero() && age_secs >= limits.max_age.as_secs_f64() {
                        return Ok(Ok(Verdict::Expired("the stream's max_age")));
                    }
                    (format!("the stream was purged up to sequence {first}, past the acknowledged {seq}"), Target::Start)
                } else if limits.max_messages_per_subject > 0 {
                    return Ok(Ok(Verdict::Expired("the stream's max_msgs_per_subject")));
                } else {
                    (
                        format!("the message at sequence {seq} was deleted"),
                        Target::Start,
                    )
                }
            }
            Err(e) => return Err(self.stream_error(e)),
        };
        Ok(Err(lost))
    }

    /// The position to publish again after, and the message stored at it.
    async fn target(
        &self,
        conn: &mut PgConnection,
        target: Target,
    ) -> Result<(Position, Option<StoredAt>), RelayError> {
        let Target::MarkAtOrBelow(last) = target else {
            return Ok((Position::default(), None));
        };
        let name = self.config.checkpoint_name();
        let Some((position, mark)) = relay::mark_at_or_below(conn, &name, last).await? else {
            return Ok((Position::default(), None));
        };
        // A mark only holds for the stream it was made on: its message must still be there.
        let stream = self
            .js
            .get_stream(&self.config.stream)
            .await
            .map_err(|e| self.stream_error(e))?;
        match stream.get_raw_message(mark.sequence).await {
            Ok(m) if msg_id_of(&m.headers) == Some(mark.msg_id.as_str()) => {
                Ok((position, Some(mark)))
            }
            _ => Ok((Position::default(), None)),
        }
    }

    fn stream_error(&self, e: impl std::fmt::Display) -> RelayError {
        RelayError::Stream {
            stream: self.config.stream.clone(),
            message: e.to_string(),
        }
    }
}

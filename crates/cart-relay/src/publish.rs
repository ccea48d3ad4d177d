//! Publishing a page: every event in flight at once, except behind an earlier event of
//! its own stream (cart or order).
//!
//! # Why a stream's next event waits for the ack of the one before it
//!
//! JetStream stores the messages of one connection in the order it reads them, so it is
//! tempting to send a cart's events back to back. But "sent" is not "read": when the
//! connection drops, the messages in the socket's buffers are lost, and the client sends
//! the ones still queued after it reconnects. Event 1 of a cart can be lost while event 2
//! is stored; the publish of event 1 then fails, the relay retries the page from its
//! checkpoint, and event 1 lands in the stream *after* event 2 (the copy of event 2 is
//! dropped by `Nats-Msg-Id`, the misplaced original stays). JetStream can also refuse a
//! single message (a limit, a leader change in a cluster) and store the next. So pipelining
//! a cart's events is not safe, and this module never does it:
//!
//! - an event is sent only once the previous event of its stream in the page has been
//!   acknowledged as stored (or as a duplicate, which means stored before);
//! - at the first failed publish or ack the page is abandoned: the events queued behind it
//!   were never sent, so nothing of that stream after the failure is in the stream, and
//!   the retry from the checkpoint re-sends the stream in version order (what was stored
//!   comes back as duplicates).
//!
//! Everything else goes out without waiting: the events of different streams have no
//! order between them on JetStream (per cart, `version` is the order to rely on). A page
//! therefore costs about as many round trips as the longest run of one stream's events in
//! it, not one per repeated stream (the old rule: "settle every pending ack whenever a
//! stream repeats", which under load made a page dozens of round trips).

use std::collections::{HashMap, VecDeque};

use async_nats::jetstream::{self, context::PublishAckFuture};
use futures::stream::{FuturesUnordered, StreamExt};
use sqlx::types::Uuid;

use cart_store::relay::StoredAt;

use crate::outgoing::Outgoing;
use crate::{Published, RelayError};

/// Most publishes awaiting their ack at once: bounds the memory of a large page, and is
/// far above what one round trip needs to keep the connection busy.
pub(crate) const MAX_IN_FLIGHT: usize = 4096;

type Ack = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = (Uuid, String, Result<jetstream::publish::PublishAck, String>),
            > + Send,
    >,
>;

/// What the stream must look like for a page: messages are stored above `floor` (the
/// checkpoint's acknowledged sequence), and a duplicate's original must still be there.
pub(crate) struct Expect<'a> {
    pub(crate) stream: &'a str,
    pub(crate) floor: u64,
}

/// Publishes `outgoing` (in the log's order), each stream's events in that order and one
/// at a time, the streams side by side.
///
/// # Errors
/// The first failed publish or acknowledgement. Events already acknowledged are stored;
/// no event queued behind an unacknowledged one of its stream was sent.
pub(crate) async fn publish_all(
    js: &jetstream::Context,
    expect: &Expect<'_>,
    outgoing: Vec<Outgoing>,
) -> Result<Published, RelayError> {
    let mut pipeline = Pipeline {
        js,
        expect,
        stream: None,
        outcome: Published::default(),
        waiting: HashMap::new(),
        acks: FuturesUnordered::new(),
    };
    for out in outgoing {
        if let Some(queue) = pipeline.waiting.get_mut(&out.stream_id) {
            // An earlier event of this stream is in flight or queued: after it.
            queue.push_back(out);
            continue;
        }
        while pipeline.acks.len() >= MAX_IN_FLIGHT {
            pipeline.settle_one().await?;
        }
        pipeline.waiting.insert(out.stream_id, VecDeque::new());
        pipeline.send(out).await?;
    }
    while !pipeline.acks.is_empty() {
        pipeline.settle_one().await?;
    }
    Ok(pipeline.outcome)
}

struct Pipeline<'a> {
    js: &'a jetstream::Context,
    expect: &'a Expect<'a>,
    /// The stream, looked up at the first duplicate.
    stream: Option<jetstream::stream::Stream>,
    outcome: Published,
    /// Per stream with an event in flight, its later events of the page, in order.
    waiting: HashMap<Uuid, VecDeque<Outgoing>>,
    acks: FuturesUnordered<Ack>,
}

impl Pipeline<'_> {
    async fn send(&mut self, out: Outgoing) -> Result<(), RelayError> {
        let ack: PublishAckFuture = self
            .js
            .send_publish(out.subject, out.message)
            .await
            .map_err(|e| RelayError::Publish(e.to_string()))?;
        let (stream_id, msg_id) = (out.stream_id, out.msg_id);
        self.acks.push(Box::pin(async move {
            (stream_id, msg_id, ack.await.map_err(|e| e.to_string()))
        }));
        Ok(())
    }

    /// Fails unless the stream still holds `msg_id` at `sequence`.
    async fn check_original(&mut self, sequence: u64, msg_id: &str) -> Result<(), RelayError> {
        if self.stream.is_none() {
            let stream = self
                .js
                .get_stream(self.expect.stream)
                .await
                .map_err(|e| RelayError::Publish(e.to_string()))?;
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_ref() else {
            return Ok(());
        };
        match stream.get_raw_message(sequence).await {
            Ok(m) if crate::heal::msg_id_of(&m.headers) == Some(msg_id) => Ok(()),
            Ok(_) | Err(_) => Err(RelayError::Remembered {
                msg_id: msg_id.to_owned(),
                sequence,
            }),
        }
    }

    /// Waits for the next acknowledgement, then sends the next event of its stream.
    async fn settle_one(&mut self) -> Result<(), RelayError> {
        let Some((stream_id, msg_id, ack)) = self.acks.next().await else {
            return Ok(());
        };
        let ack = ack.map_err(RelayError::Publish)?;
        if ack.duplicate {
            // JetStream remembers ids for its duplicate window even after the message is
            // purged or deleted: a "duplicate" may be a message the stream no longer has.
            // Then this stream's later events must wait too, until the window forgets it.
            self.check_original(ack.sequence, &msg_id).await?;
            self.outcome.duplicates += 1;
        } else {
            if ack.sequence <= self.expect.floor {
                // Numbered at or below what was acknowledged before: the stream went
                // backwards (lost its tail, or was made anew) since the last check.
                return Err(RelayError::Behind {
                    sequence: ack.sequence,
                    floor: self.expect.floor,
                });
            }
            self.outcome.stored += 1;
            if self
                .outcome
                .last
                .as_ref()
                .is_none_or(|l| l.sequence < ack.sequence)
            {
                self.outcome.last = Some(StoredAt {
                    sequence: ack.sequence,
                    msg_id,
                });
            }
        }
        match self
            .waiting
            .get_mut(&stream_id)
            .and_then(VecDeque::pop_front)
        {
            Some(next) => self.send(next).await,
            None => {
                self.waiting.remove(&stream_id);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_nats::jetstream::message::PublishMessage;
    use async_nats::jetstream::stream;

    use super::*;

    fn message(stream_id: Uuid, subject: &str, id: &str) -> Outgoing {
        Outgoing {
            stream_id,
            subject: subject.to_owned(),
            message: PublishMessage::build()
                .payload(id.to_owned().into())
                .message_id(id),
            msg_id: id.to_owned(),
            trace: None,
        }
    }

    fn expect(name: &str) -> Expect<'_> {
        Expect {
            stream: name,
            floor: 0,
        }
    }

    /// The ids in the stream, in the stream's order.
    async fn stored(js: &jetstream::Context, name: &str) -> Vec<String> {
        let mut stream = js.get_stream(name).await.unwrap();
        let n = stream.info().await.unwrap().state.messages;
        let mut ids = Vec::new();
        for seq in 1..=n {
            let m = stream.get_raw_message(seq).await.unwrap();
            ids.push(String::from_utf8(m.payload.to_vec()).unwrap());
        }
        ids
    }

    /// A stream of the test's own (name, subject prefix) on the real server.
    async fn scratch_stream() -> (jetstream::Context, String, String) {
        let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let client = async_nats::connect(url).await.unwrap();
        let js = jetstream::new(client);
        let tag = Uuid::new_v4().simple().to_string();
        let (name, subject) = (format!("RELAY_TEST_{tag}"), format!("relaytest.{tag}"));
        js.create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{subject}.>")],
            max_age: Duration::from_secs(600),
            ..Default::default()
        })
        .await
        .unwrap();
        (js, name, subject)
    }

    #[tokio::test]
    async fn a_refused_publish_holds_back_the_rest_of_its_stream_and_only_that() {
        let (js, name, subject) = scratch_stream().await;
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let on = |s: &str| format!("{subject}.{s}");
        let mut refused = message(a, &on("a"), "a2");
        // JetStream refuses a message whose expected last sequence is not the stream's.
        refused.message = refused
            .message
            .header("Nats-Expected-Last-Sequence", "999999");
        let page = vec![
            message(a, &on("a"), "a1"),
            message(b, &on("b"), "b1"),
            refused,
            message(b, &on("b"), "b2"),
            message(a, &on("a"), "a3"),
            message(b, &on("b"), "b3"),
        ];
        let outcome = publish_all(&js, &expect(&name), page).await;
        assert!(
            matches!(outcome, Err(RelayError::Publish(_))),
            "{outcome:?}"
        );
        // Let anything still on its way land before looking.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ids = stored(&js, &name).await;
        assert!(ids.contains(&"a1".to_owned()), "{ids:?}");
        assert!(
            !ids.contains(&"a3".to_owned()),
            "a3 went out although a2 before it was refused: {ids:?}"
        );
        // b's events do not wait for a's: b1 went out at once, beside a1.
        assert!(ids.contains(&"b1".to_owned()), "{ids:?}");
        let b: Vec<&String> = ids.iter().filter(|id| id.starts_with('b')).collect();
        assert!(b.windows(2).all(|w| w[0] < w[1]), "b out of order: {ids:?}");
        js.delete_stream(&name).await.unwrap();
    }

    #[tokio::test]
    async fn every_stream_of_a_page_is_stored_in_order() {
        let (js, name, subject) = scratch_stream().await;
        // 20 streams, interleaved at random, 2,000 events: many repeats per page.
        let streams: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
        let mut next = [0u32; 20];
        let mut page = Vec::new();
        let mut seed = 7u64;
        for _ in 0..2000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let s = usize::try_from(seed >> 59).unwrap() % 20;
            next[s] += 1;
            let id = format!("{s:02}-{:05}", next[s]);
            page.push(message(streams[s], &format!("{subject}.{s}"), &id));
        }
        let outcome = publish_all(&js, &expect(&name), page).await.unwrap();
        assert_eq!((outcome.stored, outcome.duplicates), (2000, 0));
        assert_eq!(outcome.last.map(|l| l.sequence), Some(2000));
        let ids = stored(&js, &name).await;
        assert_eq!(ids.len(), 2000);
        for s in 0..20 {
            let mine: Vec<&String> = ids
                .iter()
                .filter(|id| id.starts_with(&format!("{s:02}-")))
                .collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "stream {s} out of order"
            );
        }
        // Publishing the page again stores nothing: every id is a duplicate.
        let again: Vec<Outgoing> = ids
            .iter()
            .map(|id| {
                let s: usize = id[..2].parse().unwrap();
                message(streams[s], &format!("{subject}.{s}"), id)
            })
            .collect();
        let outcome = publish_all(&js, &expect(&name), again).await.unwrap();
        assert_eq!((outcome.stored, outcome.duplicates), (0, 2000));
        js.delete_stream(&name).await.unwrap();
    }
}

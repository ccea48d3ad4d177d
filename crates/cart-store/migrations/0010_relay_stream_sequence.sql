-- What a relay's checkpoint means on the JetStream side (issue 13): JetStream acknowledges
-- a publish before it is on disk, and a server can lose acknowledged messages (a purge,
-- a deleted stream, a crash of a server that syncs lazily). The relay therefore keeps,
-- with its checkpoint, the highest stream sequence JetStream acknowledged for it and the
-- `Nats-Msg-Id` stored there, and checks now and then that the stream still holds them.
-- Null for the asynchronous projections, and for a relay that has published nothing yet.
alter table feed_checkpoints
    add column stream_sequence bigint,
    add column stream_msg_id   text;

-- Marks of a relay's past checkpoints: every event up to (tx_id, global_position) was
-- acknowledged at a stream sequence of at most `stream_sequence`, where JetStream stored
-- `stream_msg_id` (checked before a rewind trusts the mark). Events of one page are
-- stored out of log order (different carts are in flight together), so the last message
-- a stream kept does not say where its page began; the latest mark at or below it does.
-- Written at most about once a second, kept an hour (cart-relay's `heal`).
create table relay_marks (
    name            text not null,
    stream_sequence bigint not null,
    stream_msg_id   text not null,
    tx_id           xid8 not null,
    global_position bigint not null,
    recorded_at     timestamptz not null default now(),
    constraint relay_marks_pkey primary key (name, stream_sequence)
);

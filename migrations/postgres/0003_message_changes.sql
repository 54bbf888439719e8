-- What people do to messages. Each change is an event of its own in
-- `room_events` (an edit, a deletion, a reaction, a pin), naming its message
-- by `target_seq`; the index finds every change of one message, which is
-- what erasing it must reach.
ALTER TABLE room_events ADD COLUMN target_seq BIGINT;
CREATE INDEX room_events_target ON room_events (room_id, target_seq)
    WHERE target_seq IS NOT NULL;

-- The current state of the messages that have changed since they were sent,
-- written in the transaction of the change. Sparse on purpose: a send (the
-- hot path) writes no row here, and a timeline page joins the few it has.
-- `body` and `payload` are the text and mentions after the latest edit.
CREATE TABLE message_state (
    room_id    UUID NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    body       TEXT,
    payload    JSONB,
    edited_at  TIMESTAMPTZ,
    deleted_at TIMESTAMPTZ,
    pinned_at  TIMESTAMPTZ,
    pinned_by  UUID,
    PRIMARY KEY (room_id, seq)
);
CREATE INDEX message_state_pins ON message_state (room_id, pinned_at)
    WHERE pinned_at IS NOT NULL;

-- One row per user, emoji and message: the primary key is the rule.
CREATE TABLE reactions (
    room_id    UUID NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    emoji      TEXT NOT NULL,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, seq, emoji, user_id)
);

-- Who each message mentions now (NULL: `@room`, everyone), for the unread
-- mention counts of the room list.
CREATE TABLE mentions (
    room_id UUID NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    user_id UUID
);
CREATE INDEX mentions_user ON mentions (room_id, user_id, seq);
CREATE INDEX mentions_message ON mentions (room_id, seq);

-- Files shared in rooms. A row is written before its bytes reach the
-- store of blobs (`uploading`), so every blob ever written has a row, and
-- the sweeper can always find it: a row left `uploading` by a crash, one
-- never carried by a message, and one whose message was deleted all end
-- `deleted`, and the sweeper deletes their bytes and then the row.
-- `room_id` and `uploader` are not foreign keys on purpose: the row must
-- outlive its room (deleting a room marks its attachments `deleted` in the
-- same transaction) until the bytes are gone.
CREATE TABLE attachments (
    id           UUID PRIMARY KEY,
    room_id      UUID NOT NULL,
    uploader     UUID NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('uploading', 'ready', 'deleted')),
    size         BIGINT,
    width        INTEGER,
    height       INTEGER,
    -- The thumbnail's type (JPEG, or PNG for a transparent image); NULL:
    -- none (not an image).
    thumbnail_type TEXT,
    -- The message that carries it, set in the transaction of its send.
    seq          BIGINT,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX attachments_message ON attachments (room_id, seq) WHERE seq IS NOT NULL;
CREATE INDEX attachments_unclaimed ON attachments (created_at) WHERE seq IS NULL;
CREATE INDEX attachments_deleted ON attachments (created_at) WHERE state = 'deleted';

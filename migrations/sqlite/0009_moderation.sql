-- Moderation in rooms (issue 30): timeouts, slow mode, invitations and
-- invite links.
--
-- Both are enforced by the message append under the room's lock
-- (`group_commit`), from rows it reads anyway or by key: the member's
-- `muted_until` and `last_message_at` beside their role, the room's slow
-- mode by its room id.

-- Until when the member may not send, react, edit or type here; NULL (or
-- a time past) means not muted. Set and lifted with `member_muted` /
-- `member_unmuted` events in the room's log.
ALTER TABLE room_members ADD COLUMN muted_until TEXT;
-- When the member's newest message was committed, written only while the
-- room has slow mode on (its only reader).
ALTER TABLE room_members ADD COLUMN last_message_at TEXT;

-- A room's slow mode: the shortest interval between one member's messages
-- (owners and admins exempt). A row only while it is on. A table of its
-- own rather than a column of `rooms`: the batch's lock of its rooms is
-- planned for `rooms` as it is, and a wider `rooms` tipped PostgreSQL's
-- plan for it (on a fresh database) from its primary key to a scan.
CREATE TABLE room_slow_modes (
    room_id BLOB PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    seconds INTEGER NOT NULL CHECK (seconds > 0)
);

-- Invitations with consent: pending until the invitee accepts (they join)
-- or declines, or the inviter or an owner or admin cancels; every outcome
-- deletes the row and is an event in the room's log. One per room and
-- invitee.
CREATE TABLE room_invites (
    id         BLOB PRIMARY KEY,
    room_id    BLOB NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invited_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    UNIQUE (room_id, user_id)
);
CREATE INDEX room_invites_user ON room_invites (user_id, created_at);

-- Invite links: whoever has the code (128 random bits) joins the room
-- until the link expires, is used up or is revoked. `uses` is counted in
-- the join's transaction by a guarded update, so two joins on the last
-- use cannot both pass.
CREATE TABLE room_invite_links (
    code       TEXT PRIMARY KEY,
    room_id    BLOB NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    created_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    max_uses   INTEGER CHECK (max_uses > 0),
    uses       INTEGER NOT NULL DEFAULT 0,
    revoked_at TEXT
);
CREATE INDEX room_invite_links_room ON room_invite_links (room_id, created_at);

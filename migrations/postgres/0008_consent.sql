-- Consent between users (issue 30): blocks, DM requests, lazy and closable
-- DMs.
--
-- A block is one-way: `blocker` no longer hears from `blocked`. What it
-- refuses (DMs both ways, invites and calls from the blocked user, the
-- blocker's presence) is decided by the api and the gateways from this table.
CREATE TABLE blocks (
    blocker    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (blocker, blocked),
    CHECK (blocker <> blocked)
);
-- Who blocks me (a gateway loads it at connect, to hide presence).
CREATE INDEX blocks_blocked ON blocks (blocked);

-- A DM opened to someone who shared no room with the opener is a request:
-- `requested_by` is the opener until the other accepts (NULL: a plain DM).
-- `declined_at`: the other declined it; the opener's messages are refused
-- until the other opens the DM themselves.
ALTER TABLE direct_rooms ADD COLUMN requested_by UUID REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE direct_rooms ADD COLUMN declined_at TIMESTAMPTZ;

-- A membership with `closed_seq` set is listed only once the room has a
-- message after that seq: a new DM's memberships start at 0 (listed from
-- its first message: lazy creation), closing a DM sets it to the room's
-- head (hidden until the next message). NULL: always listed.
ALTER TABLE room_members ADD COLUMN closed_seq BIGINT;

-- Consent between users (issue 30): blocks, DM requests, lazy and closable
-- DMs.
--
-- A block is one-way: `blocker` no longer hears from `blocked`. What it
-- refuses (DMs both ways, invites and calls from the blocked user, the
-- blocker's presence) is decided by the api and the gateways from this table.
CREATE TABLE blocks (
    blocker    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (blocker, blocked),
    CHECK (blocker <> blocked)
);
-- Who blocks me (a gateway loads it at connect, to hide presence).
CREATE INDEX blocks_blocked ON blocks (blocked);

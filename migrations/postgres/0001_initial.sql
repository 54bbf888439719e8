-- The whole data model of DESIGN.md. Every room's history is one gap-free
-- sequence in `room_events`; `rooms.last_seq` is the allocator, bumped in the
-- same transaction as the insert so seqs never skip and commit in order.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
-- Usernames are unique regardless of case: "Alice" and "alice" are one person.
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

-- A session is one login on one device; its refresh tokens form a family.
CREATE TABLE sessions (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Only the SHA-256 of a refresh token is stored. `used_at` is set when the
-- token is rotated; presenting it again afterwards is reuse, which revokes
-- the session (the whole family).
CREATE TABLE refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,
    session_id  UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE rooms (
    id         UUID PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('public', 'private', 'direct')),
    name       TEXT NOT NULL,
    topic      TEXT NOT NULL DEFAULT '',
    created_by UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_seq   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX rooms_public ON rooms (name) WHERE kind = 'public';

CREATE TABLE room_members (
    room_id       UUID NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at     TIMESTAMPTZ NOT NULL,
    last_read_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user ON room_members (user_id);

CREATE TABLE room_bans (
    room_id    UUID NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    banned_by  UUID REFERENCES users (id) ON DELETE SET NULL,
    reason     TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- The ordered pair (user_low < user_high) makes "the DM between a and b" one
-- row; its primary key is what makes lazy creation race-free.
CREATE TABLE direct_rooms (
    user_low  UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_high UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id   UUID NOT NULL UNIQUE REFERENCES rooms (id) ON DELETE CASCADE,
    PRIMARY KEY (user_low, user_high),
    CHECK (user_low < user_high)
);

CREATE TABLE room_events (
    room_id    UUID NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL CHECK (seq > 0),
    id         UUID NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    sender     UUID,
    client_id  TEXT,
    body       TEXT,
    payload    JSONB,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, seq)
);
-- Idempotent sends: a retried client_id finds its original event. NULL
-- client_ids (api-written events) never collide.
CREATE UNIQUE INDEX room_events_client_id ON room_events (room_id, sender, client_id);

INSERT INTO rooms (id, kind, name, topic, created_at) VALUES
    ('00000000-0000-7000-8000-000000000001', 'public', 'general', 'Anything goes', now()),
    ('00000000-0000-7000-8000-000000000002', 'public', 'tech', 'Computers and the people who love them', now()),
    ('00000000-0000-7000-8000-000000000003', 'public', 'random', 'Off-topic', now());

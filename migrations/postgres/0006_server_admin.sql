-- Server administration (issue 30): server roles above room roles,
-- deactivated accounts, reports of messages and users, and the audit log
-- of every admin and moderator action.

-- NULL: an ordinary user. A server `admin` acts as owner in every room, a
-- `moderator` as room admin (`chat_shared::admin::effective_role`).
ALTER TABLE users ADD COLUMN server_role TEXT
    CHECK (server_role IN ('admin', 'moderator'));
-- Set while the account is deactivated: login and refresh are refused and
-- every session was revoked in the same request.
ALTER TABLE users ADD COLUMN deactivated_at TIMESTAMPTZ;
CREATE INDEX users_server_role ON users (server_role) WHERE server_role IS NOT NULL;

-- A member's report of a message (`target_kind = 'message'`, `target_id`
-- the event id, `room_id` its room, `subject` its sender) or of a user
-- (`target_kind = 'user'`, `target_id` = `subject` = the user). Resolved
-- once, with a note. Users are not foreign keys: a report outlives the
-- accounts and the message it names, as the audit does.
CREATE TABLE reports (
    id          UUID PRIMARY KEY,
    reporter    UUID NOT NULL,
    target_kind TEXT NOT NULL CHECK (target_kind IN ('message', 'user')),
    target_id   UUID NOT NULL,
    room_id     UUID,
    subject     UUID NOT NULL,
    reason      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ,
    resolved_by UUID,
    resolution  TEXT
);
-- One open report per reporter and target: a second is a 409.
CREATE UNIQUE INDEX reports_open_once ON reports (reporter, target_kind, target_id)
    WHERE resolved_at IS NULL;
-- The queue, newest first (ids are UUID v7, time-ordered).
CREATE INDEX reports_open ON reports (id) WHERE resolved_at IS NULL;

-- Who did what, when: every admin and moderator action, written in the
-- transaction of the action where the store does it. Read-only: nothing
-- updates or deletes a row. `actor` NULL: the command line.
CREATE TABLE audit_log (
    id          UUID PRIMARY KEY,
    actor       UUID,
    action      TEXT NOT NULL,
    target_user UUID,
    room_id     UUID,
    target_id   UUID,
    detail      TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);

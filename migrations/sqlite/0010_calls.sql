-- One-to-one calls (issue 31): each call's state, and the gateways' leases
-- that keep the calls of their connections alive.
--
-- A call rings, is accepted, ends. Its start and end are also events of
-- its room's log (`call_started`, `call_ended`); this row is what the
-- gateways decide on: who may signal whom, whether an accept wins.
-- `caller_session` / `callee_session` are the connections taking part
-- (a hello's `session_id`), on gateways `caller_gateway` /
-- `callee_gateway`.
CREATE TABLE calls (
    id             BLOB PRIMARY KEY,
    room_id        BLOB NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    caller         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    callee         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video          BOOLEAN NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('ringing', 'accepted', 'ended')),
    reason         TEXT,
    caller_session BLOB NOT NULL,
    caller_gateway BLOB NOT NULL,
    callee_session BLOB,
    callee_gateway BLOB,
    created_at     TEXT NOT NULL,
    accepted_at    TEXT,
    ended_at       TEXT,
    CHECK ((state = 'ended') = (reason IS NOT NULL))
);
-- The calls that ring or are accepted: what a sweep, a connect and a
-- placed call's busy check read. Ended calls are history and never read
-- by state.
CREATE INDEX calls_active_caller ON calls (caller) WHERE state <> 'ended';
CREATE INDEX calls_active_callee ON calls (callee) WHERE state <> 'ended';
CREATE INDEX calls_active ON calls (created_at) WHERE state <> 'ended';

-- Each gateway renews its lease every few seconds; a call with a party on
-- a gateway whose lease has lapsed is ended by any other gateway's sweep.
CREATE TABLE gateway_leases (
    gateway BLOB PRIMARY KEY,
    seen_at TEXT NOT NULL
);

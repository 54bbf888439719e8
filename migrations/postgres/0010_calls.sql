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
    id             UUID PRIMARY KEY,
    room_id        UUID NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    caller         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    callee         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video          BOOLEAN NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('ringing', 'accepted', 'ended')),
    reason         TEXT,
    caller_session UUID NOT NULL,
    caller_gateway UUID NOT NULL,
    callee_session UUID,
    callee_gateway UUID,
    created_at     TIMESTAMPTZ NOT NULL,
    accepted_at    TIMESTAMPTZ,
    ended_at       TIMESTAMPTZ,
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
    gateway UUID PRIMARY KEY,
    seen_at TIMESTAMPTZ NOT NULL
);

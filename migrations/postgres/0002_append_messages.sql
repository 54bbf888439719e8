-- Group commit of message appends (shared/src/store/group_commit.rs) as one
-- function, so a batch is one round trip: called outside an explicit
-- transaction, it runs in an implicit one that commits before the caller
-- hears its answer. Before it a batch took five (BEGIN, lock, check,
-- insert, COMMIT), each a wake-up of both processes.
--
-- The contract is the Rust side's: seqs are gap-free because each is taken
-- from `rooms.last_seq` under that row's lock, held until the commit; a
-- `(room, sender, client_id)` is stored once because it is looked up under
-- the same lock (and twice in one batch, the later copies answer with the
-- first); membership is read after the lock, so a kick that committed
-- first is seen. Rooms are locked in id order, so two batches cannot
-- deadlock.
--
-- Answers one row per append, `i` its position (from 1): `status` is
-- `new`, `existing` (its client_id was stored before), `same` (a copy of an
-- earlier append of this batch), `no_room` or `not_member`; for the first
-- three the event's columns follow, as `room_events` has them.
CREATE FUNCTION append_messages(
    p_rooms      UUID[],
    p_senders    UUID[],
    p_client_ids TEXT[],
    p_bodies     TEXT[],
    p_ids        UUID[],
    p_kind       TEXT,
    p_at         TIMESTAMPTZ
) RETURNS TABLE (
    i          BIGINT,
    status     TEXT,
    room_id    UUID,
    seq        BIGINT,
    id         UUID,
    kind       TEXT,
    sender     UUID,
    client_id  TEXT,
    body       TEXT,
    payload    JSONB,
    created_at TIMESTAMPTZ
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    PERFORM 1 FROM rooms r WHERE r.id = ANY (p_rooms) ORDER BY r.id FOR UPDATE;
    -- A statement of its own: a volatile function's statement takes its
    -- snapshot when it starts, here after the locks, so it sees every
    -- membership change and append committed to these rooms before them.
    -- One snapshot serves the whole statement: the reads below see the
    -- rooms and events as they were before this batch's writes.
    RETURN QUERY
    WITH batch AS (
        SELECT t.i, t.room_id, t.sender, t.client_id, t.body, t.id,
               r.last_seq AS head,
               r.id IS NOT NULL AS room_exists,
               m.user_id IS NOT NULL AS member,
               EXISTS (SELECT 1 FROM room_events e
                        WHERE e.room_id = t.room_id AND e.sender = t.sender
                          AND e.client_id = t.client_id) AS stored,
               min(t.i) OVER (PARTITION BY t.room_id, t.sender, t.client_id) AS first
          FROM unnest(p_rooms, p_senders, p_client_ids, p_bodies, p_ids)
               WITH ORDINALITY AS t(room_id, sender, client_id, body, id, i)
          LEFT JOIN rooms r ON r.id = t.room_id
          LEFT JOIN room_members m ON m.room_id = t.room_id AND m.user_id = t.sender
    ),
    fresh AS (
        SELECT b.i, b.room_id,
               b.head + row_number() OVER (PARTITION BY b.room_id ORDER BY b.i) AS seq,
               b.id, b.sender, b.client_id, b.body
          FROM batch b
         WHERE b.room_exists AND b.member AND NOT b.stored AND b.i = b.first
    ),
    inserted AS (
        INSERT INTO room_events (room_id, seq, id, kind, sender, client_id, body, created_at)
        SELECT f.room_id, f.seq, f.id, p_kind, f.sender, f.client_id, f.body, p_at
          FROM fresh f
    ),
    bumped AS (
        UPDATE rooms SET last_seq = heads.seq
          FROM (SELECT f.room_id, max(f.seq) AS seq FROM fresh f GROUP BY f.room_id) heads
         WHERE rooms.id = heads.room_id
    )
    SELECT b.i, 'existing'::TEXT, e.room_id, e.seq, e.id, e.kind, e.sender, e.client_id,
           e.body, e.payload, e.created_at
      FROM batch b
      JOIN room_events e
        ON e.room_id = b.room_id AND e.sender = b.sender AND e.client_id = b.client_id
    UNION ALL
    SELECT b.i, CASE WHEN b.i = f.i THEN 'new' ELSE 'same' END, f.room_id, f.seq, f.id,
           p_kind, f.sender, f.client_id, f.body, NULL::JSONB, p_at
      FROM batch b
      JOIN fresh f
        ON f.room_id = b.room_id AND f.sender = b.sender AND f.client_id = b.client_id
    UNION ALL
    SELECT b.i, CASE WHEN b.room_exists THEN 'not_member' ELSE 'no_room' END,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
      FROM batch b
     WHERE NOT b.room_exists OR NOT (b.member OR b.stored);
END
$$;

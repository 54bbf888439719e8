-- Full-text search of messages as they are now (docs/protocol.md, "Search").
--
-- `message_search` holds each live message's current text, keyed by an
-- integer the FTS5 index can use as its rowid, and `message_search_index`
-- indexes it (an external-content FTS5 table: the text is stored once, here,
-- and `highlight()` reads it from here). The text is stored with the two
-- private-use characters the store marks matches with (U+E000, U+E001)
-- turned into spaces, one for one, so no body can forge a mark and a marked
-- text lines up with the original character for character.
--
-- The tokenizer: `unicode61` with letters and digits as the only word
-- characters (`categories 'L* N*'`: private-use characters separate words,
-- as everything else does) and diacritics kept, the words PostgreSQL's
-- `simple` configuration finds.
CREATE TABLE message_search (
    docid   INTEGER PRIMARY KEY,
    room_id BLOB NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    id      BLOB NOT NULL,
    body    TEXT NOT NULL,
    UNIQUE (room_id, seq)
);

CREATE VIRTUAL TABLE message_search_index USING fts5 (
    body,
    content = 'message_search',
    content_rowid = 'docid',
    tokenize = "unicode61 remove_diacritics 0 categories 'L* N*'"
);

-- A deleted message's words leave the index's pages at once, not at the
-- next merge (as `secure_delete` does for the file's free pages).
INSERT INTO message_search_index (message_search_index, rank) VALUES ('secure-delete', 1);

-- The index follows `message_search`, in the same statement (a room's
-- deletion cascades to its rows, and these fire for them too).
CREATE TRIGGER message_search_indexed AFTER INSERT ON message_search BEGIN
    INSERT INTO message_search_index (rowid, body) VALUES (new.docid, new.body);
END;
CREATE TRIGGER message_search_unindexed AFTER DELETE ON message_search BEGIN
    INSERT INTO message_search_index (message_search_index, rowid, body)
        VALUES ('delete', old.docid, old.body);
END;
CREATE TRIGGER message_search_reindexed AFTER UPDATE OF body ON message_search BEGIN
    INSERT INTO message_search_index (message_search_index, rowid, body)
        VALUES ('delete', old.docid, old.body);
    INSERT INTO message_search_index (rowid, body) VALUES (new.docid, new.body);
END;

-- A send is indexed in its own transaction (the group commit's insert).
CREATE TRIGGER message_search_on_send AFTER INSERT ON room_events
    WHEN new.kind = 'message' AND new.body IS NOT NULL
BEGIN
    INSERT INTO message_search (room_id, seq, id, body)
        VALUES (new.room_id, new.seq, new.id,
                replace(replace(new.body, char(57344), ' '), char(57345), ' '));
END;

-- An edit re-indexes its message; a deletion takes it out at once (it
-- erases the text: see erasure.rs). A pin alone changes nothing.
CREATE TRIGGER message_search_on_edit AFTER INSERT ON message_state
    WHEN new.body IS NOT NULL AND new.deleted_at IS NULL
BEGIN
    UPDATE message_search
        SET body = replace(replace(new.body, char(57344), ' '), char(57345), ' ')
        WHERE room_id = new.room_id AND seq = new.seq;
END;
CREATE TRIGGER message_search_on_reedit AFTER UPDATE OF body ON message_state
    WHEN new.body IS NOT NULL AND new.deleted_at IS NULL
BEGIN
    UPDATE message_search
        SET body = replace(replace(new.body, char(57344), ' '), char(57345), ' ')
        WHERE room_id = new.room_id AND seq = new.seq;
END;
CREATE TRIGGER message_search_on_delete AFTER INSERT ON message_state
    WHEN new.deleted_at IS NOT NULL
BEGIN
    DELETE FROM message_search WHERE room_id = new.room_id AND seq = new.seq;
END;
CREATE TRIGGER message_search_on_redelete AFTER UPDATE OF deleted_at ON message_state
    WHEN new.deleted_at IS NOT NULL
BEGIN
    DELETE FROM message_search WHERE room_id = new.room_id AND seq = new.seq;
END;

-- The messages already sent, as they are now: an edited one by its latest
-- text; a deleted one has no text left to index.
INSERT INTO message_search (room_id, seq, id, body)
    SELECT e.room_id, e.seq, e.id,
           replace(replace(COALESCE(s.body, e.body), char(57344), ' '), char(57345), ' ')
    FROM room_events e
    LEFT JOIN message_state s ON s.room_id = e.room_id AND s.seq = e.seq
    WHERE e.kind = 'message' AND e.body IS NOT NULL AND s.deleted_at IS NULL;

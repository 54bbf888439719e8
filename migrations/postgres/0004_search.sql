-- Full-text search of messages as they are now (docs/protocol.md, "Search").
--
-- `search_text` is what the index reads of a text: ASCII punctuation and the
-- two private-use characters the store marks matches with (U+E000, U+E001)
-- become spaces, one for one. So the parser of the `simple` configuration
-- sees plain words and no host names, e-mail addresses, paths or
-- hyphenated compounds (each of which it would keep whole), and splits a
-- text where SQLite's `unicode61` tokenizer does; and a text marked by
-- `ts_headline` lines up with the original character for character, while
-- no body can forge a mark. `simple`: no stemming and no stop words, the
-- same words SQLite finds.
CREATE FUNCTION search_text(body text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN translate(body, E'!"#$%&''()*+,-./:;<=>?@[\\]^_`{|}~\uE000\uE001', repeat(' ', 34));

-- The words of each message as it is now: set by the send (the group
-- commit's insert), replaced by an edit and cleared by a deletion (the
-- trigger below), so the index changes in the transaction of the change.
-- Other events, and deleted messages, have none.
ALTER TABLE room_events ADD COLUMN search tsvector;

-- Partial: the log's other events cost the index nothing. A query's
-- `search @@ …` implies `search IS NOT NULL`, so the planner uses it.
CREATE INDEX room_events_search ON room_events USING gin (search)
    WHERE search IS NOT NULL;

-- An edit re-indexes its message; a deletion takes it out of the index at
-- once (it erases the text: see erasure.rs). A pin alone changes nothing.
CREATE FUNCTION message_state_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NOT NULL THEN
        UPDATE room_events SET search = NULL
            WHERE room_id = NEW.room_id AND seq = NEW.seq AND search IS NOT NULL;
    ELSIF NEW.body IS NOT NULL
        AND (TG_OP = 'INSERT' OR NEW.body IS DISTINCT FROM OLD.body) THEN
        UPDATE room_events SET search = to_tsvector('simple', search_text(NEW.body))
            WHERE room_id = NEW.room_id AND seq = NEW.seq;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER message_state_search AFTER INSERT OR UPDATE ON message_state
    FOR EACH ROW EXECUTE FUNCTION message_state_search();

-- The messages already sent, as they are now: an edited one by its latest
-- text; a deleted one has no text left to index.
UPDATE room_events e
    SET search = to_tsvector('simple', search_text(COALESCE(
        (SELECT s.body FROM message_state s WHERE s.room_id = e.room_id AND s.seq = e.seq),
        e.body)))
    WHERE e.kind = 'message' AND e.body IS NOT NULL;

-- The SQLite twin of migrations/postgres/0007_accounts.sql: an account its
-- owner deleted keeps its row, erased, with `deleted_at` set.
ALTER TABLE users ADD COLUMN deleted_at TEXT;

-- The version of the user's avatar (a random token naming its blob,
-- `avatars/<user id>/<version>`), or NULL for none. A new image is a new
-- version, so its URL can be cached for good and cannot be guessed.
ALTER TABLE users ADD COLUMN avatar TEXT;

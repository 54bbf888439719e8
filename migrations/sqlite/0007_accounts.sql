-- The SQLite twin of migrations/postgres/0007_accounts.sql: an account its
-- owner deleted keeps its row, erased, with `deleted_at` set.
ALTER TABLE users ADD COLUMN deleted_at TEXT;

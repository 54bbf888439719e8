-- An account its owner deleted: the row stays, so the messages it sent
-- still name a sender, but it is erased (username freed as
-- `deleted-<id>`, which no registration can take: usernames are at most
-- 32 characters; display name "deleted user"; a password hash nothing
-- verifies against). `deleted_at` marks it, so searches skip it and it
-- cannot be invited or messaged.
ALTER TABLE users ADD COLUMN deleted_at TIMESTAMPTZ;

-- The version of the user's avatar (a random token naming its blob,
-- `avatars/<user id>/<version>`), or NULL for none. A new image is a new
-- version, so its URL can be cached for good and cannot be guessed.
ALTER TABLE users ADD COLUMN avatar TEXT;

-- +goose Up
-- IMAP asks for the first unseen message at every SELECT and for the \Deleted
-- messages at every EXPUNGE and STATUS (DELETED): small partial indexes answer
-- those without walking a large mailbox.
CREATE INDEX messages_unseen ON messages (mailbox_id, uid) WHERE seen = FALSE;
CREATE INDEX messages_deleted ON messages (mailbox_id, uid) WHERE deleted = TRUE;

-- +goose Down
DROP INDEX messages_deleted;
DROP INDEX messages_unseen;

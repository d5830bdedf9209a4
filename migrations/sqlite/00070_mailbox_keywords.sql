-- +goose Up
-- The keywords used in each mailbox, for IMAP's FLAGS response (RFC 9051
-- §7.3.5): a space-separated list, complete up to the mailbox's modification
-- sequence modseq. models.Store.MailboxKeywords adds what changed since, so a
-- large mailbox is read whole only the first time it is asked for.
CREATE TABLE mailbox_keywords (
    mailbox_id INTEGER NOT NULL PRIMARY KEY REFERENCES mailboxes (id) ON DELETE CASCADE,
    keywords   TEXT    NOT NULL DEFAULT '',
    modseq     INTEGER NOT NULL CHECK (modseq > 0)
);

-- +goose Down
DROP TABLE mailbox_keywords;

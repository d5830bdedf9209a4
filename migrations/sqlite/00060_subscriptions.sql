-- +goose Up
-- IMAP subscriptions are names, not mailboxes (RFC 9051 §6.3.7, RFC 3501
-- §6.3.6): a name may be subscribed while no mailbox has it, and deleting or
-- renaming a mailbox leaves the subscription as it is. So they live in their
-- own table, keyed by name, rather than in a column of the mailbox they would
-- die with.
CREATE TABLE subscriptions (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name    TEXT    NOT NULL CHECK (name <> ''),
    PRIMARY KEY (user_id, name)
);

INSERT INTO subscriptions (user_id, name)
SELECT user_id, name FROM mailboxes WHERE subscribed;

ALTER TABLE mailboxes DROP COLUMN subscribed;

-- +goose Down
-- A subscription without a mailbox has no row to go back to, and is lost.
ALTER TABLE mailboxes ADD COLUMN subscribed BOOLEAN NOT NULL DEFAULT TRUE;
UPDATE mailboxes SET subscribed = EXISTS (
    SELECT 1 FROM subscriptions s WHERE s.user_id = mailboxes.user_id AND s.name = mailboxes.name);
DROP TABLE subscriptions;

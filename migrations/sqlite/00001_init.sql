-- +goose Up
-- The same schema as the PostgreSQL set, in SQLite's terms. Timestamps are written
-- by mailgate in UTC, so their text form orders correctly.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE domains (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL CHECK (name <> '' AND name = lower(name)),
    description TEXT NOT NULL DEFAULT '',
    disabled    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX domains_name_ci ON domains (name COLLATE NOCASE);

CREATE TABLE addresses (
    address   TEXT PRIMARY KEY CHECK (address = lower(address) AND address LIKE '_%@_%'),
    kind      TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    domain_id INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    UNIQUE (address, kind)
);
CREATE INDEX addresses_domain ON addresses (domain_id);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL DEFAULT 'user' CHECK (kind = 'user'),
    domain_id     INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    quota_bytes   INTEGER NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    token_version INTEGER NOT NULL DEFAULT 0,
    created_at    DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at    DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (email, kind) REFERENCES addresses (address, kind) ON DELETE CASCADE
);
CREATE INDEX users_domain ON users (domain_id, email);

CREATE TABLE groups (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    email       TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL DEFAULT 'group' CHECK (kind = 'group'),
    domain_id   INTEGER NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    name        TEXT NOT NULL DEFAULT '',
    created_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (email, kind) REFERENCES addresses (address, kind) ON DELETE CASCADE
);
CREATE INDEX groups_domain ON groups (domain_id, email);

CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE mailboxes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id      TEXT NOT NULL UNIQUE,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           TEXT NOT NULL CHECK (name <> ''),
    special_use    TEXT NOT NULL DEFAULT '' CHECK (special_use IN ('', '\Sent', '\Drafts', '\Trash', '\Junk', '\Archive', '\All', '\Flagged')),
    subscribed     BOOLEAN NOT NULL DEFAULT TRUE,
    uid_validity   INTEGER NOT NULL CHECK (uid_validity > 0 AND uid_validity < 4294967296),
    uid_next       INTEGER NOT NULL DEFAULT 1 CHECK (uid_next > 0 AND uid_next < 4294967296),
    highest_modseq INTEGER NOT NULL DEFAULT 1 CHECK (highest_modseq > 0),
    recent_uid     INTEGER NOT NULL DEFAULT 1,
    messages_count INTEGER NOT NULL DEFAULT 0 CHECK (messages_count >= 0),
    unseen_count   INTEGER NOT NULL DEFAULT 0 CHECK (unseen_count >= 0),
    size_bytes     INTEGER NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    created_at     DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (user_id, name)
);

CREATE TABLE contents (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256         BLOB NOT NULL UNIQUE CHECK (length(sha256) = 32),
    size           INTEGER NOT NULL CHECK (size >= 0),
    chunk_size     INTEGER NOT NULL CHECK (chunk_size > 0),
    header_size    INTEGER NOT NULL DEFAULT 0,
    envelope       TEXT NOT NULL DEFAULT '',
    body_structure TEXT NOT NULL DEFAULT '',
    header_text    TEXT NOT NULL DEFAULT '',
    search_text    TEXT NOT NULL DEFAULT '',
    last_used_at   DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX contents_last_used ON contents (last_used_at);

-- Full-text index over contents.search_text, kept in step by triggers.
CREATE VIRTUAL TABLE contents_fts USING fts5 (
    search_text,
    content = 'contents',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

-- +goose StatementBegin
CREATE TRIGGER contents_fts_insert AFTER INSERT ON contents BEGIN
    INSERT INTO contents_fts (rowid, search_text) VALUES (new.id, new.search_text);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER contents_fts_delete AFTER DELETE ON contents BEGIN
    INSERT INTO contents_fts (contents_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER contents_fts_update AFTER UPDATE OF search_text ON contents BEGIN
    INSERT INTO contents_fts (contents_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
    INSERT INTO contents_fts (rowid, search_text) VALUES (new.id, new.search_text);
END;
-- +goose StatementEnd

CREATE TABLE content_chunks (
    content_id INTEGER NOT NULL REFERENCES contents (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL CHECK (seq >= 0),
    data       BLOB NOT NULL,
    PRIMARY KEY (content_id, seq)
);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id       TEXT NOT NULL UNIQUE,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mailbox_id      INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    content_id      INTEGER NOT NULL REFERENCES contents (id) ON DELETE RESTRICT,
    uid             INTEGER NOT NULL CHECK (uid > 0 AND uid < 4294967296),
    modseq          INTEGER NOT NULL CHECK (modseq > 0),
    internal_date   DATETIME NOT NULL,
    size            INTEGER NOT NULL CHECK (size >= 0),
    seen            BOOLEAN NOT NULL DEFAULT FALSE,
    answered        BOOLEAN NOT NULL DEFAULT FALSE,
    flagged         BOOLEAN NOT NULL DEFAULT FALSE,
    deleted         BOOLEAN NOT NULL DEFAULT FALSE,
    draft           BOOLEAN NOT NULL DEFAULT FALSE,
    keywords        TEXT NOT NULL DEFAULT '',
    subject         TEXT NOT NULL DEFAULT '',
    from_addr       TEXT NOT NULL DEFAULT '',
    to_addrs        TEXT NOT NULL DEFAULT '',
    cc_addrs        TEXT NOT NULL DEFAULT '',
    sent_at         DATETIME NULL,
    message_id      TEXT NOT NULL DEFAULT '',
    has_attachments BOOLEAN NOT NULL DEFAULT FALSE,
    preview         TEXT NOT NULL DEFAULT '',
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_mailbox_modseq ON messages (mailbox_id, modseq);
CREATE INDEX messages_mailbox_date ON messages (mailbox_id, internal_date DESC, id DESC);
CREATE INDEX messages_content ON messages (content_id);
CREATE INDEX messages_user ON messages (user_id);

CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);

CREATE TABLE queue (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id       TEXT NOT NULL UNIQUE,
    content_id      INTEGER NOT NULL REFERENCES contents (id) ON DELETE RESTRICT,
    user_id         INTEGER NULL REFERENCES users (id) ON DELETE SET NULL,
    sender          TEXT NOT NULL DEFAULT '',
    recipient       TEXT NOT NULL CHECK (recipient <> ''),
    domain          TEXT NOT NULL CHECK (domain <> ''),
    status          TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'deferred', 'sending')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_at      DATETIME NOT NULL,
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until     DATETIME NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    envelope_id     TEXT NOT NULL DEFAULT '',
    created_at      DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at      DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX queue_due ON queue (next_attempt_at);
CREATE INDEX queue_content ON queue (content_id);

CREATE TABLE idempotency_keys (
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (user_id, key)
);

CREATE TABLE maildrop_locks (
    user_id    INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    owner      TEXT NOT NULL,
    expires_at DATETIME NOT NULL
);

-- +goose Down
DROP TABLE maildrop_locks;
DROP TABLE idempotency_keys;
DROP TABLE queue;
DROP TABLE expunged;
DROP TABLE messages;
DROP TABLE content_chunks;
DROP TRIGGER contents_fts_update;
DROP TRIGGER contents_fts_delete;
DROP TRIGGER contents_fts_insert;
DROP TABLE contents_fts;
DROP TABLE contents;
DROP TABLE mailboxes;
DROP TABLE group_members;
DROP TABLE groups;
DROP TABLE users;
DROP TABLE addresses;
DROP TABLE domains;
DROP TABLE settings;

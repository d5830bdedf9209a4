-- +goose Up
-- Key/value settings shared by every instance on this database (JWT secret, UIDVALIDITY counter).
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE domains (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL CHECK (name <> '' AND name = lower(name)),
    description TEXT NOT NULL DEFAULT '',
    disabled    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX domains_name_ci ON domains (lower(name));

-- Every deliverable local address, whether it names a user or a group. The primary
-- key makes an address unique across users and groups; users and groups reference
-- their row with (address, kind), so a user can never hold a group's address.
CREATE TABLE addresses (
    address   TEXT PRIMARY KEY CHECK (address = lower(address) AND address LIKE '_%@_%'),
    kind      TEXT NOT NULL CHECK (kind IN ('user', 'group')),
    domain_id BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    UNIQUE (address, kind)
);
CREATE INDEX addresses_domain ON addresses (domain_id);

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL DEFAULT 'user' CHECK (kind = 'user'),
    domain_id     BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    quota_bytes   BIGINT NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    token_version BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (email, kind) REFERENCES addresses (address, kind) ON DELETE CASCADE
);
CREATE INDEX users_domain ON users (domain_id, email);

CREATE TABLE groups (
    id          BIGSERIAL PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL DEFAULT 'group' CHECK (kind = 'group'),
    domain_id   BIGINT NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    name        TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (email, kind) REFERENCES addresses (address, kind) ON DELETE CASCADE
);
CREATE INDEX groups_domain ON groups (domain_id, email);

CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- IMAP folders. Counters are kept in the row, under the same lock that allocates
-- UIDs and modification sequences, so STATUS and listings never count rows.
CREATE TABLE mailboxes (
    id             BIGSERIAL PRIMARY KEY,
    public_id      UUID NOT NULL UNIQUE,
    user_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           TEXT NOT NULL CHECK (name <> ''),
    special_use    TEXT NOT NULL DEFAULT '' CHECK (special_use IN ('', '\Sent', '\Drafts', '\Trash', '\Junk', '\Archive', '\All', '\Flagged')),
    subscribed     BOOLEAN NOT NULL DEFAULT TRUE,
    uid_validity   BIGINT NOT NULL CHECK (uid_validity > 0 AND uid_validity < 4294967296),
    uid_next       BIGINT NOT NULL DEFAULT 1 CHECK (uid_next > 0 AND uid_next < 4294967296),
    highest_modseq BIGINT NOT NULL DEFAULT 1 CHECK (highest_modseq > 0),
    recent_uid     BIGINT NOT NULL DEFAULT 1,
    messages_count BIGINT NOT NULL DEFAULT 0 CHECK (messages_count >= 0),
    unseen_count   BIGINT NOT NULL DEFAULT 0 CHECK (unseen_count >= 0),
    size_bytes     BIGINT NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, name)
);

-- Message content, stored once per distinct byte string however many mailboxes
-- hold it. The bytes live in content_chunks so that no reader or writer ever needs
-- the whole body in memory. metadata is computed once at delivery.
CREATE TABLE contents (
    id            BIGSERIAL PRIMARY KEY,
    sha256        BYTEA NOT NULL UNIQUE CHECK (length(sha256) = 32),
    size          BIGINT NOT NULL CHECK (size >= 0),
    chunk_size    INT NOT NULL CHECK (chunk_size > 0),
    header_size   BIGINT NOT NULL DEFAULT 0,
    envelope      TEXT NOT NULL DEFAULT '',
    body_structure TEXT NOT NULL DEFAULT '',
    header_text   TEXT NOT NULL DEFAULT '',
    search_text   TEXT NOT NULL DEFAULT '',
    search_vector TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED,
    last_used_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX contents_search ON contents USING GIN (search_vector);
CREATE INDEX contents_last_used ON contents (last_used_at);

CREATE TABLE content_chunks (
    content_id BIGINT NOT NULL REFERENCES contents (id) ON DELETE CASCADE,
    seq        INT NOT NULL CHECK (seq >= 0),
    data       BYTEA NOT NULL,
    PRIMARY KEY (content_id, seq)
);

CREATE TABLE messages (
    id              BIGSERIAL PRIMARY KEY,
    public_id       UUID NOT NULL UNIQUE,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mailbox_id      BIGINT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    content_id      BIGINT NOT NULL REFERENCES contents (id) ON DELETE RESTRICT,
    uid             BIGINT NOT NULL CHECK (uid > 0 AND uid < 4294967296),
    modseq          BIGINT NOT NULL CHECK (modseq > 0),
    internal_date   TIMESTAMPTZ NOT NULL,
    size            BIGINT NOT NULL CHECK (size >= 0),
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
    sent_at         TIMESTAMPTZ NULL,
    message_id      TEXT NOT NULL DEFAULT '',
    has_attachments BOOLEAN NOT NULL DEFAULT FALSE,
    preview         TEXT NOT NULL DEFAULT '',
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_mailbox_modseq ON messages (mailbox_id, modseq);
CREATE INDEX messages_mailbox_date ON messages (mailbox_id, internal_date DESC, id DESC);
CREATE INDEX messages_content ON messages (content_id);
CREATE INDEX messages_user ON messages (user_id);

-- Tombstones of expunged UIDs, so that every front end and instance can learn what
-- disappeared since the modification sequence it last saw.
CREATE TABLE expunged (
    mailbox_id BIGINT NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid        BIGINT NOT NULL,
    modseq     BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);

-- Outbound queue: one row per remote recipient.
CREATE TABLE queue (
    id              BIGSERIAL PRIMARY KEY,
    public_id       UUID NOT NULL UNIQUE,
    content_id      BIGINT NOT NULL REFERENCES contents (id) ON DELETE RESTRICT,
    user_id         BIGINT NULL REFERENCES users (id) ON DELETE SET NULL,
    sender          TEXT NOT NULL DEFAULT '',
    recipient       TEXT NOT NULL CHECK (recipient <> ''),
    domain          TEXT NOT NULL CHECK (domain <> ''),
    status          TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'deferred', 'sending')),
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    lease_owner     TEXT NOT NULL DEFAULT '',
    lease_until     TIMESTAMPTZ NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    envelope_id     TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX queue_due ON queue (next_attempt_at);
CREATE INDEX queue_content ON queue (content_id);

-- Answers to requests that carried an Idempotency-Key, kept for replays.
CREATE TABLE idempotency_keys (
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INT NOT NULL,
    response     TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- The POP3 maildrop lock (RFC 1939 §8), held as a lease so that it spans instances
-- and a crashed instance cannot hold it forever.
CREATE TABLE maildrop_locks (
    user_id    BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    owner      TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE maildrop_locks;
DROP TABLE idempotency_keys;
DROP TABLE queue;
DROP TABLE expunged;
DROP TABLE messages;
DROP TABLE content_chunks;
DROP TABLE contents;
DROP TABLE mailboxes;
DROP TABLE group_members;
DROP TABLE groups;
DROP TABLE users;
DROP TABLE addresses;
DROP TABLE domains;
DROP TABLE settings;

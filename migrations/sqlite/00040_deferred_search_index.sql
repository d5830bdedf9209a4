-- +goose Up
-- The FTS5 row is written after the message is acknowledged, by the search
-- indexer (and before any search that needs it), instead of by a trigger in the
-- statement that stores the message. indexed tells which contents have one.
DROP TRIGGER contents_fts_insert;
DROP TRIGGER contents_fts_delete;
DROP TRIGGER contents_fts_update;
ALTER TABLE contents ADD COLUMN indexed BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE contents SET indexed = TRUE;
CREATE INDEX contents_unindexed ON contents (id) WHERE indexed = FALSE;

-- +goose StatementBegin
CREATE TRIGGER contents_fts_delete AFTER DELETE ON contents WHEN old.indexed BEGIN
    INSERT INTO contents_fts (contents_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER contents_fts_delete;
DROP INDEX contents_unindexed;
-- Contents stored while indexing was deferred get their FTS rows now.
INSERT INTO contents_fts (rowid, search_text) SELECT id, search_text FROM contents WHERE indexed = FALSE;
ALTER TABLE contents DROP COLUMN indexed;

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

-- +goose Up
-- The full-text vector is computed after the message is acknowledged, by the
-- search indexer (and before any search that needs it), instead of in the
-- statement that stores the message: it is the largest single cost of ingest.
ALTER TABLE contents DROP COLUMN search_vector;
ALTER TABLE contents ADD COLUMN search_vector TSVECTOR NULL;
UPDATE contents SET search_vector = to_tsvector('simple', search_text);
CREATE INDEX contents_search ON contents USING GIN (search_vector);
CREATE INDEX contents_unindexed ON contents (id) WHERE search_vector IS NULL;

-- +goose Down
DROP INDEX contents_unindexed;
ALTER TABLE contents DROP COLUMN search_vector;
ALTER TABLE contents ADD COLUMN search_vector TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED;
CREATE INDEX contents_search ON contents USING GIN (search_vector);

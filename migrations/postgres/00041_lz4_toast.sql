-- +goose Up
-- Message bodies and search text are compressed with lz4 rather than pglz when
-- they are moved out of line: several times cheaper on the CPU for about the same
-- size, and CPU is what limits ingest. Servers built without lz4 keep pglz.
-- +goose StatementBegin
DO $$ BEGIN
    ALTER TABLE content_chunks ALTER COLUMN data SET COMPRESSION lz4;
    ALTER TABLE contents ALTER COLUMN search_text SET COMPRESSION lz4;
    ALTER TABLE contents ALTER COLUMN header_text SET COMPRESSION lz4;
    ALTER TABLE contents ALTER COLUMN body_structure SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'lz4 compression unavailable: %', SQLERRM;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$ BEGIN
    ALTER TABLE content_chunks ALTER COLUMN data SET COMPRESSION default;
    ALTER TABLE contents ALTER COLUMN search_text SET COMPRESSION default;
    ALTER TABLE contents ALTER COLUMN header_text SET COMPRESSION default;
    ALTER TABLE contents ALTER COLUMN body_structure SET COMPRESSION default;
EXCEPTION WHEN OTHERS THEN
    NULL;
END $$;
-- +goose StatementEnd

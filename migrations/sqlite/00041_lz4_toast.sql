-- +goose Up
-- PostgreSQL only: lz4 compression of stored bodies. Nothing to do on SQLite.
SELECT 1;

-- +goose Down
SELECT 1;

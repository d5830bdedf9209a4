-- +goose Up
-- Failed logins, counted per key ("net:<address or /64>", "acct:<address>")
-- in one-minute buckets: the login budget of every front end and instance.
CREATE TABLE login_failures (
    key    TEXT   NOT NULL,
    minute BIGINT NOT NULL, -- Unix time / 60
    count  INT    NOT NULL CHECK (count >= 0),
    PRIMARY KEY (key, minute)
);
CREATE INDEX login_failures_minute ON login_failures (minute);

-- Networks a user has logged in from: the account budget does not hold them
-- back, so failures from elsewhere cannot lock the user out.
CREATE TABLE login_networks (
    account   TEXT        NOT NULL,
    network   TEXT        NOT NULL,
    last_ok   BIGINT      NOT NULL, -- Unix time of the last successful login
    PRIMARY KEY (account, network)
);
CREATE INDEX login_networks_last_ok ON login_networks (last_ok);

-- +goose Down
DROP TABLE login_networks;
DROP TABLE login_failures;

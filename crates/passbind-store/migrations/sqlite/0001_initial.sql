-- Passbind schema, SQLite flavour. Keep column names and meanings identical to
-- ../postgres/0001_initial.sql: only the types differ.
--   times: INTEGER milliseconds since the Unix epoch (UTC)
--   booleans: INTEGER 0/1
--   byte strings: BLOB
--   string lists and flow data: JSON as TEXT
-- Enumerations (flow, state, idv_failure) are plain TEXT on purpose: the adapter validates them
-- on read, so a new state needs no migration.

CREATE TABLE users (
    id               TEXT    NOT NULL PRIMARY KEY,
    external_user_id TEXT    NOT NULL UNIQUE,
    user_handle      BLOB    NOT NULL UNIQUE,
    created_at       INTEGER NOT NULL,
    erased_at        INTEGER
) STRICT;

-- One encrypted biometric token per user.
CREATE TABLE ebts (
    user_id     TEXT    NOT NULL PRIMARY KEY REFERENCES users (id),
    key_version INTEGER NOT NULL CHECK (key_version BETWEEN 0 AND 4294967295),
    wrapped_dek BLOB    NOT NULL,
    ciphertext  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX ebts_key_version ON ebts (key_version);

CREATE TABLE credentials (
    credential_id           TEXT    NOT NULL PRIMARY KEY,
    user_id                 TEXT    NOT NULL REFERENCES users (id),
    public_key              BLOB,
    alg                     INTEGER,
    sign_count              INTEGER NOT NULL,
    aaguid                  TEXT,
    transports              TEXT    NOT NULL,
    backup_eligible         INTEGER NOT NULL CHECK (backup_eligible IN (0, 1)),
    backed_up               INTEGER NOT NULL CHECK (backed_up IN (0, 1)),
    attestation_format      TEXT,
    device_label            TEXT,
    registration_session_id TEXT    NOT NULL,
    created_at              INTEGER NOT NULL,
    last_used_at            INTEGER,
    revoked_at              INTEGER
) STRICT;
CREATE INDEX credentials_user ON credentials (user_id, created_at);

CREATE TABLE sessions (
    id               TEXT    NOT NULL PRIMARY KEY,
    flow             TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    user_id          TEXT    NOT NULL,
    external_user_id TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    idv_provider     TEXT,
    idv_run_id       TEXT,
    idv_failure      TEXT,
    credential_id    TEXT,
    data             TEXT    NOT NULL
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id, created_at);
-- NULLs are distinct in a unique index: the pair is unique only when both are set.
CREATE UNIQUE INDEX sessions_idv_run ON sessions (idv_provider, idv_run_id);

-- Replay protection for identity-verification webhooks.
CREATE TABLE idv_events (
    provider    TEXT    NOT NULL,
    event_key   TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (provider, event_key)
) STRICT;

CREATE TABLE api_keys (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    secret_hash BLOB    NOT NULL,
    scopes      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

-- Single-use secrets, by hash.
CREATE TABLE secrets (
    hash        BLOB    NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER
) STRICT;
CREATE INDEX secrets_session ON secrets (session_id);

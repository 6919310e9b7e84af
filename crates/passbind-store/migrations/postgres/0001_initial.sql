-- Passbind schema, PostgreSQL flavour. Keep column names and meanings identical to
-- ../sqlite/0001_initial.sql: only the types differ.
--   times: BIGINT milliseconds since the Unix epoch (UTC)
--   booleans: SMALLINT 0/1
--   byte strings: BYTEA
--   string lists and flow data: JSON as TEXT
-- Enumerations (flow, state, idv_failure) are plain TEXT on purpose: the adapter validates them
-- on read, so a new state needs no migration.

CREATE TABLE users (
    id               TEXT    NOT NULL PRIMARY KEY,
    external_user_id TEXT    NOT NULL UNIQUE,
    user_handle      BYTEA   NOT NULL UNIQUE,
    created_at       BIGINT  NOT NULL,
    erased_at        BIGINT
);

-- One encrypted biometric token per user.
CREATE TABLE ebts (
    user_id     TEXT    NOT NULL PRIMARY KEY REFERENCES users (id),
    key_version BIGINT  NOT NULL CHECK (key_version BETWEEN 0 AND 4294967295),
    wrapped_dek BYTEA   NOT NULL,
    ciphertext  BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX ebts_key_version ON ebts (key_version);

CREATE TABLE credentials (
    credential_id           TEXT    NOT NULL PRIMARY KEY,
    user_id                 TEXT    NOT NULL REFERENCES users (id),
    public_key              BYTEA,
    alg                     BIGINT,
    sign_count              BIGINT  NOT NULL,
    aaguid                  TEXT,
    transports              TEXT    NOT NULL,
    backup_eligible         SMALLINT NOT NULL CHECK (backup_eligible IN (0, 1)),
    backed_up               SMALLINT NOT NULL CHECK (backed_up IN (0, 1)),
    attestation_format      TEXT,
    device_label            TEXT,
    registration_session_id TEXT    NOT NULL,
    created_at              BIGINT  NOT NULL,
    last_used_at            BIGINT,
    revoked_at              BIGINT
);
CREATE INDEX credentials_user ON credentials (user_id, created_at);

CREATE TABLE sessions (
    id               TEXT    NOT NULL PRIMARY KEY,
    flow             TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    version          BIGINT  NOT NULL,
    user_id          TEXT    NOT NULL,
    external_user_id TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    expires_at       BIGINT  NOT NULL,
    idv_provider     TEXT,
    idv_run_id       TEXT,
    idv_failure      TEXT,
    credential_id    TEXT,
    data             TEXT    NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);
-- NULLs are distinct in a unique index: the pair is unique only when both are set.
CREATE UNIQUE INDEX sessions_idv_run ON sessions (idv_provider, idv_run_id);

-- Replay protection for identity-verification webhooks.
CREATE TABLE idv_events (
    provider    TEXT    NOT NULL,
    event_key   TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,
    PRIMARY KEY (provider, event_key)
);

CREATE TABLE api_keys (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    secret_hash BYTEA   NOT NULL,
    scopes      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);

-- Single-use secrets, by hash.
CREATE TABLE secrets (
    hash        BYTEA   NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    consumed_at BIGINT
);
CREATE INDEX secrets_session ON secrets (session_id);

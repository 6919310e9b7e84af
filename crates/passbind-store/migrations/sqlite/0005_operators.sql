-- Operators of the management dashboard, their passkeys, their sessions, the one-time setup
-- tokens that enrol them, and the short-lived state of their sign-in ceremonies (WebAuthn
-- challenges, OIDC state/nonce/PKCE verifier). Same tables and columns as
-- ../postgres/0005_operators.sql: only the types differ. Secrets (setup tokens, session ids)
-- are stored as SHA-256 hashes only.

CREATE TABLE operators (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    user_handle BLOB    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER
) STRICT;

CREATE TABLE operator_credentials (
    credential_id   TEXT    NOT NULL PRIMARY KEY,
    operator_id     TEXT    NOT NULL REFERENCES operators (id),
    public_key      BLOB    NOT NULL,
    sign_count      INTEGER NOT NULL,
    aaguid          TEXT,
    backup_eligible INTEGER NOT NULL CHECK (backup_eligible IN (0, 1)),
    backed_up       INTEGER NOT NULL CHECK (backed_up IN (0, 1)),
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER,
    revoked_at      INTEGER
) STRICT;
CREATE INDEX operator_credentials_operator ON operator_credentials (operator_id);

-- `id_hash` is SHA-256 of the cookie's random value; the cookie itself is never stored.
CREATE TABLE operator_sessions (
    id_hash      BLOB    NOT NULL PRIMARY KEY,
    subject      TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    method       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;

CREATE TABLE operator_setup_tokens (
    hash        BLOB    NOT NULL PRIMARY KEY,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER
) STRICT;

-- Single-use ceremony state between its two requests.
CREATE TABLE operator_challenges (
    id          TEXT    NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER
) STRICT;

-- The dashboard's session list (newest first) and overview (by creation time).
CREATE INDEX sessions_created ON sessions (created_at, id);

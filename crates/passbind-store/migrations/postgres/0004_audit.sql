-- The tamper-evident audit log: a hash chain whose events are also the leaves of a Merkle
-- tree (see passbind-audit). One head row serialises appends, so sequence numbers are
-- gap-free and commit in order even with several replicas.
CREATE TABLE audit_events (
    seq        BIGINT PRIMARY KEY,
    time_ms    BIGINT NOT NULL,
    event_type TEXT   NOT NULL,
    session_id TEXT,
    user_ref   TEXT,
    hash       TEXT   NOT NULL,
    event      TEXT   NOT NULL
);
CREATE INDEX audit_events_session ON audit_events (session_id, seq);
CREATE INDEX audit_events_type ON audit_events (event_type, seq);
CREATE INDEX audit_events_time ON audit_events (time_ms);

CREATE TABLE audit_head (
    id        SMALLINT PRIMARY KEY CHECK (id = 1),
    last_seq  BIGINT NOT NULL,
    last_hash TEXT   NOT NULL
);
INSERT INTO audit_head (id, last_seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed checkpoints; `frontier` (JSON list of hex hashes) lets the next one be computed
-- from the events after it alone.
CREATE TABLE audit_checkpoints (
    tree_size  BIGINT PRIMARY KEY,
    root_hash  TEXT   NOT NULL,
    time_ms    BIGINT NOT NULL,
    key_id     TEXT   NOT NULL,
    signature  TEXT   NOT NULL,
    frontier   TEXT   NOT NULL
);

-- Signed identity proofs (JWS), no identity data.
CREATE TABLE identity_proofs (
    id            TEXT   PRIMARY KEY,
    session_id    TEXT   NOT NULL,
    user_id       TEXT   NOT NULL,
    credential_id TEXT,
    jws           TEXT   NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX identity_proofs_credential ON identity_proofs (credential_id);
CREATE INDEX identity_proofs_session ON identity_proofs (session_id);

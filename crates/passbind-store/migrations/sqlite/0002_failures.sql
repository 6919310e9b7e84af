-- Failures that count towards a lockout (step-up face mismatches), one row each.
CREATE TABLE failures (
    id      INTEGER PRIMARY KEY,
    user_id TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    at      INTEGER NOT NULL
) STRICT;
CREATE INDEX failures_user_kind_at ON failures (user_id, kind, at);

-- Failures that count towards a lockout (step-up face mismatches), one row each.
CREATE TABLE failures (
    id      BIGSERIAL PRIMARY KEY,
    user_id TEXT   NOT NULL,
    kind    TEXT   NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX failures_user_kind_at ON failures (user_id, kind, at);

-- Audit events are written in the transaction of their change into audit_pending, without a
-- sequence number and without touching the chain head, so that changes take no global lock.
-- The audit sequencer (one at a time) moves them, in id order, into audit_events: it assigns
-- the sequence numbers, chains and seals them, and deletes what it integrated. Same table and
-- columns as ../postgres/0006_audit_pending.sql: only the types differ.
CREATE TABLE audit_pending (
    id         INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    draft      TEXT    NOT NULL
) STRICT;

-- Audit events are written in the transaction of their change into audit_pending, without a
-- sequence number and without touching the chain head, so that changes take no global lock.
-- The audit sequencer (one at a time: a transaction-scoped advisory lock) moves them, in id
-- order, into audit_events: it assigns the sequence numbers, chains and seals them, and
-- deletes exactly the rows it integrated. An id is taken when the event is inserted, so an
-- event of a change that committed before another change started has the smaller id.
CREATE TABLE audit_pending (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at BIGINT NOT NULL,
    draft      TEXT   NOT NULL
);

-- The reconciler's query: sessions waiting for an identity-verification verdict, oldest first
-- (`Store::sessions_awaiting_idv`). Partial: only the few sessions in that state are indexed.
CREATE INDEX sessions_awaiting_idv ON sessions (updated_at, id) WHERE state = 'idv_pending';

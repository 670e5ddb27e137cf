-- The transaction that logged each event, so that GET /api/events can give its events a position
-- across tasks: a PostgreSQL snapshot. Sequence numbers are per task, and a bigserial is taken at
-- insert, not at commit, so neither says which events a reader has already seen; a snapshot does
-- (the events of the transactions it shows as committed). Events logged before this migration have
-- none and are older than any such position. The index finds the events of the transactions a
-- position does not yet show: those at or after its xmax and those it lists as in progress.
ALTER TABLE dashboard.task_events ADD COLUMN tx xid8;
ALTER TABLE dashboard.task_events ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
CREATE INDEX task_events_tx ON dashboard.task_events (tx);
-- Statistics that say every existing row has none, so that plans use the index from the start.
ANALYZE dashboard.task_events;

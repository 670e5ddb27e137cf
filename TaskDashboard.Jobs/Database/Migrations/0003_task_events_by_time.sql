-- The event listener's catch-up for owners watched as a whole reads recent events by time.
CREATE INDEX task_events_created_at ON dashboard.task_events (created_at);

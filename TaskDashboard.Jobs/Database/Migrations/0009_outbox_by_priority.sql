-- The dispatcher reads the outbox highest priority first, then oldest: with Jobs:DispatchAhead
-- capping Hangfire's queues, a long backlog waits here and a critical task must not queue behind it.
-- The expression is TaskDispatcher.PriorityRank's, word for word, so the planner can use the index.
DROP INDEX dashboard.tasks_undispatched;
CREATE INDEX tasks_undispatched ON dashboard.tasks
    ((CASE priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'default' THEN 2 ELSE 3 END), created_at)
    WHERE hangfire_job_id IS NULL AND state IN ('Pending', 'Scheduled');

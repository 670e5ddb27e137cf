-- The lost-job check (every LeaseCheckInterval on every node) reads tasks waiting with a Hangfire
-- job by how long they have waited; without this it would scan the whole tasks table each time.
CREATE INDEX tasks_waiting_on_job ON dashboard.tasks (updated_at)
    WHERE state IN ('Pending', 'Scheduled') AND hangfire_job_id IS NOT NULL;

-- After each pass the dispatcher asks when the next delayed task falls due, and sleeps until then:
-- the earliest due time of the undispatched Scheduled tasks, one index entry away even while a long
-- backlog waits in the outbox.
CREATE INDEX tasks_scheduled_due ON dashboard.tasks (scheduled_at)
    WHERE hangfire_job_id IS NULL AND state = 'Scheduled';

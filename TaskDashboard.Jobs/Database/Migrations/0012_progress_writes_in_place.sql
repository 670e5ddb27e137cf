-- A running task's row is written up to twice a second (progress, stage, message, checkpoint,
-- updated_at, last_event_seq). PostgreSQL writes a new row version in place on its page, without
-- a new entry in every index of the table (a HOT update), only when no indexed column changes, and
-- the lost-job index was keyed on updated_at: every progress write added an entry to each of the
-- table's indexes. The lost-job check now reads when a task began waiting on its Hangfire job
-- (set when it gets one, and when a worker hands it back to the same job), which no progress write
-- touches. That is also what Jobs:LostJobAfter means: a task that sat in the outbox for an hour was
-- checked as soon as it got a job.
ALTER TABLE dashboard.tasks ADD COLUMN enqueued_at timestamptz;
UPDATE dashboard.tasks SET enqueued_at = updated_at
    WHERE state IN ('Pending', 'Scheduled') AND hangfire_job_id IS NOT NULL;
DROP INDEX dashboard.tasks_waiting_on_job;
CREATE INDEX tasks_waiting_on_job ON dashboard.tasks (enqueued_at)
    WHERE state IN ('Pending', 'Scheduled') AND hangfire_job_id IS NOT NULL;

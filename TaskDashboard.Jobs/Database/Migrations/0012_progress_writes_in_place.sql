-- A running task's row is written up to twice a second (progress, stage, message, checkpoint,
-- updated_at, last_event_seq). PostgreSQL writes a new row version in place on its page, without
-- a new entry in every index of the table (a HOT update), only when no indexed column changes, and
-- the lost-job index was keyed on updated_at: every progress write added an entry to each of the
-- table's indexes. The lost-job check now reads job_checked_at instead, which no progress write
-- touches: when the task got its Hangfire job (or a worker handed it back to that job), moved on
-- each time the check finds the job still waiting. So a task that sat in the outbox for an hour is
-- not checked as soon as it gets its job, and a long queue of waiting jobs is checked once every
-- Jobs:LostJobAfter rather than its oldest hundred on every pass of every node.
ALTER TABLE dashboard.tasks ADD COLUMN job_checked_at timestamptz;
UPDATE dashboard.tasks SET job_checked_at = updated_at
    WHERE state IN ('Pending', 'Scheduled') AND hangfire_job_id IS NOT NULL;
DROP INDEX dashboard.tasks_waiting_on_job;
CREATE INDEX tasks_waiting_on_job ON dashboard.tasks (job_checked_at)
    WHERE state IN ('Pending', 'Scheduled') AND hangfire_job_id IS NOT NULL;

-- A running task's lease is renewed every Jobs:LeaseRenewInterval (3 s), and the index of running
-- tasks was keyed on lease_expires_at: no renewal could be written in place on the row's page (a HOT
-- update), so each one added an entry to every index of the table. Running tasks are now indexed
-- by their kind, which never changes: the lease reaper reads every running task's row and checks
-- its lease (the running tasks are as many as the workers), and the claim and the dispatcher count
-- a kind's running tasks for Jobs:ConcurrencyLimits from the same index.
DROP INDEX dashboard.tasks_running_lease;
CREATE INDEX tasks_running ON dashboard.tasks (kind) WHERE state = 'Running';

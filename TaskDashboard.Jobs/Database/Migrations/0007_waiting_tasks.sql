-- Backpressure counts the tasks each owner has waiting (Pending or Scheduled) on every submission.
CREATE INDEX tasks_waiting_by_owner ON dashboard.tasks (owner_id) WHERE state IN ('Pending', 'Scheduled');

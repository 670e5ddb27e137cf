-- Where to POST when a task ends (checked on submit and again at delivery).
ALTER TABLE dashboard.tasks ADD COLUMN callback_url text;

-- One delivery per task end (and per redelivery): the signed POST and its retry state.
CREATE TABLE dashboard.webhook_deliveries (
    id               uuid        PRIMARY KEY,
    task_id          uuid        NOT NULL REFERENCES dashboard.tasks (id) ON DELETE CASCADE,
    webhook_id       text        NOT NULL,  -- the webhook-id header: the same on every attempt and redelivery
    event_type       text        NOT NULL,
    url              text        NOT NULL,
    payload          text,                  -- built once, before the first attempt, so every attempt signs the same body
    status           text        NOT NULL DEFAULT 'Pending'
                     CHECK (status IN ('Pending', 'InFlight', 'Delivered', 'Failed', 'Gone')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    in_flight_since  timestamptz,
    hangfire_job_id  text,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL,
    completed_at     timestamptz
);
CREATE INDEX webhook_deliveries_due ON dashboard.webhook_deliveries (next_attempt_at) WHERE status = 'Pending';
CREATE INDEX webhook_deliveries_in_flight ON dashboard.webhook_deliveries (in_flight_since) WHERE status = 'InFlight';
CREATE INDEX webhook_deliveries_task ON dashboard.webhook_deliveries (task_id, created_at);

-- Every attempt, as the delivery log shows it.
CREATE TABLE dashboard.webhook_attempts (
    delivery_id   uuid        NOT NULL REFERENCES dashboard.webhook_deliveries (id) ON DELETE CASCADE,
    attempt       integer     NOT NULL,
    at            timestamptz NOT NULL,
    status_code   integer,
    duration_ms   integer     NOT NULL,
    error         text,
    PRIMARY KEY (delivery_id, attempt)
);

-- Whatever path ends a task (job, cancel, reaper, timeout), the delivery is recorded in the same
-- transaction: no end without its webhook, none twice.
CREATE FUNCTION dashboard.queue_task_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dashboard.webhook_deliveries (id, task_id, webhook_id, event_type, url, next_attempt_at, created_at)
    VALUES (gen_random_uuid(), NEW.id, 'msg_' || replace(gen_random_uuid()::text, '-', ''),
            'task.' || lower(NEW.state), NEW.callback_url, now(), now());
    RETURN NEW;
END $$;

CREATE TRIGGER tasks_queue_webhook
    AFTER UPDATE OF state ON dashboard.tasks
    FOR EACH ROW
    WHEN (NEW.callback_url IS NOT NULL
          AND NEW.state IN ('Succeeded', 'Failed', 'Cancelled')
          AND OLD.state NOT IN ('Succeeded', 'Failed', 'Cancelled'))
    EXECUTE FUNCTION dashboard.queue_task_webhook();

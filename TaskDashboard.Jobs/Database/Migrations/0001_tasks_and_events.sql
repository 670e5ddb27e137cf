-- Tasks are the UI's source of truth; Hangfire only executes them (hangfire_job_id correlates).
CREATE TABLE dashboard.tasks (
    id               uuid        PRIMARY KEY,
    owner_id         text        NOT NULL,
    kind             text        NOT NULL,
    parameters       jsonb       NOT NULL,
    priority         text        NOT NULL DEFAULT 'default'
                     CHECK (priority IN ('critical', 'high', 'default', 'low')),
    state            text        NOT NULL DEFAULT 'Pending'
                     CHECK (state IN ('Pending', 'Scheduled', 'Running', 'Succeeded', 'Failed', 'Cancelled')),
    progress         smallint    NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    stage            text,
    message          text,
    attempt          integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL DEFAULT 3,
    errors           jsonb       NOT NULL DEFAULT '[]',
    result           jsonb,
    idempotency_key  text,
    request_hash     text,
    hangfire_job_id  text,
    cancel_requested_at timestamptz,
    last_event_seq   bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    scheduled_at     timestamptz,
    started_at       timestamptz,
    completed_at     timestamptz,
    failed_at        timestamptz,
    cancelled_at     timestamptz
);

-- One task per (owner, Idempotency-Key); the key is optional.
CREATE UNIQUE INDEX tasks_owner_idempotency_key ON dashboard.tasks (owner_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Listing: newest first per owner, optionally by state.
CREATE INDEX tasks_owner_created ON dashboard.tasks (owner_id, created_at DESC, id DESC);
-- The dispatcher's outbox scan: committed tasks that have no Hangfire job yet.
CREATE INDEX tasks_undispatched ON dashboard.tasks (created_at)
    WHERE hangfire_job_id IS NULL AND state IN ('Pending', 'Scheduled');

-- Append-only per-task event log; seq is per task and is what SSE uses as the event id.
CREATE TABLE dashboard.task_events (
    task_id    uuid        NOT NULL REFERENCES dashboard.tasks (id) ON DELETE CASCADE,
    seq        bigint      NOT NULL,
    type       text        NOT NULL,
    state      text        NOT NULL,
    progress   smallint    NOT NULL,
    stage      text,
    message    text,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (task_id, seq)
);

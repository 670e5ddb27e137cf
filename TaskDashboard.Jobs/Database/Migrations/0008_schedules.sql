-- Recurring submissions: each run of a schedule is a normal task. Hangfire's recurring job
-- "schedule:{id}" fires it; this table is the source of truth (paused schedules have no job).
CREATE TABLE dashboard.schedules (
    id               uuid        PRIMARY KEY,
    owner_id         text        NOT NULL,
    name             text        NOT NULL,
    kind             text        NOT NULL,
    parameters       jsonb       NOT NULL,
    priority         text        NOT NULL,
    timeout_seconds  integer,
    callback_url     text,
    cron             text        NOT NULL,
    time_zone        text        NOT NULL,
    paused           boolean     NOT NULL DEFAULT false,
    run_count        integer     NOT NULL DEFAULT 0,
    last_run_at      timestamptz,
    last_task_id     uuid,
    last_error       text,
    created_at       timestamptz NOT NULL
);
CREATE INDEX schedules_owner ON dashboard.schedules (owner_id, created_at);

-- Demo data for reports and exports; seeded at start-up when empty (DemoDataSeeder).
CREATE TABLE dashboard.orders (
    id         bigint        PRIMARY KEY,
    created_at timestamptz   NOT NULL,
    region     text          NOT NULL,
    product    text          NOT NULL,
    quantity   integer       NOT NULL,
    amount     numeric(12,2) NOT NULL
);
CREATE INDEX orders_created_at ON dashboard.orders (created_at);

-- Leases fence attempts: the worker holding (lease_owner, attempt) is the only one that may write.
ALTER TABLE dashboard.tasks
    ADD COLUMN lease_owner      text,
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN timeout_seconds  integer CHECK (timeout_seconds > 0),
    ADD COLUMN checkpoint       jsonb;

-- The lease reaper's scan: running tasks by lease expiry.
CREATE INDEX tasks_running_lease ON dashboard.tasks (lease_expires_at) WHERE state = 'Running';

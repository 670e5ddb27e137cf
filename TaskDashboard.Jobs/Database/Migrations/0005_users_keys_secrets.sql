-- People who sign in to the dashboard, and the roles they hold ('ops' sees every task and /hangfire).
-- The id is what tasks.owner_id holds.
CREATE TABLE dashboard.users (
    id             text        PRIMARY KEY,
    user_name      text        NOT NULL,
    password_hash  text        NOT NULL,
    roles          text[]      NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_user_name ON dashboard.users (lower(user_name));

-- API keys: only a SHA-256 of the key is stored (a key is 256 random bits, so a slow password hash
-- adds nothing); the prefix lets a user tell keys apart.
CREATE TABLE dashboard.api_keys (
    id            uuid        PRIMARY KEY,
    user_id       text        NOT NULL REFERENCES dashboard.users (id) ON DELETE CASCADE,
    name          text        NOT NULL,
    prefix        text        NOT NULL,
    key_hash      bytea       NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_user ON dashboard.api_keys (user_id, created_at DESC);

-- ASP.NET Core Data Protection keys, shared by every web node (cookies, antiforgery).
CREATE TABLE dashboard.data_protection_keys (
    id             bigserial PRIMARY KEY,
    friendly_name  text      NOT NULL UNIQUE,
    xml            text      NOT NULL
);

-- Secrets generated once and shared by every node (the download link signing key).
CREATE TABLE dashboard.secrets (
    name        text        PRIMARY KEY,
    value       bytea       NOT NULL,
    created_at  timestamptz NOT NULL
);

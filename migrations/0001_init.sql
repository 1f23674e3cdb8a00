-- podium's first schema. Indexes are kept to the ones a query or a guarantee needs; each says
-- why it exists.

-- Campaigns and their anti-cheat rules (the engine reads its rules from config for now and
-- records them here for reporting).
CREATE TABLE campaigns (
    id text PRIMARY KEY,
    min_duration_ms bigint NOT NULL,
    max_duration_ms bigint NOT NULL,
    max_score bigint NOT NULL,
    max_score_per_second bigint NOT NULL,
    starts_at timestamptz,
    ends_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per accepted session, partitioned by the day the game started. The start time comes
-- from the server-signed session token, so every replay of a session (a retried stream entry,
-- a second engine, the Redis-down fallback) lands in the same partition, and the primary key
-- makes the insert idempotent: it is the one index, and it exists for that guarantee.
-- Rebuilding a board scans one campaign's rows; that is rare enough not to earn an index.
CREATE TABLE results (
    session_id text NOT NULL,
    started_at timestamptz NOT NULL,
    user_id text NOT NULL,
    campaign_id text NOT NULL,
    score bigint NOT NULL,
    accepted_at timestamptz NOT NULL,
    PRIMARY KEY (session_id, started_at)
) PARTITION BY RANGE (started_at);

-- Catches rows for a day whose partition was not created in time, so an insert never fails
-- for want of a partition. The engine creates daily partitions ahead.
CREATE TABLE results_default PARTITION OF results DEFAULT;

-- Refused attempts, kept for review with the numbers that were refused. One row per session
-- (a session is decided once), which also makes replays idempotent.
CREATE TABLE flagged (
    session_id text PRIMARY KEY,
    user_id text NOT NULL,
    campaign_id text NOT NULL,
    reason text NOT NULL,
    score bigint NOT NULL,
    started_at timestamptz NOT NULL,
    flagged_at timestamptz NOT NULL
);
-- Review looks up one player's refusals, newest first.
CREATE INDEX flagged_user ON flagged (user_id, flagged_at);

-- Players barred from submitting.
CREATE TABLE bans (
    user_id text PRIMARY KEY,
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);

-- Counted campaigns: the server counts the score from the game's input events.

-- The counting rules of a counted campaign (JSON of `Counting`); NULL for a claimed one.
ALTER TABLE campaigns ADD COLUMN counting jsonb;

-- What the client claimed beside the server's count (`score`); NULL in claimed campaigns.
ALTER TABLE results ADD COLUMN claimed_score bigint;
ALTER TABLE flagged ADD COLUMN claimed_score bigint;

-- A counted game's evidence, accepted or refused: the input log (see domain/input_log.rs)
-- and the events dropped, by reason. Partitioned by day like `results`, so it ages out with it.
CREATE TABLE inputs (
    session_id text NOT NULL,
    started_at timestamptz NOT NULL,
    user_id text NOT NULL,
    campaign_id text NOT NULL,
    log bytea NOT NULL,
    dropped jsonb NOT NULL,
    PRIMARY KEY (session_id, started_at)
) PARTITION BY RANGE (started_at);
CREATE TABLE inputs_default PARTITION OF inputs DEFAULT;

-- Plausibility flags on accepted results, with their numbers: `value` measured against
-- `limit_value` (the threshold crossed) over `events`. A flag never refuses by itself.
CREATE TABLE result_flags (
    session_id text NOT NULL,
    started_at timestamptz NOT NULL,
    kind text NOT NULL,
    user_id text NOT NULL,
    campaign_id text NOT NULL,
    score bigint NOT NULL,
    value float8 NOT NULL,
    limit_value float8 NOT NULL,
    events integer NOT NULL,
    flagged_at timestamptz NOT NULL,
    PRIMARY KEY (session_id, started_at, kind)
) PARTITION BY RANGE (started_at);
CREATE TABLE result_flags_default PARTITION OF result_flags DEFAULT;
CREATE INDEX result_flags_recent ON result_flags (flagged_at DESC, session_id);
CREATE INDEX result_flags_user ON result_flags (user_id, flagged_at);

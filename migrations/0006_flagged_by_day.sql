-- `flagged` partitioned by the day the game started, like `results`, so `PG_RETENTION_DAYS`
-- ages refusals out a day at a time instead of deleting rows. The primary key gains
-- `started_at` (a partitioned table's key must hold the partition column); a session's start
-- comes from its signed token, so the key still admits one row per session and replays stay
-- idempotent.
ALTER TABLE flagged RENAME TO flagged_unpartitioned;
ALTER TABLE flagged_unpartitioned RENAME CONSTRAINT flagged_pkey TO flagged_unpartitioned_pkey;
DROP INDEX flagged_user;
DROP INDEX flagged_recent;

CREATE TABLE flagged (
    session_id text NOT NULL,
    user_id text NOT NULL,
    campaign_id text NOT NULL,
    reason text NOT NULL,
    score bigint NOT NULL,
    started_at timestamptz NOT NULL,
    flagged_at timestamptz NOT NULL,
    rule_limit bigint,
    dismissed_at timestamptz,
    dismissed_by text,
    PRIMARY KEY (session_id, started_at)
) PARTITION BY RANGE (started_at);
CREATE TABLE flagged_default PARTITION OF flagged DEFAULT;

-- Every day already holding refusals gets its partition before the rows move, so old days
-- can age out and the engine can still create today's partition (a partition cannot be
-- created over rows sitting in the default one).
DO $$
DECLARE day date;
BEGIN
    FOR day IN SELECT DISTINCT (started_at AT TIME ZONE 'UTC')::date FROM flagged_unpartitioned LOOP
        EXECUTE format(
            'CREATE TABLE flagged_%s PARTITION OF flagged FOR VALUES FROM (%L) TO (%L)',
            to_char(day, 'YYYYMMDD'), day || ' 00:00+00', (day + 1) || ' 00:00+00');
    END LOOP;
END $$;

INSERT INTO flagged (session_id, user_id, campaign_id, reason, score, started_at, flagged_at,
                     rule_limit, dismissed_at, dismissed_by)
SELECT session_id, user_id, campaign_id, reason, score, started_at, flagged_at,
       rule_limit, dismissed_at, dismissed_by
FROM flagged_unpartitioned;
DROP TABLE flagged_unpartitioned;

-- Review looks up one player's refusals, newest first.
CREATE INDEX flagged_user ON flagged (user_id, flagged_at);
-- Review lists refusals newest first, whatever the filter.
CREATE INDEX flagged_recent ON flagged (flagged_at DESC, session_id);

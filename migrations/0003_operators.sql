-- What operators run a campaign with: campaigns become the truth (created from the config
-- file when absent, then changed through the admin API), bans say who set them, and every
-- admin action is kept in an audit log.

-- A campaign's full settings. `version` grows with every change: instances apply changes in
-- order, and an update names the version it read, so two operators cannot overwrite each
-- other unseen.
ALTER TABLE campaigns
    ADD COLUMN title text,
    ADD COLUMN max_games_per_hour integer NOT NULL DEFAULT 0,
    ADD COLUMN daily_retention_days integer NOT NULL DEFAULT 7,
    ADD COLUMN regions text[] NOT NULL DEFAULT '{eu,us,asia}',
    ADD COLUMN closed_at timestamptz,
    ADD COLUMN version bigint NOT NULL DEFAULT 1;

-- Who banned the player: an admin key's name, an admin's `sub`, or `auto`.
ALTER TABLE bans ADD COLUMN created_by text NOT NULL DEFAULT 'unknown';

-- Every admin action, newest read first by id (the cursor of `GET /admin/audit`).
CREATE TABLE audit (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    body jsonb
);

-- A refused attempt's broken limit, in the rule's unit (ms, points, points per second), as it
-- was when the game started; null for a closed campaign.
ALTER TABLE flagged ADD COLUMN rule_limit bigint;
-- Review lists refusals newest first, whatever the filter.
CREATE INDEX flagged_recent ON flagged (flagged_at DESC, session_id);

-- Scores an operator removed from a campaign's boards: the player's results accepted up to
-- `removed_at` stay in `results` and count on no board again, even one still on its way
-- from the results stream when the removal was made.
CREATE TABLE score_removals (
    campaign_id text NOT NULL,
    user_id text NOT NULL,
    removed_at timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, user_id)
);

-- A board an operator reset: its standings at that moment, kept under a name.
CREATE TABLE board_archives (
    id bigserial PRIMARY KEY,
    campaign_id text NOT NULL,
    board text NOT NULL,
    name text NOT NULL,
    archived_at timestamptz NOT NULL,
    rows jsonb NOT NULL,
    UNIQUE (campaign_id, board, name)
);

-- When each board was last reset: a rebuild counts only results accepted after it.
CREATE TABLE board_resets (
    campaign_id text NOT NULL,
    board text NOT NULL,
    reset_at timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, board)
);

-- An operator's page of one player lists their latest results.
CREATE INDEX results_user ON results (user_id, accepted_at DESC);

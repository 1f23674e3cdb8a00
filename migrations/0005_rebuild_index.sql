-- A rebuild reads each player's best in one campaign (`results::bests_page`): DISTINCT ON
-- (user_id) ordered by score, a page of players at a time. Without this index every rebuild
-- scanned every partition of every campaign; with it each page is one range of the index.
CREATE INDEX results_campaign_user_best ON results (campaign_id, user_id, score DESC, accepted_at);

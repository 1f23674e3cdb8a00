-- An operator's verdict on a refused attempt: dismissed (reviewed, nothing to do) leaves the
-- review queue but stays on the player's page.
ALTER TABLE flagged ADD COLUMN dismissed_at timestamptz;
ALTER TABLE flagged ADD COLUMN dismissed_by text;

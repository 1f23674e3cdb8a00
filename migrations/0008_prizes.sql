-- How many places win on each prize board of a campaign (JSON object, board -> places).
ALTER TABLE campaigns ADD COLUMN prizes jsonb NOT NULL DEFAULT '{}';

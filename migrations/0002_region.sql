-- The player's region (from their token) for each result, so region boards can be rebuilt
-- from PostgreSQL. Nullable: players without a region claim have none. No index: only a
-- rebuild reads it, and a rebuild scans the campaign's rows anyway.
ALTER TABLE results ADD COLUMN region text;

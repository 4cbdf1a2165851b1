-- SQLite reads a number's route on the calling thread, in process, for every webhook:
-- nothing is kept in memory, so nothing need be told of changes. The version is kept in
-- step with PostgreSQL's (which notifies instances of changed numbers and accounts).
SELECT 1;

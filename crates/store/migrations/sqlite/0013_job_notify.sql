-- One SQLite database has one instance: its workers are woken in process. Nothing to add;
-- the version is kept in step with PostgreSQL's (which adds a NOTIFY on new jobs).
SELECT 1;

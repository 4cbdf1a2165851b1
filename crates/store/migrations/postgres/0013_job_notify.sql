-- Several instances share one database: a new job wakes every instance's workers at once
-- (NOTIFY is delivered when the inserting transaction commits), instead of waiting for the
-- next poll. The poll stays as the safety net for a missed notification.
CREATE FUNCTION textback_jobs_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('textback_jobs', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_notify AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION textback_jobs_notify();

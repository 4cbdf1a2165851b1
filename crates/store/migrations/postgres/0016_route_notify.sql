-- Each instance keeps number routes in memory while it listens (store/src/route_cache.rs):
-- any change to numbers or accounts tells every instance to forget them, when the
-- changing transaction commits.
CREATE FUNCTION textback_routes_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('textback_routes', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER numbers_routes_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON numbers
    FOR EACH STATEMENT EXECUTE FUNCTION textback_routes_notify();
CREATE TRIGGER accounts_routes_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION textback_routes_notify();

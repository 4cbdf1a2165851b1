-- Each missed call's first run step asks "has this contact called before?" and "is a task
-- of this run done?". Without these, both scanned the whole table (calls by time, tasks in
-- full): a cost that grew with every call the business ever had.
CREATE INDEX calls_by_contact ON calls (contact_id, started_at);
CREATE INDEX tasks_by_run ON tasks (run_id, status);

-- Reports and Today look up each call's callback task, and an account's calls newest first;
-- without these a month of calls made the funnel a scan per call (web-bench: 720 ms).
CREATE INDEX tasks_by_call ON tasks (call_id);
CREATE INDEX calls_by_account ON calls (account_id, id);

-- What PostgreSQL alone costs per missed call when every table's rows for a batch of :n
-- calls are written with one statement each: the floor under any group writer, with no
-- server, HTTP or round trips per call. Run by tools/pg-floor.sh (pgbench, two clients as
-- two instances), on a database the quick start was applied to. Each batch writes what a
-- missed call with the recommended workflow writes (docs/PERFORMANCE.md, "What limits it
-- now"): the call, contact, event and trigger job; the claim of the trigger jobs; the
-- run, conversation, text, its send job, the task and its due job, the tag, three log
-- rows and the follow-up's job; then the send's result. Phones come from ceil_seq, so no
-- two calls of a run share a caller.
-- Stage 1: the webhooks' transaction for :n calls (calls, contacts, events, trigger jobs).
BEGIN;
WITH g AS (SELECT nextval('ceil_seq') AS i FROM generate_series(1, :n)),
p AS (SELECT i, '+1' || (2000000000 + i)::text AS phone, 'CA' || md5(i::text) AS sid FROM g),
ct AS (INSERT INTO contacts (account_id, phone, created_at, updated_at) SELECT 1, phone, 0, 0 FROM p
       ON CONFLICT (account_id, phone) DO UPDATE SET updated_at = contacts.updated_at RETURNING id, phone),
cl AS (INSERT INTO calls (account_id, number_id, contact_id, carrier, carrier_call_id, caller, caller_phone, status, dial_status, outcome, started_at, missed_at, created_at, updated_at)
       SELECT 1, 1, ct.id, 'twilio', p.sid, p.phone, p.phone, 'ringing', 'no-answer', 'missed', 0, 0, 0, 0 FROM p JOIN ct USING (phone)
       ON CONFLICT (carrier_call_id) DO UPDATE SET updated_at = excluded.updated_at RETURNING id, contact_id),
ev AS (INSERT INTO events (account_id, contact_id, kind, subject_id, at) SELECT 1, contact_id, 'missed_call', id, 0 FROM cl RETURNING id)
INSERT INTO jobs (kind, subject_id, run_at, max_attempts, created_at) SELECT 'trigger', id, 0, 10, 0 FROM ev;
COMMIT;
-- The claim of the trigger jobs (autocommit, as the workers do).
WITH j AS (UPDATE jobs SET locked_until = 1, locked_by = 'c:client_id', attempts = attempts + 1
           WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= 0 AND locked_until IS NULL ORDER BY run_at, id LIMIT :n FOR UPDATE SKIP LOCKED)
           RETURNING id)
SELECT COALESCE(array_agg(id), '{}')::text AS claimed FROM j \gset
-- Stage 2: the runs' start and first step.
BEGIN;
WITH j AS (SELECT id, subject_id FROM jobs WHERE id = ANY (':claimed'::bigint[])),
e AS (SELECT e.id, e.contact_id, c.id AS call_id, c.caller_phone FROM j JOIN events e ON e.id = j.subject_id JOIN calls c ON c.id = e.subject_id),
k AS (SELECT id FROM contacts WHERE id IN (SELECT contact_id FROM e) FOR UPDATE),
r AS (INSERT INTO workflow_runs (account_id, workflow_id, version, trigger, subject_id, contact_id, call_id, number_id, status, stop_on_reply, pc, waited, resume_at, started_at, updated_at)
      SELECT 1, 2, 1, 'missed_call', e.id, e.contact_id, e.call_id, 1, 'waiting', true, 4, true, 1800000, 0, 0 FROM e WHERE EXISTS (SELECT 1 FROM k WHERE k.id = e.contact_id)
      ON CONFLICT DO NOTHING RETURNING id, contact_id, call_id),
cv AS (INSERT INTO conversations (account_id, number_id, contact_id, last_message_at, last_inbound_at, created_at) SELECT 1, 1, contact_id, 0, NULL, 0 FROM r
       ON CONFLICT (number_id, contact_id) DO UPDATE SET last_message_at = excluded.last_message_at RETURNING id, contact_id),
m AS (INSERT INTO messages (account_id, number_id, contact_id, call_id, run_id, conversation_id, kind, direction, from_phone, to_phone, body, carrier, created_at, updated_at, variant, step, status, attempts, last_attempt_at)
      SELECT 1, 1, r.contact_id, r.call_id, r.id, cv.id, 'text_back', 'outbound', '+15125550100', '+1' || (2000000000 + r.contact_id)::text,
             'Hi there, it''s Acme Plumbing. Sorry we missed your call! How can we help? Reply here and we''ll get right back to you.', 'twilio', 0, 0, NULL, 'text back', 'submitting', 1, 0
      FROM r JOIN cv USING (contact_id) RETURNING id),
sj AS (INSERT INTO jobs (kind, subject_id, unique_key, run_at, max_attempts, created_at, locked_until, locked_by, attempts)
       SELECT 'send_message', id, 'send_message:' || id, 0, 8, 0, 2, 'c:client_id', 1 FROM m RETURNING id),
cu AS (UPDATE calls SET text_back_status = 'queued', text_back_reason = NULL, updated_at = 0 WHERE id IN (SELECT call_id FROM r)),
t AS (INSERT INTO tasks (account_id, contact_id, call_id, run_id, title, due_at, assignee, status, created_at)
      SELECT 1, contact_id, call_id, id, 'Call back +1512', 99999999, NULL, 'open', 0 FROM r RETURNING id),
tj AS (INSERT INTO jobs (kind, subject_id, unique_key, run_at, max_attempts, created_at) SELECT 'task_due', id, 'task_due:' || id, 99999999, 10, 0 FROM t),
tg AS (INSERT INTO contact_tags (contact_id, tag, tag_key, created_at) SELECT contact_id, 'Missed Call', 'missed call', 0 FROM r ON CONFLICT DO NOTHING),
rl AS (INSERT INTO run_log (run_id, place, what, at) SELECT r.id, p.place, p.what, 0 FROM r,
       (VALUES ('text back', 'queued'), ('create_task', 'task 1: Call back'), ('add_tag', 'Missed Call')) p(place, what)),
aj AS (INSERT INTO jobs (kind, subject_id, unique_key, run_at, max_attempts, created_at) SELECT 'advance_run', id, 'advance_run:' || id || ':4', 1800000, 10, 0 FROM r),
dj AS (DELETE FROM jobs WHERE id IN (SELECT id FROM j))
SELECT COALESCE(array_agg(id), '{}')::text AS sends FROM sj \gset
COMMIT;
-- Stage 3: the sends' results.
BEGIN;
WITH sj AS (DELETE FROM jobs WHERE id = ANY (':sends'::bigint[]) RETURNING subject_id),
m AS (UPDATE messages SET status = 'sent', carrier_message_id = 'SM' || md5(id::text), carrier_status = 'queued', segments = 1, sent_at = 0, updated_at = 0
      WHERE id IN (SELECT subject_id FROM sj) RETURNING call_id)
UPDATE calls SET text_back_status = 'sent', text_back_reason = NULL, updated_at = 0 WHERE id IN (SELECT call_id FROM m);
COMMIT;

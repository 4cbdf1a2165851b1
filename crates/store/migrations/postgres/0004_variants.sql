-- Which variant of which step a message was (for comparing reply rates).
ALTER TABLE messages ADD COLUMN variant TEXT;
ALTER TABLE messages ADD COLUMN step TEXT;
CREATE INDEX messages_variants ON messages (account_id, variant) ;
CREATE INDEX messages_inbound_by_contact ON messages (contact_id, direction, created_at);

-- Runs waiting for an event (a reply, a task done) until a deadline.
ALTER TABLE workflow_runs ADD COLUMN waiting_for TEXT;
ALTER TABLE workflow_runs ADD COLUMN wait_deadline BIGINT;

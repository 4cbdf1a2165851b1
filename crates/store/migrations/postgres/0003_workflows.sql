CREATE TABLE workflows (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    builtin BOOLEAN NOT NULL DEFAULT FALSE,
    active BOOLEAN NOT NULL,
    current_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

-- Editing a workflow adds a version; a run finishes on the version it started with.
CREATE TABLE workflow_versions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id BIGINT NOT NULL REFERENCES workflows(id),
    version BIGINT NOT NULL,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (workflow_id, version)
);

CREATE TABLE workflow_runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    workflow_id BIGINT NOT NULL REFERENCES workflows(id),
    version BIGINT NOT NULL,
    trigger TEXT NOT NULL,
    subject_id BIGINT NOT NULL,
    contact_id BIGINT REFERENCES contacts(id),
    call_id BIGINT REFERENCES calls(id),
    number_id BIGINT REFERENCES numbers(id),
    status TEXT NOT NULL,
    pc BIGINT NOT NULL DEFAULT 0,
    waited BOOLEAN NOT NULL DEFAULT FALSE,
    resume_at BIGINT,
    stop_on_reply BOOLEAN NOT NULL,
    stop_reason TEXT,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    ended_at BIGINT,
    -- One run per workflow per trigger event, however often the event is delivered.
    UNIQUE (workflow_id, trigger, subject_id)
);
CREATE INDEX workflow_runs_by_contact ON workflow_runs (contact_id, status);

-- What each step of a run did (sent, skipped and why, already texted back, …).
CREATE TABLE run_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES workflow_runs(id),
    place TEXT NOT NULL,
    what TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX run_log_by_run ON run_log (run_id, id);

CREATE TABLE tasks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    contact_id BIGINT REFERENCES contacts(id),
    call_id BIGINT REFERENCES calls(id),
    run_id BIGINT REFERENCES workflow_runs(id),
    title TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    assignee TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    created_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX tasks_open ON tasks (account_id, status, due_at);

CREATE TABLE contact_tags (
    contact_id BIGINT NOT NULL REFERENCES contacts(id),
    tag TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (contact_id, tag_key)
);

CREATE TABLE webhook_deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    run_id BIGINT REFERENCES workflow_runs(id),
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    response_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);

ALTER TABLE messages ADD COLUMN run_id BIGINT REFERENCES workflow_runs(id);
ALTER TABLE accounts ADD COLUMN quiet_hours TEXT NOT NULL DEFAULT '21:00-08:00';

CREATE TABLE accounts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    booking_link TEXT,
    business_hours TEXT NOT NULL DEFAULT '{}',
    text_back_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    text_back_template TEXT NOT NULL,
    cooldown_secs BIGINT NOT NULL DEFAULT 900,
    do_not_text TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE numbers (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    e164 TEXT NOT NULL UNIQUE,
    carrier TEXT NOT NULL,
    ring_to TEXT NOT NULL DEFAULT '[]',
    ring_seconds BIGINT NOT NULL DEFAULT 20,
    call_screening BOOLEAN NOT NULL DEFAULT FALSE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE contacts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    phone TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    opted_out BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (account_id, phone)
);

CREATE TABLE calls (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    number_id BIGINT NOT NULL REFERENCES numbers(id),
    contact_id BIGINT REFERENCES contacts(id),
    carrier TEXT NOT NULL,
    carrier_call_id TEXT NOT NULL UNIQUE,
    caller TEXT NOT NULL,
    caller_phone TEXT,
    status TEXT NOT NULL,
    dial_status TEXT,
    outcome TEXT,
    screen_accepted BOOLEAN NOT NULL DEFAULT FALSE,
    started_at BIGINT NOT NULL,
    missed_at BIGINT,
    ended_at BIGINT,
    duration_secs BIGINT,
    recording_url TEXT,
    recording_secs BIGINT,
    text_back_status TEXT,
    text_back_reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX calls_recent ON calls (started_at);

CREATE TABLE messages (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    number_id BIGINT NOT NULL REFERENCES numbers(id),
    contact_id BIGINT REFERENCES contacts(id),
    call_id BIGINT REFERENCES calls(id),
    kind TEXT NOT NULL,
    direction TEXT NOT NULL,
    from_phone TEXT NOT NULL,
    to_phone TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    carrier TEXT NOT NULL,
    carrier_message_id TEXT UNIQUE,
    carrier_status TEXT,
    segments BIGINT,
    error_code BIGINT,
    error_message TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_attempt_at BIGINT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    updated_at BIGINT NOT NULL
);
-- The database itself refuses a second text back for one call.
CREATE UNIQUE INDEX messages_one_text_back_per_call ON messages (call_id) WHERE kind = 'text_back';
CREATE INDEX messages_text_back_by_recipient ON messages (account_id, to_phone, created_at) WHERE kind = 'text_back';
CREATE INDEX messages_recent ON messages (created_at);

CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    subject_id BIGINT NOT NULL,
    unique_key TEXT UNIQUE,
    status TEXT NOT NULL DEFAULT 'queued',
    run_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    locked_until BIGINT,
    locked_by TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (status, run_at);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

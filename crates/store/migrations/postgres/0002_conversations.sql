CREATE TABLE conversations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    number_id BIGINT NOT NULL REFERENCES numbers(id),
    contact_id BIGINT NOT NULL REFERENCES contacts(id),
    last_message_at BIGINT NOT NULL,
    last_inbound_at BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (number_id, contact_id)
);
CREATE INDEX conversations_recent ON conversations (account_id, last_message_at);

ALTER TABLE messages ADD COLUMN conversation_id BIGINT REFERENCES conversations(id);
ALTER TABLE messages ADD COLUMN media TEXT;
CREATE INDEX messages_by_conversation ON messages (conversation_id, created_at);
CREATE INDEX messages_errors ON messages (account_id, error_code, created_at);

ALTER TABLE contacts ADD COLUMN last_replied_at BIGINT;
ALTER TABLE contacts ADD COLUMN textable BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE contacts ADD COLUMN not_textable_reason TEXT;

-- Every change of consent, with its time and source: the evidence a business needs.
CREATE TABLE consent_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    contact_id BIGINT NOT NULL REFERENCES contacts(id),
    opted_out BOOLEAN NOT NULL,
    source TEXT NOT NULL,
    detail TEXT,
    message_id BIGINT REFERENCES messages(id),
    at BIGINT NOT NULL
);
CREATE INDEX consent_events_by_contact ON consent_events (contact_id, at);

-- Facts later automations react to ("contact replied").
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    contact_id BIGINT REFERENCES contacts(id),
    kind TEXT NOT NULL,
    subject_id BIGINT,
    at BIGINT NOT NULL
);
CREATE INDEX events_by_contact ON events (contact_id, kind, at);

-- Line type lookups, cached per number.
CREATE TABLE phone_lookups (
    phone TEXT PRIMARY KEY,
    line_type TEXT,
    carrier_name TEXT,
    looked_up_at BIGINT NOT NULL
);

ALTER TABLE accounts ADD COLUMN landline_lookup BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE numbers ADD COLUMN registration TEXT NOT NULL DEFAULT 'unregistered';

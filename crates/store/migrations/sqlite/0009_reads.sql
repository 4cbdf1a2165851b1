-- How far each team member has read each conversation, for the inbox's unread marks.
CREATE TABLE conversation_reads (
    user_id BIGINT NOT NULL REFERENCES users(id),
    conversation_id BIGINT NOT NULL REFERENCES conversations(id),
    last_read_message_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);

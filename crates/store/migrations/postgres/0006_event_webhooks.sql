-- Outbound event webhooks: what an integrator subscribed to.
CREATE TABLE webhook_subscriptions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    UNIQUE (account_id, url)
);

ALTER TABLE webhook_deliveries ADD COLUMN event TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN subscription_id BIGINT REFERENCES webhook_subscriptions(id);

-- Every transaction the hub builds, keyed by the caller's idempotency key so that a retried
-- request never signs twice.
CREATE FUNCTION pmm_tx_status_rank(status TEXT) RETURNS INTEGER
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE status
        WHEN 'pending' THEN 0
        WHEN 'signed' THEN 1
        WHEN 'sent' THEN 2
        ELSE 3
    END
$$;

CREATE TABLE transactions (
    id              UUID        PRIMARY KEY,
    idempotency_key TEXT        NOT NULL UNIQUE,
    chain_id        BIGINT      NOT NULL CHECK (chain_id >= 0),
    pool            TEXT,
    intent          JSONB       NOT NULL,
    from_address    TEXT,
    nonce           BIGINT      CHECK (nonce >= 0),
    tx_hash         TEXT,
    status          TEXT        NOT NULL CHECK (status IN
                        ('pending', 'signed', 'sent', 'confirmed', 'failed', 'dropped')),
    receipt         JSONB,
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The reconciler scans open transactions; nonce management looks up by sender and nonce.
CREATE INDEX transactions_open_idx ON transactions (chain_id, created_at)
    WHERE status IN ('pending', 'signed', 'sent');
CREATE INDEX transactions_sender_nonce_idx ON transactions (chain_id, from_address, nonce)
    WHERE from_address IS NOT NULL;
CREATE INDEX transactions_tx_hash_idx ON transactions (tx_hash) WHERE tx_hash IS NOT NULL;

-- Writes: one nonce counter per (chain, signer) that every hub replica locks, the exact call
-- and outcome of each intent, and every signed attempt (a replacement is a new attempt of the
-- same intent at the same nonce).
CREATE TABLE tx_nonces (
    chain_id   BIGINT      NOT NULL CHECK (chain_id >= 0),
    signer     TEXT        NOT NULL,
    next_nonce BIGINT      NOT NULL CHECK (next_nonce >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, signer)
);

ALTER TABLE transactions
    ADD COLUMN call_to        TEXT,
    ADD COLUMN call_input     TEXT,
    ADD COLUMN gas_limit      BIGINT CHECK (gas_limit >= 0),
    ADD COLUMN raw_tx         TEXT,
    ADD COLUMN reservation_id UUID,
    ADD COLUMN notional       NUMERIC(78,0) CHECK (notional >= 0),
    ADD COLUMN revert_reason  TEXT,
    ADD COLUMN gas_used       BIGINT CHECK (gas_used >= 0),
    ADD COLUMN steps          JSONB;

-- A nonce belongs to one intent of a signer, whichever replica allocated it.
CREATE UNIQUE INDEX transactions_one_nonce_per_sender
    ON transactions (chain_id, from_address, nonce) WHERE nonce IS NOT NULL;

CREATE TABLE transaction_attempts (
    id                       BIGINT        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id           UUID          NOT NULL REFERENCES transactions (id),
    attempt                  INTEGER       NOT NULL CHECK (attempt >= 0),
    nonce                    BIGINT        NOT NULL CHECK (nonce >= 0),
    tx_hash                  TEXT          NOT NULL UNIQUE,
    raw_tx                   TEXT          NOT NULL,
    max_fee_per_gas          NUMERIC(78,0) NOT NULL,
    max_priority_fee_per_gas NUMERIC(78,0) NOT NULL,
    created_at               TIMESTAMPTZ   NOT NULL DEFAULT now(),
    UNIQUE (transaction_id, attempt)
);

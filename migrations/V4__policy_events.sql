-- Durable history of the policy state that lives in Redis: breaker trips and resets, cooldowns,
-- pauses. Append-only: Redis holds the current value, this table says how it got there.
CREATE TABLE policy_events (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL,
    chain_id    BIGINT      NOT NULL CHECK (chain_id >= 0),
    -- NULL for a chain-wide event (for example a pause of every pool).
    pool        TEXT,
    kind        TEXT        NOT NULL CHECK (kind IN
                    ('breaker_trip', 'breaker_reset', 'cooldown_set', 'pause', 'resume')),
    reason      TEXT,
    actor       TEXT        NOT NULL,
    until_at    TIMESTAMPTZ,
    details     JSONB       NOT NULL DEFAULT '{}'::jsonb,
    trace_id    TEXT
);

CREATE INDEX policy_events_pool_idx ON policy_events (chain_id, pool, occurred_at DESC);
CREATE INDEX policy_events_kind_idx ON policy_events (kind, occurred_at DESC);

-- Statement level, so even an UPDATE or DELETE that matches no row is refused.
CREATE TRIGGER policy_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON policy_events
    FOR EACH STATEMENT EXECUTE FUNCTION pmm_reject_audit_mutation();

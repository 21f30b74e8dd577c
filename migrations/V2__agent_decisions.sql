-- One append-only row per agent decision: enough to replay the input against another model or
-- prompt and to explain the verdict afterwards.
CREATE TABLE agent_decisions (
    id                      UUID        PRIMARY KEY,
    decided_at              TIMESTAMPTZ NOT NULL,
    tick                    BIGINT      NOT NULL CHECK (tick >= 0),
    chain_id                BIGINT      NOT NULL CHECK (chain_id >= 0),
    pool                    TEXT        NOT NULL,
    input_hash              TEXT        NOT NULL,
    state                   JSONB       NOT NULL,
    model                   TEXT        NOT NULL,
    prompt_version          TEXT        NOT NULL,
    tool_surface_version    TEXT        NOT NULL,
    proposal                JSONB,
    baseline_proposal       JSONB,
    action_matches_baseline BOOLEAN,
    drift_bps               BIGINT,
    drift                   JSONB,
    verdict                 TEXT        NOT NULL,
    matched_rule            TEXT,
    simulation              JSONB,
    tx_hash                 TEXT,
    mode                    TEXT        NOT NULL,
    trace_id                TEXT,
    error                   TEXT
);

-- Latest decisions of one pool, a time range for replay, and lookups by input for dedup.
CREATE INDEX agent_decisions_pool_idx ON agent_decisions (chain_id, pool, decided_at DESC);
CREATE INDEX agent_decisions_decided_at_idx ON agent_decisions (decided_at DESC);
CREATE INDEX agent_decisions_input_hash_idx ON agent_decisions (input_hash);

-- Statement level, so even an UPDATE or DELETE that matches no row is refused.
CREATE TRIGGER agent_decisions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON agent_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION pmm_reject_audit_mutation();

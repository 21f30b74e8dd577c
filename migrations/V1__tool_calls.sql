-- Append-only audit of every tool call the hub served, written in batches by the hub.

-- Shared by every audit table: rows are evidence, so an UPDATE, DELETE or TRUNCATE is refused
-- by the database itself rather than by convention in the code that writes them.
CREATE FUNCTION pmm_reject_audit_mutation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TABLE tool_calls (
    id           UUID        PRIMARY KEY,
    called_at    TIMESTAMPTZ NOT NULL,
    caller       TEXT        NOT NULL,
    tool         TEXT        NOT NULL,
    params       JSONB       NOT NULL,
    result       JSONB,
    error        TEXT,
    verdict      TEXT,
    matched_rule TEXT,
    latency_ms   BIGINT      NOT NULL CHECK (latency_ms >= 0),
    trace_id     TEXT,
    -- Exactly one of result / error: a call either answered or failed.
    CONSTRAINT tool_calls_result_xor_error CHECK ((result IS NULL) <> (error IS NULL))
);

-- Recent calls overall, per tool, and every call of one trace (agent tick -> hub calls).
CREATE INDEX tool_calls_called_at_idx ON tool_calls (called_at DESC);
CREATE INDEX tool_calls_tool_called_at_idx ON tool_calls (tool, called_at DESC);
CREATE INDEX tool_calls_trace_id_idx ON tool_calls (trace_id) WHERE trace_id IS NOT NULL;

-- Statement level, so even an UPDATE or DELETE that matches no row is refused.
CREATE TRIGGER tool_calls_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON tool_calls
    FOR EACH STATEMENT EXECUTE FUNCTION pmm_reject_audit_mutation();

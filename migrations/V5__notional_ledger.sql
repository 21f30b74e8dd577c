-- Daily notional accounting: every reservation, commit and refund is a ledger row, and
-- notional_windows keeps the running totals per (scope, UTC day) so that a reservation is one
-- conditional UPDATE that every replica serializes on.
CREATE TABLE notional_windows (
    scope      TEXT          NOT NULL,
    window_day DATE          NOT NULL,
    reserved   NUMERIC(78,0) NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    committed  NUMERIC(78,0) NOT NULL DEFAULT 0 CHECK (committed >= 0),
    updated_at TIMESTAMPTZ   NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, window_day)
);

CREATE TABLE notional_ledger (
    id             BIGINT        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reservation_id UUID          NOT NULL,
    scope          TEXT          NOT NULL,
    window_day     DATE          NOT NULL,
    kind           TEXT          NOT NULL CHECK (kind IN ('reserve', 'commit', 'refund')),
    amount         NUMERIC(78,0) NOT NULL CHECK (amount >= 0),
    cap            NUMERIC(78,0),
    recorded_at    TIMESTAMPTZ   NOT NULL DEFAULT now(),
    FOREIGN KEY (scope, window_day) REFERENCES notional_windows (scope, window_day)
);

-- One reservation row per id, and at most one settlement (commit or refund) per reservation.
CREATE UNIQUE INDEX notional_ledger_one_reserve
    ON notional_ledger (reservation_id) WHERE kind = 'reserve';
CREATE UNIQUE INDEX notional_ledger_one_settlement
    ON notional_ledger (reservation_id) WHERE kind IN ('commit', 'refund');
CREATE INDEX notional_ledger_window_idx ON notional_ledger (scope, window_day, recorded_at);

-- Statement level, so even an UPDATE or DELETE that matches no row is refused.
CREATE TRIGGER notional_ledger_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON notional_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION pmm_reject_audit_mutation();

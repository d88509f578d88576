-- The ledger: trades, their attempts, the audit trail, the alert outbox and trader scores.
-- States, reason codes and outcomes mirror xorj.domain.trades (TradeState, ReasonCode, AttemptOutcome);
-- an integration test compares these CHECK lists with the Python enums.

CREATE TABLE trades (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    strategy          text NOT NULL CONSTRAINT trades_strategy_not_empty CHECK (strategy <> ''),
    vault             text NOT NULL CONSTRAINT trades_vault_not_empty CHECK (vault <> ''),
    lead_signature    text NOT NULL CONSTRAINT trades_lead_signature_not_empty CHECK (lead_signature <> ''),
    lead_trader       text NOT NULL,
    input_mint        text NOT NULL,
    output_mint       text NOT NULL,
    amount            numeric(20, 0) NOT NULL CONSTRAINT trades_amount_positive CHECK (amount > 0),
    max_slippage_bps  integer CONSTRAINT trades_max_slippage_bps_range
                          CHECK (max_slippage_bps BETWEEN 0 AND 10000),
    notional_usd      numeric CONSTRAINT trades_notional_usd_not_negative CHECK (notional_usd >= 0),
    copytrade         text,
    state             text NOT NULL DEFAULT 'PENDING' CONSTRAINT trades_state_valid
                          CHECK (state IN ('PENDING', 'SUBMITTED', 'CONFIRMED', 'FAILED')),
    reason            text CONSTRAINT trades_reason_valid CHECK (reason IN (
                          'RPC_TIMEOUT', 'RPC_ERROR', 'LEDGER_UNAVAILABLE', 'SLIPPAGE_EXCEEDED',
                          'BLOCKHASH_EXPIRED', 'RISK_LIMIT', 'INSUFFICIENT_FUNDS', 'PROGRAM_ERROR',
                          'MALFORMED_RESPONSE', 'QUOTE_UNAVAILABLE', 'CANCELLED')),
    detail            text,
    final_signature   text,
    lease_owner       text,
    lease_expires_at  timestamptz,
    claim_count       integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    submitted_at      timestamptz,
    finished_at       timestamptz,
    CONSTRAINT trades_idempotency_key UNIQUE (strategy, vault, lead_signature),
    CONSTRAINT trades_failed_has_reason CHECK (state <> 'FAILED' OR reason IS NOT NULL),
    CONSTRAINT trades_confirmed_has_final_signature CHECK (state <> 'CONFIRMED' OR final_signature IS NOT NULL),
    CONSTRAINT trades_lease_complete CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL)),
    CONSTRAINT trades_terminal_not_leased CHECK (state IN ('PENDING', 'SUBMITTED') OR lease_owner IS NULL)
);

-- The work queue scans non-terminal trades of one strategy, oldest first.
CREATE INDEX trades_claimable ON trades (strategy, created_at, id) WHERE state IN ('PENDING', 'SUBMITTED');
CREATE INDEX trades_vault_submitted ON trades (vault, submitted_at) WHERE submitted_at IS NOT NULL;

-- Legal transitions enforced in SQL too (the repository checks them first with
-- xorj.domain.trades.check_transition; this catches any writer that bypasses it).
CREATE FUNCTION xorj_trades_guard_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ((OLD.state = 'PENDING' AND NEW.state IN ('SUBMITTED', 'FAILED'))
            OR (OLD.state = 'SUBMITTED' AND NEW.state IN ('CONFIRMED', 'FAILED'))) THEN
        RAISE EXCEPTION 'illegal trade transition % -> % (trade %)', OLD.state, NEW.state, OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'trades_legal_transition',
                  TABLE = 'trades', COLUMN = 'state';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER trades_guard_transition BEFORE UPDATE OF state ON trades
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION xorj_trades_guard_transition();

-- LISTEN/NOTIFY: every admission and state change, sent at commit of the writing transaction.
CREATE FUNCTION xorj_trades_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('xorj_trades', json_build_object(
        'trade_id', NEW.id, 'strategy', NEW.strategy, 'state', NEW.state)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER trades_notify_insert AFTER INSERT ON trades
    FOR EACH ROW EXECUTE FUNCTION xorj_trades_notify();
CREATE TRIGGER trades_notify_state AFTER UPDATE OF state ON trades
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION xorj_trades_notify();


CREATE TABLE attempts (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trade_id                 bigint NOT NULL REFERENCES trades (id),
    attempt_no               integer NOT NULL CONSTRAINT attempts_attempt_no_positive CHECK (attempt_no >= 1),
    signature                text NOT NULL CONSTRAINT attempts_signature_unique UNIQUE,
    raw_tx                   bytea NOT NULL CONSTRAINT attempts_raw_tx_not_empty CHECK (octet_length(raw_tx) > 0),
    last_valid_block_height  bigint NOT NULL
                                 CONSTRAINT attempts_last_valid_block_height_not_negative
                                 CHECK (last_valid_block_height >= 0),
    slippage_bps             integer NOT NULL CONSTRAINT attempts_slippage_bps_range
                                 CHECK (slippage_bps BETWEEN 0 AND 10000),
    quote_out_amount         numeric(20, 0) CONSTRAINT attempts_quote_out_amount_positive
                                 CHECK (quote_out_amount > 0),
    outcome                  text NOT NULL DEFAULT 'PENDING' CONSTRAINT attempts_outcome_valid
                                 CHECK (outcome IN ('PENDING', 'LANDED', 'FAILED_ON_CHAIN', 'EXPIRED', 'NOT_SENT')),
    reason                   text CONSTRAINT attempts_reason_valid CHECK (reason IN (
                                 'RPC_TIMEOUT', 'RPC_ERROR', 'LEDGER_UNAVAILABLE', 'SLIPPAGE_EXCEEDED',
                                 'BLOCKHASH_EXPIRED', 'RISK_LIMIT', 'INSUFFICIENT_FUNDS', 'PROGRAM_ERROR',
                                 'MALFORMED_RESPONSE', 'QUOTE_UNAVAILABLE', 'CANCELLED')),
    detail                   text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    resolved_at              timestamptz,
    CONSTRAINT attempts_attempt_no_unique UNIQUE (trade_id, attempt_no),
    CONSTRAINT attempts_resolved_at_matches_outcome CHECK ((outcome = 'PENDING') = (resolved_at IS NULL))
);

-- At most one attempt per trade whose fate is unknown: a new one is signed only after the last
-- one is known to have failed or expired.
CREATE UNIQUE INDEX attempts_one_pending_per_trade ON attempts (trade_id) WHERE outcome = 'PENDING';


CREATE TABLE trade_events (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trade_id           bigint NOT NULL REFERENCES trades (id),
    strategy           text NOT NULL,
    from_state         text CONSTRAINT trade_events_from_state_valid
                           CHECK (from_state IN ('PENDING', 'SUBMITTED', 'CONFIRMED', 'FAILED')),
    to_state           text NOT NULL CONSTRAINT trade_events_to_state_valid
                           CHECK (to_state IN ('PENDING', 'SUBMITTED', 'CONFIRMED', 'FAILED')),
    reason             text,
    detail             text,
    actor              text,
    attempt_signature  text,
    at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT trade_events_is_change CHECK (from_state IS DISTINCT FROM to_state)
);

CREATE INDEX trade_events_by_trade ON trade_events (trade_id, id);
CREATE INDEX trade_events_terminal ON trade_events (strategy, at) WHERE to_state IN ('CONFIRMED', 'FAILED');


CREATE TABLE alerts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CONSTRAINT alerts_kind_not_empty CHECK (kind <> ''),
    severity      text NOT NULL CONSTRAINT alerts_severity_valid CHECK (severity IN ('info', 'warning', 'critical')),
    strategy      text,
    trade_id      bigint REFERENCES trades (id),
    message       text NOT NULL CONSTRAINT alerts_message_not_empty CHECK (message <> ''),
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz
);

CREATE INDEX alerts_undelivered ON alerts (id) WHERE delivered_at IS NULL;

CREATE FUNCTION xorj_alerts_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('xorj_alerts', json_build_object(
        'alert_id', NEW.id, 'kind', NEW.kind, 'severity', NEW.severity, 'strategy', NEW.strategy)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER alerts_notify AFTER INSERT ON alerts FOR EACH ROW EXECUTE FUNCTION xorj_alerts_notify();


CREATE TABLE trader_scores (
    wallet            text PRIMARY KEY CONSTRAINT trader_scores_wallet_not_empty CHECK (wallet <> ''),
    score             numeric(4, 1) NOT NULL CONSTRAINT trader_scores_score_range CHECK (score BETWEEN 0 AND 100),
    status            text NOT NULL,
    rank              integer CONSTRAINT trader_scores_rank_positive CHECK (rank >= 1),
    sharpe            double precision,
    roi_pct           double precision,
    max_drawdown_pct  double precision,
    trades            integer CONSTRAINT trader_scores_trades_not_negative CHECK (trades >= 0),
    normalization     text,
    computed_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX trader_scores_by_score ON trader_scores (score DESC, wallet);

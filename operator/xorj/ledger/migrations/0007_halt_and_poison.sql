-- The cluster-wide trading halt and the poison-trade counter.
--
-- trading_halt holds one row: whether every executor must refuse every trade (RISK_LIMIT
-- kill_switch.global). The operator writes it from its own setting (XORJ_OPERATOR_GLOBAL_HALT, the
-- chart's globalHalt); executors read it inside the same transaction that approves a trade
-- (xorj.ledger.daily_limits), so no trade is approved after the halt commits, and no executor restart
-- is needed for it to apply.
CREATE TABLE trading_halt (
    singleton  boolean PRIMARY KEY DEFAULT true CONSTRAINT trading_halt_single_row CHECK (singleton),
    halted     boolean NOT NULL DEFAULT false,
    reason     text,
    set_by     text,
    set_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO trading_halt (singleton, halted) VALUES (true, false);

-- How many times an executor's processing of the trade raised unexpectedly (a bug, not a reasoned
-- failure). At the executor's limit the trade is FAILED with POISON_TRADE instead of reclaimed forever.
ALTER TABLE trades
    ADD COLUMN crash_count integer NOT NULL DEFAULT 0
        CONSTRAINT trades_crash_count_not_negative CHECK (crash_count >= 0);

-- Daily risk limits count a trade from the moment the risk gate approves it, not from its first send.
-- Counting only sent trades let concurrent executors (and workers of one executor) all read the same
-- usage just below a limit, all pass, and all send. The gate now checks the vault's usage and stamps
-- the approved trade in one transaction serialised per vault (xorj.ledger.repository), so whoever
-- checks next sees it.
--
-- risk_reserved_usd is the notional the gate approved: a trade admitted without notional_usd is
-- priced by the executor, and would otherwise add 0 to the vault's daily volume.
ALTER TABLE trades
    ADD COLUMN risk_reserved_at timestamptz,
    ADD COLUMN risk_reserved_usd numeric
        CONSTRAINT trades_risk_reserved_usd_not_negative CHECK (risk_reserved_usd >= 0),
    ADD CONSTRAINT trades_risk_reservation_complete
        CHECK ((risk_reserved_at IS NULL) = (risk_reserved_usd IS NULL));

CREATE INDEX trades_vault_risk_reserved ON trades (vault, risk_reserved_at) WHERE risk_reserved_at IS NOT NULL;

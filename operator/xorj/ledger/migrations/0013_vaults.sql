-- Many follower vaults per strategy (docs/design.md "Vaults"): the registry of a strategy's vaults.
--
-- One row per (strategy, vault public key). The strategy's own spec.vault is a row (source
-- 'strategy', written by the admission that first needs it); each Vault object is a row (source
-- 'vault', written by the operator on create/update/resume, and marked removed by its finalizer,
-- which cancels the vault's PENDING trades in the same transaction). A row is never deleted: trades
-- keep naming their vault, and a re-created Vault object of the same key re-activates its row.
--
-- Fan-out (xorj.ledger.vaults.admit_fanout): a lead swap gets one trade per vault that is active
-- (not paused, not removed) and was active since before the lead swap's first admission
-- (active_since), so a vault registered or resumed later never gets an old signal, even on a
-- re-admission. The overrides may only tighten the strategy's risk limits: the executors' risk gate
-- (xorj.ledger.daily_limits.reserve) applies them on top of the strategy's limits.

CREATE TABLE vaults (
    strategy                text NOT NULL CONSTRAINT vaults_strategy_not_empty CHECK (strategy <> ''),
    pubkey                  text NOT NULL CONSTRAINT vaults_pubkey_not_empty CHECK (pubkey <> ''),
    source                  text NOT NULL CONSTRAINT vaults_source_valid CHECK (source IN ('strategy', 'vault')),
    -- "namespace/name" of the Vault object (NULL for the strategy's own spec.vault)
    vault_object            text,
    max_trade_notional_usd  numeric CONSTRAINT vaults_max_trade_notional_positive CHECK (max_trade_notional_usd > 0),
    max_daily_volume_usd    numeric CONSTRAINT vaults_max_daily_volume_positive CHECK (max_daily_volume_usd > 0),
    max_daily_trades        integer CONSTRAINT vaults_max_daily_trades_positive CHECK (max_daily_trades > 0),
    paused                  boolean NOT NULL DEFAULT false,
    registered_at           timestamptz NOT NULL DEFAULT now(),
    -- when the vault last became active (registered, resumed or re-created): older signals are not its
    active_since            timestamptz NOT NULL DEFAULT now(),
    removed_at              timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (strategy, pubkey),
    CONSTRAINT vaults_object_iff_source CHECK ((source = 'vault') = (vault_object IS NOT NULL))
);

CREATE INDEX vaults_active ON vaults (strategy) WHERE removed_at IS NULL AND NOT paused;

-- A lead swap's trades across a strategy's vaults, counted per state for its CopyTrade's status
-- (one aggregate query per CopyTrade): the idempotency key (strategy, vault, lead_signature) does not
-- serve that lookup.
CREATE INDEX trades_strategy_lead_signature ON trades (strategy, lead_signature);

-- Executors read their namespace's vault rows (per-vault limits and pause, in the risk gate's
-- transaction) and write none. The reader group gets nothing (tenants' data).
DO $migration$
DECLARE
    grp   name := (SELECT executor_group FROM ledger_roles WHERE singleton);
    mine  text := '(SELECT l.namespace FROM ledger_executor_logins l WHERE l.login = session_user)';
BEGIN
    EXECUTE format('GRANT SELECT ON vaults TO %I', grp);
    ALTER TABLE vaults ENABLE ROW LEVEL SECURITY;
    EXECUTE format('CREATE POLICY vaults_namespace ON vaults TO %I USING (split_part(strategy, ''/'', 1) = %s)',
                   grp, mine);
END
$migration$;

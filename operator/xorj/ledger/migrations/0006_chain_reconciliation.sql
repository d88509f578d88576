-- Continuous reconciliation of the ledger with the chain (xorj.reconciler, docs/design.md).
--
-- chain_reconciliation_cursors: per vault, the newest signature of its on-chain history already
-- judged and settled (finalized, and any attempt of it resolved): the next walk stops there. Only
-- the operator (the owner of these tables) reads and writes them; executors get no grant.
CREATE TABLE chain_reconciliation_cursors (
    vault             text PRIMARY KEY CONSTRAINT chain_reconciliation_cursors_vault_not_empty CHECK (vault <> ''),
    cursor_signature  text,
    -- Transactions with an earlier block time predate the ledger's knowledge of the vault (its first
    -- trade, less a margin) and are not judged: the vault's owner funded and set it up by hand.
    not_before        timestamptz NOT NULL,
    walked_at         timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- One row per disagreement; the UNIQUE key makes reporting the same one again (a re-walk, a second
-- operator replica, the CLI and the operator both running) a no-op that only bumps last_seen_at.
CREATE TABLE chain_reconciliation_findings (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    finding_class  text NOT NULL CONSTRAINT chain_reconciliation_findings_class_valid
                       CHECK (finding_class IN ('UNKNOWN_TRANSACTION', 'UNRECORDED_LANDING', 'CONFIRMED_NOT_FINAL')),
    vault          text NOT NULL,
    signature      text NOT NULL,
    trade_id       bigint REFERENCES trades (id),
    strategy       text,
    slot           bigint,
    detail         text NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    resolution     text,
    CONSTRAINT chain_reconciliation_findings_key UNIQUE (finding_class, vault, signature),
    CONSTRAINT chain_reconciliation_findings_resolution CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);

CREATE INDEX chain_reconciliation_findings_open ON chain_reconciliation_findings (vault, id)
    WHERE resolved_at IS NULL;

-- CONFIRMED trades whose final transaction was seen finalized without an error: never checked again.
CREATE TABLE chain_reconciliation_verified (
    trade_id     bigint PRIMARY KEY REFERENCES trades (id),
    signature    text NOT NULL,
    slot         bigint NOT NULL,
    verified_at  timestamptz NOT NULL DEFAULT now()
);

-- Finding a vault's CONFIRMED trades by signature (the trades of one vault, confirmed).
CREATE INDEX trades_vault_confirmed ON trades (vault, id) WHERE state = 'CONFIRMED';

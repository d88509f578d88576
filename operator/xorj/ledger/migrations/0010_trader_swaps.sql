-- Lead traders' on-chain history (xorj.traders, docs/trader-history.md): every transaction of a
-- followed or candidate wallet, judged once by xorj.domain.trader_history.parse_swap, and a cursor per
-- wallet so a refresh reads only what is new. Only the ledger's owner (the operator, or whoever runs
-- `xorj traders backfill`) uses these tables: executors get no grant.

-- One row per (wallet, signature): a SWAP with its legs and USD value, or NOT_A_SWAP / FAILED with the
-- reason. Re-reading a transaction inserts nothing (ON CONFLICT DO NOTHING on the primary key).
CREATE TABLE trader_swaps (
    wallet          text NOT NULL CONSTRAINT trader_swaps_wallet_not_empty CHECK (wallet <> ''),
    signature       text NOT NULL CONSTRAINT trader_swaps_signature_not_empty CHECK (signature <> ''),
    slot            bigint NOT NULL CONSTRAINT trader_swaps_slot_not_negative CHECK (slot >= 0),
    -- the order of the wallet's transactions within the slot (chain order: oldest first)
    slot_index      integer NOT NULL CONSTRAINT trader_swaps_slot_index_not_negative CHECK (slot_index >= 0),
    block_time      timestamptz,
    kind            text NOT NULL CONSTRAINT trader_swaps_kind_valid CHECK (kind IN ('SWAP', 'NOT_A_SWAP', 'FAILED')),
    reason          text,
    sold_mint       text,
    sold_amount     numeric(39, 0),
    sold_decimals   smallint,
    bought_mint     text,
    bought_amount   numeric(39, 0),
    bought_decimals smallint,
    sol_overhead_lamports bigint NOT NULL DEFAULT 0,
    fee_lamports    bigint NOT NULL DEFAULT 0,
    value_usd       numeric,        -- NULL: no leg had a price
    priced_at       timestamptz,    -- when the price used was current (see xorj.traders.pricing)
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (wallet, signature),
    CONSTRAINT trader_swaps_legs CHECK (
        (kind = 'SWAP') = (sold_mint IS NOT NULL AND bought_mint IS NOT NULL AND sold_amount > 0
                           AND bought_amount > 0 AND sold_mint <> bought_mint)),
    CONSTRAINT trader_swaps_reason CHECK ((kind = 'SWAP') = (reason IS NULL)),
    CONSTRAINT trader_swaps_value_not_negative CHECK (value_usd IS NULL OR value_usd >= 0)
);

CREATE INDEX trader_swaps_chain_order ON trader_swaps (wallet, slot, slot_index);

-- Per wallet, the newest signature already recorded: the next refresh asks getSignaturesForAddress
-- for what came after it (`until`).
CREATE TABLE trader_history_cursors (
    wallet            text PRIMARY KEY CONSTRAINT trader_history_cursors_wallet_not_empty CHECK (wallet <> ''),
    cursor_signature  text NOT NULL,
    cursor_slot       bigint NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

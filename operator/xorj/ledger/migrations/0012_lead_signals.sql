-- The watcher (xorj.watcher, docs/design.md "Watcher"): lead traders' swaps accepted once, keyed on
-- (leader, signature), a cursor per leader for the polling source, and per following strategy either
-- its trade (in trades, idempotency key (strategy, vault, lead signature)) or one skipped-signal row
-- with the reason. One ledger transaction per accepted signal writes all of it. Only the ledger's
-- owner (the operator and the watcher) uses these tables: executors get no grant.

CREATE TABLE lead_signals (
    leader              text NOT NULL CONSTRAINT lead_signals_leader_not_empty CHECK (leader <> ''),
    signature           text NOT NULL CONSTRAINT lead_signals_signature_not_empty CHECK (signature <> ''),
    slot                bigint NOT NULL CONSTRAINT lead_signals_slot_not_negative CHECK (slot >= 0),
    block_time          timestamptz,
    sold_mint           text NOT NULL,
    sold_amount         numeric(39, 0) NOT NULL CONSTRAINT lead_signals_sold_amount_positive CHECK (sold_amount > 0),
    sold_decimals       smallint NOT NULL,
    bought_mint         text NOT NULL,
    bought_amount       numeric(39, 0) NOT NULL CONSTRAINT lead_signals_bought_amount_positive CHECK (bought_amount > 0),
    bought_decimals     smallint NOT NULL,
    -- the leader's balance of sold_mint before the transaction (its preTokenBalances): a sell copies
    -- the fraction sold_amount / sold_balance_before
    sold_balance_before numeric(39, 0) NOT NULL,
    -- which source saw it first (poll, webhook, websocket); the others found it already accepted
    source              text NOT NULL CONSTRAINT lead_signals_source_valid CHECK (source IN ('poll', 'webhook', 'websocket')),
    accepted_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (leader, signature),
    CONSTRAINT lead_signals_legs_differ CHECK (sold_mint <> bought_mint),
    CONSTRAINT lead_signals_held_what_it_sold CHECK (sold_balance_before >= sold_amount)
);

-- Per leader, the newest signature the POLLING source has read up to: the next poll asks
-- getSignaturesForAddress for what came after it (`until`). Push sources never move it (a pushed
-- signature may be newer than transactions nobody has read yet: moving the cursor would hide them).
CREATE TABLE lead_cursors (
    leader            text PRIMARY KEY CONSTRAINT lead_cursors_leader_not_empty CHECK (leader <> ''),
    cursor_signature  text NOT NULL,
    cursor_slot       bigint NOT NULL CONSTRAINT lead_cursors_slot_not_negative CHECK (cursor_slot >= 0),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- A signal one strategy did not copy, with the reason (mirrors xorj.domain.copy_signals.SkipReason;
-- an integration test compares the lists). evented_at: when the Kubernetes Event for it was posted.
CREATE TABLE lead_skips (
    strategy    text NOT NULL CONSTRAINT lead_skips_strategy_not_empty CHECK (strategy <> ''),
    leader      text NOT NULL,
    signature   text NOT NULL,
    reason      text NOT NULL CONSTRAINT lead_skips_reason_valid CHECK (reason IN (
                    'TOKEN_DENIED', 'TOKEN_NOT_ALLOWED', 'SIGNAL_TOO_OLD', 'NOT_HELD', 'BELOW_MIN_NOTIONAL',
                    'NO_PRICE', 'PAUSED')),
    detail      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    evented_at  timestamptz,
    PRIMARY KEY (strategy, leader, signature),
    FOREIGN KEY (leader, signature) REFERENCES lead_signals (leader, signature)
);

CREATE INDEX lead_skips_not_evented ON lead_skips (created_at) WHERE evented_at IS NULL;

-- A signal one strategy copied: its trade, and the CopyTrade that shows it to kubectl.
-- projected_at: when that CopyTrade was created (the watcher creates it after the commit, off the
-- path to the executors; a sweep retries the ones a crash or an API-server outage left behind).
CREATE TABLE lead_copies (
    strategy      text NOT NULL,
    leader        text NOT NULL,
    signature     text NOT NULL,
    trade_id      bigint NOT NULL REFERENCES trades (id),
    copytrade     text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    projected_at  timestamptz,
    PRIMARY KEY (strategy, leader, signature),
    FOREIGN KEY (leader, signature) REFERENCES lead_signals (leader, signature)
);

CREATE INDEX lead_copies_not_projected ON lead_copies (created_at) WHERE projected_at IS NULL;

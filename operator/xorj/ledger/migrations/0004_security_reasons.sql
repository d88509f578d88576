-- Reason codes added with the swap-transaction checks, the vault binding, the poison-trade limit and
-- lead-trader admission (xorj.domain.trades.ReasonCode). The CHECK lists mirror the enum; an
-- integration test compares them.
ALTER TABLE trades DROP CONSTRAINT trades_reason_valid,
    ADD CONSTRAINT trades_reason_valid CHECK (reason IN (
        'RPC_TIMEOUT', 'RPC_ERROR', 'LEDGER_UNAVAILABLE', 'SLIPPAGE_EXCEEDED',
        'BLOCKHASH_EXPIRED', 'RISK_LIMIT', 'INSUFFICIENT_FUNDS', 'PROGRAM_ERROR',
        'MALFORMED_RESPONSE', 'QUOTE_UNAVAILABLE', 'CANCELLED',
        'SWAP_REJECTED', 'QUOTE_REJECTED', 'VAULT_MISMATCH', 'POISON_TRADE', 'LEADER_NOT_FOLLOWED'));

ALTER TABLE attempts DROP CONSTRAINT attempts_reason_valid,
    ADD CONSTRAINT attempts_reason_valid CHECK (reason IN (
        'RPC_TIMEOUT', 'RPC_ERROR', 'LEDGER_UNAVAILABLE', 'SLIPPAGE_EXCEEDED',
        'BLOCKHASH_EXPIRED', 'RISK_LIMIT', 'INSUFFICIENT_FUNDS', 'PROGRAM_ERROR',
        'MALFORMED_RESPONSE', 'QUOTE_UNAVAILABLE', 'CANCELLED',
        'SWAP_REJECTED', 'QUOTE_REJECTED', 'VAULT_MISMATCH', 'POISON_TRADE', 'LEADER_NOT_FOLLOWED'));

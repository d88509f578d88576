-- The send failure of an expired attempt in its own column (xorj.domain.trades.Attempt.send_failure).
--
-- An attempt that expired while the RPC never accepted a send is judged by why the sends were
-- refused (a persistent RPC_TIMEOUT gives up, a preflight SLIPPAGE_EXCEEDED raises slippage,
-- INSUFFICIENT_FUNDS gives up at once), not by the expiry. That reason code used to travel as the
-- first word of attempts.detail and was parsed back out; it is a column now, and detail is text for
-- people only. The CHECK list mirrors the ReasonCode enum, as attempts_reason_valid does (an
-- integration test compares them).
ALTER TABLE attempts
    ADD COLUMN send_failure text
        CONSTRAINT attempts_send_failure_valid CHECK (send_failure IN (
            'RPC_TIMEOUT', 'RPC_ERROR', 'LEDGER_UNAVAILABLE', 'SLIPPAGE_EXCEEDED',
            'BLOCKHASH_EXPIRED', 'RISK_LIMIT', 'INSUFFICIENT_FUNDS', 'PROGRAM_ERROR',
            'MALFORMED_RESPONSE', 'QUOTE_UNAVAILABLE', 'CANCELLED',
            'SWAP_REJECTED', 'QUOTE_REJECTED', 'VAULT_MISMATCH', 'POISON_TRADE', 'LEADER_NOT_FOLLOWED')),
    ADD CONSTRAINT attempts_send_failure_only_expired CHECK (send_failure IS NULL OR outcome = 'EXPIRED');

-- Attempts stored before this migration carry the code as the detail's first word
-- ("RPC_TIMEOUT: never accepted (...)"): move it to the column, so a trade taken over after the
-- upgrade is decided exactly as before.
UPDATE attempts
   SET send_failure = split_part(detail, ':', 1)
 WHERE outcome = 'EXPIRED'
   AND detail LIKE '%: never accepted%'
   AND split_part(detail, ':', 1) IN ('RPC_TIMEOUT', 'RPC_ERROR', 'INSUFFICIENT_FUNDS', 'SLIPPAGE_EXCEEDED',
                                      'PROGRAM_ERROR');

-- Executors record an attempt's fate, so they may write its send failure too (0008 grants each
-- writable column by name; the group is the one 0008 recorded).
DO $migration$
BEGIN
    EXECUTE format('GRANT UPDATE (send_failure) ON attempts TO %I', (SELECT executor_group FROM ledger_roles));
END
$migration$;

-- Fencing tokens: every claim (and every takeover) of a trade gets a new, larger token, and every
-- executor write on the trade must present the token of the claim it works under. The owner name
-- alone cannot fence: an executor restarted under the same identity, or a task of one process that
-- outlived a pause past its lease, names the same owner as the claim that replaced it. Only the
-- newest claim's token is accepted (xorj.ledger.queue.lock_for_owner).
--
-- One sequence for all trades: a token is only compared with the same trade's current one, and a
-- claim draws its token under the trade's row lock, after the previous claim committed, so each
-- trade's tokens only grow.
CREATE SEQUENCE trades_fencing_token_seq AS bigint;

ALTER TABLE trades
    ADD COLUMN fencing_token bigint
        CONSTRAINT trades_fencing_token_positive CHECK (fencing_token > 0);

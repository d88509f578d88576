-- Announce admissions on a channel of their own, xorj_admissions, with the strategy key alone as the
-- payload: executors wake to claim on it. They need no state change or attempt (the operator's mirror
-- listens to xorj_trades for those), and Postgres folds identical notifications of one transaction
-- into one, so a fan-out's thousand admissions wake each executor of the strategy once. One call per
-- statement and strategy (a transition table), not one per row.
-- A trade stored FAILED at admission (written PENDING, then FAILED, in one transaction) is announced
-- too: its executors find nothing to claim, once.
CREATE FUNCTION xorj_trades_admitted_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('xorj_admissions', a.strategy) FROM (SELECT DISTINCT strategy FROM admitted) a;
    RETURN NULL;
END $$;

CREATE TRIGGER trades_admitted_notify AFTER INSERT ON trades
    REFERENCING NEW TABLE AS admitted
    FOR EACH STATEMENT EXECUTE FUNCTION xorj_trades_admitted_notify();

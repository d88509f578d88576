-- Announce attempt changes on xorj_trades too: a new attempt or a resolved one inside SUBMITTED is not a
-- state change, yet the operator mirrors attempts into CopyTrade status and should not wait for its
-- periodic resync to show them.
--
-- The trigger is deferred to commit and reads the trade's state then, so when the same transaction also
-- changed the trade's state it sends the very payload the trades trigger sent, and Postgres folds
-- identical notifications of one transaction into one: listeners see no extra, out-of-order events.
CREATE FUNCTION xorj_attempts_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('xorj_trades', json_build_object(
        'trade_id', t.id, 'strategy', t.strategy, 'state', t.state)::text)
       FROM trades t WHERE t.id = NEW.trade_id;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER attempts_notify AFTER INSERT OR UPDATE OF outcome ON attempts
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION xorj_attempts_notify();

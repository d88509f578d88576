-- One definition of what the trades channel says of a trade ({"trade_id", "strategy", "state"}, the
-- payload xorj.ledger.notify.parse_trade_notification reads). Migration 0016 built it in three trigger
-- functions (a trade moved, an attempt recorded, a statement's admissions); they now all call this
-- one, so a field added to the payload is added once. Same payloads, channels and order as before.
-- It reads nothing and is no secret (the payload's fields are the trade's own), so any role may run
-- it; the SECURITY DEFINER triggers find it through their pinned search_path (0016).

CREATE FUNCTION xorj_trade_event(trade_id bigint, strategy text, state text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN json_build_object('trade_id', trade_id, 'strategy', strategy, 'state', state)::text;

CREATE OR REPLACE FUNCTION xorj_trades_notify() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM pg_notify(xorj_channel('', 'trades'), xorj_trade_event(NEW.id, NEW.strategy, NEW.state));
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION xorj_attempts_notify() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM pg_notify(xorj_channel('', 'trades'), xorj_trade_event(t.id, t.strategy, t.state))
       FROM trades t WHERE t.id = NEW.trade_id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION xorj_trades_admitted_notify() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    trades_channel      text := xorj_channel('', 'trades');
    admissions_channel  text := xorj_channel('', 'admissions');
BEGIN
    PERFORM pg_notify(trades_channel, xorj_trade_event(n.id, n.strategy, n.state))
       FROM (SELECT id, strategy, state FROM admitted ORDER BY id) n;
    PERFORM pg_notify(admissions_channel, a.strategy),
            pg_notify(xorj_channel(split_part(a.strategy, '/', 1), 'admissions'), a.strategy)
       FROM (SELECT DISTINCT strategy FROM admitted) a;
    RETURN NULL;
END $$;

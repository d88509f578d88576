-- Notifications on channels named by a secret (docs/security.md, "Notifications").
--
-- Any role that can connect may LISTEN or NOTIFY on any channel it can name, and notifications are not
-- under row-level security. On the fixed names xorj_trades, xorj_admissions and xorj_alerts, a login of
-- namespace A heard the trade ids, strategy keys and states of namespace B's trades as they changed,
-- and could send B's executors forged wake-ups. From here on the triggers notify on names that end in
-- 32 hex digits of sha256(kind/scope/secret), where the secret (128 random bits) is a row only the
-- owner reads:
--   * scope '' (every namespace): trades, admissions and alerts, for the operator (the owner) and for
--     executors run with the owner's credentials (the local demo, the benches);
--   * scope <namespace>: the admissions of that namespace's strategies, for its executor login.
-- A listener asks ledger_channel(kind) for its name; the function answers by session_user (which SET
-- ROLE cannot change): the owner gets scope '', an executor login its own namespace's admissions
-- channel, and any other role is refused. Nothing else on the server reveals a name: LISTEN statements
-- show in pg_stat_activity only to their own role (and to superusers), and pg_listening_channels()
-- lists a session's own channels alone.
--
-- A database copied from a migrated template keeps the template's secret: harmless, since a
-- notification never leaves the database it was sent in.

CREATE TABLE ledger_channel_secret (
    singleton  boolean PRIMARY KEY DEFAULT true CONSTRAINT ledger_channel_secret_single_row CHECK (singleton),
    secret     text NOT NULL DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
);
INSERT INTO ledger_channel_secret DEFAULT VALUES;

-- The name of the channel of one kind for one scope. The scope sits before the secret, so no name
-- can be extended from another into a third (sha256's length extension appends after the secret).
CREATE FUNCTION xorj_channel(of_scope text, of_kind text) RETURNS text LANGUAGE sql STABLE
    SECURITY DEFINER AS $$
    SELECT 'xorj_' || of_kind || '_'
           || left(encode(sha256(convert_to(of_kind || '/' || of_scope || '/' || s.secret, 'UTF8')), 'hex'), 32)
      FROM ledger_channel_secret s WHERE s.singleton
$$;

CREATE FUNCTION ledger_channel(of_kind text) RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
    owner_role  oid := (SELECT c.relowner FROM pg_class c WHERE c.oid = 'trades'::regclass);
    executors   name := (SELECT r.executor_group FROM ledger_roles r WHERE r.singleton);
    ns          text;
BEGIN
    IF of_kind IS NULL OR of_kind NOT IN ('trades', 'admissions', 'alerts') THEN
        RAISE EXCEPTION 'ledger_channel: kind must be trades, admissions or alerts, not %', coalesce(of_kind, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF pg_has_role(session_user, owner_role, 'MEMBER') THEN
        RETURN xorj_channel('', of_kind);
    END IF;
    SELECT l.namespace INTO ns FROM ledger_executor_logins l WHERE l.login = session_user;
    IF of_kind = 'admissions' AND ns IS NOT NULL AND executors IS NOT NULL
            AND pg_has_role(session_user, executors, 'MEMBER') THEN
        RETURN xorj_channel(ns, of_kind);
    END IF;
    RAISE EXCEPTION 'ledger_channel: login % may listen to no % channel', session_user, of_kind
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- The triggers: the same payloads as before, on the secret names. SECURITY DEFINER, since executors
-- move trades, record attempts and raise alerts, and must not read the secret themselves.
CREATE OR REPLACE FUNCTION xorj_trades_notify() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM pg_notify(xorj_channel('', 'trades'), json_build_object(
        'trade_id', NEW.id, 'strategy', NEW.strategy, 'state', NEW.state)::text);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION xorj_attempts_notify() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM pg_notify(xorj_channel('', 'trades'), json_build_object(
        'trade_id', t.id, 'strategy', t.strategy, 'state', t.state)::text)
       FROM trades t WHERE t.id = NEW.trade_id;
    RETURN NULL;
END $$;

-- An admission statement announces each trade on the trades channel and each strategy on the admissions
-- channels, naming every channel once per statement (not once per row: a fan-out admits thousands), so
-- the row trigger that announced inserts goes. The trades come first, in id order, as before.
DROP TRIGGER trades_notify_insert ON trades;

CREATE OR REPLACE FUNCTION xorj_trades_admitted_notify() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    trades_channel      text := xorj_channel('', 'trades');
    admissions_channel  text := xorj_channel('', 'admissions');
BEGIN
    PERFORM pg_notify(trades_channel, json_build_object('trade_id', n.id, 'strategy', n.strategy,
                                                        'state', n.state)::text)
       FROM (SELECT id, strategy, state FROM admitted ORDER BY id) n;
    PERFORM pg_notify(admissions_channel, a.strategy),
            pg_notify(xorj_channel(split_part(a.strategy, '/', 1), 'admissions'), a.strategy)
       FROM (SELECT DISTINCT strategy FROM admitted) a;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION xorj_alerts_notify() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM pg_notify(xorj_channel('', 'alerts'), json_build_object(
        'alert_id', NEW.id, 'kind', NEW.kind, 'severity', NEW.severity, 'strategy', NEW.strategy)::text);
    RETURN NULL;
END $$;

DO $migration$
DECLARE
    schema     name := current_schema();
    executors  name := (SELECT r.executor_group FROM ledger_roles r WHERE r.singleton);
    fn         text;
BEGIN
    -- A SECURITY DEFINER function resolves names in this schema alone, with pg_temp last: a table of
    -- the caller's (temporary or in another schema) cannot stand in for the secret or the trades.
    FOREACH fn IN ARRAY ARRAY['xorj_channel(text, text)', 'ledger_channel(text)', 'xorj_trades_notify()',
                              'xorj_attempts_notify()', 'xorj_trades_admitted_notify()', 'xorj_alerts_notify()']
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', fn, schema);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    END LOOP;
    EXECUTE format('GRANT EXECUTE ON FUNCTION ledger_channel(text) TO %I', executors);
END
$migration$;

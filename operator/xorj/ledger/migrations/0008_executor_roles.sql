-- Least privilege for executors: one Postgres login per watched namespace, all members of one NOLOGIN
-- group role that holds exactly the privileges executors use, and row-level security that shows a
-- login only the trades of strategies in its own namespace (trades.strategy is "namespace/name").
--
-- The role running the migrations (the operator's login) owns every table: owners are not subject to
-- row-level security (it is ENABLEd, not FORCEd), so the operator, which admits and mirrors the trades
-- of every namespace, keeps seeing them all. Executors get no INSERT on trades (admission is the
-- operator's), no DELETE anywhere, and may UPDATE only the columns that record a trade's progress:
-- a trade's terms (strategy, vault, mints, amount, slippage bound...) cannot be rewritten by them.
--
-- Roles are cluster-wide while this file runs per database, so the group is named after the database
-- (<database>_executor) and recorded in ledger_roles: the logins are made by xorj.ledger.roles, which
-- reads the group's name from there (a database copied from a migrated template keeps the template's
-- group). Creating the group needs CREATEROLE (the operator's login has it; it is not a superuser).
--
-- A column added to trades, attempts, trade_events or alerts after this migration is not writable by
-- executors until a migration grants it; a new table is not readable by them until one does.

CREATE TABLE ledger_roles (
    singleton       boolean PRIMARY KEY DEFAULT true CONSTRAINT ledger_roles_single_row CHECK (singleton),
    executor_group  name NOT NULL
);

-- Which namespace each executor login serves. The operator (xorj.ledger.roles.ensure_executor_login)
-- writes it; row-level security on the ledger reads it by session_user, which SET ROLE cannot change.
CREATE TABLE ledger_executor_logins (
    login       name PRIMARY KEY,
    namespace   text NOT NULL CONSTRAINT ledger_executor_logins_namespace_valid
                    CHECK (namespace ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' AND length(namespace) <= 63),
    created_at  timestamptz NOT NULL DEFAULT now()
);

DO $migration$
DECLARE
    grp        name := left(current_database(), 54) || '_executor';
    schema     name := current_schema();
    -- The namespace of the session's login ('' matches no strategy: a login with no row sees nothing).
    mine       text := '(SELECT l.namespace FROM ledger_executor_logins l WHERE l.login = session_user)';
    immutable  text[] := ARRAY['id', 'strategy', 'vault', 'lead_signature', 'lead_trader', 'input_mint',
                               'output_mint', 'amount', 'max_slippage_bps', 'notional_usd', 'copytrade',
                               'created_at'];
    col        name;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = grp) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', grp);
    END IF;
    INSERT INTO ledger_roles (executor_group) VALUES (grp);

    -- Nobody but the owner and the executor logins (granted CONNECT one by one) may use this database.
    IF EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = current_database()
                AND pg_has_role(current_user, d.datdba, 'MEMBER')) THEN
        EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    ELSE
        RAISE NOTICE 'the migrating role does not own database %: revoke CONNECT and TEMPORARY from PUBLIC yourself',
            current_database();
    END IF;
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', schema);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', schema, grp);

    -- trades: read, claim, lease and move through the state machine; never insert, delete or re-price.
    EXECUTE format('GRANT SELECT ON trades TO %I', grp);
    FOR col IN
        SELECT a.attname FROM pg_attribute a
         WHERE a.attrelid = 'trades'::regclass AND a.attnum > 0 AND NOT a.attisdropped
           AND NOT (a.attname = ANY (immutable))
    LOOP
        EXECUTE format('GRANT UPDATE (%I) ON trades TO %I', col, grp);
    END LOOP;

    -- attempts: the write-ahead record of each signed transaction, then its fate.
    EXECUTE format('GRANT SELECT ON attempts TO %I', grp);
    EXECUTE format('GRANT INSERT (trade_id, attempt_no, signature, raw_tx, last_valid_block_height, slippage_bps, '
                   'quote_out_amount) ON attempts TO %I', grp);
    EXECUTE format('GRANT UPDATE (outcome, reason, detail, resolved_at) ON attempts TO %I', grp);

    -- trade_events: the audit row of each transition it makes; read for its breaker's recent outcomes.
    EXECUTE format('GRANT SELECT ON trade_events TO %I', grp);
    EXECUTE format('GRANT INSERT (trade_id, strategy, from_state, to_state, reason, detail, actor, attempt_signature) '
                   'ON trade_events TO %I', grp);

    -- alerts: raise (the outbox's INSERT ... RETURNING needs SELECT); delivery is the operator's.
    EXECUTE format('GRANT SELECT ON alerts TO %I', grp);
    EXECUTE format('GRANT INSERT (kind, severity, strategy, trade_id, message) ON alerts TO %I', grp);

    EXECUTE format('GRANT SELECT ON ledger_executor_logins TO %I', grp);

    -- Objects of migrations 0005-0007 (fencing tokens, the trading halt), when this ledger has them.
    IF to_regclass('trades_fencing_token_seq') IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SEQUENCE trades_fencing_token_seq TO %I', grp);
    END IF;
    IF to_regclass('trading_halt') IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON trading_halt TO %I', grp);
    END IF;

    -- Row-level security: a login sees and writes only its namespace's trades and what hangs off them.
    -- Policy expressions are bound to these tables when created: a temporary table of the same name
    -- cannot stand in for ledger_executor_logins later.
    ALTER TABLE trades ENABLE ROW LEVEL SECURITY;
    ALTER TABLE attempts ENABLE ROW LEVEL SECURITY;
    ALTER TABLE trade_events ENABLE ROW LEVEL SECURITY;
    ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
    ALTER TABLE ledger_executor_logins ENABLE ROW LEVEL SECURITY;

    EXECUTE format('CREATE POLICY trades_namespace ON trades TO %I USING (split_part(strategy, ''/'', 1) = %s) '
                   'WITH CHECK (split_part(strategy, ''/'', 1) = %s)', grp, mine, mine);
    EXECUTE format('CREATE POLICY attempts_namespace ON attempts TO %I USING (EXISTS ('
                   'SELECT 1 FROM trades t WHERE t.id = attempts.trade_id AND split_part(t.strategy, ''/'', 1) = %s))',
                   grp, mine);
    EXECUTE format('CREATE POLICY trade_events_namespace ON trade_events TO %I '
                   'USING (split_part(strategy, ''/'', 1) = %s) '
                   'WITH CHECK (split_part(strategy, ''/'', 1) = %s AND EXISTS ('
                   'SELECT 1 FROM trades t WHERE t.id = trade_events.trade_id AND t.strategy = trade_events.strategy))',
                   grp, mine, mine);
    EXECUTE format('CREATE POLICY alerts_namespace ON alerts TO %I '
                   'USING (split_part(strategy, ''/'', 1) = %s) '
                   'WITH CHECK (split_part(strategy, ''/'', 1) = %s AND (trade_id IS NULL OR EXISTS ('
                   'SELECT 1 FROM trades t WHERE t.id = alerts.trade_id AND t.strategy = alerts.strategy)))',
                   grp, mine, mine);
    EXECUTE format('CREATE POLICY ledger_executor_logins_own ON ledger_executor_logins TO %I '
                   'USING (login = session_user)', grp);
END
$migration$;

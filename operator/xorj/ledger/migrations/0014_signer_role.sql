-- The signer boundary's ledger role (docs/security.md, "The signer boundary"): `xorj signer` reads a
-- trade and its attempts to decide whether it may sign a new attempt, and does nothing else. A signer
-- login per namespace is a member of this group, mapped to its namespace in ledger_executor_logins
-- (the namespace map row-level security reads by session_user), and sees only that namespace's trades
-- and their attempts. It may not write anything: a stolen signer login cannot move a trade.
--
-- Like the executor and reader groups, it is named after the database and recorded in ledger_roles.
-- Logins are made by xorj.ledger.roles.ensure_signer_login, as the owner.

ALTER TABLE ledger_roles ADD COLUMN signer_group name;

DO $migration$
DECLARE
    grp     name := left(current_database(), 56) || '_signer';
    schema  name := current_schema();
    mine    text := '(SELECT l.namespace FROM ledger_executor_logins l WHERE l.login = session_user)';
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = grp) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', grp);
    END IF;
    UPDATE ledger_roles SET signer_group = grp WHERE singleton;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', schema, grp);
    EXECUTE format('GRANT SELECT ON trades, attempts, ledger_executor_logins TO %I', grp);
    EXECUTE format('CREATE POLICY trades_signer ON trades FOR SELECT TO %I '
                   'USING (split_part(strategy, ''/'', 1) = %s)', grp, mine);
    EXECUTE format('CREATE POLICY attempts_signer ON attempts FOR SELECT TO %I USING (EXISTS ('
                   'SELECT 1 FROM trades t WHERE t.id = attempts.trade_id AND split_part(t.strategy, ''/'', 1) = %s))',
                   grp, mine);
    EXECUTE format('CREATE POLICY ledger_executor_logins_signer ON ledger_executor_logins FOR SELECT TO %I '
                   'USING (login = session_user)', grp);
END
$migration$;

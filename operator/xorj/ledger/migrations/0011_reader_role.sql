-- A read-only ledger role for people and tools on call (`kubectl xorj scores`, `kubectl xorj status`):
-- the latest trader scores and the cluster-wide halt, and nothing of any tenant's trades.
--
-- Trades, attempts, audit rows and alerts are tenants' data behind row-level security (migration
-- 0008); `kubectl xorj` reads them through the Kubernetes API instead (CopyTrade and TradingStrategy
-- statuses, which the operator mirrors), so a person sees the trades of the namespaces their RBAC
-- lets them read, and no ledger login is needed for that. This group gets SELECT on the two tables
-- that are not per-tenant, and no policy on any per-tenant table: with row-level security enabled and
-- no policy for it, a reader would see no row even if a later migration granted it one by mistake.
--
-- Like the executor group, it is named after the database and recorded in ledger_roles (a database
-- copied from a migrated template keeps the template's group). Logins are made by
-- xorj.ledger.reader_roles.ensure_reader_login, as the owner.

ALTER TABLE ledger_roles ADD COLUMN reader_group name;

DO $migration$
DECLARE
    grp     name := left(current_database(), 56) || '_reader';
    schema  name := current_schema();
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = grp) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', grp);
    END IF;
    UPDATE ledger_roles SET reader_group = grp WHERE singleton;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', schema, grp);
    EXECUTE format('GRANT SELECT ON trader_scores, trading_halt TO %I', grp);
END
$migration$;

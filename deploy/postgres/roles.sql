-- Least-privilege roles for the coordinator's store on PostgreSQL (deploy/README.md).
--
--   sangsaeng_owner  owns the tables: only `sangsaeng admin store upgrade` logs in as it.
--   sangsaeng_app    what the coordinator (API, ServerApp, admin commands) logs in as:
--                    SELECT and INSERT everywhere, UPDATE only where a row changes (runs,
--                    their rounds, tokens, the catalogue, partners), no DELETE, no TRUNCATE.
--                    The privacy records and the audit log stay append-only even if their
--                    triggers were dropped.
--
-- Run it as a superuser (or a role with CREATEROLE that owns the database), connected to
-- the store's database, once before the first upgrade (it creates the roles) and again
-- after every upgrade (it grants on the tables the upgrade made):
--
--   psql -v ON_ERROR_STOP=1 -d sangsaeng -f deploy/postgres/roles.sql
--
-- It sets no password: give each role one (`\password sangsaeng_app` in psql, so it is
-- never in a file or a process list), or use your own authentication in pg_hba.conf.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sangsaeng_owner') THEN
        CREATE ROLE sangsaeng_owner LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sangsaeng_app') THEN
        CREATE ROLE sangsaeng_app LOGIN;
    END IF;
    -- this database is the store's: only these two (and superusers) connect to it
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO sangsaeng_owner, sangsaeng_app',
                   current_database());
END $$;

-- Tables live in the public schema: the owner may create them, nobody else may.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO sangsaeng_owner;
GRANT USAGE ON SCHEMA public TO sangsaeng_app;

-- Whatever a later upgrade creates, the app may read it and add rows, nothing more,
-- until this script grants more.
ALTER DEFAULT PRIVILEGES FOR ROLE sangsaeng_owner IN SCHEMA public
    GRANT SELECT, INSERT ON TABLES TO sangsaeng_app;
ALTER DEFAULT PRIVILEGES FOR ROLE sangsaeng_owner IN SCHEMA public
    GRANT USAGE ON SEQUENCES TO sangsaeng_app;

-- The tables that exist now (none before the first upgrade).
DO $$
DECLARE
    name text;
BEGIN
    FOR name IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
        EXECUTE format('REVOKE ALL ON public.%I FROM sangsaeng_app', name);
        IF name = 'alembic_version' THEN  -- the app only checks which revision it is
            EXECUTE format('GRANT SELECT ON public.%I TO sangsaeng_app', name);
        ELSE
            EXECUTE format('GRANT SELECT, INSERT ON public.%I TO sangsaeng_app', name);
        END IF;
        -- rows the coordinator changes: a run's state and model, a round's aggregates, a
        -- token's revocation, a catalogue entry, a partner's keys and removal, a dashboard
        -- session's end
        IF name IN ('runs', 'round_results', 'api_tokens', 'datasets', 'partners',
                    'web_sessions') THEN
            EXECUTE format('GRANT UPDATE ON public.%I TO sangsaeng_app', name);
        END IF;
        -- a catalogue entry taken out (nothing refers to it by key)
        IF name = 'datasets' THEN
            EXECUTE format('GRANT DELETE ON public.%I TO sangsaeng_app', name);
        END IF;
    END LOOP;
END $$;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO sangsaeng_app;

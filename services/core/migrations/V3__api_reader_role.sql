-- spine-api reads with a role that cannot write (docs/contracts.md, "Tables"; README, "The API's
-- Postgres role").
--
-- spine_reader: a NOLOGIN group role with SELECT on spine's tables and nothing else. The API's
-- login role (POSTGRES_API_USER) is made a member of it by whoever creates that login role
-- (`make up`, the cluster's api-role Job). Roles belong to the whole server, so this is done
-- only when spine_reader is missing; creating it needs CREATEROLE (or superuser), and a
-- migrating user without it gets an error saying what to run instead.
--
-- EVERY LATER MIGRATION THAT ADDS A TABLE GRANTS SELECT ON IT TO spine_reader. The default
-- privileges below cover tables the migrating role creates later, but not tables created by
-- another role; the explicit grant keeps both cases right.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'spine_reader') THEN
        BEGIN
            CREATE ROLE spine_reader NOLOGIN;
        EXCEPTION
            -- Another database's migration on the same server made it a moment ago.
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'cannot create role spine_reader: % lacks CREATEROLE. As a superuser, run once: CREATE ROLE spine_reader NOLOGIN; then restart spine-processor', current_user;
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO spine_reader', current_schema());
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO spine_reader', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO spine_reader',
                   current_schema());
END
$$;

-- GET /orders filtered by status, and by tenant and status, newest first: each combination of
-- filters reads one index range in the order it returns, so a rare status costs O(limit), never
-- a scan of every order. (No filter and tenant alone: the two indexes of V1.)
CREATE INDEX current_orders_status_updated_at
    ON current_orders (status, updated_at DESC, tenant, order_id);
CREATE INDEX current_orders_tenant_status_updated_at
    ON current_orders (tenant, status, updated_at DESC, order_id);

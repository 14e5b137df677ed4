-- Least privilege: two group roles (NOLOGIN) that login roles join.
--   fleetpulse_writer  what the aggregator's flush and POST /alerts need, nothing more: no
--                      DDL, no TRUNCATE, no DELETE but the pruning of host_samples_seen;
--   fleetpulse_reader  SELECT on every table (Grafana), also on tables added later.
-- The schema's owner (the role that runs the migrations) keeps everything else. A login role
-- joins a group with `CREATE ROLE name LOGIN PASSWORD '...' IN ROLE fleetpulse_writer`
-- (deploy/postgres/roles.sh does it for compose). The group roles are created here when the
-- migrating role may (superuser or CREATEROLE); otherwise they must exist beforehand, and
-- the grants to a missing one are skipped with a notice.
-- A later migration that adds a table grants fleetpulse_writer what its flush needs.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['fleetpulse_writer', 'fleetpulse_reader'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION
                -- Created meanwhile by the migration of another database of the server.
                WHEN duplicate_object OR unique_violation THEN NULL;
                WHEN insufficient_privilege THEN
                    RAISE NOTICE 'role % is missing and % may not create it: no grants to it', r, current_user;
            END;
        END IF;
    END LOOP;

    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'fleetpulse_writer') THEN
        GRANT USAGE ON SCHEMA public TO fleetpulse_writer;
        -- The start-up check that every migration is applied.
        GRANT SELECT ON schema_migrations TO fleetpulse_writer;
        -- Offsets (the fence) and the upserted windows and totals.
        GRANT SELECT, INSERT, UPDATE ON consumer_offsets, call_stats_1m, call_totals,
            host_metrics_1m, probe_stats_1m TO fleetpulse_writer;
        -- Appended by COPY or INSERT, never read back.
        GRANT INSERT ON long_calls, system_metrics, probe_results, alerts TO fleetpulse_writer;
        -- Claimed (INSERT ... RETURNING) and pruned.
        GRANT SELECT, INSERT, DELETE ON host_samples_seen TO fleetpulse_writer;
        GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO fleetpulse_writer;
    END IF;

    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'fleetpulse_reader') THEN
        GRANT USAGE ON SCHEMA public TO fleetpulse_reader;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO fleetpulse_reader;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO fleetpulse_reader;
    END IF;
END
$$;

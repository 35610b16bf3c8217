-- sfsync 0.1.0 -> 0.2.0. Every catalog change of 0.2.0, in the order of sql/*.sql; the
-- upgrade e2e test (pgrx-tests/tests/upgrade_e2e.rs) checks that an upgraded database has
-- the same schema as a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION sfsync UPDATE TO '0.2.0'" to load this file. \quit

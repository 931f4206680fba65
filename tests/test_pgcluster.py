"""The private PostgreSQL cluster the multi-hub tests will stand on, and the one database rule the
scale-out design rests on: an exclusion constraint (btree_gist) refuses overlapping confirmed
windows on one connector, across connections, with back-to-back windows allowed."""

import threading

import psycopg
import pytest
from psycopg import errors

DDL = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE TABLE windows (
    station_id text NOT NULL,
    connector  integer NOT NULL,
    start_s    bigint NOT NULL,
    end_s      bigint NOT NULL,
    state      text NOT NULL DEFAULT 'confirmed',
    during     tstzrange GENERATED ALWAYS AS (tstzrange(to_timestamp(start_s), to_timestamp(end_s), '[)')) STORED,
    CONSTRAINT no_overlap EXCLUDE USING gist (station_id WITH =, connector WITH =, during WITH &&)
        WHERE (state = 'confirmed')
);
"""
T0 = 1_900_000_000


@pytest.fixture
def pg_db(pg_cluster, request):
    name = "t_" + request.node.name.lower()[:50].replace("-", "_").replace("[", "_").replace("]", "")
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS %s" % name)
        admin.execute("CREATE DATABASE %s" % name)
    with psycopg.connect(pg_cluster.dsn(name), autocommit=True) as con:
        con.execute(DDL)
    return pg_cluster.dsn(name)


def test_the_private_cluster_answers_on_its_socket_as_a_superuser(pg_cluster):
    with psycopg.connect(pg_cluster.dsn()) as con:
        version, superuser = con.execute(
            "SELECT current_setting('server_version_num')::int, "
            "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
        ).fetchone()
    assert version >= 150000 and superuser


def test_an_overlapping_window_on_the_same_connector_is_refused_and_back_to_back_ones_are_not(pg_db):
    with psycopg.connect(pg_db, autocommit=True) as con:
        con.execute(
            "INSERT INTO windows (station_id, connector, start_s, end_s) VALUES ('CP-1', 1, %s, %s)", (T0, T0 + 3600)
        )
        with pytest.raises(errors.ExclusionViolation):
            con.execute(
                "INSERT INTO windows (station_id, connector, start_s, end_s) VALUES ('CP-1', 1, %s, %s)",
                (T0 + 1800, T0 + 5400),
            )
        con.execute(
            "INSERT INTO windows (station_id, connector, start_s, end_s) VALUES ('CP-1', 1, %s, %s)",
            (T0 + 3600, T0 + 7200),
        )  # starts where the first ends: half-open windows
        con.execute(
            "INSERT INTO windows (station_id, connector, start_s, end_s) VALUES ('CP-1', 2, %s, %s)",
            (T0 + 1800, T0 + 5400),
        )  # another connector
        con.execute("UPDATE windows SET state = 'cancelled' WHERE connector = 1 AND start_s = %s", (T0,))
        con.execute(
            "INSERT INTO windows (station_id, connector, start_s, end_s) VALUES ('CP-1', 1, %s, %s)",
            (T0 + 600, T0 + 1200),
        )  # the cancelled window no longer holds the slot
        assert con.execute("SELECT count(*) FROM windows WHERE state = 'confirmed'").fetchone()[0] == 3


def test_two_connections_racing_for_one_window_get_it_exactly_once(pg_db):
    """What several hubs will do: each inserts in its own transaction; the database decides."""
    results = []
    barrier = threading.Barrier(8)

    def race():
        with psycopg.connect(pg_db) as con:
            barrier.wait(timeout=10)
            cur = con.execute(
                "INSERT INTO windows (station_id, connector, start_s, end_s) VALUES ('CP-9', 1, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                (T0, T0 + 1800),
            )
            results.append(cur.fetchone() is not None)
            con.commit()

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [False] * 7 + [True]

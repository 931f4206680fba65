"""Fixtures shared by the store and booking tests, and the private PostgreSQL cluster."""

import pytest

from hub.store.store import Store


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "hub.db")


@pytest.fixture
def store(db):
    s = Store(db)
    yield s
    s.close()


@pytest.fixture(scope="session")
def pg_cluster():
    """One private PostgreSQL cluster for the session (tests/pgcluster.py). Where the server
    binaries cannot be had, a test that needs it fails with the reason: it never skips."""
    from pgcluster import PgCluster

    with PgCluster() as pg:
        yield pg


@pytest.fixture
def pg_database(pg_cluster):
    """A fresh database on the private cluster, as the postgresql:// URL `--db` takes."""
    return pg_cluster.new_database()

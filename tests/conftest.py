"""Fixtures shared by the store and booking tests."""

import pytest

from hub.store import Store


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "hub.db")


@pytest.fixture
def store(db):
    s = Store(db)
    yield s
    s.close()

"""Which store a provisioning command writes to, said out loud.

`evhub stations add` run from another directory used to create a fresh ./evhub.db without a word,
and the hub never saw the station. Commands take --db, else $EVHUB_DB, else ./evhub.db, and say on
stderr which file they wrote to, and when they had to create it.
"""

from __future__ import annotations

import os

from hub.store.backend import is_postgres, mask, sqlite_path

DEFAULT_DB = "evhub.db"


def default_db() -> str:
    return os.environ.get("EVHUB_DB") or DEFAULT_DB


DB_HELP = "the hub's store: a SQLite file (default $EVHUB_DB, else ./evhub.db) or postgresql://..."


def store_exists(db: str) -> bool:
    """A SQLite file that exists, or any postgresql:// URL (the server says whether it is there)."""
    return is_postgres(db) or os.path.exists(sqlite_path(db))


def describe(path: str, existed: bool) -> str:
    """'store: /abs/evhub.db' or 'store: /abs/evhub.db (new: no store was there)'."""
    if is_postgres(path):
        return "store: %s" % mask(path)  # never a password on the terminal
    full = os.path.abspath(path)
    return "store: %s%s" % (full, "" if existed else " (created: no store was there; is this the hub's --db?)")

"""A consistent copy of a SQLite store while the hub runs (`evhub db backup`).

SQLite's online backup API copies the database page by page inside read transactions, so the copy
is a state the hub really committed (WAL included). PostgreSQL stores are copied with pg_dump.
"""

from __future__ import annotations

import sqlite3


def copy_sqlite(db: str, target: str) -> str:
    """Copy the store at `db` into the (existing, empty, 0600) file `target`; returns the copy's
    integrity check ("ok" when sound). The copy is one self-contained file, no -wal beside it."""
    src = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        (check,) = dst.execute("PRAGMA integrity_check").fetchone()
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    return str(check)

"""`evhub db backup FILE`: a consistent copy of the embedded store, taken while the hub runs.

SQLite's online backup API copies the database page by page inside read transactions, so the
copy is a state the hub really committed (WAL included), even while reservations are being
written. The copy holds station keys and vehicle tokens: it is written 0600, under a temporary
name, and renamed into place only when complete. Restore = stop the hub, put the copy in place of
the store (removing the old store's -wal and -shm files), start the hub (README "Backup").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("backup", help="copy the store while the hub runs (SQLite online backup)")
    b.add_argument("file", help="where to write the copy (refused if it exists, unless --force)")
    b.add_argument(
        "--db",
        default=os.environ.get("EVHUB_DB", "evhub.db"),
        help="the store to copy (default $EVHUB_DB or ./evhub.db)",
    )
    b.add_argument("--force", action="store_true", help="replace FILE if it exists")


def run(args: argparse.Namespace) -> int:
    return backup(args.db, args.file, args.force)


def backup(db: str, target: str, force: bool = False) -> int:
    if not os.path.isfile(db):
        print("evhub db backup: no store at %s (give --db or set $EVHUB_DB)" % db, file=sys.stderr)
        return EXIT_USAGE
    if os.path.lexists(target) and not force:
        print("evhub db backup: %s exists; add --force to replace it" % target, file=sys.stderr)
        return EXIT_USAGE
    tmp = "%s.tmp-%d" % (target, os.getpid())
    try:
        # The copy holds every key and token: owner-only from the moment it exists.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        src = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
            (check,) = dst.execute("PRAGMA integrity_check").fetchone()
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
            src.close()
        if check != "ok":
            raise sqlite3.DatabaseError("the copy failed its integrity check: %s" % check)
        os.replace(tmp, target)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        print("evhub db backup: %s" % (getattr(exc, "strerror", None) or exc), file=sys.stderr)
        return EXIT_ERROR
    size = os.path.getsize(target)
    print("backed up %s to %s (%d bytes)" % (db, target, size))
    return EXIT_OK

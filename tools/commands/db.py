"""`evhub db backup FILE | migrate | check`: the store's copy and its schema version.

`migrate` brings a store (SQLite file or postgresql:// URL) to this code's schema version, printing
"migrated from version N to M" (the hub does the same on start); `check` only reports: exit 0 when
the store is current, 1 when migrations are pending or the store is newer than this code.


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

from hub.store.backend import DB_ERRORS, is_postgres, mask
from hub.store.backup import copy_sqlite

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
    for name, what in (
        ("migrate", "upgrade the store's schema to this version of evhub"),
        ("check", "say the store's schema version and what migrations are pending (exit 1 if any)"),
    ):
        m = sub.add_parser(name, help=what)
        m.add_argument(
            "--db",
            default=os.environ.get("EVHUB_DB", "evhub.db"),
            help="the store: a SQLite file (default $EVHUB_DB or ./evhub.db) or postgresql://...",
        )


def run(args: argparse.Namespace) -> int:
    if args.action in ("migrate", "check"):
        return schema(args.db, args.action == "migrate")
    if is_postgres(args.db):
        print("evhub db backup: %s is PostgreSQL: use pg_dump (its backups are consistent too)" % mask(args.db))
        return EXIT_USAGE
    return backup(args.db, args.file, args.force)


def schema(db: str, migrate: bool) -> int:
    """`evhub db migrate` / `evhub db check`."""
    from hub.store.store import SCHEMA_VERSION, Store, StoreError

    prog = "evhub db %s" % ("migrate" if migrate else "check")
    if not is_postgres(db) and not os.path.isfile(db):
        print("%s: no store at %s (give --db or set $EVHUB_DB)" % (prog, db), file=sys.stderr)
        return EXIT_USAGE
    try:
        store = Store(db, migrate=False)
        try:
            before = store.schema_version
            if migrate and before < SCHEMA_VERSION:
                store._migrate()
            version, pending = store.schema_version, store.pending()
        finally:
            store.close()
    except StoreError as exc:  # newer than this code, or refused (a store other users can read)
        print("%s: %s" % (prog, exc), file=sys.stderr)
        return EXIT_ERROR
    except DB_ERRORS + (OSError,) as exc:
        print("%s: cannot open %s: %s" % (prog, mask(db), exc), file=sys.stderr)
        return EXIT_ERROR
    if migrate:
        print(
            "store %s: migrated from version %d to %d" % (mask(db), before, version)
            if version != before
            else "store %s: at version %d, nothing to migrate" % (mask(db), version)
        )
        return EXIT_OK
    print("store %s: schema version %d, this evhub knows %d" % (mask(db), version, SCHEMA_VERSION))
    for number, what in pending:
        print("  pending migration %d: %s" % (number, what))
    return EXIT_OK if not pending else EXIT_ERROR


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
        check = copy_sqlite(db, tmp)
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

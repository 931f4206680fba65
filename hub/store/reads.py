"""History reads from the hub's store, run in a small thread pool, never in the loop.

Each pool thread opens its own read-only connection (sqlite3 connections belong to
their thread; on PostgreSQL one psycopg connection per thread, in read-only transactions);
WAL lets these readers run beside the actors that write.
"""

import concurrent.futures
import sqlite3
import threading

from hub.store.backend import DB_ERRORS, PgConn, is_postgres, sqlite_path
from hub.store.store import BUSY_TIMEOUT_S

from hub.store.rows_reservations import _RES_COLS as _RES, _RES_KEYS  # one column list, the store's
from hub.store.rows_sessions import _SESSION_KEYS as _SES_KEYS


class Reads:
    def __init__(self, db_path, loop, workers=2):
        self.db_path = str(db_path)
        self.loop = loop
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="http-db")
        self._local = threading.local()
        self._all = []
        self._all_lock = threading.Lock()

    def _db(self):
        db = getattr(self._local, "db", None)
        if db is None:
            if is_postgres(self.db_path):
                db = _pg_read_only(self.db_path)
            else:
                db = sqlite3.connect(sqlite_path(self.db_path), timeout=BUSY_TIMEOUT_S)
                db.execute("PRAGMA query_only=ON")
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def run(self, fn, *args):
        """Await fn(connection, *args) on a pool thread."""
        return self.loop.run_in_executor(self.pool, self._call, fn, args)

    def _call(self, fn, args):
        return fn(self._db(), *args)

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)
        with self._all_lock:
            for db in self._all:
                try:
                    db.close()
                except DB_ERRORS:  # made on another thread; closed with the process
                    pass
            self._all.clear()

    # --- queries (run on a pool thread) ---------------------------------------------------

    @staticmethod
    def station_exists(db, station_id):
        return db.execute("SELECT 1 FROM stations WHERE id = ?", (station_id,)).fetchone() is not None

    @staticmethod
    def vehicle_exists(db, vehicle_id):
        return db.execute("SELECT 1 FROM vehicles WHERE id = ?", (vehicle_id,)).fetchone() is not None

    @staticmethod
    def vehicle_ids(db):
        """Every provisioned vehicle (not removed), for /api/vehicles before they report."""
        return [r[0] for r in db.execute("SELECT id FROM vehicles WHERE removed IS NULL")]

    @staticmethod
    def reservations(db, station_id=None, vehicle_id=None, state="confirmed", limit=200):
        where, args = [], []
        if state != "all":
            where.append("state = ?")
            args.append(state)
        if station_id is not None:
            where.append("station_id = ?")
            args.append(station_id)
        if vehicle_id is not None:
            where.append("vehicle_id = ?")
            args.append(vehicle_id)
        order = "start, id" if state == "confirmed" else "updated DESC, id DESC"
        sql = "SELECT %s FROM reservations%s ORDER BY %s LIMIT ?" % (
            _RES,
            (" WHERE " + " AND ".join(where)) if where else "",
            order,
        )
        return [dict(zip(_RES_KEYS, row)) for row in db.execute(sql, args + [limit])]

    @staticmethod
    def reservation(db, reservation_id):
        row = db.execute("SELECT %s FROM reservations WHERE id = ?" % _RES, (reservation_id,)).fetchone()
        return None if row is None else dict(zip(_RES_KEYS, row))

    @staticmethod
    def sessions(db, station_id, limit=50):
        rows = db.execute(
            "SELECT %s FROM sessions WHERE station_id = ? ORDER BY COALESCE(started, ended) DESC LIMIT ?"
            % ", ".join(_SES_KEYS),
            (station_id, limit),
        )
        return [dict(zip(_SES_KEYS, row)) for row in rows]

    @staticmethod
    def reservations_since(db, station_id=None, vehicle_id=None, state="all", since=None, limit=1000):
        """Reservations whose window ends at or after `since` (all of them without), oldest first:
        the operator's list (`evhub reservations list`)."""
        where, args = [], []
        for column, value in (
            ("state", None if state == "all" else state),
            ("station_id", station_id),
            ("vehicle_id", vehicle_id),
        ):
            if value is not None:
                where.append("%s = ?" % column)
                args.append(value)
        if since is not None:
            where.append('"end" >= ?')
            args.append(since)
        sql = "SELECT %s FROM reservations%s ORDER BY start, id LIMIT ?" % (
            _RES,
            (" WHERE " + " AND ".join(where)) if where else "",
        )
        return [dict(zip(_RES_KEYS, row)) for row in db.execute(sql, args + [limit])]

    @staticmethod
    def session_history(db, station_id=None, vehicle_id=None, since=None, until=None, limit=100, offset=0):
        """Ended sessions, by end time then id (a stable order for paging): the billing record.
        `since`/`until` bound the end time, [since, until)."""
        where, args = ["ended IS NOT NULL"], []
        for column, op, value in (
            ("station_id", "=", station_id),
            ("vehicle_id", "=", vehicle_id),
            ("ended", ">=", since),
            ("ended", "<", until),
        ):
            if value is not None:
                where.append("%s %s ?" % (column, op))
                args.append(value)
        rows = db.execute(
            "SELECT %s FROM sessions WHERE %s ORDER BY ended, session_id LIMIT ? OFFSET ?"
            % (", ".join(_SES_KEYS), " AND ".join(where)),
            args + [limit, offset],
        )
        return [dict(zip(_SES_KEYS, row)) for row in rows]

    @staticmethod
    def reservation_states(db):
        return dict(db.execute("SELECT state, COUNT(*) FROM reservations GROUP BY state").fetchall())


def _pg_read_only(url):
    db = PgConn(url)
    db.execute("SET default_transaction_read_only = on")
    return db


def open_read_only(db_path):
    """A read-only connection for a command-line reader (the hub may be running, or not)."""
    import os

    from hub.secretfile import prepare_store

    if is_postgres(db_path):
        return _pg_read_only(db_path)
    db_path = sqlite_path(db_path)

    if not os.path.isfile(db_path):
        raise FileNotFoundError("no store at %s (give --db or set $EVHUB_DB)" % db_path)
    prepare_store(db_path, create=False)  # a store others can read is refused here too (hub/secretfile.py)
    db = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=BUSY_TIMEOUT_S)
    db.execute("PRAGMA query_only=ON")
    return db


async def run_read(reads, fn, *args):
    """reads.run, with sqlite trouble turned into an exception the API maps to 503."""
    try:
        return await reads.run(fn, *args)
    except DB_ERRORS as exc:
        raise StoreUnavailable(str(exc)) from None
    except RuntimeError as exc:  # pool shut down: the hub is stopping
        raise StoreUnavailable(str(exc)) from None


class StoreUnavailable(Exception):
    pass

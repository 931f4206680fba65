"""The hub's durable state on SQLite: stations and their keys, vehicles and their
tokens, reservations, charging sessions.

Durability: WAL journal with `synchronous=FULL`, so a transaction that COMMIT
returned from is on disk (fsync'd WAL) and survives kill -9 and power loss. A
reservation is acknowledged only after its COMMIT. Writes are grouped: the
ReservationBook inserts a whole batch of reservations in ONE transaction (one
fsync), which is what makes thousands of durable reservations a second possible.

Threads: a Store holds one sqlite3 connection, and that connection belongs to the
thread that created it (sqlite3's check_same_thread stays on and enforces it).
The ReservationBook actor opens its Store in its own thread and is the writer of
reservations; the StationRegistry actor writes sessions through its own Store;
tools and readers open their own. WAL lets readers run alongside the writer, and
`busy_timeout` makes concurrent writers from other processes (the provisioning CLI)
wait for the lock instead of failing.

Two engines, one class: a `--db` path (or sqlite:///path) is the embedded SQLite store above; a
`postgresql://...` URL (libpq, also ?host=/socket/dir) runs the same statements on PostgreSQL through
the dialect layer in backend.py, one psycopg connection per Store (so per actor thread, as with
sqlite3). On PostgreSQL the database, not the book's memory, decides "no double booking": an
exclusion constraint refuses an overlapping confirmed window on one connector (migrations.py), and
insert_reservations answers StoreConflict for that row. The interface every caller relies on is
written down in api.py (StoreAPI).

Schema changes: numbered migrations (migrations.py), the same numbers on both engines; a store
written by a newer hub is refused rather than misread.
"""

import contextlib
import logging
import secrets
import sqlite3
import time

from hub.store import migrations
from hub.store.backend import SQLITE, PgConn, is_postgres, mask, sqlite_path
from hub.store.errors import StoreConflict as StoreConflict, StoreError as StoreError
from hub.store.rows_reservations import RESERVATION_STATES as RESERVATION_STATES, ReservationRows
from hub.store.rows_sessions import MAX_LISTED_SESSIONS as MAX_LISTED_SESSIONS, SessionRows
from hub.domain.geo import validate_position
from hub.secretfile import prepare_store
from transport import kinds as K

log = logging.getLogger(__name__)

SCHEMA_VERSION = migrations.LATEST
MIGRATION_LOCK = 0x657668756221  # pg_advisory_xact_lock key: one migrating hub at a time
BUSY_TIMEOUT_S = 10.0


def new_secret():
    """32 hex characters (128 bits) from the OS CSPRNG: a station key or a vehicle token."""
    return secrets.token_hex(16)


class Store(ReservationRows, SessionRows):
    """One connection to the store (see the module docstring); reservations and sessions in the
    mixins of rows_reservations.py and rows_sessions.py."""

    def __init__(self, path, clock=time.time, shared=False, migrate=True):
        """Open (and migrate) the store at `path`: a SQLite file or a postgresql:// URL.
        shared=True lets a SQLite connection be used from threads other than its creator's
        (the caller serialises the calls, as the OCPP ledger does on its event loop).
        migrate=False (`evhub db check`): open without upgrading; pending() says what is missing."""
        self.path = str(path)
        self.label = mask(self.path)  # for logs and errors: never a password
        self._clock = clock
        if is_postgres(self.path):
            self._db = PgConn(self.path)
            self.dialect = self._db.dialect
        else:
            self.path = sqlite_path(self.path)
            self.label = self.path
            self.dialect = SQLITE
            prepare_store(self.path)  # owner-only, or refused: it holds every device key in plain
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=not shared
            )
        try:
            if self.dialect is SQLITE:
                mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode != "wal" and self.path != ":memory:":
                    raise StoreError("%s: could not switch to WAL journal (got %s)" % (self.path, mode))
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute("PRAGMA foreign_keys=ON")
            if migrate:
                self._migrate()
            elif self.schema_version > SCHEMA_VERSION:
                raise StoreError(
                    "%s has schema version %d; this hub knows up to %d (upgrade evhub)"
                    % (self.label, self.schema_version, SCHEMA_VERSION)
                )
        except BaseException:
            self._db.close()
            raise

    @property
    def is_postgres(self):
        return self.dialect is not SQLITE

    # --- plumbing ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self):
        # SQLite: BEGIN IMMEDIATE takes the write lock up front (no deadlock-prone lock upgrade
        # halfway through, and busy_timeout applies to the wait). PostgreSQL: BEGIN on an autocommit
        # connection, READ COMMITTED; the constraints arbitrate between concurrent writers.
        self._db.execute(self.dialect.begin)  # PostgreSQL: reconnects first if the server dropped us
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _read_version(self, db):
        if not self.is_postgres:
            return db.execute("PRAGMA user_version").fetchone()[0]
        if db.execute("SELECT to_regclass('evhub_schema')").fetchone()[0] is None:
            return 0  # an empty database (reading never creates anything: `evhub db check`)
        row = db.execute("SELECT version FROM evhub_schema").fetchone()
        return 0 if row is None else row[0]

    def _write_version(self, db, version):
        if not self.is_postgres:
            db.execute("PRAGMA user_version=%d" % version)
            return
        db.execute(
            "CREATE TABLE IF NOT EXISTS evhub_schema (one INTEGER PRIMARY KEY CHECK (one = 1), version INTEGER NOT NULL)"
        )
        db.execute(
            "INSERT INTO evhub_schema (one, version) VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET version = ?",
            (version, version),
        )

    def _migrate(self, target=SCHEMA_VERSION):
        # Version check and migrations in one write transaction, so two processes starting on a
        # fresh store at once cannot both migrate it half-way (PostgreSQL: an advisory lock too).
        with self._tx() as db:
            if self.is_postgres:
                db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            version = self._read_version(db)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    "%s has schema version %d; this hub knows up to %d (upgrade evhub)"
                    % (self.label, version, SCHEMA_VERSION)
                )
            if version < target:
                migrations.apply(db, self.dialect, version, target)
                self._write_version(db, target)
                log.info("store: migrated from version %d to %d (%s)", version, target, self.label)

    def pending(self):
        """The migrations this store still lacks, as [(version, what)]."""
        v = self.schema_version
        return [(n, what) for n, what, _steps in migrations.MIGRATIONS if n > v]

    @property
    def schema_version(self):
        return self._read_version(self._db)

    def pragma(self, name):
        """Read a PRAGMA (for tests and diagnostics): journal_mode, synchronous, foreign_keys."""
        return self._db.execute("PRAGMA %s" % name).fetchone()[0]

    def close(self):
        if self._db is not None:
            self._db.close()
            self._db = None

    def _now(self):
        return int(self._clock())

    # --- stations -------------------------------------------------------------------------

    def add_station(self, station_id, lat, lon, connectors, max_kw, replace=False, key=None):
        """Provision a station; returns its key (a new random one unless `key` is given).

        Re-adding an existing id is refused unless replace=True, which updates the record
        and issues a new key (the old key stops working). Reservations are kept.
        """
        if not isinstance(station_id, str) or not station_id or len(station_id) > 64:
            raise StoreError("station id must be a string of 1..64 characters")
        try:
            lat, lon = validate_position(lat, lon)
        except ValueError as exc:
            raise StoreError("station %s: %s" % (station_id, exc)) from None
        if isinstance(connectors, bool) or not isinstance(connectors, int) or not 1 <= connectors <= K.MAX_CONNECTORS:
            raise StoreError("station %s: connectors must be an integer in 1..%d" % (station_id, K.MAX_CONNECTORS))
        if isinstance(max_kw, bool) or not isinstance(max_kw, (int, float)) or not max_kw > 0:
            raise StoreError("station %s: max_kw must be a number > 0" % station_id)
        key = new_secret() if key is None else key
        with self._tx() as db:
            row = db.execute("SELECT removed FROM stations WHERE id = ?", (station_id,)).fetchone()
            exists = row is not None
            if exists and row[0] is None and not replace:
                raise StoreConflict("station %s already exists (add --replace to issue a new key)" % station_id)
            if exists:
                # UPDATE, not INSERT OR REPLACE: a replace would delete the row and trip the
                # foreign keys of its reservations and sessions. A removed id comes back with a new key.
                db.execute(
                    "UPDATE stations SET key = ?, lat = ?, lon = ?, connectors = ?, max_kw = ?, removed = NULL"
                    " WHERE id = ?",
                    (key, lat, lon, connectors, float(max_kw), station_id),
                )
                if row[0] is None:  # the old key was live: the running hub closes its links
                    self._revoke(db, "station", station_id, "key replaced")
            else:
                db.execute(
                    "INSERT INTO stations (id, key, lat, lon, connectors, max_kw, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (station_id, key, lat, lon, connectors, float(max_kw), self._now()),
                )
        log.info(
            "station %s: %s at %.5f,%.5f connectors=%d",
            station_id,
            "re-provisioned" if exists else "provisioned",
            lat,
            lon,
            connectors,
        )
        return key

    def get_station_key(self, station_id):
        row = self._db.execute("SELECT key FROM stations WHERE id = ? AND removed IS NULL", (station_id,)).fetchone()
        return row[0] if row else None

    def get_station(self, station_id):
        """{"id", "lat", "lon", "connectors", "max_kw", "created"} or None (the key is not included)."""
        row = self._db.execute(
            "SELECT id, lat, lon, connectors, max_kw, created, name FROM stations WHERE id = ? AND removed IS NULL",
            (station_id,),
        ).fetchone()
        return None if row is None else _station_dict(row)

    def station_count(self):
        return self._db.execute("SELECT COUNT(*) FROM stations WHERE removed IS NULL").fetchone()[0]

    def all_stations(self):
        rows = self._db.execute(
            "SELECT id, lat, lon, connectors, max_kw, created, name FROM stations WHERE removed IS NULL ORDER BY id"
        )
        return [_station_dict(r) for r in rows]

    # --- vehicles -------------------------------------------------------------------------

    def add_vehicle(self, vehicle_id, replace=False):
        """Provision a vehicle; returns its new random token. Existing id: error unless replace."""
        if not isinstance(vehicle_id, str) or not vehicle_id or len(vehicle_id) > 64:
            raise StoreError("vehicle id must be a string of 1..64 characters")
        token = new_secret()
        with self._tx() as db:
            row = db.execute("SELECT removed FROM vehicles WHERE id = ?", (vehicle_id,)).fetchone()
            exists = row is not None
            if exists and row[0] is None and not replace:
                raise StoreConflict("vehicle %s already exists (add --replace to issue a new token)" % vehicle_id)
            if exists:
                db.execute("UPDATE vehicles SET token = ?, removed = NULL WHERE id = ?", (token, vehicle_id))
                if row[0] is None:  # the old token was live: the running hub closes its links
                    self._revoke(db, "vehicle", vehicle_id, "token replaced")
            else:
                db.execute(
                    "INSERT INTO vehicles (id, token, created) VALUES (?, ?, ?)", (vehicle_id, token, self._now())
                )
        log.info("vehicle %s: %s", vehicle_id, "new token issued" if exists else "provisioned")
        return token

    def get_vehicle_token(self, vehicle_id):
        row = self._db.execute("SELECT token FROM vehicles WHERE id = ? AND removed IS NULL", (vehicle_id,)).fetchone()
        return row[0] if row else None

    # --- removal and revocation (history is kept: the rows stay, marked removed) -------------

    def _revoke(self, db, role, peer_id, why):
        db.execute(
            "INSERT INTO revocations (role, peer_id, why, at) VALUES (?, ?, ?, ?)", (role, peer_id, why, self._now())
        )

    def remove_station(self, station_id):
        """Mark a station removed (it can no longer log in), cancel its open reservations; returns
        [(reservation_id, vehicle_id)] cancelled. Sessions and past reservations stay."""
        return self._remove("station", station_id, "stations", "station_id")

    def remove_vehicle(self, vehicle_id):
        """Mark a vehicle removed and cancel its open reservations; returns them as for remove_station."""
        return self._remove("vehicle", vehicle_id, "vehicles", "vehicle_id")

    def _remove(self, role, peer_id, table, column):
        now = self._now()
        with self._tx() as db:
            row = db.execute("SELECT removed FROM %s WHERE id = ?" % table, (peer_id,)).fetchone()
            if row is None:
                raise StoreError("no %s %s" % (role, peer_id))
            if row[0] is not None:
                raise StoreConflict("%s %s was already removed" % (role, peer_id))
            db.execute("UPDATE %s SET removed = ? WHERE id = ?" % table, (now, peer_id))
            cancelled = db.execute(
                "SELECT id, vehicle_id FROM reservations WHERE %s = ? AND state = 'confirmed'" % column, (peer_id,)
            ).fetchall()
            db.execute(
                "UPDATE reservations SET state = 'cancelled', updated = ? WHERE %s = ? AND state = 'confirmed'"
                % column,
                (now, peer_id),
            )
            self._revoke(db, role, peer_id, "removed")
        log.info("%s %s: removed, %d open reservations cancelled", role, peer_id, len(cancelled))
        return cancelled

    def all_vehicles(self):
        """[{"id", "created", "removed"}] of every vehicle ever provisioned (removed ones too)."""
        rows = self._db.execute("SELECT id, created, removed FROM vehicles ORDER BY id")
        return [{"id": r[0], "created": r[1], "removed": r[2]} for r in rows]

    def last_revocation(self):
        return self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM revocations").fetchone()[0]

    def revocations_after(self, seq, limit):
        """[(seq, role, peer_id, why)] written after `seq`, oldest first (the running hub's watch)."""
        return self._db.execute(
            "SELECT seq, role, peer_id, why FROM revocations WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ).fetchall()

    # --- remote starts the hub sent (they attribute the session that follows) ----------------

    def add_remote_start(self, station_id, vehicle_id, reservation_id, issued):
        with self._tx() as db:
            return db.execute(
                "INSERT INTO remote_starts (station_id, vehicle_id, reservation_id, issued) VALUES (?, ?, ?, ?)"
                " RETURNING id",
                (station_id, vehicle_id, reservation_id, issued),
            ).fetchone()[0]

    def drop_remote_start(self, grant_id):
        with self._tx() as db:
            db.execute("DELETE FROM remote_starts WHERE id = ? AND session_id IS NULL", (grant_id,))

    def take_remote_start(self, station_id, vehicle_id, session_id, since):
        """Use the oldest unused REMOTE_START for vehicle_id at station_id issued at or after `since`
        for session_id; returns (True, its reservation_id) or (False, None) when there is none."""
        with self._tx() as db:
            row = db.execute(
                "SELECT id, reservation_id FROM remote_starts WHERE station_id = ? AND vehicle_id = ?"
                " AND session_id IS NULL AND issued >= ? ORDER BY id LIMIT 1",
                (station_id, vehicle_id, since),
            ).fetchone()
            if row is None:
                return False, None
            db.execute("UPDATE remote_starts SET session_id = ? WHERE id = ?", (session_id, row[0]))
        return True, row[1]

    def reservation_billed(self, reservation_id, session_id):
        """True when another session was already attributed to this reservation."""
        return (
            self._db.execute(
                "SELECT 1 FROM sessions WHERE reservation_id = ? AND session_id != ?"
                " AND vehicle_id IS NOT NULL LIMIT 1",
                (reservation_id, session_id),
            ).fetchone()
            is not None
        )

    # --- totals and settings ---------------------------------------------------------------

    def totals(self):
        """What the books say: reservations by state, ended sessions, their energy and end reasons,
        open sessions, sessions with a reservation (`evhub sim` closes its books with this)."""
        db = self._db
        states = dict(db.execute("SELECT state, COUNT(*) FROM reservations GROUP BY state").fetchall())
        n_ended, energy_wh = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(energy_wh), 0) FROM sessions WHERE ended IS NOT NULL"
        ).fetchone()
        reasons = dict(
            db.execute("SELECT reason, COUNT(*) FROM sessions WHERE ended IS NOT NULL GROUP BY reason").fetchall()
        )
        return {
            "reservation_states": states,
            "reservations": sum(states.values()),
            "sessions_ended": n_ended,
            "energy_wh": int(energy_wh),
            "end_reasons": reasons,
            "sessions_open": db.execute("SELECT COUNT(*) FROM sessions WHERE ended IS NULL").fetchone()[0],
            "sessions_with_reservation": db.execute(
                "SELECT COUNT(*) FROM sessions WHERE reservation_id IS NOT NULL"
            ).fetchone()[0],
        }

    def setting(self, name, default=None):
        """A value from the settings table, or `default`; with default given and no value stored yet,
        `default` is stored first (the first of several hubs to get there wins; all read its value)."""
        if default is not None:
            with self._tx() as db:
                db.execute("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING", (name, default))
        row = self._db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def unsafe_fast_writes(self):
        """Commits stop waiting for the disk on this connection: for throwaway provisioning (bench)."""
        self._db.execute("SET synchronous_commit = off" if self.is_postgres else "PRAGMA synchronous=OFF")


def _station_dict(row):
    return {
        "id": row[0],
        "lat": row[1],
        "lon": row[2],
        "connectors": row[3],
        "max_kw": row[4],
        "created": row[5],
        "name": row[6],
    }

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

Schema changes: PRAGMA user_version holds SCHEMA_VERSION; a database written by a
newer hub is refused rather than misread.
"""

import contextlib
import logging
import secrets
import sqlite3
import time

from hub.store import authz as store_authz
from hub.store import ops as store_ops
from hub.store import requests as store_requests
from hub.domain.geo import validate_position
from hub.secretfile import prepare_store
from transport import kinds as K

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0
RESERVATION_STATES = ("confirmed", "fulfilled", "cancelled", "expired")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stations (
    id          TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    lat         REAL NOT NULL,
    lon         REAL NOT NULL,
    connectors  INTEGER NOT NULL CHECK (connectors >= 1),
    max_kw      REAL NOT NULL,
    created     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vehicles (
    id          TEXT PRIMARY KEY,
    token       TEXT NOT NULL,
    created     INTEGER NOT NULL
);
-- vehicle_id has no foreign key: the owner is whoever the gateway authenticated, and a
-- reservation must not become impossible to record if a vehicle is re-provisioned.
CREATE TABLE IF NOT EXISTS reservations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    vehicle_id  TEXT NOT NULL,
    station_id  TEXT NOT NULL REFERENCES stations(id),
    connector   INTEGER NOT NULL,
    start       INTEGER NOT NULL,
    "end"       INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('confirmed', 'fulfilled', 'cancelled', 'expired')),
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    CHECK ("end" > start)
);
CREATE INDEX IF NOT EXISTS reservations_open ON reservations(station_id, start) WHERE state = 'confirmed';
CREATE INDEX IF NOT EXISTS reservations_vehicle ON reservations(vehicle_id);
-- reservation_id has no foreign key: it is what the station reported, kept as evidence
-- even when it names a reservation the hub no longer considers open.
CREATE TABLE IF NOT EXISTS sessions (
    session_id      TEXT PRIMARY KEY,
    station_id      TEXT NOT NULL REFERENCES stations(id),
    connector       INTEGER NOT NULL,
    vehicle_id      TEXT,
    reservation_id  INTEGER,
    meter_start_wh  INTEGER,
    energy_wh       INTEGER,
    started         INTEGER,
    ended           INTEGER,
    reason          TEXT
);
CREATE INDEX IF NOT EXISTS sessions_open ON sessions(station_id) WHERE ended IS NULL;
CREATE INDEX IF NOT EXISTS sessions_vehicle ON sessions(vehicle_id, started);
"""

_RES_COLS = 'id, vehicle_id, station_id, connector, start, "end", state, created, updated'
_RES_KEYS = ("id", "vehicle_id", "station_id", "connector", "start", "end", "state", "created", "updated")
MAX_LISTED_SESSIONS = 50  # SESSIONS is one frame: the newest 50 keep it a few KB
_SESSION_KEYS = (
    "session_id",
    "station_id",
    "connector",
    "vehicle_id",
    "reservation_id",
    "meter_start_wh",
    "energy_wh",
    "started",
    "ended",
    "reason",
    "claimed_vehicle_id",
    "implausible",
)


class StoreError(ValueError):
    """A request the store refuses (duplicate id, bad value, newer schema). A ValueError, so
    command-line tools can report it like any other bad input."""


class StoreConflict(StoreError):
    """Refused for the state of the store: the id already exists."""


def new_secret():
    """32 hex characters (128 bits) from the OS CSPRNG: a station key or a vehicle token."""
    return secrets.token_hex(16)


class Store:
    def __init__(self, path, clock=time.time):
        self.path = str(path)
        self._clock = clock
        prepare_store(self.path)  # owner-only, or refused: it holds every device key in plain
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal" and self.path != ":memory:":
                raise StoreError("%s: could not switch to WAL journal (got %s)" % (self.path, mode))
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    # --- plumbing ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self):
        # BEGIN IMMEDIATE takes the write lock up front: no deadlock-prone lock upgrade
        # halfway through, and busy_timeout applies to the wait.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _migrate(self):
        # Version check and schema creation in one write transaction, so two processes
        # starting on a fresh file at once cannot both create it half-way.
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    "%s has schema version %d; this hub knows up to %d" % (self.path, version, SCHEMA_VERSION)
                )
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("PRAGMA user_version=%d" % SCHEMA_VERSION)
                log.info("store %s: schema version %d created", self.path, SCHEMA_VERSION)
            store_authz.migrate(db)  # idempotent column/table additions (removal, revocation, attribution)
            store_ops.migrate(db)  # idempotent: station names, vehicles' last positions
            store_requests.migrate(db)  # idempotent: RESERVE's request_id, unique per vehicle

    @property
    def schema_version(self):
        return self._db.execute("PRAGMA user_version").fetchone()[0]

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

    # --- remote starts the hub sent (they attribute the session that follows) ----------------

    def add_remote_start(self, station_id, vehicle_id, reservation_id, issued):
        with self._tx() as db:
            return db.execute(
                "INSERT INTO remote_starts (station_id, vehicle_id, reservation_id, issued) VALUES (?, ?, ?, ?)",
                (station_id, vehicle_id, reservation_id, issued),
            ).lastrowid

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

    # --- reservations ---------------------------------------------------------------------

    def insert_reservations(self, rows):
        """Insert confirmed reservations in ONE transaction (one fsync); returns their ids in order.

        rows: iterable of (vehicle_id, station_id, connector, start, end[, request_id]). All or
        nothing: on any error nothing is written and the exception propagates.
        """
        now = self._now()
        ids = []
        with self._tx() as db:
            for row in rows:
                cur = db.execute(
                    'INSERT INTO reservations (vehicle_id, station_id, connector, start, "end", state, created, updated,'
                    " request_id) VALUES (?, ?, ?, ?, ?, 'confirmed', ?, ?, ?)",
                    tuple(row[:5]) + (now, now, row[5] if len(row) > 5 else None),
                )
                ids.append(cur.lastrowid)
        return ids

    def update_reservation_state(self, reservation_id, state):
        """Set one reservation's state; returns False if there is no such reservation."""
        return self.update_reservation_states(((reservation_id, state),)) == 1

    def update_reservation_states(self, changes):
        """[(reservation_id, state)] in one transaction; returns how many rows changed."""
        changes = list(changes)
        for _rid, state in changes:
            if state not in RESERVATION_STATES:
                raise StoreError("reservation state must be one of %s, got %r" % (", ".join(RESERVATION_STATES), state))
        if not changes:
            return 0
        now = self._now()
        n = 0
        with self._tx() as db:
            for rid, state in changes:
                n += db.execute(
                    "UPDATE reservations SET state = ?, updated = ? WHERE id = ?", (state, now, rid)
                ).rowcount
        return n

    def move_reservations(self, moves):
        """[(reservation_id, connector)] in one transaction (a station turned out to have fewer connectors)."""
        now = self._now()
        with self._tx() as db:
            for rid, connector in moves:
                db.execute("UPDATE reservations SET connector = ?, updated = ? WHERE id = ?", (connector, now, rid))

    def reservation_for_request(self, vehicle_id, request_id):
        """The reservation this vehicle booked with this RESERVE request_id, as a dict, or None."""
        row = store_requests.reservation_for_request(self._db, vehicle_id, request_id)
        keys = ("reservation_id", "station_id", "connector", "start", "end", "state")
        return None if row is None else dict(zip(keys, row))

    def get_reservation(self, reservation_id):
        row = self._db.execute("SELECT %s FROM reservations WHERE id = ?" % _RES_COLS, (reservation_id,)).fetchone()
        return None if row is None else dict(zip(_RES_KEYS, row))

    def load_open_reservations(self):
        """Every confirmed reservation, as dicts, oldest id first (the book's startup load)."""
        rows = self._db.execute("SELECT %s FROM reservations WHERE state = 'confirmed' ORDER BY id" % _RES_COLS)
        return [dict(zip(_RES_KEYS, r)) for r in rows]

    # --- sessions -------------------------------------------------------------------------

    def record_session_start(
        self,
        session_id,
        station_id,
        connector,
        vehicle_id,
        reservation_id,
        meter_start_wh,
        started,
        claimed_vehicle_id=None,
    ):
        """Record a session start; returns False if this session id is already known (a replay).
        vehicle_id is the vehicle the hub attributed it to (None: a local session); claimed_vehicle_id
        what the station named when that differs."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO sessions (session_id, station_id, connector, vehicle_id, reservation_id,"
                " meter_start_wh, started, claimed_vehicle_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    station_id,
                    connector,
                    vehicle_id,
                    reservation_id,
                    meter_start_wh,
                    started,
                    claimed_vehicle_id,
                ),
            )
        return cur.rowcount == 1

    def record_session_end(
        self,
        session_id,
        station_id,
        connector,
        vehicle_id,
        reservation_id,
        energy_wh,
        started,
        ended,
        reason,
        claimed_vehicle_id=None,
        implausible=False,
    ):
        """Record a session end; returns False if it was already recorded (a replay).

        A session whose start never reached the hub is recorded whole from its end.
        """
        with self._tx() as db:
            row = db.execute("SELECT ended FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
            if row is not None and row[0] is not None:
                return False
            if row is None:
                db.execute(
                    "INSERT INTO sessions (session_id, station_id, connector, vehicle_id, reservation_id, energy_wh,"
                    " started, ended, reason, claimed_vehicle_id, implausible) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        session_id,
                        station_id,
                        connector,
                        vehicle_id,
                        reservation_id,
                        energy_wh,
                        started,
                        ended,
                        reason,
                        claimed_vehicle_id,
                        int(bool(implausible)),
                    ),
                )
            else:
                db.execute(
                    "UPDATE sessions SET energy_wh = ?, ended = ?, reason = ?, implausible = ?,"
                    " reservation_id = COALESCE(reservation_id, ?) WHERE session_id = ?",
                    (energy_wh, ended, reason, int(bool(implausible)), reservation_id, session_id),
                )
        return True

    def get_session(self, session_id):
        row = self._db.execute(
            "SELECT %s FROM sessions WHERE session_id = ?" % ", ".join(_SESSION_KEYS), (session_id,)
        ).fetchone()
        return None if row is None else dict(zip(_SESSION_KEYS, row))

    def vehicle_reservations(self, vehicle_id, limit=MAX_LISTED_SESSIONS):
        """A vehicle's reservations in every state, newest window first (at most `limit`), as the
        wire maps RESERVATIONS carries (`evhub vehicle reservations --all`)."""
        rows = self._db.execute(
            'SELECT id, station_id, connector, start, "end", state FROM reservations WHERE vehicle_id = ?'
            " ORDER BY start DESC, id DESC LIMIT ?",
            (vehicle_id, limit),
        )
        keys = ("reservation_id", "station_id", "connector", "start", "end", "state")
        return [dict(zip(keys, r)) for r in rows]

    def vehicle_sessions(self, vehicle_id, limit=MAX_LISTED_SESSIONS):
        """A vehicle's sessions, newest first (at most `limit`), as wire maps: what SESSIONS carries."""
        rows = self._db.execute(
            "SELECT session_id, station_id, connector, reservation_id, energy_wh, started, ended, reason"
            " FROM sessions WHERE vehicle_id = ? ORDER BY started DESC, session_id LIMIT ?",
            (vehicle_id, limit),
        )
        keys = ("session_id", "station_id", "connector", "reservation_id", "energy_wh", "started", "ended", "reason")
        return [dict(zip(keys, r)) for r in rows]

    def load_open_sessions(self):
        """Sessions started and not ended, as dicts (they occupy connectors after a restart)."""
        rows = self._db.execute(
            "SELECT %s FROM sessions WHERE ended IS NULL ORDER BY started" % ", ".join(_SESSION_KEYS)
        )
        return [dict(zip(_SESSION_KEYS, r)) for r in rows]


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

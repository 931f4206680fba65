"""Versioned schema migrations: the same numbers on SQLite and PostgreSQL.

A store records the last migration applied (SQLite: PRAGMA user_version; PostgreSQL: the one row
of `evhub_schema`). Opening a store applies the missing ones in order, in ONE transaction, and logs
"store: migrated from version N to M"; a store NEWER than this code is refused (StoreError), never
misread. On PostgreSQL the transaction first takes an advisory lock, so several hubs starting at
once on one database migrate it once.

Each migration is a list of steps. A step is DDL text (types as {id} {int} {real}, filled in by the
dialect), ("column", table, column, declaration) which adds a column only when it is missing, or
{"sqlite": ..., "postgresql": ...} for the few statements that differ. Stores from before numbered
migrations (user_version 1 plus the additions that used to be applied idempotently on every open)
upgrade cleanly because every step of 2..5 is idempotent.

  1  stations, vehicles, reservations, sessions
  2  authorisation: removed markers, revocations, remote starts, session attribution
  3  operators: station name and protocol, vehicles' last positions
  4  RESERVE's idempotency key: reservations.request_id, unique per vehicle
  5  the OCPP ledger: transactions the central system issued, idTags
  6  settings: the operator key of a PostgreSQL store (a SQLite store keeps it in a file beside it)
  7  no double booking in the database: PostgreSQL's exclusion constraint, a SQLite trigger
"""

from __future__ import annotations

import logging
from typing import Any

from hub.store.backend import Dialect

log = logging.getLogger(__name__)

# PostgreSQL decides "no double booking": two confirmed reservations of one connector may not
# overlap (int8range is half-open [start, end), so back-to-back windows do not collide). Connector 0
# ("any": room by count, no single connector free throughout) cannot be expressed per connector and
# stays the book's decision (design memo §2.3). btree_gist gives GiST the `=` on text and integers.
_PG_NO_OVERLAP = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    "ALTER TABLE reservations ADD CONSTRAINT reservations_no_overlap EXCLUDE USING gist (station_id WITH =, connector WITH =, int8range(start, \"end\") WITH &&) WHERE (state = 'confirmed' AND connector > 0)",
]

# SQLite has no exclusion constraints: a trigger skips (RAISE(IGNORE)) the row instead, so
# `INSERT ... RETURNING` returns nothing for it, as PostgreSQL's ON CONFLICT DO NOTHING does. One hub
# owns a SQLite file (lock.py) and its book already decided, so this is the second line of defence
# there; it costs one indexed probe of the station's confirmed windows per insert.
_SQLITE_NO_OVERLAP = """CREATE TRIGGER IF NOT EXISTS reservations_no_overlap BEFORE INSERT ON reservations
WHEN NEW.state = 'confirmed' AND NEW.connector > 0 AND EXISTS (
    SELECT 1 FROM reservations r WHERE r.station_id = NEW.station_id AND r.state = 'confirmed'
    AND r.start < NEW."end" AND r."end" > NEW.start AND r.connector = NEW.connector)
BEGIN SELECT RAISE(IGNORE); END"""

MIGRATIONS: list[tuple[int, str, list[Any]]] = [
    (
        1,
        "stations, vehicles, reservations, sessions",
        [
            """CREATE TABLE IF NOT EXISTS stations (
    id          TEXT PRIMARY KEY,
    key         TEXT NOT NULL,
    lat         {real} NOT NULL,
    lon         {real} NOT NULL,
    connectors  {int} NOT NULL CHECK (connectors >= 1),
    max_kw      {real} NOT NULL,
    created     {int} NOT NULL
)""",
            """CREATE TABLE IF NOT EXISTS vehicles (
    id          TEXT PRIMARY KEY,
    token       TEXT NOT NULL,
    created     {int} NOT NULL
)""",
            # vehicle_id has no foreign key: the owner is whoever the gateway authenticated, and a
            # reservation must not become impossible to record if a vehicle is re-provisioned.
            """CREATE TABLE IF NOT EXISTS reservations (
    id          {id},
    vehicle_id  TEXT NOT NULL,
    station_id  TEXT NOT NULL REFERENCES stations(id),
    connector   {int} NOT NULL,
    start       {int} NOT NULL,
    "end"       {int} NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('confirmed', 'fulfilled', 'cancelled', 'expired')),
    created     {int} NOT NULL,
    updated     {int} NOT NULL,
    CHECK ("end" > start)
)""",
            "CREATE INDEX IF NOT EXISTS reservations_open ON reservations(station_id, start) WHERE state = 'confirmed'",
            "CREATE INDEX IF NOT EXISTS reservations_vehicle ON reservations(vehicle_id)",
            # reservation_id has no foreign key: it is what the station reported, kept as evidence
            # even when it names a reservation the hub no longer considers open.
            """CREATE TABLE IF NOT EXISTS sessions (
    session_id      TEXT PRIMARY KEY,
    station_id      TEXT NOT NULL REFERENCES stations(id),
    connector       {int} NOT NULL,
    vehicle_id      TEXT,
    reservation_id  {int},
    meter_start_wh  {int},
    energy_wh       {int},
    started         {int},
    ended           {int},
    reason          TEXT
)""",
            "CREATE INDEX IF NOT EXISTS sessions_open ON sessions(station_id) WHERE ended IS NULL",
            "CREATE INDEX IF NOT EXISTS sessions_vehicle ON sessions(vehicle_id, started)",
        ],
    ),
    (
        2,
        "authorisation: removed markers, revocations, remote starts",
        [
            ("column", "stations", "removed", "{int}"),  # epoch s of `evhub ... remove`, NULL while active
            ("column", "vehicles", "removed", "{int}"),
            # the vehicle a station named for a session the hub did not attribute to it (a local session)
            ("column", "sessions", "claimed_vehicle_id", "TEXT"),
            ("column", "sessions", "implausible", "{int} NOT NULL DEFAULT 0"),  # energy > max_kw x duration
            # one row per replaced or removed key; the running hub polls it (hub/io/revocation.py)
            """CREATE TABLE IF NOT EXISTS revocations (
    seq      {id},
    role     TEXT NOT NULL,
    peer_id  TEXT NOT NULL,
    why      TEXT NOT NULL,
    at       {int} NOT NULL
)""",
            # the REMOTE_STARTs the hub sent: grants that attribute the next session of that vehicle there
            """CREATE TABLE IF NOT EXISTS remote_starts (
    id              {id},
    station_id      TEXT NOT NULL,
    vehicle_id      TEXT NOT NULL,
    reservation_id  {int},
    issued          {int} NOT NULL,
    session_id      TEXT
)""",
            "CREATE INDEX IF NOT EXISTS remote_starts_open ON remote_starts(station_id, vehicle_id)"
            " WHERE session_id IS NULL",
            "CREATE INDEX IF NOT EXISTS sessions_reservation ON sessions(reservation_id) WHERE reservation_id IS NOT NULL",
        ],
    ),
    (
        3,
        "operators: station names and protocols, vehicles' last positions",
        [
            ("column", "stations", "name", "TEXT"),  # a place label shown on the dashboard
            ("column", "stations", "protocol", "TEXT NOT NULL DEFAULT 'evhub'"),  # "evhub" or "ocpp1.6"
            """CREATE TABLE IF NOT EXISTS vehicle_positions (
    vehicle_id  TEXT PRIMARY KEY,
    lat         {real} NOT NULL,
    lon         {real} NOT NULL,
    at          {int} NOT NULL,
    soc         {real}
)""",
        ],
    ),
    (
        4,
        "RESERVE's idempotency key",
        [
            ("column", "reservations", "request_id", "TEXT"),
            "CREATE UNIQUE INDEX IF NOT EXISTS reservations_request ON reservations(vehicle_id, request_id)"
            " WHERE request_id IS NOT NULL",
        ],
    ),
    (
        5,
        "the OCPP ledger",
        [
            """CREATE TABLE IF NOT EXISTS ocpp_transactions (
    transaction_id  {id},
    station_id      TEXT NOT NULL,
    connector       {int} NOT NULL,
    id_tag          TEXT NOT NULL,
    vehicle_id      TEXT,
    reservation_id  {int},
    meter_start     {int} NOT NULL,
    started         {int} NOT NULL,
    meter_stop      {int},
    stopped         {int},
    reason          TEXT,
    UNIQUE (station_id, connector, started, meter_start)
)""",
            """CREATE TABLE IF NOT EXISTS ocpp_id_tags (
    id_tag      TEXT PRIMARY KEY,
    vehicle_id  TEXT NOT NULL
)""",
            "CREATE INDEX IF NOT EXISTS ocpp_id_tags_vehicle ON ocpp_id_tags(vehicle_id)",
        ],
    ),
    (
        6,
        "settings",
        ["CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)"],
    ),
    (
        7,
        "the database refuses overlapping confirmed windows on one connector",
        [{"sqlite": [_SQLITE_NO_OVERLAP], "postgresql": _PG_NO_OVERLAP}],
    ),
]

LATEST = MIGRATIONS[-1][0]


def _columns(db: Any, dialect: Dialect, table: str) -> set[str]:
    if dialect.name == "sqlite":
        return {row[1] for row in db.execute("PRAGMA table_info(%s)" % table)}
    rows = db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    )
    return {row[0] for row in rows}


def apply(db: Any, dialect: Dialect, version: int, target: int = LATEST) -> list[int]:
    """Run the migrations after `version` up to `target` on `db` (inside the caller's transaction);
    returns the versions applied."""
    done = []
    for number, _what, steps in MIGRATIONS:
        if not version < number <= target:
            continue
        for step in steps:
            _run(db, dialect, step)
        done.append(number)
    return done


def _run(db: Any, dialect: Dialect, step: Any) -> None:
    if isinstance(step, dict):
        for sub in step.get(dialect.name, ()):
            _run(db, dialect, sub)
    elif isinstance(step, tuple):
        _kind, table, column, decl = step
        if column not in _columns(db, dialect, table):
            db.execute("ALTER TABLE %s ADD COLUMN %s %s" % (table, column, dialect.ddl(decl)))
    else:
        db.execute(dialect.ddl(step))

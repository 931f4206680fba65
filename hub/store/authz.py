"""Schema additions for authorisation and accounts, applied on every open, idempotently.

Columns are added with `ALTER TABLE ... ADD COLUMN` when missing (checked with
PRAGMA table_info), tables with CREATE TABLE IF NOT EXISTS, so a database made by
an older hub gains them without a schema version bump (and without racing other
additions for the version number):

  stations.removed, vehicles.removed   epoch seconds of `evhub ... remove`, NULL while active
  sessions.claimed_vehicle_id          the vehicle a station named for a session the hub did not
                                       attribute to it (vehicle_id is then NULL: a local session)
  sessions.implausible                 1 when the energy exceeds max_kw x duration (+ tolerance)
  revocations                          one row per replaced or removed key; the running hub polls it
  remote_starts                        the REMOTE_STARTs the hub sent: (station, vehicle) grants that
                                       attribute the next session of that vehicle there
"""

COLUMNS = (
    ("stations", "removed", "INTEGER"),
    ("vehicles", "removed", "INTEGER"),
    ("sessions", "claimed_vehicle_id", "TEXT"),
    ("sessions", "implausible", "INTEGER NOT NULL DEFAULT 0"),
)

TABLES = """
CREATE TABLE IF NOT EXISTS revocations (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    role     TEXT NOT NULL,
    peer_id  TEXT NOT NULL,
    why      TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS remote_starts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    station_id      TEXT NOT NULL,
    vehicle_id      TEXT NOT NULL,
    reservation_id  INTEGER,
    issued          INTEGER NOT NULL,
    session_id      TEXT
);
CREATE INDEX IF NOT EXISTS remote_starts_open ON remote_starts(station_id, vehicle_id) WHERE session_id IS NULL;
CREATE INDEX IF NOT EXISTS sessions_reservation ON sessions(reservation_id) WHERE reservation_id IS NOT NULL;
"""


def add_columns_and_tables(db, columns, tables):
    """Idempotent additions to an open database (inside the caller's write transaction): each
    (table, column, declaration) added if missing, then `tables` (CREATE ... IF NOT EXISTS; ...) run.
    The one migration step shared by the store's add-on modules."""
    for table, column, decl in columns:
        have = {row[1] for row in db.execute("PRAGMA table_info(%s)" % table)}
        if column not in have:
            db.execute("ALTER TABLE %s ADD COLUMN %s %s" % (table, column, decl))
    for statement in tables.split(";"):
        if statement.strip():
            db.execute(statement)


def migrate(db):
    """Bring an open database (inside the caller's write transaction) up to these additions."""
    add_columns_and_tables(db, COLUMNS, TABLES)

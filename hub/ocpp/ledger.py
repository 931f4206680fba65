"""What the OCPP central system must remember across reconnects and restarts, in the hub's store.

- ``ocpp_transactions``: the transaction ids the central system issued (OCPP 1.6: the central
  system issues them, evhub's stations issue their own session ids). A StartTransaction a charger
  replays after a reconnect (or sends late from its offline queue) finds its row by
  (station, connector, timestamp, meterStart) and gets the same id back; a replayed
  StopTransaction finds the row already stopped. Each is recorded exactly once.
- ``ocpp_id_tags``: idTag (upper case: idTags compare case-insensitively) -> vehicle. Provisioned
  tags (RFID cards) and the tags the central system made up for vehicles it starts remotely.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from hub.ocpp.mapping import app_id_tag, normal_id_tag
from hub.store.authz import add_columns_and_tables

TABLES = """
CREATE TABLE IF NOT EXISTS ocpp_transactions (
    transaction_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    station_id      TEXT NOT NULL,
    connector       INTEGER NOT NULL,
    id_tag          TEXT NOT NULL,
    vehicle_id      TEXT,
    reservation_id  INTEGER,
    meter_start     INTEGER NOT NULL,
    started         INTEGER NOT NULL,
    meter_stop      INTEGER,
    stopped         INTEGER,
    reason          TEXT,
    UNIQUE (station_id, connector, started, meter_start)
);
CREATE TABLE IF NOT EXISTS ocpp_id_tags (
    id_tag      TEXT PRIMARY KEY,
    vehicle_id  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ocpp_id_tags_vehicle ON ocpp_id_tags(vehicle_id)
"""
BUSY_TIMEOUT_S = 10


class Transaction(NamedTuple):
    transaction_id: int
    station_id: str
    connector: int
    id_tag: str
    vehicle_id: str | None
    reservation_id: int | None
    meter_start: int
    started: int
    meter_stop: int | None
    stopped: int | None
    reason: str | None


class Ledger:
    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            add_columns_and_tables(self._db, (), TABLES)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def start(
        self,
        station_id: str,
        connector: int,
        id_tag: str,
        vehicle_id: str | None,
        reservation_id: int | None,
        meter_start: int,
        started: int,
    ) -> tuple[Transaction, bool]:
        """(the transaction, whether this call created it): a replay gets the first one back."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO ocpp_transactions (station_id, connector, id_tag, vehicle_id, reservation_id, "
            "meter_start, started) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (station_id, connector, id_tag, vehicle_id, reservation_id, meter_start, started),
        )
        row = self._db.execute(
            "SELECT * FROM ocpp_transactions WHERE station_id = ? AND connector = ? AND started = ? AND meter_start = ?",
            (station_id, connector, started, meter_start),
        ).fetchone()
        return Transaction(*row), cur.rowcount == 1

    def get(self, transaction_id: int) -> Transaction | None:
        row = self._db.execute("SELECT * FROM ocpp_transactions WHERE transaction_id = ?", (transaction_id,)).fetchone()
        return None if row is None else Transaction(*row)

    def stop(self, transaction_id: int, meter_stop: int, stopped: int, reason: str) -> bool:
        """Record the end once; False when it was already recorded (a replayed StopTransaction)."""
        cur = self._db.execute(
            "UPDATE ocpp_transactions SET meter_stop = ?, stopped = ?, reason = ? WHERE transaction_id = ? AND stopped IS NULL",
            (meter_stop, stopped, reason, transaction_id),
        )
        return cur.rowcount == 1

    def vehicle_for(self, id_tag: str) -> str | None:
        row = self._db.execute(
            "SELECT vehicle_id FROM ocpp_id_tags WHERE id_tag = ?", (normal_id_tag(id_tag),)
        ).fetchone()
        return row[0] if row else None

    def add_tag(self, id_tag: str, vehicle_id: str) -> None:
        """Provision an idTag (an RFID card) for a vehicle; ValueError if another vehicle holds it."""
        tag = normal_id_tag(id_tag)
        holder = self.vehicle_for(tag)
        if holder is not None and holder != vehicle_id:
            raise ValueError("idTag %s already belongs to %s" % (tag, holder))
        self._db.execute("INSERT OR IGNORE INTO ocpp_id_tags (id_tag, vehicle_id) VALUES (?, ?)", (tag, vehicle_id))

    def tag_for(self, vehicle_id: str) -> str:
        """The idTag a remote start for `vehicle_id` carries: one provisioned for it, else its app tag."""
        row = self._db.execute(
            "SELECT id_tag FROM ocpp_id_tags WHERE vehicle_id = ? ORDER BY id_tag LIMIT 1", (vehicle_id,)
        ).fetchone()
        if row:
            return str(row[0])
        tag = app_id_tag(vehicle_id)
        self.add_tag(tag, vehicle_id)
        return tag

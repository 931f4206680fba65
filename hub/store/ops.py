"""Store operations for operators: a station's display name, `stations update`, vehicles' last positions.

The columns and tables are migration 3 (migrations.py); these functions run on either engine.
"""

from __future__ import annotations

PROTOCOLS = ("evhub", "ocpp1.6")  # which protocol a charge point speaks (stations.protocol)

MAX_NAME = 80
UPDATABLE = ("lat", "lon", "connectors", "max_kw", "name")


def clean_name(name: str | None) -> str | None:
    """A display name, or None for none; ValueError when it cannot be shown safely."""
    if name is None:
        return None
    name = " ".join(str(name).split())
    if not name:
        return None
    if len(name) > MAX_NAME or any(ord(c) < 32 or c == "\x7f" for c in name):
        raise ValueError("name must be 1..%d printable characters" % MAX_NAME)
    return name


def set_name(store, station_id: str, name: str | None) -> None:
    with store._tx() as db:
        db.execute("UPDATE stations SET name = ? WHERE id = ? AND removed IS NULL", (clean_name(name), station_id))


def set_names(store, pairs) -> None:
    """[(station_id, name)] in one transaction (the simulator names its stations by city)."""
    rows = [(clean_name(name), sid) for sid, name in pairs]
    with store._tx() as db:
        db.executemany("UPDATE stations SET name = ? WHERE id = ? AND removed IS NULL", rows)


def update_station(store, station_id: str, changes: dict) -> bool:
    """Change some of lat/lon/connectors/max_kw/name of a provisioned station (its key stays).
    Returns False when no such station. Values are checked by the caller (tools.commands.stations)."""
    cols = [k for k in UPDATABLE if k in changes]
    with store._tx() as db:
        if not cols:
            return (
                db.execute("SELECT 1 FROM stations WHERE id = ? AND removed IS NULL", (station_id,)).fetchone()
                is not None
            )
        sql = "UPDATE stations SET %s WHERE id = ? AND removed IS NULL" % ", ".join("%s = ?" % k for k in cols)
        return db.execute(sql, [changes[k] for k in cols] + [station_id]).rowcount == 1


def set_protocol(store, station_id: str, protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError("protocol must be one of %s" % ", ".join(PROTOCOLS))
    with store._tx() as db:
        db.execute("UPDATE stations SET protocol = ? WHERE id = ? AND removed IS NULL", (protocol, station_id))


def station_protocol(store, station_id: str) -> str | None:
    """The protocol a provisioned station speaks, or None when it is not provisioned."""
    row = store._db.execute("SELECT protocol FROM stations WHERE id = ? AND removed IS NULL", (station_id,)).fetchone()
    return row[0] if row else None


def save_positions(store, rows) -> int:
    """[(vehicle_id, lat, lon, at, soc)] upserted in one transaction; returns how many."""
    rows = list(rows)
    if rows:
        with store._tx() as db:
            db.executemany(
                "INSERT INTO vehicle_positions (vehicle_id, lat, lon, at, soc) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(vehicle_id) DO UPDATE SET lat = excluded.lat, lon = excluded.lon, at = excluded.at,"
                " soc = excluded.soc",
                rows,
            )
    return len(rows)


def load_positions(store) -> list[tuple]:
    """[(vehicle_id, lat, lon, at, soc)] as last saved."""
    return list(store._db.execute("SELECT vehicle_id, lat, lon, at, soc FROM vehicle_positions"))

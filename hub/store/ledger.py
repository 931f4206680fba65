"""The OCPP central system's memory in the hub's store (migration 5): its SQL, on either engine.

hub/ocpp/ledger.py holds the rules (replays, idTag ownership); these functions only read and write.
Each write is one statement on the store's autocommit connection: durable when it returns.
"""

from __future__ import annotations

from typing import Any

_TX_COLS = (
    "transaction_id, station_id, connector, id_tag, vehicle_id, reservation_id, meter_start, started,"
    " meter_stop, stopped, reason"
)


def start_transaction(store: Any, row: tuple) -> tuple[tuple, bool]:
    """row: (station_id, connector, id_tag, vehicle_id, reservation_id, meter_start, started).
    Returns (the stored transaction row, whether this call created it): a replay finds the first."""
    cur = store._db.execute(
        "INSERT INTO ocpp_transactions (station_id, connector, id_tag, vehicle_id, reservation_id, "
        "meter_start, started) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        row,
    )
    created = cur.rowcount == 1
    found = store._db.execute(
        "SELECT %s FROM ocpp_transactions WHERE station_id = ? AND connector = ? AND started = ? AND meter_start = ?"
        % _TX_COLS,
        (row[0], row[1], row[6], row[5]),
    ).fetchone()
    return tuple(found), created


def get_transaction(store: Any, transaction_id: int) -> tuple | None:
    row = store._db.execute(
        "SELECT %s FROM ocpp_transactions WHERE transaction_id = ?" % _TX_COLS, (transaction_id,)
    ).fetchone()
    return None if row is None else tuple(row)


def stop_transaction(store: Any, transaction_id: int, meter_stop: int, stopped: int, reason: str) -> bool:
    """Record the end once; False when it was already recorded."""
    cur = store._db.execute(
        "UPDATE ocpp_transactions SET meter_stop = ?, stopped = ?, reason = ? WHERE transaction_id = ?"
        " AND stopped IS NULL",
        (meter_stop, stopped, reason, transaction_id),
    )
    return cur.rowcount == 1


def tag_holder(store: Any, id_tag: str) -> str | None:
    row = store._db.execute("SELECT vehicle_id FROM ocpp_id_tags WHERE id_tag = ?", (id_tag,)).fetchone()
    return row[0] if row else None


def add_tag(store: Any, id_tag: str, vehicle_id: str) -> None:
    store._db.execute(
        "INSERT INTO ocpp_id_tags (id_tag, vehicle_id) VALUES (?, ?) ON CONFLICT DO NOTHING", (id_tag, vehicle_id)
    )


def first_tag(store: Any, vehicle_id: str) -> str | None:
    row = store._db.execute(
        "SELECT id_tag FROM ocpp_id_tags WHERE vehicle_id = ? ORDER BY id_tag LIMIT 1", (vehicle_id,)
    ).fetchone()
    return str(row[0]) if row else None

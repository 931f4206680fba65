"""Live station views shared between hubs.

Only a station's home knows its live state. It writes the station's view (what NEAREST and the API
show) to `station_status`, fenced on its home epoch, and nudges every hub (CH_STATUS). Every other
hub reads the rows into its own view of remote stations. A view whose home hub stopped beating is
read as Offline: that is how the survivors show a dead hub's stations.
"""

import json
from typing import Any, Iterable

from hub.cluster.membership import BEAT_S, DEAD_AFTER_BEATS
from hub.cluster.schema import CH_STATUS, NOW
from hub.domain.states import StationStatus
from hub.domain.stations import StationView


def view_doc(view: StationView) -> "dict[str, Any]":
    return view._asdict()


def view_from_doc(doc: "dict[str, Any]", alive: bool) -> StationView:
    doc = dict(doc)
    doc["connector_status"] = {int(k): v for k, v in (doc.get("connector_status") or {}).items()}
    view = StationView(**doc)
    if not alive and view.online:  # its home hub is dead: the station is not reachable through it
        view = view._replace(online=False, status=StationStatus.OFFLINE, free_in_min=None)
    return view


def publish(conn: Any, hub_id: str, views: "Iterable[tuple[StationView, int]]") -> int:
    """Write (view, home epoch) rows this hub is still home for; returns how many were written.

    A row is written only where station_home still names (hub_id, epoch): a hub that lost a station
    writes nothing for it. One transaction, one NOTIFY per written station.
    """
    written = 0
    with conn.transaction():
        for view, epoch in views:
            cur = conn.execute(
                "INSERT INTO station_status (station_id, hub_id, epoch, view, updated)"
                " SELECT %s, %s, %s, %s, " + NOW + " WHERE EXISTS (SELECT 1 FROM station_home"
                " WHERE station_id = %s AND hub_id = %s AND epoch = %s)"
                " ON CONFLICT (station_id) DO UPDATE SET hub_id = EXCLUDED.hub_id, epoch = EXCLUDED.epoch,"
                " view = EXCLUDED.view, updated = EXCLUDED.updated",
                (view.id, hub_id, epoch, json.dumps(view_doc(view)), view.id, hub_id, epoch),
            )
            if cur.rowcount:
                written += 1
                conn.execute("SELECT pg_notify(%s, %s)", (CH_STATUS, view.id))
    return written


def read(conn: Any, station_ids: "Iterable[str] | None" = None) -> "dict[str, tuple[StationView, str]]":
    """station_id -> (view, home hub id) for the given stations (all when None)."""
    sql = (
        "SELECT s.view, s.hub_id, coalesce(b.last_seen, 0) > " + NOW + " - %s"
        " AND EXISTS (SELECT 1 FROM station_home h WHERE h.station_id = s.station_id AND h.hub_id = s.hub_id)"
        " FROM station_status s LEFT JOIN hubs b ON b.hub_id = s.hub_id"
    )
    args: "list[Any]" = [BEAT_S * DEAD_AFTER_BEATS]
    if station_ids is not None:
        sql += " WHERE s.station_id = ANY(%s)"
        args.append(list(station_ids))
    out = {}
    for doc, hub_id, alive in conn.execute(sql, args).fetchall():
        view = view_from_doc(doc, bool(alive))
        out[view.id] = (view, hub_id)
    return out

"""Which hubs are alive, and which hub is each station's home.

A hub beats every `BEAT_S`; one silent for `DEAD_AFTER_BEATS` beats is dead, and its stations are
shown Offline by the survivors unless they have reconnected elsewhere first.

A station's home is the hub that holds its link. Claiming it bumps an epoch; the previous home
learns of it (NOTIFY on CH_HOME) and drops its stale link. Every write a home makes for its
station (status, delivered requests) is fenced on (hub_id, epoch): a hub that lost the station
cannot act for it, even before it has noticed.
"""

from typing import Any, NamedTuple, Optional

from hub.cluster.schema import CH_HOME, NOW

BEAT_S = 1.0
DEAD_AFTER_BEATS = 3


class Home(NamedTuple):
    hub_id: str
    epoch: int
    alive: bool  # its hub beat within DEAD_AFTER_BEATS beats


def beat(conn: Any, hub_id: str, address: str = "") -> None:
    """Record that this hub is alive (also registers it on its first beat)."""
    conn.execute(
        "INSERT INTO hubs (hub_id, address, started, last_seen) VALUES (%s, %s, " + NOW + ", " + NOW + ")"
        " ON CONFLICT (hub_id) DO UPDATE SET last_seen = EXCLUDED.last_seen, address = EXCLUDED.address",
        (hub_id, address),
    )


def leave(conn: Any, hub_id: str) -> None:
    """A clean shutdown: this hub's homes end now rather than after its beats stop."""
    with conn.transaction():
        conn.execute("DELETE FROM station_home WHERE hub_id = %s", (hub_id,))
        conn.execute("UPDATE hubs SET last_seen = 0 WHERE hub_id = %s", (hub_id,))


def claim(conn: Any, station_id: str, hub_id: str) -> int:
    """Make this hub the station's home; returns the new epoch. Told to every hub (CH_HOME)."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO station_home (station_id, hub_id, epoch, since) VALUES (%s, %s, 1, " + NOW + ")"
            " ON CONFLICT (station_id) DO UPDATE SET hub_id = EXCLUDED.hub_id,"
            " epoch = station_home.epoch + 1, since = EXCLUDED.since RETURNING epoch",
            (station_id, hub_id),
        ).fetchone()
        epoch = int(row[0])
        conn.execute("SELECT pg_notify(%s, %s)", (CH_HOME, "%s %s %d" % (station_id, hub_id, epoch)))
    return epoch


def release(conn: Any, station_id: str, hub_id: str, epoch: int) -> bool:
    """The station's link closed here. Only the current home (same epoch) can release it."""
    with conn.transaction():
        cur = conn.execute(
            "DELETE FROM station_home WHERE station_id = %s AND hub_id = %s AND epoch = %s",
            (station_id, hub_id, epoch),
        )
        released = bool(cur.rowcount)
        if released:
            conn.execute("SELECT pg_notify(%s, %s)", (CH_HOME, "%s - %d" % (station_id, epoch)))
    return released


def home_of(conn: Any, station_id: str) -> Optional[Home]:
    row = conn.execute(
        "SELECT h.hub_id, h.epoch, coalesce(b.last_seen, 0) > " + NOW + " - %s FROM station_home h"
        " LEFT JOIN hubs b ON b.hub_id = h.hub_id WHERE h.station_id = %s",
        (BEAT_S * DEAD_AFTER_BEATS, station_id),
    ).fetchone()
    return Home(row[0], int(row[1]), bool(row[2])) if row else None


def dead_homes(conn: Any) -> "list[tuple[str, str, int]]":
    """(station_id, hub_id, epoch) of every station whose home hub stopped beating."""
    rows = conn.execute(
        "SELECT h.station_id, h.hub_id, h.epoch FROM station_home h LEFT JOIN hubs b ON b.hub_id = h.hub_id"
        " WHERE coalesce(b.last_seen, 0) <= " + NOW + " - %s ORDER BY h.station_id",
        (BEAT_S * DEAD_AFTER_BEATS,),
    ).fetchall()
    return [(r[0], r[1], int(r[2])) for r in rows]


def live_hubs(conn: Any) -> "list[str]":
    rows = conn.execute(
        "SELECT hub_id FROM hubs WHERE last_seen > " + NOW + " - %s ORDER BY hub_id", (BEAT_S * DEAD_AFTER_BEATS,)
    ).fetchall()
    return [r[0] for r in rows]

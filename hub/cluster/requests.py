"""Hub-to-hub requests: what one hub asks of a station whose link another hub holds.

A request is a row in `hub_requests`, addressed to the station's home at its current epoch, and a
NOTIFY on that hub's channel, in ONE transaction: the NOTIFY is only a nudge, and a hub drains its
untaken rows on every (re)connect, so a lost notification delays a request but never loses it.
Taking a request is an UPDATE that only the addressed hub, still home at that epoch, can make.
"""

import json
from typing import Any, NamedTuple, Optional

from hub.cluster.schema import NOW, hub_channel

DEFAULT_TTL_S = 30.0


class HubRequest(NamedTuple):
    id: int
    station_id: str
    epoch: int
    kind: str
    body: "dict[str, Any]"
    reply_hub: str = ""


def send(
    conn: Any,
    station_id: str,
    kind: str,
    body: "dict[str, Any]",
    ttl_s: float = DEFAULT_TTL_S,
    reply_hub: str = "",
) -> Optional[int]:
    """Queue a request for the station's home; its id, or None when the station has no home."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO hub_requests (station_id, target_hub, epoch, kind, body, reply_hub, created, expires)"
            " SELECT station_id, hub_id, epoch, %s, %s, %s, " + NOW + ", " + NOW + " + %s"
            " FROM station_home WHERE station_id = %s RETURNING id, target_hub",
            (kind, json.dumps(body), reply_hub, ttl_s, station_id),
        ).fetchone()
        if row is None:
            return None
        conn.execute("SELECT pg_notify(%s, %s)", (hub_channel(row[1]), str(row[0])))
    return int(row[0])


_TAKE = (
    "UPDATE hub_requests r SET taken = " + NOW + " FROM station_home h"
    " WHERE r.taken IS NULL AND r.target_hub = %s AND r.expires > " + NOW + ""
    " AND h.station_id = r.station_id AND h.hub_id = r.target_hub AND h.epoch = r.epoch"
)


def take(conn: Any, hub_id: str, request_id: int) -> Optional[HubRequest]:
    """Claim one request addressed to this hub; None if taken, expired, or no longer ours."""
    row = conn.execute(
        _TAKE + " AND r.id = %s RETURNING r.id, r.station_id, r.epoch, r.kind, r.body, r.reply_hub",
        (hub_id, request_id),
    ).fetchone()
    return HubRequest(int(row[0]), row[1], int(row[2]), row[3], row[4], row[5]) if row else None


def take_all(conn: Any, hub_id: str) -> "list[HubRequest]":
    """Claim every open request for this hub (after a (re)connect: NOTIFYs may have been missed)."""
    rows = conn.execute(
        _TAKE + " RETURNING r.id, r.station_id, r.epoch, r.kind, r.body, r.reply_hub", (hub_id,)
    ).fetchall()
    return sorted((HubRequest(int(r[0]), r[1], int(r[2]), r[3], r[4], r[5]) for r in rows), key=lambda r: r.id)


def answer(conn: Any, request: HubRequest, reply: Any) -> None:
    """Tell the hub that sent `request` the station's reply ((kind, fields) or None: no answer)."""
    if request.reply_hub:
        payload = "answer %d %s" % (request.id, json.dumps(None if reply is None else [reply[0], list(reply[1])]))
        conn.execute("SELECT pg_notify(%s, %s)", (hub_channel(request.reply_hub), payload))


def parse_answer(payload: str) -> "Optional[tuple[int, Any]]":
    """(request id, reply or None) from an "answer" payload; None for anything else."""
    parts = payload.split(" ", 2)
    if len(parts) != 3 or parts[0] != "answer" or not parts[1].isdigit():
        return None
    try:
        reply = json.loads(parts[2])
    except ValueError:
        return None
    if reply is not None and not (isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], list)):
        return None
    return int(parts[1]), None if reply is None else (reply[0], reply[1])

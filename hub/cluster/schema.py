"""The cluster's tables (PostgreSQL only; one embedded SQLite hub has no cluster).

Times in `hubs` come from the database's clock (`now()`), not a hub's: liveness must be judged on one
clock, and a simulation's sped-up hub clock must not make a live hub look dead.
"""

from typing import Any

DDL = """
CREATE TABLE IF NOT EXISTS hubs (
    hub_id     text PRIMARY KEY,
    address    text NOT NULL DEFAULT '',
    started    double precision NOT NULL,
    last_seen  double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS station_home (
    station_id text PRIMARY KEY,
    hub_id     text NOT NULL,
    epoch      bigint NOT NULL,
    since      double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS station_status (
    station_id text PRIMARY KEY,
    hub_id     text NOT NULL,
    epoch      bigint NOT NULL,
    view       jsonb NOT NULL,
    updated    double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_requests (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    station_id text NOT NULL,
    target_hub text NOT NULL,
    epoch      bigint NOT NULL,
    kind       text NOT NULL,
    body       jsonb NOT NULL,
    reply_hub  text NOT NULL DEFAULT '',
    created    double precision NOT NULL,
    expires    double precision NOT NULL,
    taken      double precision
);
CREATE INDEX IF NOT EXISTS hub_requests_open ON hub_requests (target_hub) WHERE taken IS NULL;
"""

NOW = "extract(epoch from clock_timestamp())"  # the database's wall clock, in seconds

# Channels. A hub's own channel carries the ids of requests for it.
CH_HOME = "evhub_home"  # payload "station_id hub_id epoch": a station has a new home
CH_STATUS = "evhub_status"  # payload station_id: its live view changed
CH_RESERVATION = "evhub_reservation"  # payload lines "hub_id reservation_id station_id state"
CH_VEHICLE = "evhub_vehicle"  # payload "vehicle_id base64(msgpack message)": for whichever hub holds its link
CH_SESSIONS = "evhub_sessions"  # payload "hub_id station_id": the station's open sessions changed
CH_STATION = "evhub_station"  # payload station_id: provisioning (position, connectors) changed


MAX_PAYLOAD = 7900  # bytes; PostgreSQL refuses a NOTIFY payload of 8000


def chunks(lines: "list[str]") -> "list[str]":
    """Lines joined by newlines into as few NOTIFY payloads as fit, in order."""
    out: "list[str]" = []
    size = 0
    for line in lines:
        if out and size + 1 + len(line) <= MAX_PAYLOAD:
            out[-1] += "\n" + line
            size += 1 + len(line)
        else:
            out.append(line)
            size = len(line)
    return out


def hub_channel(hub_id: str) -> str:
    """A hub's own channel: "<request id>" for a request to relay, "answer <request id> <json>" for an answer."""
    return "evhub_hub_" + hub_id


def apply(conn: Any) -> None:
    """Create the cluster's tables if missing (idempotent; one transaction)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(7301)")  # two hubs starting at once create them once
        conn.execute(DDL)

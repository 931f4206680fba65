"""Charging authorisation on the hub: who may start where, and whom a session is billed to.

Remote start (START_CHARGE from a vehicle) is honoured only for
  - the vehicle holding a current reservation at that station (its window has begun, or
    begins within EARLY_S), or
  - a walk-in: a vehicle at a connector the station reports Preparing (OCPP's "plugged in,
    not charging"), that no current reservation of another vehicle holds.
Anything else is refused: E_FORBIDDEN when the station is held for other vehicles,
E_INVALID_STATE when nothing is plugged in.

Attribution (SESSION_START/SESSION_END from a station): a session is billed to a vehicle
only when the hub sent that station a REMOTE_START for that vehicle (a grant in the
store's remote_starts, used once) or when it fulfils that vehicle's reservation there
(the reservation is the vehicle's, at this station, not cancelled, its window covers the
start, and no other session was billed to it). Anything else is a local session: stored
with vehicle_id NULL (the station's claim kept in claimed_vehicle_id), told to no vehicle.

Plausibility: energy above max_kw x duration (x TOLERANCE, + SLACK_WH) is flagged. The
duration is the station's claim, clipped to what the hub knows: not before the station
was provisioned, not after the hub's clock (+ CLOCK_SLACK_S).
"""

import logging
from typing import Mapping, Optional

from hub.domain.ports import AuthzStore
from hub.domain.states import ConnectorStatus
from transport.errors import E_FORBIDDEN, E_INVALID_STATE, EvhubError

log = logging.getLogger(__name__)

EARLY_S = 30 * 60  # as hub.domain.booking.EARLY_ARRIVAL_S: a vehicle this early counts as on time
GRANT_TTL_S = 6 * 3600  # a REMOTE_START attributes a session reported up to this long after it
TOLERANCE = 1.10  # meters and clocks are not exact: 10 % over max_kw x duration is still plausible
SLACK_WH = 10
CLOCK_SLACK_S = 300


class Refusal(EvhubError):
    """A start or a session record the hub will not accept (code, text)."""


# reservation_id -> (vehicle_id, start, end): the registry's windows (hub.domain.stations.Window).
Windows = Mapping[int, tuple[str, int, int]]


def current_window(
    windows: Windows, vehicle_id: str, now: float, reservation_id: Optional[int] = None
) -> Optional[int]:
    """The reservation id of vehicle_id's current window in `windows` (id -> (vehicle, start, end)),
    or None. With reservation_id, only that one counts."""
    for rid, (vid, start, end) in windows.items():
        if vid == vehicle_id and start - EARLY_S <= now < end and reservation_id in (None, rid):
            return rid
    return None


def authorise_start(
    station_id: str,
    windows: Windows,
    connector_status: Mapping[int, str],
    vehicle_id: str,
    reservation_id: Optional[int],
    now: float,
) -> tuple[int, Optional[int]]:
    """(connector, reservation_id) to put in the REMOTE_START, or raise Refusal.

    connector 0 lets the station pick the connector its reservation holds."""
    if reservation_id is not None:
        window = windows.get(reservation_id)
        if window is not None and window[0] == vehicle_id:
            if current_window(windows, vehicle_id, now, reservation_id) is None:
                raise Refusal(
                    E_INVALID_STATE,
                    "reservation %d at %s is not current (it runs %d..%d)"
                    % (reservation_id, station_id, window[1], window[2]),
                )
            return 0, reservation_id
        raise Refusal(E_FORBIDDEN, "no reservation %d for you at %s" % (reservation_id, station_id))
    rid = current_window(windows, vehicle_id, now)
    if rid is not None:
        return 0, rid
    plugged = sorted(n for n, s in connector_status.items() if s == "Preparing")
    others = sum(1 for vid, start, end in windows.values() if vid != vehicle_id and start - EARLY_S <= now < end)
    free = sum(1 for s in connector_status.values() if s in (ConnectorStatus.AVAILABLE, ConnectorStatus.PREPARING))
    # Windows the station already shows as Reserved hold their own connector, not a free one.
    need = max(0, others - sum(1 for s in connector_status.values() if s == ConnectorStatus.RESERVED))
    if plugged and free > need:
        # One plugged connector: name it, so the station refuses if another car is on it. Several:
        # the station picks the one this vehicle is plugged into.
        return (plugged[0] if len(plugged) == 1 else 0), None
    if others and free <= need:
        raise Refusal(E_FORBIDDEN, "no reservation for you at %s" % station_id)
    raise Refusal(E_INVALID_STATE, "nothing plugged in at %s (plug in, or reserve first)" % station_id)


def attribute(
    store: AuthzStore,
    windows: Windows,
    station_id: str,
    session_id: str,
    vehicle_id: Optional[str],
    reservation_id: Optional[int],
    started: int,
    now: float,
) -> tuple[Optional[str], Optional[int], str]:
    """(vehicle_id or None, reservation_id or None, why): whom the station's session is billed to."""
    if not vehicle_id or type(vehicle_id) is not str:
        return None, None, "no vehicle named"
    granted, grant_rid = store.take_remote_start(station_id, vehicle_id, session_id, int(now) - GRANT_TTL_S)
    if granted:
        return vehicle_id, reservation_id if reservation_id is not None else grant_rid, "remote start"
    rid = reservation_id
    if rid is None:
        rid = current_window(windows, vehicle_id, started)
    if rid is not None:
        row = store.get_reservation(rid)
        if (
            row is not None
            and row["vehicle_id"] == vehicle_id
            and row["station_id"] == station_id
            and row["state"] != "cancelled"
            and row["start"] - EARLY_S <= started < row["end"]
            and not store.reservation_billed(rid, session_id)
        ):
            return vehicle_id, rid, "reservation %d" % rid
    return None, None, "no remote start or reservation of %s here" % vehicle_id


def implausible(
    energy_wh: int, max_kw: float, started: int, ended: int, provisioned: Optional[int], now: float
) -> bool:
    """True when energy_wh is more than the station could deliver in the session's duration."""
    start = max(started, provisioned or 0)
    end = min(ended, int(now) + CLOCK_SLACK_S)
    duration = max(0, end - start)
    return energy_wh > max_kw * 1000.0 * duration / 3600.0 * TOLERANCE + SLACK_WH

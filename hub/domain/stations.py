"""The stations' rules with no actor, no thread and no store: what the StationRegistry decides.

`Stations` holds what every charge point is (position, connectors, power, name), says (connector
statuses, liveness) and is doing (live sessions, the upcoming reservation windows the book told),
and derives what drivers see: a StationView per station with one display word (Available,
Occupied, Reserved, Offline, Unavailable, Faulted) and "Free in X min".

`view` (station id -> StationView) is the snapshot the I/O loop reads without asking the registry:
entries are replaced, never edited (a dict item assignment is atomic under the GIL).

Each Station also carries its `sync` (hub/domain/station_sync.py): which of its windows the station was
sent and holds, so the windows and what the station knows of them change together.

The checks on a station's frames raise `authz.Refusal(code, text)`, which the registry turns into
the station's ERROR. `StationRequests` correlates hub->station requests with their replies, and
`relay_outcome` says what a vehicle is told about the station's answer to its request.

The registry (hub/actors/registry.py) is the thin actor around this: it owns the store, the Outbox and
the tells to the book, the locator and the event bus.
"""

import math
from typing import Callable, Iterator, NamedTuple, Optional

from hub.domain.authz import Refusal
from hub.domain.bounds import MAX_ENERGY_WH, MAX_EPOCH, MAX_ID_LEN, MAX_RESERVATION_ID
from hub.domain.capacity import Mismatch
from hub.domain.states import ConnectorStatus, StationStatus
from hub.domain.station_sync import Reply, StationSync
from transport import kinds as K
from transport.errors import E_BAD_FIELD, E_FORBIDDEN, E_NOT_FOUND, E_TIMEOUT

MAX_CONNECTORS = K.MAX_CONNECTORS  # one limit for hub, CLI and firmware

# Display words (what a driver sees for a whole station).
AVAILABLE = StationStatus.AVAILABLE
OCCUPIED = StationStatus.OCCUPIED
RESERVED = StationStatus.RESERVED
OFFLINE = StationStatus.OFFLINE
UNAVAILABLE = StationStatus.UNAVAILABLE
FAULTED = StationStatus.FAULTED

RESERVED_SHOWN_BEFORE_S = 3600  # a window starting within this counts for "Free in X min" of a Reserved station


class StationView(NamedTuple):
    """What the loop answers NEAREST and STATIONS_LIST from (and the HTTP API shows)."""

    id: str
    lat: float
    lon: float
    status: str
    free_in_min: Optional[int]
    free_at: Optional[float]
    connectors: int
    max_kw: float
    online: bool
    last_seen: Optional[float]
    connector_status: "dict[int, str]"
    mismatch: Optional[Mismatch] = None
    name: Optional[str] = None


def display_status(online: bool, connector_status: "dict[int, str]") -> str:
    """The one word a driver sees for a station, from its connectors' statuses."""
    if not online:
        return OFFLINE
    statuses = list(connector_status.values())
    if not statuses:
        return AVAILABLE
    if ConnectorStatus.AVAILABLE in statuses:
        return AVAILABLE
    if all(s == ConnectorStatus.FAULTED for s in statuses):
        return FAULTED
    if all(s in (ConnectorStatus.UNAVAILABLE, ConnectorStatus.FAULTED) for s in statuses):
        return UNAVAILABLE
    if ConnectorStatus.RESERVED in statuses:
        return RESERVED
    return OCCUPIED


class LiveSession(NamedTuple):
    """A session running at a station, as its SESSION_START (and METERs since) told."""

    connector: int
    vehicle_id: Optional[str]
    reservation_id: Optional[int]
    started: int
    expected_end: float
    energy_wh: int = 0
    power_w: int = 0


class Window(NamedTuple):
    """An upcoming reservation at a station, as the book told it."""

    vehicle_id: str
    start: int
    end: int


class Station:
    __slots__ = (
        "id",
        "lat",
        "lon",
        "connectors",
        "max_kw",
        "online",
        "last_seen",
        "firmware",
        "connector_status",
        "sessions",
        "windows",
        "mismatch",
        "name",
        "sync",
    )

    def __init__(self, station_id: str, lat: float, lon: float, connectors: int, max_kw: float) -> None:
        self.id = station_id
        self.lat = lat
        self.lon = lon
        self.connectors = connectors
        self.max_kw = max_kw
        self.online = False
        self.last_seen: Optional[float] = None
        self.firmware: Optional[str] = None
        self.connector_status: "dict[int, str]" = {n: ConnectorStatus.UNAVAILABLE for n in range(1, connectors + 1)}
        self.sessions: "dict[str, LiveSession]" = {}
        self.windows: "dict[int, Window]" = {}
        self.mismatch: Optional[Mismatch] = None  # hub.domain.capacity doc while provisioning and BOOT disagree
        self.name: Optional[str] = None  # place label from provisioning (`stations add --name`)
        self.sync = StationSync()  # which windows the station was sent (its table is small): hub/domain/station_sync.py


class Stations:
    """Every known station and the rules on what they report. Driven by one thread (the registry's)."""

    def __init__(self, clock: Callable[[], float], session_estimate_s: float) -> None:
        self.clock = clock
        self.session_estimate_s = session_estimate_s
        self.by_id: "dict[str, Station]" = {}
        self.view: "dict[str, StationView]" = {}
        # Live views of stations whose link another hub holds (several hubs on one PostgreSQL).
        self.remote: "dict[str, StationView]" = {}

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, station_id: str) -> Optional[Station]:
        return self.by_id.get(station_id)

    def learn(
        self, station_id: str, lat: float, lon: float, connectors: int, max_kw: float, name: Optional[str] = None
    ) -> Station:
        """Add a station, or take its new position, power, connector count and name."""
        st = self.by_id.get(station_id)
        if st is None:
            st = Station(station_id, lat, lon, connectors, max_kw)
            self.by_id[station_id] = st
        else:
            st.lat, st.lon, st.max_kw = lat, lon, max_kw
            if connectors != st.connectors:
                st.connectors = connectors
                st.connector_status = {
                    n: st.connector_status.get(n, ConnectorStatus.UNAVAILABLE) for n in range(1, connectors + 1)
                }
        if name is not None:
            st.name = name
        return st

    def remove(self, station_id: str) -> bool:
        self.view.pop(station_id, None)
        self.remote.pop(station_id, None)
        return self.by_id.pop(station_id, None) is not None

    # --- what drivers see ----------------------------------------------------------------------

    def refresh(self, st: Station) -> "tuple[StationView, Optional[StationView]]":
        """Derive the station's view now and publish it in `view`: (new view, the one it replaced).

        A station online here is described by what it told us. One that is not, but is online on another
        hub, is shown as that hub describes it, its "Free in X min" counted on our clock.
        """
        now = self.clock()
        if st.online:
            self.remote.pop(st.id, None)
        remote = self.remote.get(st.id)
        if remote is not None and remote.online:
            old = self.view.get(st.id)
            free_in = remote.free_in_min
            if remote.free_at is not None and remote.status != AVAILABLE:
                free_in = max(1, int(math.ceil((remote.free_at - now) / 60.0)))
            view = self.view[st.id] = remote._replace(free_in_min=free_in, name=st.name or remote.name)
            return view, old
        status = display_status(st.online, st.connector_status)
        free_at = None
        if status == OCCUPIED:
            ends = [s.expected_end for s in st.sessions.values()]
            free_at = min(ends) if ends else now + self.session_estimate_s
        elif status == RESERVED:
            current = [w.end for w in st.windows.values() if w.start - RESERVED_SHOWN_BEFORE_S <= now]
            free_at = min(current) if current else None
        free_in = None if free_at is None else max(1, int(math.ceil((free_at - now) / 60.0)))
        if status == AVAILABLE:
            free_in = 0
        old = self.view.get(st.id)
        view = self.view[st.id] = StationView(
            st.id,
            st.lat,
            st.lon,
            status,
            free_in,
            free_at,
            st.connectors,
            st.max_kw,
            st.online,
            st.last_seen,
            dict(st.connector_status),
            st.mismatch,
            st.name,
        )
        return view, old

    def set_remote(self, view: StationView) -> "Optional[tuple[StationView, Optional[StationView]]]":
        """Another hub's view of a station it is home for; None for a station not known here yet."""
        st = self.by_id.get(view.id)
        if st is None:
            return None
        self.remote[view.id] = view
        return self.refresh(st)

    @staticmethod
    def news(view: StationView, old: Optional[StationView]) -> bool:
        """Whether a driver-visible part changed (status, free in, liveness, a connector)."""
        return (
            old is None
            or old[3:5] != view[3:5]
            or old.online != view.online
            or old.connector_status != view.connector_status
        )

    def counting_down(self) -> "Iterator[Station]":
        """Stations whose "Free in X min" moves with the clock."""
        return (st for st in self.by_id.values() if st.sessions or st.windows)

    def retry_due(self) -> "Iterator[Station]":
        """Stations with a RESERVE_NOW to send again (lost, or refused for a passing reason)."""
        return (st for st in self.by_id.values() if st.sync.retry_due)

    # --- what a station reports ---------------------------------------------------------------------

    @staticmethod
    def check_boot(lat: float, lon: float, connectors: int, max_kw: float) -> None:
        # Written so that NaN fails too.
        if (
            not (-90 <= lat <= 90 and -180 <= lon <= 180)
            or connectors < 1
            or connectors > MAX_CONNECTORS
            or not (0 < max_kw <= 1000)
        ):
            raise Refusal(E_BAD_FIELD, "boot: position, connectors (1..%d) or max_kw out of range" % MAX_CONNECTORS)

    def booted(self, st: Station, firmware: str, mismatch: Optional[Mismatch]) -> None:
        st.mismatch = mismatch
        st.firmware = firmware
        st.online = True
        st.last_seen = self.clock()

    def set_online(self, st: Station, online: bool) -> None:
        st.online = online
        if online:
            st.last_seen = self.clock()
        st.sync.reset()  # it may have rebooted: what it holds is sent again (and cancelled beyond its horizon)

    def set_status(self, st: Station, connector: int, status: str) -> Optional[str]:
        """Take a STATUS; the connector's previous status is returned."""
        if status not in K.CONNECTOR_STATUSES:
            raise Refusal(E_BAD_FIELD, "status %r is not one of %s" % (status, ", ".join(K.CONNECTOR_STATUSES)))
        if connector < 1 or connector > st.connectors:
            raise Refusal(E_BAD_FIELD, "connector %d does not exist (1..%d)" % (connector, st.connectors))
        old = st.connector_status.get(connector)
        st.connector_status[connector] = status
        st.last_seen = self.clock()
        st.online = True
        return old

    def metered(self, st: Station, session_id: Optional[str], energy_wh: int, power_w: int) -> Optional[LiveSession]:
        """Take a METER: the live session it is for (updated), or None (unknown or no session)."""
        st.last_seen = self.clock()
        if not session_id:
            return None
        s = st.sessions.get(session_id)
        if s is None:
            return None
        s = st.sessions[session_id] = s._replace(energy_wh=energy_wh, power_w=power_w)
        return s

    @staticmethod
    def check_session_start(
        st: Station, session_id: str, connector: int, reservation_id: Optional[int], meter_start_wh: int, started: int
    ) -> None:
        if connector < 1 or connector > st.connectors:
            raise Refusal(E_BAD_FIELD, "connector %d does not exist" % connector)
        if (
            not session_id
            or len(session_id) > MAX_ID_LEN
            or not 0 <= meter_start_wh < MAX_ENERGY_WH
            or not 0 <= started < MAX_EPOCH
            or not _reservation_id_ok(reservation_id)
        ):
            raise Refusal(E_BAD_FIELD, "session_start: session_id, meter or time out of range")

    @staticmethod
    def check_session_end(
        st: Station,
        session_id: str,
        connector: int,
        reservation_id: Optional[int],
        energy_wh: int,
        started: int,
        ended: int,
    ) -> None:
        if (
            not (0 <= energy_wh < MAX_ENERGY_WH and 0 <= started <= ended < MAX_EPOCH)
            or not 0 < connector <= st.connectors
        ):
            raise Refusal(E_BAD_FIELD, "session_end: energy, times or connector out of range")
        if not session_id or len(session_id) > MAX_ID_LEN or not _reservation_id_ok(reservation_id):
            raise Refusal(E_BAD_FIELD, "session_end: session_id must be 1..%d characters" % MAX_ID_LEN)

    @staticmethod
    def check_owner(station_id: str, session_id: str, recorded_station_id: Optional[str]) -> None:
        """A station reports only for itself: a session recorded for another station is refused."""
        if recorded_station_id is not None and recorded_station_id != station_id:
            raise Refusal(E_FORBIDDEN, "session %s belongs to another station" % session_id)

    def expected_end(self, st: Station, reservation_id: Optional[int], started: int) -> float:
        """When a session is expected to free its connector: its reservation's end, else an estimate."""
        window = st.windows.get(reservation_id) if reservation_id is not None else None
        if window is not None and window.end > started:
            return window.end
        return started + self.session_estimate_s

    def session_started(
        self,
        st: Station,
        session_id: str,
        connector: int,
        vehicle_id: Optional[str],
        reservation_id: Optional[int],
        started: int,
    ) -> Optional[LiveSession]:
        """Open the session (the new LiveSession), or None if it is open already (a replayed start).
        The reservation it fulfils is no longer upcoming either way (see `window_used`)."""
        new = None
        if session_id not in st.sessions:
            new = st.sessions[session_id] = LiveSession(
                connector, vehicle_id, reservation_id, started, self.expected_end(st, reservation_id, started)
            )
        self.window_used(st, reservation_id)
        return new

    def window_used(self, st: Station, reservation_id: Optional[int]) -> bool:
        """A session started on the reservation: its window leaves, and the station used its row
        (nothing to cancel there). True if the window was known: the next one may go."""
        if reservation_id is None or st.windows.pop(reservation_id, None) is None:
            return False
        st.sync.forget(reservation_id, cancel=False)
        return True

    def session_ended(self, st: Station, session_id: str) -> None:
        st.sessions.pop(session_id, None)

    # --- reservations told by the book ------------------------------------------------------------

    def reserved(
        self, st: Station, reservation_id: int, vehicle_id: str, start: int, end: int, connector: int = 0
    ) -> None:
        st.windows[reservation_id] = Window(vehicle_id, start, end)
        st.sync.changed(reservation_id, connector)

    def reservation_ended(self, st: Station, reservation_id: int, why: str) -> bool:
        """Forget the window (cancelled on the station at the next sync unless a session used it);
        False if it was not known."""
        if st.windows.pop(reservation_id, None) is None:
            return False
        st.sync.forget(reservation_id, cancel=why != "fulfilled")
        return True

    # --- what vehicles ask --------------------------------------------------------------------------

    def session_station(self, session_id: str) -> Optional[Station]:
        """The station running `session_id` as far as this hub knows (its own stations), or None."""
        for st in self.by_id.values():
            if session_id in st.sessions:
                return st
        return None

    def session_to_stop(self, vehicle_id: str, session_id: str) -> Station:
        """The station running `session_id` for `vehicle_id` (STOP_CHARGE), or raise Refusal."""
        for st in self.by_id.values():
            s = st.sessions.get(session_id)
            if s is not None:
                if s.vehicle_id != vehicle_id:
                    raise Refusal(E_FORBIDDEN, "session %s belongs to another vehicle" % session_id)
                return st
        raise Refusal(E_NOT_FOUND, "no running session %s" % session_id)


def _reservation_id_ok(reservation_id: Optional[int]) -> bool:
    return reservation_id is None or 0 < reservation_id < MAX_RESERVATION_ID


# --- hub -> station requests ----------------------------------------------------------------------


class StationRequests:
    """Tags for hub->station requests, and what to do with each answer.

    A request sent with a callback gets a tag the Outbox passes along; the station's answer (or
    None: no answer, no link) comes back as StationAnswer(tag, ...) and runs the callback once."""

    def __init__(self) -> None:
        self._pending: "dict[int, Callable[[Reply], None]]" = {}
        self._next_tag = 1

    def __len__(self) -> int:
        return len(self._pending)

    def new(self, on_reply: Optional[Callable[[Reply], None]]) -> int:
        tag = self._next_tag
        self._next_tag += 1
        if on_reply is not None:
            self._pending[tag] = on_reply
        return tag

    def answered(self, tag: int, answer: Reply) -> bool:
        """Run the tag's callback with `answer`; False if no one waits for that tag (any more)."""
        on_reply = self._pending.pop(tag, None)
        if on_reply is None:
            return False
        on_reply(answer)
        return True


def relay_outcome(answer: Reply, what: str) -> "Optional[tuple[int, str]]":
    """What a vehicle is told of the station's answer to its request: None (ACK) or (code, text)
    for its ERROR. `answer` is None (no answer), or (kind, fields)."""
    if answer is None:
        return E_TIMEOUT, "%s: the station did not answer" % what
    if answer[0] == K.ERROR:
        return answer[1][0], "%s refused by the station: %s" % (what, answer[1][1])
    return None

"""The book's vocabulary: reservations, results, events, its per-station state, its limits and its error."""

from __future__ import annotations

from typing import Callable, Iterable, Literal, NamedTuple, Optional, TypedDict, Union

from transport.errors import EvhubError

MAX_DURATION_S = 24 * 3600
MAX_AHEAD_S = 30 * 86400
PAST_SLACK_S = 60  # clocks of vehicles drift; a start a minute ago is "now"
DEFAULT_GRACE_S = 600
DEFAULT_SESSION_S = 45 * 60  # assumed length of a session whose end nobody announced
EARLY_ARRIVAL_S = 30 * 60  # a session this early still counts as the vehicle's reservation
MAX_NEARBY_ALTERNATIVES = 3
MAX_NEIGHBOURS_TRIED = 30  # bounds the work a conflicting request can cause
MAX_WINDOW_CANDIDATES = 2000
DEFAULT_MAX_OPEN_PER_VEHICLE = 3  # one vehicle cannot book every connector for a month
# A session past its expected end still holds its connector this long from now: a station refuses to
# hold a busy connector for a window that opens within its hold_before_s (firmware default 600), so
# booking one sooner would be refused as soon as the station hears of it.
OVERRUN_HOLD_S = 600
STORE_RETRIES = 2  # rounds of "try the next connector" after the database refused a window


class Reservation(NamedTuple):
    """A confirmed reservation (state "confirmed"), or one that ended (fulfilled, cancelled, expired)."""

    id: int  # the store's key; negative while provisional within a batch, 0 for move()'s blocker
    vehicle_id: str
    station_id: str
    connector: int  # 0: any (room by count, no single connector free throughout)
    start: int
    end: int
    state: str  # a hub.domain.states.ReservationState value


class Alternative(TypedDict):
    """A window offered instead of a conflicting one (RESERVE_RESULT's alternatives)."""

    station_id: str
    start: float  # a session's expected end can be a fraction of a second
    end: float
    distance_km: float


class ReserveResult(NamedTuple):
    ok: bool
    reservation: Optional[Reservation]  # set when ok
    alternatives: list[Alternative]
    reason: Optional[str]  # why not, when not ok


class _Session(NamedTuple):
    session_id: Optional[str]
    vehicle_id: Optional[str]
    reservation_id: Optional[int]
    started: int
    expected_end: float


# What the owner hears (take_events): ("reserved", r), or ("ended", r, why) with why the end state.
Event = Union[tuple[Literal["reserved"], Reservation], tuple[Literal["ended"], Reservation, str]]
# station_id -> (distance_km, station_id) of its neighbours, nearest first.
Nearby = Callable[[str], Iterable[tuple[float, str]]]
_Item = tuple[int, int, int, int]  # (start, end, reservation_id, connector) of a held window
_Busy = tuple[float, float, Optional[int], int]  # an _Item, or a session: (started, until, None, connector)


class BookingError(EvhubError):
    """A refused request (code, text), sent back in an ERROR."""


Outcome = Union[ReserveResult, BookingError]  # one per request of reserve_many


class _Station:
    __slots__ = ("id", "connectors", "starts", "items", "sessions", "max_len")

    def __init__(self, station_id: str, connectors: int) -> None:
        self.id = station_id
        self.connectors = connectors
        self.starts: list[int] = []  # sorted start times of confirmed reservations
        self.items: list[_Item] = []  # parallel: (start, end, reservation_id, connector)
        self.sessions: dict[int, _Session] = {}  # connector -> _Session
        self.max_len = 1  # longest window held; bounds the overlap scan


# A provisional reservation of a batch: (request index, Reservation with a negative id, station, request_id).
_Held = tuple[int, Reservation, _Station, Optional[str]]
